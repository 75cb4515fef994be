"""Results from outside the pipeline (the lab, another code) coming back into a campaign.

A results file is a CSV with one row per measured design: an identifier column (``id``, the
campaign's candidate id, or ``smiles``/``key``/``cif``, the design itself) and one column per
property (``gap_ev``...; an empty cell means not measured), plus an optional free-text ``note``.
A property column may state its unit, ``gap_ev [meV]`` or ``gap_ev (kcal/mol)``; values are
converted to the campaign's unit (:mod:`pipeline.units`). Every row is checked before anything
is written; one bad row rejects the whole file with a message naming the file, the row and the
value, and the store is left as it was. A value already imported at the same fidelity is
skipped when it is the same (importing a file twice changes nothing) and refused when it
differs.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.store import Store
from pipeline.types import CandidateStatus, Evaluation
from pipeline.units import conversion_factor

ID_COLUMNS = ("id", "smiles", "key", "cif")
"""Columns that can name the design of a row (exactly one per file)."""

NOTE_COLUMN = "note"

_WITH_UNIT = re.compile(r"^(?P<name>[^\[\]()]+?)\s*[\[(]\s*(?P<unit>[^\])]+?)\s*[\])]$")


class ResultsFileError(ValueError):
    """A results file that cannot be imported; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ImportedRow:
    """One checked row.

    Attributes:
        line: line number in the file (the header is line 1).
        candidate_id: the campaign candidate the row measures.
        values: property -> value, in the property's unit (new results only).
        note: free text from the ``note`` column.
        unchanged: values of the row already imported with the same value (skipped).
        units: property -> the unit the file stated, where it stated one.
    """

    line: int
    candidate_id: str
    values: dict[str, float]
    note: str = ""
    unchanged: int = 0
    units: dict[str, str] | None = None


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
    columns: dict[str, tuple[str, float, str | None]] = {}  # header -> (property, factor, unit)
    unknown = []
    for col in header:
        if col in (id_col, NOTE_COLUMN):
            continue
        m = _WITH_UNIT.match(col)
        name, unit = (m.group("name").strip(), m.group("unit").strip()) if m else (col, None)
        if name not in properties:
            unknown.append(col)
            continue
        try:
            factor = conversion_factor(unit, properties[name]) if unit else 1.0
        except ValueError as exc:
            raise ResultsFileError(f"{path}: column {col!r}: {exc}") from None
        columns[col] = (name, factor, unit)
    if unknown:
        raise ResultsFileError(f"{path}: unknown column(s) {unknown}; the campaign's properties "
                               f"are {', '.join(properties)} (plus {id_col!r} and "
                               f"{NOTE_COLUMN!r}; a unit may follow a property in brackets, "
                               "gap_ev [meV])")
    named = [p for p, _, _ in columns.values()]
    twice = sorted({p for p in named if named.count(p) > 1})
    if twice:
        raise ResultsFileError(f"{path}: property {twice[0]!r} has more than one column")
    prop_cols = list(columns)
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
    measured = {(e.evaluation.candidate_id, e.evaluation.property): e.evaluation.value
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
        units: dict[str, str] = {}
        unchanged = 0
        for col in prop_cols:
            text = row.get(col, "")
            if text == "":
                continue
            prop, factor, unit = columns[col]
            try:
                value = float(text) * factor
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ResultsFileError(f"{path}: line {line}: column {col!r}: {text!r} is not a "
                                       "finite number")
            if (cid, prop) in measured:
                before = measured[(cid, prop)]
                if math.isclose(before, value, rel_tol=1e-9, abs_tol=1e-12):
                    unchanged += 1  # imported before: importing again changes nothing
                    continue
                raise ResultsFileError(f"{path}: line {line}: {id_col} {ident!r} already has a "
                                       f"{prop} result at fidelity {fidelity!r} ({before:g}, "
                                       f"this file says {value:g})")
            values[prop] = value
            if unit:
                units[prop] = unit
        if not values and not unchanged:
            raise ResultsFileError(f"{path}: line {line}: no property value given")
        if values or unchanged:
            rows.append(ImportedRow(line, cid, values, row.get(NOTE_COLUMN, ""), unchanged,
                                    units or None))
    return rows


def store_results(
    store: Store, campaign: str, rows: Sequence[ImportedRow], properties: dict[str, str],
    fidelity: str, source: str, content: bytes | None = None,
) -> int:
    """Writes checked rows as evaluations at ``fidelity``, all in one transaction.

    Args:
        store: the store.
        campaign: campaign name.
        rows: rows from :func:`read_results`.
        properties: property -> unit.
        fidelity: the fidelity they carry.
        source: the file's name, kept with every value.
        content: the file's bytes (for its checksum); None: read from ``source``.

    Returns:
        The number of evaluations written (values imported before are not written again).
    """
    data = content if content is not None else Path(source).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    batches = [
        ([Evaluation(row.candidate_id, prop, value, properties[prop], fidelity,
                     provenance={"source": str(source), "line": row.line, "note": row.note,
                                 "file_sha256": digest,
                                 **({"file_unit": row.units[prop]}
                                    if row.units and prop in row.units else {})})
          for prop, value in row.values.items()],
         f"import:{fidelity}:{digest}:{row.line}")
        for row in rows if row.values
    ]
    if batches:
        store.add_evaluation_batches(campaign, batches)
    return sum(len(evals) for evals, _ in batches)
