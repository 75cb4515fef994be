"""Results from outside the pipeline (the lab, another code) coming back into a campaign.

A results file is a CSV with one row per measured design: an identifier column (``id``, the
campaign's candidate id, or ``smiles``/``key``, the design itself) and one column per property
(``gap_ev``...; an empty cell means not measured), plus an optional free-text ``note``. Every
row is checked before anything is written; one bad row rejects the whole file with a message
naming the file, the row and the value, and the store is left as it was.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.store import Store
from pipeline.types import CandidateStatus, Evaluation

ID_COLUMNS = ("id", "smiles", "key")
"""Columns that can name the design of a row (exactly one per file)."""

NOTE_COLUMN = "note"


class ResultsFileError(ValueError):
    """A results file that cannot be imported; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ImportedRow:
    """One checked row.

    Attributes:
        line: line number in the file (the header is line 1).
        candidate_id: the campaign candidate the row measures.
        values: property -> value, in the property's unit.
        note: free text from the ``note`` column.
    """

    line: int
    candidate_id: str
    values: dict[str, float]
    note: str = ""


def read_results(
    path: str | Path, store: Store, campaign: str, properties: dict[str, str],
    fidelity: str, canonical_key: Callable[[str], str | None],
) -> list[ImportedRow]:
    """Reads and checks a results file against a campaign.

    Args:
        path: the CSV file.
        store: the campaign store.
        campaign: campaign name.
        properties: property -> unit, the properties the campaign knows.
        fidelity: the fidelity the results will carry.
        canonical_key: design text -> canonical key (None when it cannot be parsed).

    Raises:
        ResultsFileError: naming the file, the line and the value of the first problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ResultsFileError(f"{path}: file not found")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        raw_rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()}
                    for row in reader]
    id_cols = [c for c in header if c in ID_COLUMNS]
    if len(id_cols) != 1:
        raise ResultsFileError(f"{path}: needs exactly one identifier column of "
                           f"{', '.join(ID_COLUMNS)}; found {id_cols or 'none'} in {header}")
    (id_col,) = id_cols
    unknown = [c for c in header if c not in (id_col, NOTE_COLUMN) and c not in properties]
    if unknown:
        raise ResultsFileError(f"{path}: unknown column(s) {unknown}; the campaign's properties are "
                           f"{', '.join(properties)} (plus {id_col!r} and {NOTE_COLUMN!r})")
    prop_cols = [c for c in header if c in properties]
    if not prop_cols:
        raise ResultsFileError(f"{path}: no property column; expected one or more of "
                           f"{', '.join(properties)}")
    if not raw_rows:
        raise ResultsFileError(f"{path}: no data rows")
    records = store.candidates(campaign)
    by_id = {r.candidate.id: r.candidate.id for r in records}
    by_key: dict[str, str] = {}
    # a design proposed again in a later round is stored again, rejected as already seen: the
    # result belongs to its first record that was not rejected
    for r in sorted(records, key=lambda r: (r.status is CandidateStatus.REJECTED,
                                            r.candidate.round_index), reverse=True):
        by_key[r.candidate.key] = r.candidate.id
    measured = {(e.evaluation.candidate_id, e.evaluation.property)
                for e in store.evaluations(campaign) if e.evaluation.fidelity == fidelity}
    rows: list[ImportedRow] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(raw_rows, start=2):
        ident = row.get(id_col, "")
        if id_col == "id":
            cid = by_id.get(ident)
        else:
            key = canonical_key(ident) if ident else None
            if key is None:
                raise ResultsFileError(f"{path}: line {line}: {id_col} {ident!r} cannot be parsed")
            cid = by_key.get(key)
        if cid is None:
            raise ResultsFileError(f"{path}: line {line}: {id_col} {ident!r} is not a design of "
                               f"campaign {campaign!r}")
        if cid in seen:
            raise ResultsFileError(f"{path}: line {line}: {id_col} {ident!r} already given on line "
                               f"{seen[cid]}")
        seen[cid] = line
        values: dict[str, float] = {}
        for col in prop_cols:
            text = row.get(col, "")
            if text == "":
                continue
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ResultsFileError(f"{path}: line {line}: column {col!r}: {text!r} is not a "
                                   "finite number")
            if (cid, col) in measured:
                raise ResultsFileError(f"{path}: line {line}: {id_col} {ident!r} already has a "
                                   f"{col} result at fidelity {fidelity!r}")
            values[col] = value
        if not values:
            raise ResultsFileError(f"{path}: line {line}: no property value given")
        rows.append(ImportedRow(line, cid, values, row.get(NOTE_COLUMN, "")))
    return rows


def store_results(
    store: Store, campaign: str, rows: Sequence[ImportedRow], properties: dict[str, str],
    fidelity: str, source: str,
) -> int:
    """Writes checked rows as evaluations at ``fidelity``, all in one transaction.

    Returns:
        The number of evaluations written.
    """
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]
    batches = [
        ([Evaluation(row.candidate_id, prop, value, properties[prop], fidelity,
                     provenance={"source": str(source), "line": row.line, "note": row.note,
                                 "file_sha256": digest})
          for prop, value in row.values.items()],
         f"import:{fidelity}:{digest}:{row.line}")
        for row in rows
    ]
    store.add_evaluation_batches(campaign, batches)
    return sum(len(evals) for evals, _ in batches)
