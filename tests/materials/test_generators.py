"""Perovskite generators and site fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from materials.domain import PerovskiteDomain
from materials.featurize import PerovskiteSiteFingerprint
from materials.filters import candidate_formability
from materials.generators import (
    IonicSubstitutionGenerator,
    PerovskiteEnumerationGenerator,
    load_seed_perovskites,
)
from materials.structures import structure_from_text
from pipeline.protocols import GenerationContext, ScoredDesign


def test_enumeration_proposes_distinct_charge_balanced_designs() -> None:
    params = PerovskiteEnumerationGenerator.Params(
        a_elements=["Cs", "Rb"], b_elements=["Sn", "Ge", "Ag", "Bi", "In"],
        x_elements=["Br", "I"], double_share=0.5, tilted_share=0.5)
    generator = PerovskiteEnumerationGenerator(params)
    proposals = generator.sample(12, context=GenerationContext(0, 3, id_prefix="r0-g0-"))
    assert len(proposals) == 12
    assert len({c.key for c in proposals}) == 12
    assert [c.id for c in proposals][:2] == ["r0-g0-0000", "r0-g0-0001"]
    sizes = set()
    for c in proposals:
        structure = structure_from_text(c.representation)
        f = candidate_formability(structure)  # raises if it cannot be charge balanced
        sizes.add(len(structure))
        assert {f.a} <= {"Cs", "Rb"} and f.x in ("Br", "I")
    assert sizes <= {5, 10, 20} and 10 in sizes  # cubic, double and tilted cells
    again = generator.sample(12, context=GenerationContext(0, 3, id_prefix="r0-g0-"))
    assert [c.key for c in again] == [c.key for c in proposals]  # same seed, same proposals
    with pytest.raises(ValidationError, match="are not anions"):
        PerovskiteEnumerationGenerator.Params(a_elements=["Cs"], b_elements=["Sn"],
                                              x_elements=["Sn"])


def test_substitution_changes_one_site_of_a_parent() -> None:
    generator = IonicSubstitutionGenerator(IonicSubstitutionGenerator.Params(
        allowed=["Cs", "Rb", "K", "Sn", "Ge", "Pb", "Cl", "Br", "I"], parents=5))
    parent = PerovskiteDomain().candidate("CsSnI3", "p")
    context = GenerationContext(1, 5, population=(
        ScoredDesign(parent.key, parent.representation, 1.0),))
    proposals = generator.sample(6, context=context)
    assert proposals, "no substitution of CsSnI3 was made"
    for c in proposals:
        site, old_new = c.origin.split(":")[1:]
        old, new = old_new.split("->")
        assert site in ("A", "B", "X") and old != new
        elements = {s.specie.symbol for s in structure_from_text(c.representation)}
        assert elements <= {"Cs", "Rb", "K", "Sn", "Ge", "Pb", "Cl", "Br", "I"}
    # the most probable replacements of I- are the other halides
    assert [el for el, _, _ in generator.replacements("I", -1)][:2] == ["Br", "Cl"]


def test_seed_list_is_read_and_checked(tmp_path: object) -> None:
    assert "Cs2AgBiBr6" in load_seed_perovskites()
    path = f"{tmp_path}/seeds.txt"
    with open(path, "w") as handle:
        handle.write("# comment\nSrTiO3\nCsPbI\n")
    with pytest.raises(ValueError, match=r"seeds.txt:3: 'CsPbI' is not ABX3"):
        load_seed_perovskites(path)


def test_site_fingerprints_put_shared_sites_closer() -> None:
    domain = PerovskiteDomain()
    candidates = [domain.candidate(f, str(i)) for i, f in
                  enumerate(["CsPbI3", "CsSnI3", "KSnBr3", "Cs2AgBiBr6"])]
    x = PerovskiteSiteFingerprint()(candidates)
    assert x.shape == (4, PerovskiteSiteFingerprint().n_features) and (x >= 0).all()

    def tanimoto(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (a @ a + b @ b - a @ b))

    assert tanimoto(x[0], x[1]) > tanimoto(x[0], x[2])
    # the B site of Cs2AgBiBr6 is half Ag, half Bi
    ag, bi = 47 - 1, 83 - 1
    width = 94 + 4  # occupancies of elements 1..94 and four element properties per site
    assert x[3, width + ag] == pytest.approx(0.5) and x[3, width + bi] == pytest.approx(0.5)
