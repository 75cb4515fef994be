"""Training molecules for the generator: 3D structures with bonds and property labels.

The QM9 reference pool ships its B3LYP geometries as a multi-frame XYZ file (optionally gzipped)
whose comment lines carry ``key=value`` fields (``smiles=... homo_ev=... lumo_ev=...
gap_ev=...``). :func:`read_labelled_xyz` reads it; bonds are perceived from each geometry with
RDKit (``DetermineBonds``, neutral molecule) and kept only when the perceived molecule is the one
the ``smiles`` field names, so every training molecule has a consistent 3D structure and Kekulé
bond graph. A molecule is stored as its heavy atoms, each with its class (element and number of
bonded hydrogens, :data:`chem.flow_model.ATOM_CLASSES`), their B3LYP positions and the bonds
between them; the hydrogens are implied by the classes. The packed arrays load fast
(:meth:`MoleculeSet.save` / :meth:`MoleculeSet.load`).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rdkit import Chem, RDLogger
from rdkit.Chem import rdDetermineBonds
from rich.progress import Progress

from chem.flow_model import ATOM_CLASSES
from chem.molecules import canonical_smiles

PROPERTIES = ("homo_ev", "lumo_ev", "gap_ev")
"""Conditioning targets, eV."""

FORMAT = "invdes-molecule-set-2"
"""Version of the packed arrays (2: heavy atoms with hydrogen counts)."""

ELEMENTS = ("H", "C", "N", "O", "F")
"""Elements of the training molecules."""

_BOND_ORDER = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}


@dataclass(frozen=True)
class MoleculeSet:
    """Molecules as flat arrays.

    Attributes:
        types: class index of every heavy atom into :data:`chem.flow_model.ATOM_CLASSES`,
            (n_atoms_total,).
        pos: heavy-atom positions, (n_atoms_total, 3) Angstrom, centred per molecule.
        offsets: first atom of each molecule, (n_molecules + 1,).
        bonds: (n_bonds_total, 3) rows (i, j, order) with i < j local atom indices and order 1-3.
        bond_offsets: first bond of each molecule, (n_molecules + 1,).
        y: property values, (n_molecules, n_properties), eV.
        smiles: canonical SMILES, (n_molecules,).
    """

    types: npt.NDArray[np.int64]
    pos: npt.NDArray[np.float32]
    offsets: npt.NDArray[np.int64]
    bonds: npt.NDArray[np.int64]
    bond_offsets: npt.NDArray[np.int64]
    y: npt.NDArray[np.float32]
    smiles: npt.NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.smiles)

    def atoms_per_molecule(self) -> npt.NDArray[np.int64]:
        """(n_molecules,)."""
        return np.diff(self.offsets)

    def molecule(self, i: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32],
                                        npt.NDArray[np.int64]]:
        """Types (n,), positions (n, 3) and bonds (m, 3) of molecule ``i``."""
        a, b = self.offsets[i], self.offsets[i + 1]
        c, d = self.bond_offsets[i], self.bond_offsets[i + 1]
        return self.types[a:b], self.pos[a:b], self.bonds[c:d]

    def subset(self, index: Sequence[int] | npt.NDArray[np.int64]) -> MoleculeSet:
        """The molecules at ``index``, in that order."""
        parts = [self.molecule(int(i)) for i in index]
        return _pack(parts, self.y[np.asarray(index, dtype=np.int64)],
                     [str(self.smiles[i]) for i in index])

    def save(self, path: str | Path) -> None:
        """Writes a compressed ``.npz``."""
        np.savez_compressed(path, format=np.asarray(FORMAT), types=self.types, pos=self.pos,
                            offsets=self.offsets, bonds=self.bonds, bond_offsets=self.bond_offsets, y=self.y,
                            smiles=self.smiles)

    @classmethod
    def load(cls, path: str | Path) -> MoleculeSet:
        """Reads what :meth:`save` wrote.

        Raises:
            ValueError: the file is not a molecule set of this version.
        """
        with np.load(path, allow_pickle=False) as d:
            if "format" not in d or str(d["format"]) != FORMAT:
                raise ValueError(f"{path}: not a molecule set of format {FORMAT}; rebuild it from "
                                 "the XYZ file")
            return cls(d["types"], d["pos"], d["offsets"], d["bonds"], d["bond_offsets"], d["y"],
                       d["smiles"])


def _pack(parts: Sequence[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32],
                                npt.NDArray[np.int64]]],
          y: npt.NDArray[np.float32], smiles: Sequence[str]) -> MoleculeSet:
    counts = [len(t) for t, _, _ in parts]
    bond_counts = [len(b) for _, _, b in parts]
    return MoleculeSet(
        types=np.concatenate([t for t, _, _ in parts] + [np.zeros(0, np.int64)]).astype(np.int64),
        pos=np.concatenate([p for _, p, _ in parts] + [np.zeros((0, 3), np.float32)]
                           ).astype(np.float32),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        bonds=np.concatenate([b for _, _, b in parts] + [np.zeros((0, 3), np.int64)]
                             ).astype(np.int64),
        bond_offsets=np.concatenate([[0], np.cumsum(bond_counts)]).astype(np.int64),
        y=np.asarray(y, dtype=np.float32),  # (n_molecules, n_properties)
        smiles=np.asarray(list(smiles), dtype=np.str_),
    )


def _frames(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, comment, atom lines) of each frame of a multi-frame XYZ file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        lineno = 0
        while True:
            header = handle.readline()
            lineno += 1
            if not header:
                return
            if not header.strip():
                continue
            try:
                n = int(header.split()[0])
            except ValueError:
                raise ValueError(f"{path}: line {lineno}: expected an atom count, got "
                                 f"{header.strip()[:40]!r}") from None
            comment = handle.readline().strip()
            atoms = [handle.readline() for _ in range(n)]
            if len(atoms) != n or not atoms[-1]:
                raise ValueError(f"{path}: line {lineno}: frame of {n} atoms is cut short")
            yield lineno, comment, atoms
            lineno += n + 1


def _fields(comment: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in comment.split() if "=" in part)


def perceive(symbols: Sequence[str], positions: npt.ArrayLike) -> Chem.Mol | None:
    """A neutral RDKit molecule (Kekulé bonds) from elements and positions, or None."""
    block = f"{len(symbols)}\n\n" + "\n".join(
        f"{s} {x:.6f} {y:.6f} {z:.6f}" for s, (x, y, z) in zip(symbols, np.asarray(positions),
                                                               strict=True))
    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
    try:
        mol = Chem.MolFromXYZBlock(block)
        if mol is None:
            return None
        rdDetermineBonds.DetermineBonds(mol, charge=0)
        Chem.SanitizeMol(mol)
        Chem.Kekulize(mol, clearAromaticFlags=True)
        return mol
    except Exception:  # RDKit raises several types for molecules it cannot assign
        return None
    finally:
        RDLogger.EnableLog("rdApp.*")  # type: ignore[attr-defined]


def heavy_atoms(mol: Chem.Mol, positions: npt.ArrayLike) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]] | None:
    """The heavy-atom graph of a molecule with explicit hydrogens, as one training molecule.

    Args:
        mol: Kekulé molecule with explicit hydrogens.
        positions: (n_atoms, 3) coordinates of every atom of ``mol``, Angstrom.

    Returns:
        Classes (n,) into :data:`chem.flow_model.ATOM_CLASSES`, heavy-atom positions (n, 3)
        centred on their mean, and bonds (m, 3) rows (i, j, order), i < j, between them; None
        when an atom has a charge or a class outside :data:`chem.flow_model.ATOM_CLASSES`.
    """
    index = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() != 1]
    local = {k: i for i, k in enumerate(index)}
    classes = []
    for k in index:
        atom = mol.GetAtomWithIdx(k)
        key = (atom.GetSymbol(), atom.GetTotalNumHs(includeNeighbors=True))
        if atom.GetFormalCharge() != 0 or key not in ATOM_CLASSES:
            return None
        classes.append(ATOM_CLASSES.index(key))
    bonds = [[min(local[b.GetBeginAtomIdx()], local[b.GetEndAtomIdx()]),
              max(local[b.GetBeginAtomIdx()], local[b.GetEndAtomIdx()]),
              _BOND_ORDER[b.GetBondType()]] for b in mol.GetBonds()
             if b.GetBeginAtomIdx() in local and b.GetEndAtomIdx() in local]
    pos = np.asarray(positions, dtype=np.float64)[index]
    return (np.array(classes, dtype=np.int64), (pos - pos.mean(0)).astype(np.float32),
            np.array(bonds, dtype=np.int64).reshape(-1, 3))


def read_labelled_xyz(path: str | Path, properties: Sequence[str] = PROPERTIES,
                      limit: int | None = None, progress: Progress | None = None
                      ) -> tuple[MoleculeSet, dict[str, int]]:
    """Reads labelled frames, perceives bonds and keeps the consistent molecules.

    Args:
        path: multi-frame XYZ (``.xyz`` or ``.xyz.gz``) with ``smiles=`` and the property fields
            in each comment line.
        properties: property fields to read, eV.
        limit: read at most this many frames.
        progress: optional rich progress to report on.

    Returns:
        The molecules and counts of what was left out and why.

    Raises:
        ValueError: the file is missing or malformed (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    task = progress.add_task("reading 3D molecules", total=limit) if progress else None
    parts, ys, smiles = [], [], []
    skipped = {"element": 0, "no_bonds_perceived": 0, "smiles_mismatch": 0, "atom_class": 0}
    for k, (lineno, comment, atoms) in enumerate(_frames(path)):
        if limit is not None and k >= limit:
            break
        fields = _fields(comment)
        missing = [f for f in ("smiles", *properties) if f not in fields]
        if missing:
            raise ValueError(f"{path}: line {lineno + 1}: comment lacks {missing}")
        symbols = [a.split()[0] for a in atoms]
        xyz = np.array([[float(v) for v in a.split()[1:4]] for a in atoms])
        if any(s not in ELEMENTS for s in symbols):
            skipped["element"] += 1
            continue
        mol = perceive(symbols, xyz)
        if mol is None:
            skipped["no_bonds_perceived"] += 1
            continue
        if canonical_smiles(Chem.MolToSmiles(mol, isomericSmiles=False)) != canonical_smiles(
                fields["smiles"]):
            skipped["smiles_mismatch"] += 1
            continue
        heavy = heavy_atoms(mol, xyz)
        if heavy is None:
            skipped["atom_class"] += 1
            continue
        parts.append(heavy)
        ys.append([float(fields[p]) for p in properties])
        smiles.append(canonical_smiles(fields["smiles"]) or fields["smiles"])
        if progress is not None and task is not None:
            progress.advance(task)
    return _pack(parts, np.array(ys, dtype=np.float32).reshape(len(parts), len(properties)),
                 smiles), skipped


def molecules_from_smiles(smiles: Sequence[str], values: npt.ArrayLike,
                          seed: int = 0) -> tuple[MoleculeSet, list[str]]:
    """Molecules with RDKit geometries (ETKDG, then MMFF) for training on a campaign's labels.

    Args:
        smiles: the molecules.
        values: (n, n_properties) labels in the order of :data:`PROPERTIES`, eV; NaN where a
            property was not measured.
        seed: embedding seed.

    Returns:
        The molecules that could be embedded and represented, and the SMILES of those that
        could not.
    """
    from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

    values = np.asarray(values, dtype=np.float32).reshape(len(smiles), -1)
    parts, ys, kept, failed = [], [], [], []
    for s, y in zip(smiles, values, strict=True):
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            failed.append(s)
            continue
        mol = Chem.AddHs(mol)
        if rdDistGeom.EmbedMolecule(mol, randomSeed=seed % 2**31) != 0:
            failed.append(s)
            continue
        if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
            rdForceFieldHelpers.MMFFOptimizeMolecule(mol, maxIters=2000)
        Chem.Kekulize(mol, clearAromaticFlags=True)
        heavy = heavy_atoms(mol, mol.GetConformer().GetPositions())
        if heavy is None:
            failed.append(s)
            continue
        parts.append(heavy)
        ys.append(y)
        kept.append(canonical_smiles(s) or s)
    return _pack(parts, np.array(ys, dtype=np.float32).reshape(len(parts), values.shape[1]),
                 kept), failed


def with_labels(molecules: MoleculeSet, labels: Mapping[str, Sequence[float]], width: int
                ) -> tuple[MoleculeSet, int]:
    """The molecules with ``width`` more label columns, filled from ``labels`` by canonical
    SMILES (NaN for molecules without them: the conditioning masks unknown labels).

    Args:
        molecules: the set, its ``y`` unchanged in the first columns.
        labels: canonical SMILES -> the new columns' values.
        width: how many columns are added.

    Returns:
        The widened set and how many of its molecules got labels.
    """
    extra = np.full((len(molecules), width), np.nan, dtype=np.float32)
    matched = 0
    for k, smiles in enumerate(molecules.smiles.tolist()):
        values = labels.get(str(smiles))
        if values is not None:
            extra[k] = values
            matched += 1
    return replace(molecules, y=np.concatenate([molecules.y, extra], axis=1)), matched
