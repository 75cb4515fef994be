"""CHGNet stability labels: rows appended in priority order, a rerun resumes, bad input refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from materials.structures import cubic_perovskite
from oracles.chgnet_labels import COLUMNS, RELAXED_COLUMNS, label_stability
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


def test_relaxed_labels_are_the_oracles_quantity_and_do_not_mix_with_static(tmp_path: Path
                                                                            ) -> None:
    squeezed = cubic_perovskite("Cs", "Sn", "Cl", 5.0)
    near = cubic_perovskite("Cs", "Sn", "Cl", 5.56)
    store = Store(f"sqlite:///{tmp_path}/phases.db")
    static_out, relaxed_out = tmp_path / "static.csv", tmp_path / "relaxed.csv"
    label_stability(["a"], [squeezed], static_out, store)
    with pytest.raises(ValueError, match=r"expected .*relaxation_steps"):
        label_stability(["a"], [squeezed], static_out, store, relaxed=True)
    counts = label_stability(["a", "b"], [squeezed, near], relaxed_out, store, relaxed=True)
    assert counts == {"labelled": 2, "failed": 0, "skipped": 0}
    with static_out.open(newline="") as handle:
        static = next(csv.DictReader(handle))
    with relaxed_out.open(newline="") as handle:
        relaxed = {r["material_id"]: r for r in csv.DictReader(handle)}
    assert tuple(relaxed["a"]) == RELAXED_COLUMNS
    assert int(relaxed["a"]["relaxation_steps"]) > 1
    decomposition = {k: float(r["decomposition_energy_ev_per_atom"]) for k, r in relaxed.items()}
    # relaxation takes the squeezed cell down to the same minimum as the one near it
    assert decomposition["a"] < float(static["decomposition_energy_ev_per_atom"]) - 0.1
    assert decomposition["a"] == pytest.approx(decomposition["b"], abs=0.01)
