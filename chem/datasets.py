"""Labelled molecule sets for training property models: loading and 3D embedding.

The QM9 reference pool is read from its CSV (``train_pool.csv.gz``: ``smiles``, ``homo_ev``,
``lumo_ev``, ``gap_ev``). Models are trained on what a campaign has for a new molecule, the RDKit
ETKDG + MMFF geometry made from its SMILES, optionally relaxed further with GFN2-xTB
(:mod:`chem.xtb`), so :func:`embed_dataset` embeds every SMILES (in parallel, with a progress bar)
and packs the result into flat arrays that load fast.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from rich.progress import Progress

from chem.molecules import EMBED_SEED, embed_geometry
from chem.xtb import RelaxationError, relax_xtb

PROPERTIES = ("homo_ev", "lumo_ev", "gap_ev")
"""Targets of the property model, eV."""

_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

GeometryMethod = Literal["mmff", "xtb"]
"""How a molecule's 3D input is made from its SMILES: ``mmff`` (RDKit ETKDG + MMFF94) or ``xtb``
(that geometry relaxed with GFN2-xTB)."""


def load_labelled_smiles(path: str | Path, properties: Sequence[str] = PROPERTIES) -> pd.DataFrame:
    """Reads a CSV (optionally gzipped) with a ``smiles`` column and the property columns.

    Raises:
        ValueError: naming the file and the missing column or the first row with a bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    frame = pd.read_csv(path)
    missing = [c for c in ("smiles", *properties) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    values = frame[list(properties)].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: row {row + 2}: non-numeric or empty property value "
                         f"{frame.loc[row, list(properties)].to_dict()}")
    return pd.concat([frame[["smiles"]], values], axis=1)


