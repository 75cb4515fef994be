"""Append-only label files: header once, rows flushed as they come, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracles.label_files import append_label_rows, labelled_ids

COLUMNS = ("id", "value", "reason")


def test_rows_are_appended_after_a_header_and_counted(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "labels.csv"
    assert labelled_ids(out, COLUMNS, "id") == set()
    counts = append_label_rows(out, COLUMNS, iter([["a", "1.0", ""], ["b", "nan", "no SCF"]]),
                               total=2, skipped=0, description="test")
    assert counts == {"labelled": 1, "failed": 1, "skipped": 0}
    again = append_label_rows(out, COLUMNS, iter([["c", "2.0", ""]]), 3, 2, "test")
    assert again == {"labelled": 1, "failed": 0, "skipped": 2}
    assert out.read_text().splitlines() == ["id,value,reason", "a,1.0,", "b,nan,no SCF",
                                            "c,2.0,"]
    assert labelled_ids(out, COLUMNS, "id") == {"a", "b", "c"}


def test_a_file_with_other_columns_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match=r"columns \['x', 'y'\], expected \['id', 'value', "
                                         r"'reason'\]; choose another --out"):
        labelled_ids(other, COLUMNS, "id")
