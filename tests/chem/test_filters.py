from __future__ import annotations

import pytest

from chem.filters import (
    ElementsFilter,
    HeavyAtomsFilter,
    NeutralFilter,
    SanitizableFilter,
    SingleFragmentFilter,
)
from pipeline.types import Candidate


def _cands(*smiles: str) -> list[Candidate]:
    return [Candidate(f"c{i}", s, s, 0, "test") for i, s in enumerate(smiles)]


def test_sanitizable_rejects_impossible_valence_and_garbage() -> None:
    result = SanitizableFilter()(_cands("CCO", "C(C)(C)(C)(C)C", "not a smiles"))
    assert result.passed == (True, False, False)
    assert result.reasons[1] == "RDKit cannot parse or sanitise the SMILES"


def test_single_fragment_counts_fragments() -> None:
    result = SingleFragmentFilter()(_cands("CCO", "CC.O", "c1ccccc1"))
    assert result.passed == (True, False, True)
    assert result.reasons[1] == "2 disconnected fragments"


def test_elements_names_the_offending_element() -> None:
    flt = ElementsFilter(ElementsFilter.Params(allowed=["C", "N", "O", "F"]))
    result = flt(_cands("CCF", "CCCl", "C[Si](C)C"))
    assert result.passed == (True, False, False)
    assert result.reasons[1] == "element Cl not allowed (allowed: C, N, O, F)"
    with pytest.raises(ValueError, match="'Xx' is not an element symbol"):
        ElementsFilter.Params(allowed=["C", "Xx"])


def test_heavy_atoms_bounds_are_inclusive() -> None:
    flt = HeavyAtomsFilter(HeavyAtomsFilter.Params(min=2, max=3))
    result = flt(_cands("C", "CC", "CCC", "CCCC"))
    assert result.passed == (False, True, True, False)
    assert result.reasons[3] == "4 heavy atoms, allowed 2 to 3"
    with pytest.raises(ValueError, match="larger than max"):
        HeavyAtomsFilter.Params(min=5, max=3)


def test_neutral_rejects_ions_and_radicals_but_keeps_zwitterions() -> None:
    result = NeutralFilter()(_cands("C[NH3+]", "[CH3]", "C[N+](=O)[O-]"))
    assert result.passed == (False, False, True)
    assert result.reasons[:2] == ("net charge +1", "1 unpaired electrons")


def test_synthetic_accessibility_rejects_strained_cages() -> None:
    from chem.filters import SyntheticAccessibilityFilter

    flt = SyntheticAccessibilityFilter(SyntheticAccessibilityFilter.Params(max=6.0))
    result = flt(_cands("CCO", "c1ccccc1O", "O1C23C4C5N2N5C143"))
    assert result.passed == (True, True, False)
    assert result.reasons[2] == "SA score 7.31 above 6.0"
