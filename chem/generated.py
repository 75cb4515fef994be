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

The generated coordinates are close to a molecule's shape but not at a minimum: B3LYP gaps of the
raw geometries were up to 2.7 eV off those of the same molecules relaxed. :func:`relax_molecule`
relaxes a built molecule from its generated coordinates (MMFF94 or GFN2-xTB), keeping its graph.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from rdkit import Chem
from rdkit.Chem import rdForceFieldHelpers
from rdkit.Geometry import Point3D

from chem.flow_model import ATOM_CLASSES

ALLOWED_VALENCES = {"H": (1,), "C": (4,), "N": (3,), "O": (2,), "F": (1,)}
"""Neutral valences counted as stable, as in EDM's evaluation."""

_BOND = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}

RelaxMethod = Literal["mmff", "xtb", "raw"]
"""How :func:`relax_molecule` treats generated coordinates: ``mmff`` (MMFF94, UFF where MMFF94
has no parameters), ``xtb`` (GFN2-xTB) or ``raw`` (as generated)."""

RELAX_METHODS: tuple[str, ...] = get_args(RelaxMethod)

BROKEN_BOND_FACTOR = 1.3
"""A bond longer than this times the sum of the covalent radii counts as broken (RDKit's
connectivity perception uses the same factor; the longest bond in 293 generated molecules
embedded with ETKDG + MMFF94 was 1.18 times it)."""

FORMED_BOND_FACTOR = 1.1
"""Two atoms without a bond closer than this times the sum of their covalent radii count as
bonded. Not 1.3: across a four-membered ring, atoms lie at 1.25-1.3 times it in MMFF94 minima
(9 of the same 293 molecules), where RDKit's perception would see a bond."""


class RelaxationFailed(RuntimeError):
    """A molecule could not be relaxed: no force-field parameters, the optimiser failed, or the
    relaxed coordinates no longer bond the atoms as the molecule's graph does."""


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


def relax_molecule(mol: Chem.Mol, method: RelaxMethod = "mmff", *,
                   max_iterations: int = 2000) -> Chem.Mol:
    """The molecule with explicit hydrogens, its coordinates relaxed from the ones it has.

    The start is the molecule's own conformer (for a generated molecule: the generated heavy
    atoms with RDKit's hydrogens), not a new embedding, so the relaxed molecule keeps the
    generated shape (ring puckers, rotamers) down to the nearest minimum. The graph, and so the
    SMILES, is the input's; the relaxed coordinates are checked to bond the atoms as that graph
    does (:data:`BROKEN_BOND_FACTOR`, :data:`FORMED_BOND_FACTOR`).

    Args:
        mol: a sanitised molecule with a 3D conformer, e.g. :attr:`GeneratedMolecule.mol`;
            hydrogens that are not yet atoms are added around their heavy atoms.
        method: ``mmff``: MMFF94 minimisation, UFF where MMFF94 lacks parameters for an atom
            (about 5 ms for a QM9-sized molecule); ``xtb``: GFN2-xTB minimisation
            (:func:`chem.xtb.relax_xtb`, about 0.2 s); ``raw``: the coordinates unchanged (and
            not checked).
        max_iterations: force-field optimiser iterations (``mmff``).

    Returns:
        A new molecule (the input is unchanged): the same atoms in the same order, the same
        bonds, one conformer (Angstrom) with the relaxed positions; its ``relaxation`` property
        says what relaxed it (``mmff94``, ``uff``, ``gfn2-xtb`` or ``raw``).

    Raises:
        ValueError: an unknown method, or a molecule without a 3D conformer.
        RelaxationFailed: neither MMFF94 nor UFF has parameters for the molecule, the force field
            did not converge within ``max_iterations``, the xTB relaxation failed, or the
            relaxed coordinates bond the atoms otherwise than the graph does (the message names
            the bonds broken and formed).
    """
    if method not in RELAX_METHODS:
        raise ValueError(f"unknown relaxation {method!r}; use one of {', '.join(RELAX_METHODS)}")
    if mol.GetNumConformers() == 0:
        raise ValueError("the molecule has no 3D conformer to relax")
    out = Chem.AddHs(mol, addCoords=True)
    conf_id = out.GetConformer().GetId()
    if method == "raw":
        done = "raw"
    elif method == "mmff":
        done = _relax_force_field(out, conf_id, max_iterations)
    else:
        _relax_xtb(out)
        done = "gfn2-xtb"
    if method != "raw":
        broken, formed = bond_mismatch(out)
        if broken or formed:
            raise RelaxationFailed(
                f"{done} relaxation of {Chem.MolToSmiles(Chem.RemoveHs(out))} changed its bonds"
                f" (broken: {_pairs(out, broken) or 'none'}; formed: "
                f"{_pairs(out, formed) or 'none'})")
    out.SetProp("relaxation", done)
    return out


