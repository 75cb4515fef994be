"""Orbital-location labels for a table of molecules with geometries (the QM9 reference pool).

Each molecule gets a PySCF calculation at a named level on its own geometry (for the QM9 pool:
the B3LYP geometries the data set ships), and a row with its orbital energies, its per-heavy-atom
HOMO and LUMO shares p_H and p_L (hydrogens folded into their heavy atom) and the descriptors of
:data:`oracles.orbital_features.DESCRIPTORS`. The shares are written in the order the caller
gives (for molecules: the heavy atoms of the SMILES as RDKit parses it), so that a model that
builds the molecule from its SMILES can read them atom by atom.

Every calculation is kept in a result cache (a store) and every row is appended and flushed as
it is done: a stopped run continues where it was, and a calculation done once is never repeated.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from oracles.label_files import append_label_rows, labelled_ids, open_text
from oracles.orbital_features import DESCRIPTORS, molecule_descriptors
from oracles.pyscf_oracle import PySCFOracle
from pipeline.protocols import ResultCache
from pipeline.types import Candidate, Geometry, OracleResult

COLUMNS = ("id", "smiles", "homo_ev", "lumo_ev", "gap_ev", "homo_degeneracy",
           "lumo_degeneracy", "p_homo", "p_lumo", *DESCRIPTORS, "wall_s", "reason")
"""Columns of an orbital labels file. ``p_homo`` and ``p_lumo`` hold one share per heavy atom,
space-separated, in the order of the molecule's SMILES; ``reason`` is empty where the molecule
has its labels."""

SHARE_DECIMALS = 5


@dataclass(frozen=True)
class LabelJob:
    """One molecule to label.

    Attributes:
        id: the molecule's id in its data set (QM9 index).
        smiles: its SMILES, written as given.
        geometry: the geometry the calculation uses.
        heavy_order: for each heavy atom of the SMILES, in order, the index of that atom in
            ``geometry``, length n_heavy.
    """

    id: str
    smiles: str
    geometry: Geometry
    heavy_order: tuple[int, ...]


def done_ids(path: Path) -> set[str]:
    """Ids already in a labels file (none if it does not exist).

    Raises:
        ValueError: the file exists with other columns.
    """
    return labelled_ids(path, COLUMNS, "id")


def label_row(job: LabelJob, result: OracleResult) -> list[str]:
    """The CSV row of one molecule's oracle result (its reason when it failed)."""
    empty = ["nan"] * (len(COLUMNS) - 3)
    if not result.ok:
        return [job.id, job.smiles, *empty, result.reason or "failed"]
    atoms = result.details["atoms"]
    assert isinstance(atoms, list)
    symbols = [a["symbol"] for a in atoms]
    heavy, p_h, p_l, descriptors = molecule_descriptors(
        symbols, np.asarray(result.details["positions_angstrom"], dtype=float),
        np.array([a["homo_density"] for a in atoms]), np.array([a["lumo_density"] for a in atoms]))
    position = {int(atom): k for k, atom in enumerate(heavy)}
    try:
        order = [position[i] for i in job.heavy_order]
    except KeyError as exc:
        return [job.id, job.smiles, *empty, f"heavy_order names atom {exc} that is not heavy"]
    values = result.values
    wall = result.details.get("wall_s")
    return [job.id, job.smiles,
            *(f"{values[k]:.6f}" for k in ("homo_ev", "lumo_ev", "gap_ev")),
            str(result.details["homo_degeneracy"]), str(result.details["lumo_degeneracy"]),
            " ".join(f"{p_h[k]:.{SHARE_DECIMALS}f}" for k in order),
            " ".join(f"{p_l[k]:.{SHARE_DECIMALS}f}" for k in order),
            *(f"{descriptors[k]:.6f}" for k in DESCRIPTORS),
            f"{wall:.2f}" if isinstance(wall, float) else "nan", ""]


def _results(oracle: PySCFOracle, jobs: Sequence[LabelJob], cache: ResultCache | None,
             workers: int) -> Iterator[tuple[LabelJob, OracleResult]]:
    """Oracle results in job order: from the cache, or computed ``workers`` at a time."""
    def compute(job: LabelJob) -> OracleResult:
        candidate = Candidate(job.id, job.smiles, job.smiles, 0, "labels", geometry=job.geometry)
        key = oracle.request_key(candidate)
        cached = cache.oracle_result(key) if cache is not None else None
        return cached if cached is not None else oracle.run(candidate)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list[tuple[LabelJob, Future[OracleResult]]] = []
        queue = iter(jobs)
        for job in queue:
            pending.append((job, pool.submit(compute, job)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            job, future = pending.pop(0)
            result = future.result()
            if cache is not None:
                cache.save_oracle_result(result)  # kept even when the row is not written
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(compute, nxt)))
            yield job, result


def label_orbitals(jobs: Sequence[LabelJob], out: Path, oracle: PySCFOracle,
                   cache: ResultCache | None = None, workers: int = 1,
                   progress: Progress | None = None) -> dict[str, int]:
    """Labels every molecule not yet in ``out`` and appends its row.

    Args:
        jobs: the molecules.
        out: the CSV to append to (made with its header when missing).
        oracle: the PySCF oracle (its level decides the labels).
        cache: keeps every calculation (a store); None: nothing is kept but the rows.
        workers: calculations at once (give each ``cores / workers`` threads in the oracle).
        progress: gets a task advanced once per molecule.

    Returns:
        Counts: ``labelled`` and ``failed`` in this call, ``skipped`` (already in ``out``).
    """
    seen = done_ids(out)
    todo = [j for j in jobs if j.id not in seen]
    rows = (label_row(job, result) for job, result in _results(oracle, todo, cache, workers))
    return append_label_rows(out, COLUMNS, rows, len(jobs), len(jobs) - len(todo),
                             f"orbital labels ({oracle.fidelity})", progress)


def read_labels(path: Path) -> list[dict[str, object]]:
    """The labelled rows of a labels file (``.csv`` or ``.csv.gz``; failed rows left out),
    with ``p_homo`` and ``p_lumo`` as float arrays and the other numbers as floats.

    Raises:
        ValueError: other columns, or a row whose shares do not parse or do not sum to 1
            (naming the file and row).
    """
    done_ids(path)  # checks the columns
    rows: list[dict[str, object]] = []
    with open_text(path) as handle:
        for lineno, raw in enumerate(csv.DictReader(handle), start=2):
            if raw["reason"]:
                continue
            row: dict[str, object] = {"id": raw["id"], "smiles": raw["smiles"]}
            try:
                for key in ("p_homo", "p_lumo"):
                    shares = np.array([float(v) for v in raw[key].split()])
                    if len(shares) == 0 or abs(shares.sum() - 1.0) > 1e-3:
                        raise ValueError(f"{key} sums to {shares.sum():.4f}, not 1")
                    row[key] = shares
                for key in COLUMNS[2:7] + tuple(DESCRIPTORS):
                    row[key] = float(raw[key])
            except ValueError as exc:
                raise ValueError(f"{path}, row {lineno}: {exc}") from None
            if not all(math.isfinite(float(row[k])) for k in DESCRIPTORS):  # type: ignore[arg-type]
                raise ValueError(f"{path}, row {lineno}: a descriptor is not a number")
            rows.append(row)
    return rows
