"""One explicit registry per role: implementations register under a name, configs refer to it.

Example:
    >>> @GENERATORS.register("graph_ga")
    ... class GraphGAGenerator: ...

A duplicate name is an error, and so is an unknown name; its message lists the known ones.

Implementations register when their module is imported. The modules that hold them are named
once, with :func:`add_plugins` (the engine's own here; the domains and oracles by whoever
wires them, :mod:`flows`), and imported on the first lookup of any registry, so that a
command that needs no implementation (``invdes status``) never imports torch or RDKit.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


_PLUGINS: list[str] = ["pipeline.acquisition", "pipeline.surrogates"]
_LOADED: set[str] = set()
_LOADING = threading.RLock()


def add_plugins(*modules: str) -> None:
    """Names modules (``"chem"``, ``"oracles"``) whose import registers implementations; they
    are imported on the next lookup of any registry."""
    for module in modules:
        if module not in _PLUGINS:
            _PLUGINS.append(module)


def load_plugins() -> None:
    """Imports every module named with :func:`add_plugins` not imported yet.

    Thread-safe: a lookup in one thread waits while another thread imports the domains (the
    review page loads them in the background), instead of finding a registry half filled.
    """
    with _LOADING:
        for module in list(_PLUGINS):
            if module not in _LOADED:
                _LOADED.add(module)  # before the import: a lookup during it must not recurse
                importlib.import_module(module)


class RegistryError(KeyError):
    """An unknown or duplicate name in a registry."""

    def __str__(self) -> str:
        return str(self.args[0])


class NoParams(BaseModel):
    """Parameters of a component that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Registry(Generic[T]):
    """Named implementations of one role (generator, filter, surrogate, ...).

    A registered class may define a nested pydantic model ``Params`` (``extra="forbid"``); the config
    loader validates the ``params`` of a config section against it and the class is built with
    ``cls(params)``. A class without ``Params`` takes no parameters.

    Args:
        role: the role's name, used in error messages (``"generator"``).
    """

    def __init__(self, role: str) -> None:
        self.role = role
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator that registers an implementation under ``name``."""

        def decorate(cls: type[T]) -> type[T]:
            if name in self._entries and self._entries[name] is not cls:
                raise RegistryError(
                    f"{self.role} {name!r} is already registered by "
                    f"{self._entries[name].__module__}.{self._entries[name].__qualname__}"
                )
            self._entries[name] = cls
            return cls

        return decorate

    def get(self, name: str) -> type[T]:
        """Returns the implementation registered under ``name``.

        Raises:
            RegistryError: if nothing is registered under ``name``; lists the known names.
        """
        load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.role} {name!r}; known: {', '.join(self.names()) or '(none)'}"
            ) from None

    def params_model(self, name: str) -> type[BaseModel]:
        """Returns the pydantic model of the parameters of ``name``."""
        model = getattr(self.get(name), "Params", NoParams)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{self.role} {name!r}: Params must be a pydantic model")
        return model

    def build(self, name: str, params: BaseModel | dict[str, Any] | None = None) -> T:
        """Validates ``params`` and builds the implementation registered under ``name``."""
        cls = self.get(name)
        model = self.params_model(name)
        validated = params if isinstance(params, model) else model.model_validate(params or {})
        if model is NoParams:
            return cls()
        return cls(validated)  # type: ignore[call-arg]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry(role={self.role!r}, names={self.names()})"


GENERATORS: Registry[Any] = Registry("generator")
FILTERS: Registry[Any] = Registry("filter")
FEATURIZERS: Registry[Any] = Registry("featurizer")
SURROGATES: Registry[Any] = Registry("surrogate")
ACQUISITIONS: Registry[Any] = Registry("acquisition")
ORACLES: Registry[Any] = Registry("oracle")
PREPARERS: Registry[Any] = Registry("preparer")
"""Per domain (``molecules``, ``materials``): attaches what oracles need (a 3D structure)."""
PRIORS: Registry[Any] = Registry("prior")
"""Pretrained property models a surrogate can start from."""
DOMAINS: Registry[Any] = Registry("domain")
"""Per domain (``molecules``, ``materials``): how a design's text becomes a candidate."""
PRESENTERS: Registry[Any] = Registry("presenter")
"""Per domain: how the review page pictures, searches and exports designs."""