def subset_atoms(offsets: npt.NDArray[np.int64], index: npt.NDArray[np.int64]
                 ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The rows of the atoms of molecules ``index`` in flat per-atom arrays, and the offsets
    of those molecules once taken out, (len(index) + 1,)."""
    counts = np.diff(offsets)[index]
    atoms = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in index]
                           + [np.zeros(0, dtype=np.int64)])
    return atoms, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


@dataclass(frozen=True)
class GeometryDataset:
    """Molecules as flat arrays: the layout a batched graph network wants.

    Attributes:
        z: atomic numbers of all atoms, (n_atoms_total,).
        pos: positions, (n_atoms_total, 3) Angstrom.
        offsets: first atom of each molecule, (n_molecules + 1,).
        y: targets, (n_molecules, n_properties), NaN where unknown.
        smiles: the molecules, (n_molecules,).
        method: how the geometries were made (:data:`GeometryMethod`).
        failures: SMILES left out by :func:`embed_dataset`, each with the reason (not saved).
    """

    z: npt.NDArray[np.int64]
    pos: npt.NDArray[np.float32]
    offsets: npt.NDArray[np.int64]
    y: npt.NDArray[np.float32]
    smiles: npt.NDArray[np.str_]
    method: str = "mmff"
    failures: dict[str, str] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.smiles)

    def subset(self, index: npt.NDArray[np.int64]) -> GeometryDataset:
        """The molecules at ``index``, in that order."""
        atoms, offsets = subset_atoms(self.offsets, index)
        return GeometryDataset(self.z[atoms], self.pos[atoms], offsets, self.y[index],
                               self.smiles[index], self.method)

    def save(self, path: str | Path) -> None:
        """Writes a compressed ``.npz``."""
        np.savez_compressed(path, z=self.z, pos=self.pos, offsets=self.offsets, y=self.y,
                            smiles=self.smiles, method=np.asarray(self.method))

    @classmethod
    def load(cls, path: str | Path) -> GeometryDataset:
        """Reads what :meth:`save` wrote."""
        with np.load(path, allow_pickle=False) as data:
            method = str(data["method"]) if "method" in data.files else "mmff"
            return cls(data["z"], data["pos"], data["offsets"], data["y"], data["smiles"], method)


def _embed(smiles: str, method: str = "mmff", seed: int = EMBED_SEED
           ) -> tuple[list[int], list[list[float]]] | str:
    """The atomic numbers and positions (Angstrom) of one SMILES, or why there are none; another
    ``seed`` gives another conformer (same atoms in the same order)."""
    try:
        geometry = embed_geometry(smiles, seed=seed)
    except ValueError as err:
        return str(err)
    other = sorted({s for s in geometry.symbols if s not in _Z})
    if other:
        return f"element(s) {', '.join(other)} outside the model's H, C, N, O, F"
    z = [_Z[s] for s in geometry.symbols]
    positions = [list(p) for p in geometry.positions_angstrom]
    if method == "xtb":
        n_unpaired = geometry.multiplicity - 1
        try:
            positions = relax_xtb(z, positions, charge=geometry.charge,
                                  unpaired=n_unpaired).tolist()
        except RelaxationError as err:
            return str(err)
    return z, positions


def embed_dataset(frame: pd.DataFrame, properties: Sequence[str] = PROPERTIES, *,
                  method: GeometryMethod = "mmff", processes: int = 1,
                  progress: Progress | None = None) -> GeometryDataset:
    """Embeds every SMILES (RDKit ETKDG + MMFF, then GFN2-xTB with ``method="xtb"``) and packs
    molecules with their targets.

    Molecules RDKit cannot embed, whose xTB relaxation fails, or with elements other than H, C,
    N, O, F, are left out; the result's ``failures`` gives each one's reason.
    """
    if method not in ("mmff", "xtb"):
        raise ValueError(f"unknown geometry method {method!r}; use 'mmff' or 'xtb'")
    smiles = frame["smiles"].tolist()
    label = "embedding 3D geometries" + (" and relaxing them with GFN2-xTB" if method == "xtb" else "")
    task = progress.add_task(label, total=len(smiles)) if progress else None
    results: list[tuple[list[int], list[list[float]]] | str] = []
    work = functools.partial(_embed, method=method)
    if processes == 1:
        mapped: Iterator[tuple[list[int], list[list[float]]] | str] = map(work, smiles)
        pool = None
    else:
        # tblite's OpenMP runtime does not survive a fork once it has run in this process:
        # xTB workers start from a fresh interpreter
        ctx = multiprocessing.get_context("forkserver" if method == "xtb" else "fork")
        pool = ctx.Pool(processes)
        mapped = pool.imap(work, smiles, chunksize=32)
    try:
        for result in mapped:
            results.append(result)
            if progress is not None and task is not None:
                progress.advance(task)
    finally:
        if pool is not None:
            pool.terminate()
    keep = [i for i, r in enumerate(results) if not isinstance(r, str)]
    embedded = [r for r in results if not isinstance(r, str)]
    zs = [np.zeros(0, dtype=np.int64)] + [np.asarray(z, dtype=np.int64) for z, _ in embedded]
    ps = [np.zeros((0, 3), dtype=np.float32)] + [np.asarray(p, dtype=np.float32)
                                                 for _, p in embedded]
    counts = np.array([len(z) for z in zs[1:]], dtype=np.int64)
    return GeometryDataset(
        z=np.concatenate(zs), pos=np.concatenate(ps),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        y=frame[list(properties)].to_numpy(dtype=np.float32)[keep],
        smiles=np.asarray([smiles[i] for i in keep], dtype=np.str_),
        method=method,
        failures={smiles[i]: r for i, r in enumerate(results) if isinstance(r, str)},
    )


@dataclass(frozen=True)
class XYZRecord:
    """One structure of a concatenated XYZ file.

    Attributes:
        fields: the comment line's ``key=value`` pairs (QM9 pool: ``qm9_index``, ``smiles``, ...).
        symbols: element symbols, length n_atoms.
        positions_angstrom: coordinates, shape (n_atoms, 3), Angstrom.
    """

    fields: dict[str, str]
    symbols: tuple[str, ...]
    positions_angstrom: npt.NDArray[np.float64]


def read_xyz_records(path: str | Path) -> Iterator[XYZRecord]:
    """The structures of a concatenated XYZ file (gzip-compressed when it ends in ``.gz``), in
    file order, with the ``key=value`` pairs of each comment line.

    Raises:
        ValueError: naming the file and line of a block that does not parse.
    """
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    lineno = 0
    while lineno < len(lines):
        header = lines[lineno].strip()
        if not header:
            lineno += 1
            continue
        if not header.isdigit():
            raise ValueError(f"{path}:{lineno + 1}: expected the number of atoms, got {header!r}")
        n_atoms = int(header)
        fields = dict(part.split("=", 1) for part in lines[lineno + 1].split() if "=" in part)
        symbols, positions = [], []
        for k in range(lineno + 2, lineno + 2 + n_atoms):
            parts = lines[k].split() if k < len(lines) else []
            try:
                if len(parts) < 4:
                    raise ValueError
                positions.append([float(v) for v in parts[1:4]])
            except ValueError:
                raise ValueError(f"{path}:{k + 1}: expected 'SYMBOL X Y Z' (Angstrom), got "
                                 f"{lines[k] if k < len(lines) else 'end of file'!r}") from None
            symbols.append(parts[0].capitalize())
        yield XYZRecord(fields, tuple(symbols), np.array(positions, dtype=float))
        lineno += 2 + n_atoms