def _relax_force_field(mol: Chem.Mol, conf_id: int, max_iterations: int) -> str:
    """Minimises ``mol`` in place with MMFF94 (UFF as fallback); returns which one."""
    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        name, status = "mmff94", rdForceFieldHelpers.MMFFOptimizeMolecule(
            mol, maxIters=max_iterations, confId=conf_id)
    elif rdForceFieldHelpers.UFFHasAllMoleculeParams(mol):
        name, status = "uff", rdForceFieldHelpers.UFFOptimizeMolecule(
            mol, maxIters=max_iterations, confId=conf_id)
    else:
        raise RelaxationFailed(f"neither MMFF94 nor UFF has parameters for "
                               f"{Chem.MolToSmiles(Chem.RemoveHs(mol))}")
    if status != 0:  # 1: not converged, -1: the force field could not be set up
        raise RelaxationFailed(f"{name} relaxation did not converge in {max_iterations} iterations"
                               if status == 1 else f"{name} set-up failed")
    return name


def _relax_xtb(mol: Chem.Mol) -> None:
    """Minimises ``mol``'s conformer in place with GFN2-xTB."""
    from chem.xtb import RelaxationError, relax_xtb

    conf = mol.GetConformer()
    numbers = [a.GetAtomicNum() for a in mol.GetAtoms()]
    unpaired = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    try:
        relaxed = relax_xtb(numbers, conf.GetPositions(), charge=Chem.GetFormalCharge(mol),
                            unpaired=unpaired)
    except RelaxationError as err:
        raise RelaxationFailed(str(err)) from err
    for i, (x, y, z) in enumerate(relaxed.astype(float)):
        conf.SetAtomPosition(i, Point3D(x, y, z))


def bond_mismatch(mol: Chem.Mol) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Where a molecule's coordinates disagree with its graph.

    A bond counts as broken when its atoms are more than :data:`BROKEN_BOND_FACTOR` times the
    sum of their covalent radii apart, and two atoms without a bond as bonded when they are
    within :data:`FORMED_BOND_FACTOR` times it.

    Args:
        mol: a molecule with a 3D conformer (its first is read), Angstrom.

    Returns:
        The bonds broken and the pairs bonded that the graph lacks, each pair (i, j) of atom
        indices with i < j; both empty where coordinates and graph agree.
    """
    table = Chem.GetPeriodicTable()
    radius = np.array([table.GetRcovalent(a.GetAtomicNum()) for a in mol.GetAtoms()])
    pos = mol.GetConformer().GetPositions()
    ratio = (np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
             / (radius[:, None] + radius[None, :]))
    bonded = np.zeros(ratio.shape, dtype=bool)
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        bonded[i, j] = bonded[j, i] = True
    upper = np.triu(np.ones(ratio.shape, dtype=bool), 1)
    broken = zip(*np.nonzero(upper & bonded & (ratio > BROKEN_BOND_FACTOR)), strict=True)
    formed = zip(*np.nonzero(upper & ~bonded & (ratio < FORMED_BOND_FACTOR)), strict=True)
    return ({(int(i), int(j)) for i, j in broken}, {(int(i), int(j)) for i, j in formed})


def _pairs(mol: Chem.Mol, pairs: set[tuple[int, int]]) -> str:
    symbol = [a.GetSymbol() for a in mol.GetAtoms()]
    return ", ".join(f"{symbol[i]}{i}-{symbol[j]}{j}" for i, j in sorted(pairs))


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
