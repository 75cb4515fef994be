"""Relaxing generated molecules from their own coordinates, on tiny literal molecules."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

from chem.flow_model import ATOM_CLASSES
from chem.generated import (
    GeneratedMolecule,
    RelaxationFailed,
    bond_mismatch,
    build_molecule,
    relax_molecule,
)

CH3, CH, OXO = (ATOM_CLASSES.index(c) for c in (("C", 3), ("C", 1), ("O", 0)))


def _acetaldehyde() -> GeneratedMolecule:
    """CH3-CH=O as a generator might place it: heavy atoms roughly, not at a minimum."""
    positions = np.array([[-1.35, 0.1, 0.0], [0.2, -0.1, 0.1], [0.9, 1.0, -0.1]], dtype=np.float32)
    bonds = np.array([[0, 1, 0], [1, 0, 2], [0, 2, 0]])
    built = build_molecule(np.array([CH3, CH, OXO]), positions, bonds)
    assert built.valid and built.mol is not None
    return built


def _mmff_energy(mol: Chem.Mol) -> float:
    props = rdForceFieldHelpers.MMFFGetMoleculeProperties(mol)
    return float(rdForceFieldHelpers.MMFFGetMoleculeForceField(mol, props).CalcEnergy())


def _lengths(mol: Chem.Mol, a: str, b: str) -> list[float]:
    pos = mol.GetConformer().GetPositions()
    return [float(np.linalg.norm(pos[x.GetBeginAtomIdx()] - pos[x.GetEndAtomIdx()]))
            for x in mol.GetBonds()
            if sorted((x.GetBeginAtom().GetSymbol(), x.GetEndAtom().GetSymbol())) == sorted((a, b))]


def _smiles(mol: Chem.Mol) -> str:
    return str(Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=False))


def test_mmff_lowers_the_energy_keeps_the_molecule_and_gives_sane_bonds() -> None:
    built = _acetaldehyde()
    assert built.mol is not None
    before = Chem.Mol(built.mol)
    relaxed = relax_molecule(built.mol, "mmff")
    assert relaxed.GetProp("relaxation") == "mmff94"
    assert _smiles(relaxed) == built.smiles == "CC=O"
    assert relaxed.GetNumAtoms() == 7  # hydrogens are atoms
    assert _mmff_energy(relaxed) < _mmff_energy(built.mol) - 1.0  # kcal/mol
    assert _lengths(relaxed, "C", "H") == pytest.approx([1.09] * 4, abs=0.02)  # Angstrom
    assert _lengths(relaxed, "C", "C") == pytest.approx([1.50], abs=0.03)
    assert _lengths(relaxed, "C", "O") == pytest.approx([1.22], abs=0.02)
    # from the generated coordinates, not a new embedding: the heavy atoms move a little
    moved = relaxed.GetConformer().GetPositions()[:3] - built.positions
    assert np.abs(moved).max() < 0.5
    np.testing.assert_array_equal(built.mol.GetConformer().GetPositions(),
                                  before.GetConformer().GetPositions())  # input unchanged
    assert bond_mismatch(relaxed) == (set(), set())


def test_raw_is_the_generated_geometry_unchanged() -> None:
    built = _acetaldehyde()
    assert built.mol is not None
    raw = relax_molecule(built.mol, "raw")
    assert raw.GetProp("relaxation") == "raw"
    assert _smiles(raw) == built.smiles
    np.testing.assert_array_equal(raw.GetConformer().GetPositions(),
                                  built.mol.GetConformer().GetPositions())
    # hydrogens not yet atoms are added around their heavy atoms
    heavy = relax_molecule(Chem.RemoveHs(built.mol), "raw")
    assert heavy.GetNumAtoms() == 7
    assert _lengths(heavy, "C", "H") == pytest.approx([1.09] * 4, abs=0.05)


def test_xtb_relaxes_to_gfn2_bond_lengths() -> None:
    built = _acetaldehyde()
    assert built.mol is not None
    relaxed = relax_molecule(built.mol, "xtb")
    assert relaxed.GetProp("relaxation") == "gfn2-xtb"
    assert _smiles(relaxed) == "CC=O"
    assert _lengths(relaxed, "C", "H") == pytest.approx([1.10] * 4, abs=0.03)
    assert _lengths(relaxed, "C", "O") == pytest.approx([1.21], abs=0.03)


def test_stretched_bonds_are_seen_and_mended() -> None:
    ethane = build_molecule(np.array([ATOM_CLASSES.index(("C", 3))] * 2),
                            np.array([[0, 0, 0], [3.0, 0, 0]]), np.array([[0, 1], [1, 0]]))
    assert ethane.valid and ethane.mol is not None
    assert bond_mismatch(ethane.mol) == ({(0, 1)}, set())  # 3 Angstrom: not a C-C bond
    relaxed = relax_molecule(ethane.mol, "mmff")
    assert _lengths(relaxed, "C", "C") == pytest.approx([1.53], abs=0.03)
    assert bond_mismatch(relaxed) == (set(), set())


def test_a_pair_too_close_counts_as_a_new_bond() -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("CCC"))
    rdDistGeom.EmbedMolecule(mol, randomSeed=1)
    conf = mol.GetConformer()
    a, b = conf.GetAtomPosition(0), conf.GetAtomPosition(1)
    conf.SetAtomPosition(2, (a + b) * 0.5)  # C2 onto the middle of the C0-C1 bond
    broken, formed = bond_mismatch(mol)
    assert formed == {(0, 2)}  # C1-C2 is a bond of the graph: short, not new
    assert broken and all(2 in pair for pair in broken)  # C2's hydrogens were left behind


def test_failures_are_errors_that_say_why() -> None:
    built = _acetaldehyde()
    assert built.mol is not None
    with pytest.raises(RelaxationFailed, match="did not converge in 1 iterations"):
        relax_molecule(built.mol, "mmff", max_iterations=1)
    selenide = Chem.AddHs(Chem.MolFromSmiles("C[Se]C"))
    rdDistGeom.EmbedMolecule(selenide, randomSeed=1)
    assert relax_molecule(selenide, "mmff").GetProp("relaxation") == "uff"  # no MMFF94 for Se
    xenon = Chem.AddHs(Chem.MolFromSmiles("O=[Xe]=O"))
    rdDistGeom.EmbedMolecule(xenon, randomSeed=1)
    with pytest.raises(RelaxationFailed, match="neither MMFF94 nor UFF has parameters"):
        relax_molecule(xenon, "mmff")
    with pytest.raises(ValueError, match="unknown relaxation 'dft'; use one of mmff, xtb, raw"):
        relax_molecule(built.mol, "dft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no 3D conformer"):
        relax_molecule(Chem.MolFromSmiles("CC=O"), "mmff")
