"""Valence-constrained decoding on literal probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chem.flow_model import ATOM_CLASSES
from chem.valence import consistent, decode

CH3, CH2, OH, OH2 = (ATOM_CLASSES.index(c) for c in (("C", 3), ("C", 2), ("O", 1), ("O", 2)))


def _atoms(*rows: dict[int, float]) -> np.ndarray:
    probs = np.full((len(rows), len(ATOM_CLASSES)), 1e-6)
    for i, row in enumerate(rows):
        for c, p in row.items():
            probs[i, c] = p
    return probs


def _bonds(n: int, pairs: dict[tuple[int, int], dict[int, float]]) -> np.ndarray:
    probs = np.zeros((n, n, 4))
    probs[..., 0] = 1.0  # no bond unless given
    for (i, j), row in pairs.items():
        for a, b in ((i, j), (j, i)):
            probs[a, b] = 1e-6
            for k, p in row.items():
                probs[a, b, k] = p
    return probs


def test_a_consistent_argmax_graph_is_kept() -> None:
    found = decode(_atoms({CH3: 0.9}, {CH3: 0.9}), _bonds(2, {(0, 1): {1: 0.9, 0: 0.1}}))
    assert found is not None
    assert found.types.tolist() == [CH3, CH3] and found.bonds[0, 1] == 1
    assert found.log_loss == 0.0 and found.changed_atoms == found.changed_bonds == 0


def test_a_missing_bond_order_is_taken_from_the_second_choice() -> None:
    # ethene whose C=C the argmax reads as single: both CH2 carbons lack a bond
    found = decode(_atoms({CH2: 0.98}, {CH2: 0.98}), _bonds(2, {(0, 1): {1: 0.6, 2: 0.4}}))
    assert found is not None
    assert found.bonds[0, 1] == 2 and found.changed_bonds == 1 and found.changed_atoms == 0
    assert found.log_loss == pytest.approx(math.log(0.6 / 0.4), abs=1e-4)
    assert consistent(found.types, found.bonds)


def test_a_graph_the_model_finds_improbable_is_refused() -> None:
    atoms, bonds = _atoms({CH2: 0.98}, {CH2: 0.98}), _bonds(2, {(0, 1): {1: 0.99, 2: 0.01}})
    assert decode(atoms, bonds, max_log_loss=2.0) is None
    assert decode(atoms, bonds, max_log_loss=10.0) is not None


def test_fragments_are_joined_by_a_connectivity_cut() -> None:
    # without the cut the best valence-consistent graph is ethane + water
    atoms = _atoms({CH3: 0.6, CH2: 0.4}, {CH3: 0.99}, {OH2: 0.6, OH: 0.4})
    bonds = _bonds(3, {(0, 1): {1: 0.99}, (0, 2): {0: 0.6, 1: 0.4}})
    found = decode(atoms, bonds)
    assert found is not None
    assert found.types.tolist() == [CH2, CH3, OH]  # ethanol
    assert found.bonds[0, 2] == 1 and consistent(found.types, found.bonds)
    assert found.log_loss == pytest.approx(3 * math.log(0.6 / 0.4), abs=1e-3)


def test_shapes_that_do_not_fit_are_named() -> None:
    with pytest.raises(ValueError, match=r"atom_probs \(2, 13\) and bond_probs \(3, 3, 4\)"):
        decode(_atoms({CH3: 1.0}, {CH3: 1.0}), np.zeros((3, 3, 4)))
