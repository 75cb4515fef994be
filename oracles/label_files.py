"""Append-only label files: a CSV that a labelling run extends row by row and resumes."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def labelled_ids(path: Path, columns: Sequence[str], id_column: str) -> set[str]:
    """Ids already in a labels file (none if it does not exist).

    Raises:
        ValueError: the file exists with other columns (naming them and the expected ones).
    """
    if not path.is_file():
        return set()
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != tuple(columns):
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(columns)}; "
                             "choose another --out")
        return {row[id_column] for row in reader}
