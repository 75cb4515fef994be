"""Molecule representations: canonical SMILES and RDKit 3D geometries."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rdkit import Chem, rdBase
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

from pipeline.registry import PREPARERS
from pipeline.types import Candidate, Geometry

rdBase.DisableLog("rdApp.*")

EMBED_SEED = 0xF00D
"""Seed of ETKDG embedding, so the same SMILES always gives the same geometry."""


def mol_from_smiles(smiles: str) -> Chem.Mol | None:
    """Parses and sanitises a SMILES; None when RDKit cannot."""
    if not smiles or not smiles.strip():
        return None
    return Chem.MolFromSmiles(smiles)


def canonical_smiles(smiles: str) -> str | None:
    """Canonical isomeric SMILES, or None for an invalid SMILES."""
    mol = mol_from_smiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def candidate_key(smiles: str) -> str:
    """Identity of a proposal: its canonical SMILES, or the raw text when it does not parse."""
    return canonical_smiles(smiles) or smiles


def embed_geometry(smiles: str, *, seed: int = EMBED_SEED, max_attempts: int = 5) -> Geometry:
    """A 3D geometry from a SMILES: ETKDG embedding, then MMFF94 relaxation (UFF as fallback).

    Args:
        smiles: the molecule.
        seed: embedding seed (the same seed gives the same coordinates).
        max_attempts: embedding attempts with different seeds before giving up.

    Returns:
        The geometry with explicit hydrogens, positions in Angstrom, charge and multiplicity
        from the molecule's formal charges and radical electrons.

    Raises:
        ValueError: the SMILES does not parse, or no 3D embedding was found.
    """
    mol = mol_from_smiles(smiles)
    if mol is None:
        raise ValueError(f"invalid SMILES {smiles!r}")
    mol = Chem.AddHs(mol)
    params: Any = rdDistGeom.ETKDGv3()  # the rdkit stubs mistype its attributes
    conf_id = -1
    for attempt in range(max_attempts):
        params.randomSeed = seed + attempt
        conf_id = rdDistGeom.EmbedMolecule(mol, params)
        if conf_id >= 0:
            break
        params.useRandomCoords = True
    if conf_id < 0:
        raise ValueError(f"RDKit ETKDG found no 3D embedding for {smiles!r}")
    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        rdForceFieldHelpers.MMFFOptimizeMolecule(mol, maxIters=2000)
    elif rdForceFieldHelpers.UFFHasAllMoleculeParams(mol):
        rdForceFieldHelpers.UFFOptimizeMolecule(mol, maxIters=2000)
    pos = mol.GetConformer(conf_id).GetPositions()
    n_radical = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    return Geometry(
        symbols=tuple(a.GetSymbol() for a in mol.GetAtoms()),
        positions_angstrom=tuple((float(x), float(y), float(z)) for x, y, z in pos),
        charge=Chem.GetFormalCharge(mol),
        multiplicity=n_radical % 2 + 1,
    )


@PREPARERS.register("molecules")
class MoleculeGeometry:
    """Attaches an RDKit ETKDG + MMFF geometry to a molecule that has none.

    A candidate that already has a geometry (from a 3D generator or an XYZ file) keeps it as is.
    """

    def __repr__(self) -> str:
        return "MoleculeGeometry(ETKDGv3+MMFF94)"

    def __call__(self, candidate: Candidate) -> Candidate:
        """See :class:`pipeline.protocols.Preparer`."""
        if candidate.geometry is not None:
            return candidate
        return replace(candidate, geometry=embed_geometry(candidate.representation))
