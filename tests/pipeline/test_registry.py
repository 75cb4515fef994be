from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.registry import FILTERS, GENERATORS, ORACLES, Registry, RegistryError


def test_duplicate_name_is_an_error_and_unknown_lists_known_names() -> None:
    registry: Registry[object] = Registry("widget")

    @registry.register("a")
    class A:
        pass

    with pytest.raises(RegistryError, match="widget 'a' is already registered"):

        @registry.register("a")
        class B:
            pass

    with pytest.raises(RegistryError, match="unknown widget 'zzz'; known: a"):
        registry.get("zzz")
    assert "a" in registry and registry.names() == ["a"]
    assert repr(registry) == "Registry(role='widget', names=['a'])"


def test_build_validates_params_against_the_component_model() -> None:
    registry: Registry[object] = Registry("widget")

    @registry.register("scaled")
    class Scaled:
        class Params(BaseModel):
            model_config = ConfigDict(extra="forbid")
            factor: float = 1.0

        def __init__(self, params: Params) -> None:
            self.params = params

    built = registry.build("scaled", {"factor": 2.5})
    assert built.params.factor == 2.5  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="factr"):
        registry.build("scaled", {"factr": 2.0})


def test_molecule_domain_registers_its_components() -> None:
    assert "graph_ga" in GENERATORS
    assert {"sanitizable", "single_fragment", "elements", "heavy_atoms", "neutral"} <= set(
        FILTERS.names())
    assert "pyscf" in ORACLES
