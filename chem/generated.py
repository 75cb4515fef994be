"""From generated 3D atoms and bonds to molecules, with the checks the literature reports.

* Atom stability (EDM, Hoogeboom et al. 2022): an atom is stable when the sum of its bond
  orders equals an allowed valence of its element (H 1, C 4, N 3, O 2, F 1); a molecule is
  stable when all its atoms are.
* Validity: RDKit sanitises the molecule built from the atoms, the predicted bonds and the
  coordinates (no hydrogens added: every one must be generated), it has no unpaired electrons,
  and it is one connected fragment.

Every sample gets a verdict with the reason it failed, if it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rdkit import Chem
from rdkit.Geometry import Point3D

from chem.flow_model import ATOM_TYPES

ALLOWED_VALENCES = {"H": (1,), "C": (4,), "N": (3,), "O": (2,), "F": (1,)}
"""Neutral valences counted as stable, as in EDM's evaluation."""

_BOND = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}


@dataclass(frozen=True)
class GeneratedMolecule:
    """One sample with its verdict.

    Attributes:
        symbols: elements (n,).
        positions: (n, 3) Angstrom.
        bonds: (n, n) bond orders (0 none, 1-3).
        stable_atoms: how many atoms have an allowed valence.
        smiles: canonical SMILES when valid, else empty.
        reason: why it is not a valid molecule; empty when it is.
        mol: the sanitised RDKit molecule with its 3D conformer, when valid.
    """

    symbols: tuple[str, ...]
    positions: npt.NDArray[np.float32]
    bonds: npt.NDArray[np.int64]
    stable_atoms: int
    smiles: str
    reason: str
    mol: Chem.Mol | None = None

    @property
    def valid(self) -> bool:
        """Whether RDKit accepts it as one connected, sanitisable molecule."""
        return not self.reason

    @property
    def stable(self) -> bool:
        """Whether every atom has an allowed valence."""
        return self.stable_atoms == len(self.symbols)


def atom_stability(symbols: Sequence[str], bonds: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Per atom: whether its bond-order sum is an allowed valence of its element."""
    order_sum = bonds.sum(axis=1)
    return np.array([int(order_sum[i]) in ALLOWED_VALENCES.get(s, ()) for i, s in
                     enumerate(symbols)], dtype=bool)


def build_molecule(types: npt.NDArray[np.int64], positions: npt.NDArray[np.float32],
                   bonds: npt.NDArray[np.int64]) -> GeneratedMolecule:
    """Turns generated atom types, coordinates and bond orders into a checked molecule.

    Args:
        types: (n,) indices into :data:`chem.flow_model.ATOM_TYPES`.
        positions: (n, 3) Angstrom.
        bonds: (n, n) symmetric bond orders (0 none, 1 single, 2 double, 3 triple).
    """
    symbols = tuple(ATOM_TYPES[int(t)] for t in types)
    bonds = np.asarray(bonds, dtype=np.int64)
    stable = int(atom_stability(symbols, bonds).sum())
    if len(symbols) == 0:
        return GeneratedMolecule(symbols, positions, bonds, 0, "", "no atoms")
    rw = Chem.RWMol()
    for s in symbols:
        atom = Chem.Atom(s)
        atom.SetNoImplicit(True)  # every hydrogen is a generated atom: RDKit adds none
        rw.AddAtom(atom)
    for i, j in zip(*np.nonzero(np.triu(bonds, 1)), strict=True):
        rw.AddBond(int(i), int(j), _BOND[int(bonds[i, j])])
    conf = Chem.Conformer(len(symbols))
    for i, (x, y, z) in enumerate(np.asarray(positions, dtype=float)):
        conf.SetAtomPosition(i, Point3D(x, y, z))
    mol = rw.GetMol()
    mol.AddConformer(conf, assignId=True)
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises several types; the message is the reason
        return GeneratedMolecule(symbols, positions, bonds, stable, "",
                                 f"RDKit sanitisation: {str(exc).splitlines()[0]}")
    radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    if radicals:
        return GeneratedMolecule(symbols, positions, bonds, stable, "",
                                 f"{radicals} unpaired electron(s): an atom lacks bonds")
    fragments = Chem.GetMolFrags(mol)
    if len(fragments) > 1:
        return GeneratedMolecule(symbols, positions, bonds, stable, "",
                                 f"{len(fragments)} disconnected fragments")
    smiles = Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False), isomericSmiles=False)
    return GeneratedMolecule(symbols, positions, bonds, stable, smiles, "", mol)


def summarise(molecules: Sequence[GeneratedMolecule], reference_smiles: Sequence[str] = (),
              ) -> dict[str, object]:
    """The literature's sample metrics.

    validity = valid / samples; uniqueness = distinct valid SMILES / valid; novelty = distinct
    valid SMILES not among ``reference_smiles`` (the training molecules) / distinct valid;
    atom stability = stable atoms / atoms; molecule stability = stable samples / samples.
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
            key = m.reason.split(":")[0] if m.reason.startswith("RDKit") else m.reason
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
