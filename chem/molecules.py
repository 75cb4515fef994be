"""Molecule representations: canonical SMILES and RDKit 3D geometries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
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


EMBED_CACHE_SIZE = 4096
"""Embeddings (and failures) kept in memory: about 3 kB each for a 9-heavy-atom molecule."""


def embed_geometry(smiles: str, *, seed: int = EMBED_SEED, max_attempts: int = 5) -> Geometry:
    """A 3D geometry from a SMILES: ETKDG embedding, then MMFF94 relaxation (UFF as fallback).

    Results are memoised per ``(smiles, seed, max_attempts)``, failures included, so the
    ``embeddable`` filter and the oracle's preparer (:class:`MoleculeGeometry`), which call it
    with the same arguments, embed each molecule once per process. Sharing is safe because
    :class:`~pipeline.types.Geometry` is frozen, and the embedding is deterministic for a given
    seed, so a cache hit returns what a fresh call would. A new molecule of 9 heavy atoms takes
    about 11 ms (median; 95 % within 20 ms); one that does not embed gives up after
    ``max_attempts``, within 0.5 to 3 s.

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
    outcome = _embed_memoised(smiles, seed, max_attempts)
    if isinstance(outcome, str):
        raise ValueError(outcome)
    return outcome


@lru_cache(maxsize=EMBED_CACHE_SIZE)
def _embed_memoised(smiles: str, seed: int, max_attempts: int) -> Geometry | str:
    """:func:`embed_geometry` without the cache; returns the failure message instead of raising."""
    mol = mol_from_smiles(smiles)
    if mol is None:
        return f"invalid SMILES {smiles!r}"
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
        return f"RDKit ETKDG found no 3D embedding for {smiles!r}"
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
    The geometry comes from :func:`embed_geometry` with its default arguments, the same call the
    ``embeddable`` filter makes, so a molecule that passed that filter is not embedded again.
    """

    def __repr__(self) -> str:
        return "MoleculeGeometry(ETKDGv3+MMFF94)"

    def __call__(self, candidate: Candidate) -> Candidate:
        """See :class:`pipeline.protocols.Preparer`."""
        if candidate.geometry is not None:
            return candidate
        return replace(candidate, geometry=embed_geometry(candidate.representation))


def read_xyz(path: str | Path, *, charge: int = 0, multiplicity: int = 1) -> Geometry:
    """Reads the first structure of an XYZ file (Angstrom), exactly as given.

    Raises:
        ValueError: naming the file and line of what is wrong.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    if not lines or not lines[0].strip().isdigit():
        raise ValueError(f"{path}:1: expected the number of atoms, got {lines[0] if lines else ''!r}")
    n_atoms = int(lines[0])
    if n_atoms < 1 or len(lines) < n_atoms + 2:
        raise ValueError(f"{path}: header says {n_atoms} atoms but the file has "
                         f"{max(0, len(lines) - 2)} atom lines")
    table = Chem.GetPeriodicTable()
    symbols, positions = [], []
    for lineno in range(3, n_atoms + 3):
        parts = lines[lineno - 1].split()
        try:
            x, y, z = (float(v) for v in parts[1:4])
            if len(parts) < 4:
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}:{lineno}: expected 'SYMBOL X Y Z' (Angstrom), got "
                             f"{lines[lineno - 1]!r}") from None
        symbol = parts[0].capitalize()
        try:
            known = table.GetAtomicNumber(symbol) >= 1
        except RuntimeError:
            known = False
        if not known:
            raise ValueError(f"{path}:{lineno}: unknown element {parts[0]!r} (expected an "
                             f"element symbol such as C, N, O), in {lines[lineno - 1]!r}")
        symbols.append(symbol)
        positions.append((x, y, z))
    electrons = sum(table.GetAtomicNumber(s) for s in symbols) - charge
    if (electrons + multiplicity - 1) % 2:
        raise ValueError(f"{path}: {electrons} electrons cannot have multiplicity {multiplicity}")
    return Geometry(tuple(symbols), tuple(positions), charge=charge, multiplicity=multiplicity)


def heavy_atom_order(smiles: str, symbols: Sequence[str],
                     positions_angstrom: Sequence[Sequence[float]]) -> tuple[int, ...]:
    """Which atom of a geometry each heavy atom of a SMILES is.

    The geometry's bonds come from its interatomic distances (RDKit's connectivity
    perception); the SMILES's heavy-atom graph is then matched onto the geometry's with bond
    orders ignored, so element and connectivity decide (a geometry may have extra short
    contacts, as in strained cages, but must have every bond of the SMILES). Atoms that
    symmetry makes equivalent may be matched either way.

    Args:
        smiles: the molecule; its heavy atoms in RDKit's parse order.
        symbols: the geometry's elements, length n_atoms.
        positions_angstrom: the geometry's coordinates, (n_atoms, 3), Angstrom.

    Returns:
        For each heavy atom of the SMILES, the index of the same atom in the geometry.

    Raises:
        ValueError: the SMILES does not parse, or its graph is not the geometry's.
    """
    from rdkit.Chem import rdDetermineBonds

    mol = mol_from_smiles(smiles)
    if mol is None:
        raise ValueError(f"SMILES {smiles!r} does not parse")
    frame = Chem.RWMol()
    for symbol in symbols:
        frame.AddAtom(Chem.Atom(symbol))
    conformer = Chem.Conformer(len(symbols))
    for i, xyz in enumerate(positions_angstrom):
        conformer.SetAtomPosition(i, [float(v) for v in xyz])
    frame.AddConformer(conformer, assignId=True)
    try:
        rdDetermineBonds.DetermineConnectivity(frame)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{smiles}: no connectivity from the geometry ({exc})") from None
    heavy = [a.GetIdx() for a in frame.GetAtoms() if a.GetAtomicNum() > 1]
    skeleton = Chem.RWMol()
    index = {}
    for i in heavy:
        index[i] = skeleton.AddAtom(Chem.Atom(frame.GetAtomWithIdx(i).GetAtomicNum()))
    for bond in frame.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if a in index and b in index:
            skeleton.AddBond(index[a], index[b], Chem.BondType.SINGLE)
    query = Chem.RWMol(Chem.RemoveHs(mol))
    for bond in query.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    for atom in query.GetAtoms():
        atom.SetIsAromatic(False)
        atom.SetFormalCharge(0)  # zwitterion SMILES: the geometry has no charges to match
        atom.SetNumExplicitHs(0)
    if skeleton.GetNumAtoms() != query.GetNumAtoms():
        raise ValueError(f"{smiles}: the geometry has {skeleton.GetNumAtoms()} heavy atoms, the "
                         f"SMILES {query.GetNumAtoms()}")
    skeleton.UpdatePropertyCache(strict=False)
    # Strained cages can show an extra distance-based bond: every SMILES bond must be there.
    match = skeleton.GetSubstructMatch(query, useChirality=False)
    if not match:
        raise ValueError(f"{smiles}: its heavy-atom graph does not match the geometry's")
    return tuple(heavy[m] for m in match)
