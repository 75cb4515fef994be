"""From generated 3D atoms and bonds to molecules, with the checks the literature reports.

The generator places heavy atoms, each of a class that carries its number of bonded hydrogens
(:data:`chem.flow_model.ATOM_CLASSES`), and the bonds between heavy atoms.

* Atom stability (EDM, Hoogeboom et al. 2022): an atom is stable when the sum of its bond
  orders equals an allowed valence of its element (C 4, N 3, O 2, F 1; hydrogens count as
  single bonds); a molecule is stable when all its atoms are. It is counted over heavy atoms:
  the hydrogens are bonded to exactly one atom by construction, so counting them would only
  inflate the atom figure; the molecule figure is the same either way.
* Validity: RDKit sanitises the molecule built from the atoms, their hydrogen counts and the
  predicted bonds (RDKit adds no implicit hydrogens: every one must be generated), it has no
  unpaired electrons, and it is one connected fragment. Hydrogen positions are then placed by
  RDKit around the generated heavy-atom coordinates.

Every sample gets a verdict with the reason it failed, if it did.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rdkit import Chem
from rdkit.Geometry import Point3D

from chem.flow_model import ATOM_CLASSES

ALLOWED_VALENCES = {"H": (1,), "C": (4,), "N": (3,), "O": (2,), "F": (1,)}
"""Neutral valences counted as stable, as in EDM's evaluation."""

_BOND = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}


@dataclass(frozen=True)
class GeneratedMolecule:
    """One sample with its verdict.

    Attributes:
        symbols: heavy elements (n,).
        hydrogens: hydrogens bonded to each heavy atom (n,).
        positions: (n, 3) heavy-atom positions, Angstrom.
        bonds: (n, n) bond orders between heavy atoms (0 none, 1-3).
        stable_atoms: how many heavy atoms have an allowed valence.
        smiles: canonical SMILES when valid, else empty.
        reason: why it is not a valid molecule; empty when it is.
        mol: the sanitised RDKit molecule with explicit hydrogens and its 3D conformer, when
            valid.
        raw_smiles: SMILES of the graph as generated (need not sanitise); empty if RDKit
            cannot write it.
    """

    symbols: tuple[str, ...]
    hydrogens: tuple[int, ...]
    positions: npt.NDArray[np.float32]
    bonds: npt.NDArray[np.int64]
    stable_atoms: int
    smiles: str
    reason: str
    mol: Chem.Mol | None = None
    raw_smiles: str = ""

    @property
    def valid(self) -> bool:
        """Whether RDKit accepts it as one connected, sanitisable molecule."""
        return not self.reason

    @property
    def stable(self) -> bool:
        """Whether every atom has an allowed valence."""
        return self.stable_atoms == len(self.symbols)


def atom_stability(symbols: Sequence[str], hydrogens: Sequence[int],
                   bonds: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Per heavy atom: whether its bond-order sum plus its hydrogens is an allowed valence."""
    order_sum = np.asarray(bonds).sum(axis=1) + np.asarray(hydrogens, dtype=np.int64)
    return np.array([int(order_sum[i]) in ALLOWED_VALENCES.get(s, ()) for i, s in
                     enumerate(symbols)], dtype=bool)


def build_molecule(types: npt.NDArray[np.int64], positions: npt.NDArray[np.float32],
                   bonds: npt.NDArray[np.int64]) -> GeneratedMolecule:
    """Turns generated atom classes, coordinates and bond orders into a checked molecule.

    Args:
        types: (n,) indices into :data:`chem.flow_model.ATOM_CLASSES`.
        positions: (n, 3) heavy-atom positions, Angstrom.
        bonds: (n, n) symmetric bond orders (0 none, 1 single, 2 double, 3 triple).
    """
    classes = [ATOM_CLASSES[int(t)] for t in types]
    symbols = tuple(e for e, _ in classes)
    hydrogens = tuple(h for _, h in classes)
    bonds = np.asarray(bonds, dtype=np.int64)
    positions = np.asarray(positions, dtype=np.float32)
    stable = int(atom_stability(symbols, hydrogens, bonds).sum()) if symbols else 0

    def failed(reason: str, raw: Chem.Mol | None = None) -> GeneratedMolecule:
        return GeneratedMolecule(symbols, hydrogens, positions, bonds, stable, "", reason,
                                 raw_smiles=_raw_smiles(raw))

    if len(symbols) == 0:
        return failed("no atoms")
    rw = Chem.RWMol()
    for s, h in classes:
        atom = Chem.Atom(s)
        atom.SetNoImplicit(True)  # every hydrogen is a generated one: RDKit adds none
        atom.SetNumExplicitHs(h)
        rw.AddAtom(atom)
    for i, j in zip(*np.nonzero(np.triu(bonds, 1)), strict=True):
        rw.AddBond(int(i), int(j), _BOND[int(bonds[i, j])])
    conf = Chem.Conformer(len(symbols))
    for i, (x, y, z) in enumerate(positions.astype(float)):
        conf.SetAtomPosition(i, Point3D(x, y, z))
    mol = rw.GetMol()
    mol.AddConformer(conf, assignId=True)
    raw = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises several types; the message is the reason
        return failed(f"RDKit sanitisation: {str(exc).splitlines()[0]}", raw)
    radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    if radicals:
        return failed(f"{radicals} unpaired electron(s): an atom lacks bonds", raw)
    fragments = Chem.GetMolFrags(mol)
    if len(fragments) > 1:
        return failed(f"{len(fragments)} disconnected fragments", raw)
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    with_h = Chem.AddHs(mol, addCoords=True)
    return GeneratedMolecule(symbols, hydrogens, positions, bonds, stable, smiles, "", with_h,
                             smiles)


def _raw_smiles(mol: Chem.Mol | None) -> str:
    if mol is None:
        return ""
    try:
        mol.UpdatePropertyCache(strict=False)
        return str(Chem.MolToSmiles(mol, canonical=False))
    except Exception:  # RDKit raises several types on graphs it cannot write
        return ""


def summarise(molecules: Sequence[GeneratedMolecule], reference_smiles: Sequence[str] = (),
              ) -> dict[str, object]:
    """The literature's sample metrics.

    validity = valid / samples; uniqueness = distinct valid SMILES / valid; novelty = distinct
    valid SMILES not among ``reference_smiles`` (the training molecules) / distinct valid;
    atom stability = stable heavy atoms / heavy atoms; molecule stability = stable samples / samples.
    Canonical SMILES without stereochemistry are compared.
    """
    n = len(molecules)
    valid = [m for m in molecules if m.valid]
    unique = {m.smiles for m in valid}
    reference = {Chem.CanonSmiles(s, useChiral=0) for s in reference_smiles}
    atoms = sum(len(m.symbols) for m in molecules)
    reasons: dict[str, int] = {}
    for m in molecules:
        if m.reason:
            # grouped by kind: "3 unpaired electron(s): ..." -> "unpaired electron(s): ..."
            key = (m.reason.split(":")[0] if m.reason.startswith("RDKit")
                   else re.sub(r"^\d+ ", "", m.reason))
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "n_requested": n,
        "n_valid": len(valid),
        "validity": len(valid) / n if n else float("nan"),
        "uniqueness": len(unique) / len(valid) if valid else float("nan"),
        "novelty": len(unique - reference) / len(unique) if unique else float("nan"),
        "atom_stability": sum(m.stable_atoms for m in molecules) / atoms if atoms else float("nan"),
        "molecule_stability": sum(m.stable for m in molecules) / n if n else float("nan"),
        "failures": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
    }
