from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import chem  # noqa: F401  (registers the molecule filters)
import oracles  # noqa: F401  (the shipped configs name the pyscf oracle)
from chem.filters import (
    PLAUSIBILITY_ALERTS,
    ElementsFilter,
    EmbeddableFilter,
    HeavyAtomsFilter,
    NeutralFilter,
    PlausibilityFilter,
    SanitizableFilter,
    SingleFragmentFilter,
)
from chem.molecules import MoleculeGeometry, embed_geometry
from pipeline.config import load_config
from pipeline.protocols import Filter
from pipeline.registry import FILTERS
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


# --- plausibility and 3D embedding ---------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]

UNSTABLE = [  # (SMILES, the alert or reason its rejection must name)
    ("O=C1CCC1OF", "hypohalite"),
    ("OC#CC1=NC=CCO1", "ynol"),
    ("NC#CC1=NC=CCO1", "ynamine"),
    ("C#CF", "haloalkyne"),
    ("c1c2nnc(c#1)OCC2", "aryne"),
    ("O=C1CC#CC1", "small_ring_alkyne"),
    ("Cc1nn2nc1C2", "anti_bredt"),
    ("OC1C2=CN1NN2", "anti_bredt"),
]


def _demo_filters() -> list[tuple[str, Filter]]:
    config = load_config(REPO / "conf" / "demo_molecules.yaml")
    return [(f.name, FILTERS.build(f.name, f.params)) for f in config.filters]


def _first_rejection(filters: list[tuple[str, Filter]],
                     candidates: list[Candidate]) -> list[tuple[str, str] | None]:
    """Runs the filters in order like a campaign: (filter, reason) of the first rejection."""
    verdict: list[tuple[str, str] | None] = [None] * len(candidates)
    for name, flt in filters:
        alive = [i for i, v in enumerate(verdict) if v is None]
        result = flt([candidates[i] for i in alive])
        for i, passed, reason in zip(alive, result.passed, result.reasons, strict=True):
            if not passed:
                verdict[i] = (name, reason)
    return verdict


def test_demo_filters_reject_unstable_molecules_naming_the_alert() -> None:
    filters = _demo_filters()
    names = [name for name, _ in filters]
    assert names[names.index("neutral") + 1] == "plausible"
    assert names[-1] == "embeddable"
    verdict = _first_rejection(filters, _cands(*(s for s, _ in UNSTABLE)))
    for (smiles, alert), v in zip(UNSTABLE, verdict, strict=True):
        assert v is not None, smiles
        assert v[0] == "plausible", (smiles, v)
        assert v[1].startswith("alerts: ") and f"{alert} (" in v[1], (smiles, v)


def test_plausible_names_every_alert_that_matches_and_can_exclude_one() -> None:
    aryne = "c1c2nnc(c#1)OCC2"
    reason = PlausibilityFilter()(_cands(aryne)).reasons[0]
    assert reason == (
        "alerts: aryne (triple bond in an aromatic ring, a reactive intermediate); "
        "small_ring_alkyne (triple bond in a ring of fewer than 9 atoms, too strained)")
    flt = PlausibilityFilter(PlausibilityFilter.Params(exclude=["aryne"]))
    assert flt(_cands(aryne)).reasons[0].startswith("alerts: small_ring_alkyne (")
    assert repr(flt) == f"PlausibilityFilter(alerts={len(PLAUSIBILITY_ALERTS) - 1}, exclude=['aryne'])"


def test_plausible_unknown_alert_name_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="unknown alert 'ynols'; known: hypohalite, ") as info:
        FILTERS.build("plausible", {"exclude": ["ynol", "ynols"]})
    assert ", ".join(a.name for a in PLAUSIBILITY_ALERTS) in str(info.value)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PlausibilityFilter.Params.model_validate({"exclud": ["ynol"]})


