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
