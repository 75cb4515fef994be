"""Append-only label files: a CSV that a labelling run extends row by row and resumes."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from rich.progress import Progress


def open_text(path: Path) -> TextIO:
    """A labels file for reading, gzip-compressed when its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="")
    return path.open(newline="")


def labelled_ids(path: Path, columns: Sequence[str], id_column: str) -> set[str]:
    """Ids already in a labels file (none if it does not exist).

    Raises:
        ValueError: the file exists with other columns (naming them and the expected ones).
    """
    if not path.is_file():
        return set()
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != tuple(columns):
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(columns)}; "
                             "choose another --out")
        return {row[id_column] for row in reader}


def append_label_rows(out: Path, columns: Sequence[str], rows: Iterable[Sequence[str]],
                      total: int, skipped: int, description: str,
                      progress: Progress | None = None) -> dict[str, int]:
    """Appends rows as they come (the header first for a new file), flushing each, so that a
    kill loses at most the rows being computed.

    Args:
        out: the CSV.
        columns: its header; the last column is the reason, empty where the row has labels.
        rows: the new rows, computed lazily.
        total: rows of the whole job (for the progress bar).
        skipped: rows already in the file.
        description: the progress bar's label.
        progress: gets a task advanced once per row.

    Returns:
        Counts: ``labelled`` and ``failed`` written now, ``skipped``.
    """
    counts = {"labelled": 0, "failed": 0, "skipped": skipped}
    task = (progress.add_task(description, total=total, completed=skipped)
            if progress is not None else None)
    new_file = not out.is_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(columns)
        for row in rows:
            counts["failed" if row[-1] else "labelled"] += 1
            writer.writerow(row)
            handle.flush()
            if progress is not None and task is not None:
                progress.advance(task)
    return counts
