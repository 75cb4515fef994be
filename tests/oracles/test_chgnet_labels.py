"""CHGNet stability labels: rows appended in priority order, a rerun resumes, bad input refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from materials.structures import cubic_perovskite
from oracles.chgnet_labels import COLUMNS, label_stability
from pipeline.store import Store


def test_labels_in_priority_order_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    near = cubic_perovskite("Cs", "Sn", "Cl", 5.56)  # near CsSnCl3's experimental 5.56 A
    squeezed = cubic_perovskite("Cs", "Sn", "Cl", 5.0)  # 10 % short: far above its binaries
    out = tmp_path / "labels.csv"
    store = Store(f"sqlite:///{tmp_path}/phases.db")
    with pytest.raises(ValueError, match="1 priorities for 2 structures"):
        label_stability(["a", "b"], [squeezed, near], out, store, priority=[0.0])
    assert not out.exists()
    counts = label_stability(["a", "b"], [squeezed, near], out, store, priority=[0.5, -1.0])
    assert counts == {"labelled": 2, "failed": 0, "skipped": 0}
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["material_id"] for r in rows] == ["b", "a"]  # the lower priority first
    assert tuple(rows[0]) == COLUMNS and all(r["reason"] == "" for r in rows)
    by_id = {r["material_id"]: float(r["decomposition_energy_ev_per_atom"]) for r in rows}
    assert by_id["b"] < 0.0 < by_id["a"]  # the squeezed cell lies far above the hull
    before = out.read_text()
    again = label_stability(["a", "b"], [squeezed, near], out, store, priority=[0.5, -1.0])
    assert again == {"labelled": 0, "failed": 0, "skipped": 2} and out.read_text() == before
