"""GFN2-xTB relaxation of RDKit geometries, on ethene and formaldehyde."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem
from scipy.spatial.transform import Rotation

from chem.datasets import GeometryDataset, embed_dataset
from chem.molecules import embed_geometry
from chem.xtb import RelaxationError, relax_xtb


def atomic_numbers(symbols: tuple[str, ...]) -> list[int]:
    return [Chem.GetPeriodicTable().GetAtomicNumber(s) for s in symbols]


def _bonds(positions: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    return np.array([np.linalg.norm(positions[i] - positions[j]) for i, j in pairs])


def test_relaxed_ethene_has_the_known_bond_lengths_in_the_input_atom_order() -> None:
    geometry = embed_geometry("C=C")
    z = atomic_numbers(geometry.symbols)
    start = np.array(geometry.positions_angstrom)
    relaxed = relax_xtb(z, start)
    assert relaxed.shape == start.shape
    assert list(geometry.symbols[:2]) == ["C", "C"]
    # GFN2-xTB: C=C 1.33, C-H 1.09 Angstrom (experiment 1.339, 1.086)
    assert _bonds(relaxed, [(0, 1)])[0] == pytest.approx(1.33, abs=0.02)
    assert _bonds(relaxed, [(0, 2), (0, 3), (1, 4), (1, 5)]) == pytest.approx([1.09] * 4, abs=0.02)
    # atoms stay where they were, give or take the relaxation
    assert np.abs(relaxed - start).max() < 0.2


def test_relaxation_commutes_with_rotation_and_translation() -> None:
    geometry = embed_geometry("C=O")
    z = atomic_numbers(geometry.symbols)
    start = np.array(geometry.positions_angstrom)
    rotation = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    shift = np.array([4.0, -2.0, 7.5])
    relaxed = relax_xtb(z, start)
    moved = relax_xtb(z, start @ rotation.T + shift)
    np.testing.assert_allclose(moved, relaxed @ rotation.T + shift, atol=2e-3)
    # C=O 1.21 Angstrom (GFN2-xTB; experiment 1.205)
    assert _bonds(relaxed, [(0, 1)])[0] == pytest.approx(1.21, abs=0.02)


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="2 atomic numbers but 1 positions"):
        relax_xtb([6, 6], [[0.0, 0.0, 0.0]])
    with pytest.raises(RelaxationError, match="set-up failed"):
        relax_xtb([6, 6], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_xtb_datasets_record_their_method_and_differ_from_mmff(tmp_path) -> None:
    frame = pd.DataFrame({"smiles": ["C=C", "CC=O"], "gap_ev": [7.6, 6.3]})
    mmff = embed_dataset(frame, ("gap_ev",), method="mmff")
    xtb = embed_dataset(frame, ("gap_ev",), method="xtb")
    assert (mmff.method, xtb.method) == ("mmff", "xtb")
    assert xtb.smiles.tolist() == ["C=C", "CC=O"]
    np.testing.assert_array_equal(mmff.z, xtb.z)
    moved = np.linalg.norm(xtb.pos - mmff.pos, axis=1)
    assert 1e-3 < moved.max() < 0.5
    xtb.save(tmp_path / "g.npz")
    again = GeometryDataset.load(tmp_path / "g.npz")
    assert again.method == "xtb" and again.subset(np.array([1])).method == "xtb"
    with pytest.raises(ValueError, match="unknown geometry method 'dft'"):
        embed_dataset(frame, ("gap_ev",), method="dft")  # type: ignore[arg-type]