@pytest.mark.parametrize("smiles", [
    "c1ccccc1", "c1ccncc1", "CC#N", "CC#C", "C1CC1", "c1ccoc1", "CC(=O)O",
    "C[N+](C)(C)[O-]",  # N-oxide
    "CC=NO",  # oxime
    "C1CC2CC1C=C2",  # norbornene: the C=C lies in a bridge, not at a bridgehead
    "C12=CCCC(C1)CCC2",  # bicyclo[3.3.1]non-1-ene, Bredt number 7: isolable
    "C1CCC2=CCCCC2C1",  # octalin: double bond at a ring fusion, not a bridgehead
    "c1ccc2ccccc2c1",  # naphthalene: fused, not bridged
    "C1CCCC#CCCC1",  # cyclononyne
    "C=C=C",  # allene, acyclic
    "CC(=O)N(C)C#C",  # ynamide
    "CC(=O)C=C(O)C",  # enol of a 1,3-diketone
    "C1=NC1", "C1N=N1", "C1NO1", "O=C1C=C1", "C12CC1C2",  # strained but real small rings
])
def test_plausible_keeps_ordinary_molecules(smiles: str) -> None:
    result = PlausibilityFilter()(_cands(smiles))
    assert result.passed == (True,), result.reasons[0]


@pytest.mark.parametrize(("smiles", "alert"), [
    ("C1CC2=CCC1C2", "anti_bredt"),  # bicyclo[2.2.1]hept-1-ene
    ("C12=CCC(CC1)CC2", "anti_bredt"),  # bicyclo[2.2.2]oct-1-ene
    ("C1CCCC#CCC1", "small_ring_alkyne"),  # cyclooctyne
    ("C1CC=C=CC1", "small_ring_allene"),  # 1,2-cyclohexadiene
    ("C1=CC=C1", "antiaromatic_small_ring"),  # cyclobutadiene
    ("C1=CN1", "antiaromatic_small_ring"),  # 1H-azirine
    ("COOC", "peroxide"),
    ("FN(C)C", "n_halogen"),
    ("CN=[N+]=[N-]", "azide"),
    ("CC=[N+]=[N-]", "diazo"),
    ("CC=C=O", "ketene"),
    ("C=C=C=C", "cumulene"),
    ("CC=CO", "enol"),
    ("CC(O)OC", "hemiacetal"),
    ("CC(O)N", "hemiaminal"),
    ("OCF", "alpha_fluoro_oh_nh"),
])
def test_plausible_rejects_each_alert(smiles: str, alert: str) -> None:
    result = PlausibilityFilter()(_cands(smiles))
    assert result.passed == (False,)
    assert result.reasons[0].startswith(f"alerts: {alert} ("), result.reasons[0]


def test_embeddable_rejects_what_etkdg_cannot_embed() -> None:
    result = EmbeddableFilter()(_cands("CC(=O)OC", "O=C1CC#CC1", "Cc1nn2nc1C2", "OC1C2=CN1NN2"))
    assert result.passed == (True, False, False, False)
    assert set(result.reasons[1:]) == {"RDKit ETKDG found no 3D embedding"}
    given = Candidate("g", "C#C", "C#C", 0, "flow", geometry=embed_geometry("O"))
    garbage = _cands("not a smiles")[0]
    assert EmbeddableFilter()([given, garbage]).reasons == (
        "", "RDKit cannot parse or sanitise the SMILES")
    assert repr(EmbeddableFilter()) == "EmbeddableFilter(ETKDGv3)"


def test_oracle_preparer_reuses_the_embedding_of_the_filter() -> None:
    smiles = "OCC1=CC=CO1"
    cand = _cands(smiles)[0]
    assert EmbeddableFilter()([cand]).passed == (True,)
    prepared = MoleculeGeometry()(cand)
    assert prepared.geometry is embed_geometry(smiles)  # the same object: not embedded twice
    assert prepared.geometry is not None and len(prepared.geometry.symbols) == 13
    fresh = embed_geometry(smiles, max_attempts=6)  # another cache key, the same first attempt
    assert fresh is not prepared.geometry and fresh == prepared.geometry


def test_seed_library_passes_all_demo_filters() -> None:
    lines = (REPO / "chem" / "data" / "seed_molecules.smi").read_text().splitlines()
    smiles = [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]
    assert len(smiles) == 200
    verdict = _first_rejection(_demo_filters(), _cands(*smiles))
    share = sum(v is None for v in verdict) / len(smiles)
    assert share >= 0.95, [(s, v) for s, v in zip(smiles, verdict, strict=True) if v]
