"""CHGNet stability labels for a table of DFT-relaxed structures (the perov-5 pool).

Each structure gets CHGNet's energy, its formation energy against the element phases and its
decomposition energy against the competing phases of :mod:`oracles.competing_phases`: the
labels that the crystal generator is conditioned on for "stable by CHGNet". Two kinds:

- static (:data:`COLUMNS`): at the structure's own DFT geometry, without relaxation
  (:meth:`oracles.chgnet_oracle.CHGNetOracle.static_stability`, about 0.3 s a cell);
- relaxed (:data:`RELAXED_COLUMNS`): after the CHGNet oracle's own relaxation, so exactly the
  quantity the oracle gives a candidate
  (:meth:`oracles.chgnet_oracle.CHGNetOracle.relaxed_stability`, a few seconds a cell).

A file holds one kind (their columns differ, so the two cannot be mixed by a resumed run). The phases are
relaxed once and kept in a result cache (a store), and rows are appended to the output CSV as
they are done, so a run that is stopped continues where it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from rich.progress import Progress

from oracles.chgnet_oracle import CHGNetOracle
from oracles.label_files import append_label_rows, labelled_ids
from pipeline.protocols import ResultCache

COLUMNS = ("material_id", "formula", "energy_ev_per_atom", "formation_energy_ev_per_atom",
           "decomposition_energy_ev_per_atom", "reason")
"""Columns of a static labels file; ``reason`` is empty where the structure has its labels."""

RELAXED_COLUMNS = (*COLUMNS[:5], "relaxation_steps", "reason")
"""Columns of a relaxed labels file: the static ones plus the CHGNet relaxation steps taken."""


def done_ids(path: Path, relaxed: bool = False) -> set[str]:
    """Material ids already in a labels file (none if it does not exist).

    Raises:
        ValueError: the file exists with other columns (e.g. static labels asked to resume
            as relaxed ones).
    """
    return labelled_ids(path, RELAXED_COLUMNS if relaxed else COLUMNS, "material_id")


def label_stability(ids: Sequence[str], structures: Sequence[Structure], out: Path,
                    cache: ResultCache | None = None, progress: Progress | None = None,
                    priority: Sequence[float] | None = None, relaxed: bool = False
                    ) -> dict[str, int]:
    """Labels every structure not yet in ``out`` and appends its row.

    Args:
        ids: one material id per structure.
        structures: DFT-relaxed structures.
        out: the CSV to append to (made with its header when missing).
        cache: keeps the competing phases' relaxations (a store); None: in memory only.
        progress: gets a task advanced once per structure.
        priority: one number per structure; the lowest are labelled first (NaN last, ties in
            table order), so that a run stopped part-way holds the rows that matter most
            (lowest DFT formation energy first: the cells most likely to be stable). None:
            table order.
        relaxed: relax each structure with the CHGNet oracle first (:data:`RELAXED_COLUMNS`);
            False: at its DFT geometry (:data:`COLUMNS`).

    Returns:
        Counts: ``labelled`` and ``failed`` in this call, ``skipped`` (already in ``out``).
    """
    if len(ids) != len(structures):
        raise ValueError(f"{len(ids)} ids for {len(structures)} structures")
    if priority is not None and len(priority) != len(ids):
        raise ValueError(f"{len(priority)} priorities for {len(ids)} structures")
    oracle = CHGNetOracle()
    if cache is not None:
        oracle.bind_cache(cache)
    seen = done_ids(out, relaxed)
    columns = RELAXED_COLUMNS if relaxed else COLUMNS
    label = oracle.relaxed_stability if relaxed else oracle.static_stability
    todo = [k for k, i in enumerate(ids) if str(i) not in seen]
    if priority is not None:
        key = np.nan_to_num(np.asarray(priority, dtype=float), nan=np.inf)
        todo.sort(key=lambda k: key[k])  # stable: ties keep table order

    def rows() -> Iterator[list[str]]:
        for k in todo:
            s = structures[k]
            try:
                values, reason = label(s), ""
            except ValueError as exc:
                values, reason = {}, str(exc)
            steps = ([f"{values['steps']:.0f}" if "steps" in values else ""] if relaxed else [])
            yield [str(ids[k]), s.composition.reduced_formula,
                   *(f"{values.get(c, math.nan):.6f}" for c in COLUMNS[2:5]), *steps, reason]

    return append_label_rows(out, columns, rows(), len(ids), len(ids) - len(todo),
                             "CHGNet relaxed stability labels" if relaxed
                             else "CHGNet stability labels", progress)
