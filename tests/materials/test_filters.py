"""Perovskite validity filters on literal compounds: every rejection has its reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from materials.domain import PerovskiteDomain, structure_candidate
from materials.filters import (
    CrystalElementsFilter,
    CrystalGeometryFilter,
    PerovskiteFormabilityFilter,
)
from materials.formability import p_perovskite
from materials.structures import cubic_perovskite
from pipeline.registry import FILTERS

DOMAIN = PerovskiteDomain()


def _candidates(*texts: str) -> list:
    return [DOMAIN.candidate(t, f"c{i}") for i, t in enumerate(texts)]


def test_formability_passes_known_perovskites_and_names_what_fails() -> None:
    # CsPbI3 (tau 4.30, p 0.34) and SrTiO3 pass at the default bound of 0.3; a cell whose A and
    # B cannot balance the anions' charge, and one whose A ion is far too small, do not
    good = _candidates("CsPbI3", "SrTiO3", "Cs2AgBiBr6")
    unbalanced = structure_candidate(cubic_perovskite("Na", "K", "I", 6.0), "bad-charge")
    mismatched = structure_candidate(cubic_perovskite("Li", "Nb", "O", 3.9), "bad-size")
    result = PerovskiteFormabilityFilter()([*good, unbalanced, mismatched])
    assert result.passed == (True, True, True, False, False)
    assert "NaKI3 cannot be charge balanced" in result.reasons[3]
    assert result.reasons[4] == "p_perovskite 0.01 < 0.3 (tau 5.15)"  # LiNbO3: Li too small
    strict = PerovskiteFormabilityFilter(PerovskiteFormabilityFilter.Params(min_probability=0.5))
    assert strict(good).passed == (False, True, True)
    assert "p_perovskite 0.34 < 0.5 (tau 4.30)" in strict(good).reasons[0]


def test_formability_probability_is_calibrated_around_bartels_threshold() -> None:
    assert p_perovskite(4.18) == pytest.approx(0.5)
    assert p_perovskite(3.5) > 0.97 and p_perovskite(5.0) < 0.02
    assert p_perovskite(float("nan")) == 0.0
    t_range = PerovskiteFormabilityFilter(PerovskiteFormabilityFilter.Params(t_range=(0.9, 1.0)))
    assert "Goldschmidt t 0.851 outside [0.9, 1.0]" in t_range(_candidates("CsPbI3")).reasons[0]


def test_element_lists_deny_lead_and_scarce_elements_by_name() -> None:
    params = CrystalElementsFilter.Params(denied=["Pb"], denied_lists=["toxic", "scarce"])
    result = CrystalElementsFilter(params)(_candidates("CsPbI3", "CsSnI3", "Cs2AgAuCl6",
                                                       "BaTeO3"))
    assert result.passed == (False, True, False, False)
    assert result.reasons[0] == "Pb denied"
    assert result.reasons[2] == "Au on the scarce list"
    assert result.reasons[3] == "Te on the scarce list"
    allowed = CrystalElementsFilter(CrystalElementsFilter.Params(allowed=["Cs", "Sn", "Br"]))
    assert allowed(_candidates("CsSnBr3", "CsSnI3")).reasons == (
        "", "element(s) I not allowed (allowed: Cs, Sn, Br)")
    with pytest.raises(ValidationError, match="unknown element list"):
        CrystalElementsFilter.Params(denied_lists=["poisonous"])
    with pytest.raises(ValidationError, match="'Xx' is not an element symbol"):
        CrystalElementsFilter.Params(denied=["Xx"])


def test_geometry_rejects_atoms_too_close_and_absurd_volumes() -> None:
    fine = structure_candidate(cubic_perovskite("Sr", "Ti", "O", 3.9), "ok")
    squeezed = structure_candidate(cubic_perovskite("Sr", "Ti", "O", 1.6), "small")
    blown = structure_candidate(cubic_perovskite("Sr", "Ti", "O", 12.0), "big")
    result = CrystalGeometryFilter()([fine, squeezed, blown])
    assert result.passed == (True, False, False)
    assert "0.80 Angstrom apart (< 1.0)" in result.reasons[1]
    assert "volume 345.6 A^3 per atom outside [5.0, 100.0]" in result.reasons[2]


def test_filters_say_why_a_design_has_no_structure() -> None:
    junk = DOMAIN.candidate("not a crystal", "x")
    for name in ("perovskite_formability", "crystal_elements", "crystal_geometry"):
        result = FILTERS.build(name)([junk])
        assert result.passed == (False,)
        assert result.reasons[0].startswith("no structure: ")


def test_predicted_window_uses_the_shipped_model_and_refuses_unseen_elements() -> None:
    from materials.filters import CrystalPredictedFilter

    def window(low: float, high: float) -> CrystalPredictedFilter:
        return CrystalPredictedFilter(CrystalPredictedFilter.Params(
            property="formation_energy_ev_per_atom", min=low, max=high, min_probability=0.5))

    designs = _candidates("SrTiO3", "CsSnI3")
    wide = window(-5.0, 5.0)(designs)
    assert wide.passed == (True, False)
    assert wide.reasons[1] == ("no prediction: element(s) I not in the model's training data "
                               "(extrapolation refused)")
    far = window(3.0, 4.0)(designs[:1])
    assert not far.passed[0] and far.reasons[0].startswith(
        "P(formation_energy_ev_per_atom in [3.0, 4.0]) = 0.00 < 0.5 (predicted ")
    with pytest.raises(ValidationError, match="the crystal model predicts"):
        CrystalPredictedFilter.Params(property="gap_ev", min=1.0)
