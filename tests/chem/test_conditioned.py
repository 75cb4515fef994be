"""The property model picks the generated molecules closest to the targets."""

from __future__ import annotations

import numpy as np
import pytest

from chem.conditioned import select_closest
from chem.flow_model import ATOM_CLASSES
from chem.generated import GeneratedMolecule, build_molecule
from chem.prior import DEFAULT_WEIGHTS
from chem.property_model import PropertyEnsemble


def _two_carbons(hydrogens: int, order: int) -> GeneratedMolecule:
    c = ATOM_CLASSES.index(("C", hydrogens))
    bonds = np.array([[0, order], [order, 0]])
    return build_molecule(np.array([c, c]), np.array([[0, 0, 0], [1.3, 0, 0]]), bonds)


@pytest.fixture(scope="module")
def model() -> PropertyEnsemble:
    return PropertyEnsemble.load(DEFAULT_WEIGHTS)


def test_the_closest_valid_distinct_molecules_are_kept_in_order(model: PropertyEnsemble) -> None:
    ethane, ethene, ethyne = _two_carbons(3, 1), _two_carbons(2, 2), _two_carbons(1, 3)
    broken = _two_carbons(3, 2)  # five bonds on each carbon
    assert not broken.valid
    molecules = [broken, ethane, ethene, ethene, ethyne]
    everything = select_closest(molecules, {"gap_ev": 0.0}, model, keep=10)
    assert everything.n_judged == 3  # the invalid one and the repeat are passed over
    gaps = everything.predicted[:, everything.properties.index("gap_ev")]
    assert np.all(np.diff(everything.distance_ev) >= 0)
    np.testing.assert_allclose(everything.distance_ev, np.abs(gaps))
    by_gap = sorted(zip(gaps, (m.smiles for m in everything.molecules), strict=True))
    for target_ev, expected in ((by_gap[0][0] - 1.0, by_gap[0][1]),
                                (by_gap[-1][0] + 1.0, by_gap[-1][1])):
        best = select_closest(molecules, {"gap_ev": target_ev}, model, keep=1)
        assert [m.smiles for m in best.molecules] == [expected]


def test_targets_the_model_does_not_predict_are_named(model: PropertyEnsemble) -> None:
    with pytest.raises(ValueError, match="does not predict dipole"):
        select_closest([_two_carbons(3, 1)], {"dipole": 1.0}, model, keep=1)
    empty = select_closest([_two_carbons(3, 2)], {"gap_ev": 6.0}, model, keep=3)
    assert empty.molecules == [] and empty.n_judged == 0


def test_judging_at_the_relaxed_generated_geometry_keeps_the_same_kind_of_order(
    model: PropertyEnsemble,
) -> None:
    ethane, ethene, ethyne = _two_carbons(3, 1), _two_carbons(2, 2), _two_carbons(1, 3)
    molecules = [_two_carbons(3, 2), ethane, ethene, ethyne]
    embedded = select_closest(molecules, {"gap_ev": 0.0}, model, keep=3)
    generated = select_closest(molecules, {"gap_ev": 0.0}, model, keep=3, geometry="generated")
    assert generated.n_judged == 3
    # ethane, ethene and ethyne have one minimum each: both geometries predict alike
    assert [m.smiles for m in generated.molecules] == [m.smiles for m in embedded.molecules]
    np.testing.assert_allclose(generated.predicted, embedded.predicted, atol=0.05)
    with pytest.raises(ValueError, match="geometry must be 'embedded' or 'generated'"):
        select_closest(molecules, {"gap_ev": 0.0}, model, keep=3, geometry="xyz")  # type: ignore[arg-type]


def test_selection_reports_progress_per_judged_molecule(model: PropertyEnsemble) -> None:
    from rich.progress import Progress

    molecules = [_two_carbons(3, 1), _two_carbons(2, 2), _two_carbons(2, 2)]
    for geometry in ("embedded", "generated"):
        with Progress(disable=True) as progress:
            select_closest(molecules, {"gap_ev": 8.0}, model, keep=1, progress=progress,
                           geometry=geometry)  # type: ignore[arg-type]
            (task,) = progress.tasks
            assert task.total == 2 and task.completed == 2  # the repeat is not judged


def test_the_model_reads_the_coordinates_it_is_given(model: PropertyEnsemble) -> None:
    from rdkit import Chem

    from chem.molecules import embed_geometry

    smiles = ["CC=O", "C#N"]
    mols = []
    for s in smiles:
        geometry = embed_geometry(s)  # the geometry predict_smiles makes
        xyz = "".join(f"{e} {x} {y} {z}\n" for e, (x, y, z) in
                      zip(geometry.symbols, geometry.positions_angstrom, strict=True))
        mols.append(Chem.MolFromXYZBlock(f"{len(geometry.symbols)}\n\n{xyz}"))
    mean, std = model.predict_molecules(mols)
    by_smiles = model.predict_smiles(smiles)
    for k, s in enumerate(smiles):
        np.testing.assert_allclose(mean[k], by_smiles[s][0], atol=1e-5)
        np.testing.assert_allclose(std[k], by_smiles[s][1], atol=1e-5)
    with pytest.raises(ValueError, match="molecule 0 has hydrogens without coordinates"):
        model.predict_molecules([Chem.MolFromMolBlock(Chem.MolToMolBlock(
            Chem.RemoveHs(_two_carbons(3, 1).mol)))])
    assert model.predict_molecules([])[0].shape == (0, len(model.properties))


def test_windows_keep_the_molecules_most_likely_inside(model: PropertyEnsemble) -> None:
    from chem.conditioned import select_for_conditions
    from pipeline.conditions import Condition

    ethane, ethene, ethyne = _two_carbons(3, 1), _two_carbons(2, 2), _two_carbons(1, 3)
    everything = select_for_conditions([ethane, ethene, ethyne], [], model, keep=3)
    gaps = dict(zip([m.smiles for m in everything.molecules],
                    everything.predicted[:, everything.properties.index("gap_ev")], strict=True))
    assert gaps["CC"] > gaps["C=C"]  # ethane's gap is the largest
    wide = select_for_conditions([ethyne, ethene, ethane], [Condition("gap_ev", ">=", 9.0)],
                                 model, keep=1)
    assert [m.smiles for m in wide.molecules] == ["CC"]
    assert wide.predicted_std is not None and wide.predicted_std.shape == (1, 3)
    narrow = select_for_conditions([ethane, ethene, ethyne], [Condition("gap_ev", "<=", 8.0)],
                                   model, keep=3)
    assert narrow.molecules[-1].smiles == "CC" and np.all(np.diff(narrow.distance_ev) >= 0)
    with pytest.raises(ValueError, match="no property model predicts frontier_overlap"):
        select_for_conditions([ethane], [Condition("frontier_overlap", "<=", 0.3)], model, 1)


def test_guidance_aims_inside_a_window() -> None:
    from chem.conditioned import guidance_point
    from pipeline.conditions import Condition

    assert guidance_point(Condition("gap_ev", "=", 6.5), 6.9, 1.3) == 6.5
    assert guidance_point(Condition("gap_ev", "<=", 5.0), 6.9, 1.3) == pytest.approx(4.35)
    assert guidance_point(Condition("gap_ev", "<=", 9.0), 6.9, 1.3) == pytest.approx(6.9)
    assert guidance_point(Condition("gap_ev", ">=", 8.0), 6.9, 1.3) == pytest.approx(8.65)
