"""Orbital labels: rows in SMILES heavy-atom order, resumable, cached, read back checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oracles.orbital_labels import COLUMNS, LabelJob, label_orbitals, read_labels
from oracles.pyscf_oracle import PySCFOracle
from pipeline.store import Store
from pipeline.types import Geometry

# formaldehyde with its atoms in the order H, O, H, C: the SMILES "C=O" has C first, then O
FORMALDEHYDE = Geometry(("H", "O", "H", "C"), ((0.0, 0.943, -0.587), (0.0, 0.0, 1.205),
                                               (0.0, -0.943, -0.587), (0.0, 0.0, 0.0)))
WATER = Geometry(("O", "H", "H"), ((0.0, 0.0, 0.1173), (0.0, 0.7572, -0.4692),
                                   (0.0, -0.7572, -0.4692)))


def test_labels_are_written_in_smiles_order_and_a_second_run_computes_nothing(
        tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    store = Store(f"sqlite:///{tmp_path / 'cache.db'}")
    oracle = PySCFOracle(PySCFOracle.Params(level="fast"))
    jobs = [LabelJob("1", "C=O", FORMALDEHYDE, (3, 1)), LabelJob("2", "O", WATER, (0,))]
    assert label_orbitals(jobs[:1], out, oracle, store) == {"labelled": 1, "failed": 0,
                                                            "skipped": 0}
    assert label_orbitals(jobs, out, oracle, store, workers=2) == {"labelled": 1, "failed": 0,
                                                                   "skipped": 1}
    rows = {r["id"]: r for r in read_labels(out)}
    p_lumo = rows["1"]["p_lumo"]
    assert isinstance(p_lumo, np.ndarray) and p_lumo.shape == (2,)
    assert p_lumo[0] > p_lumo[1]  # pi*: more on carbon (first in the SMILES) than on oxygen
    assert rows["1"]["lumo_share_C"] == pytest.approx(p_lumo[0], abs=1e-5)
    assert rows["2"]["frontier_overlap"] == pytest.approx(1.0)
    # the calculations are in the store: labelling again into a new file runs no oracle
    slow = PySCFOracle(PySCFOracle.Params(level="fast", timeout_s=1e-3))
    again = label_orbitals(jobs, tmp_path / "again.csv", slow, store)
    assert again == {"labelled": 2, "failed": 0, "skipped": 0}
    assert (tmp_path / "again.csv").read_text() == out.read_text()


def test_bad_files_are_refused_with_file_and_row(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"other\.csv: columns"):
        read_labels(other)
    bad = tmp_path / "bad.csv"
    row = ["7", "C=O"] + ["1"] * 5 + ["0.5 0.2", "0.5 0.5"] + ["0"] * (len(COLUMNS) - 11) + [""]
    bad.write_text(",".join(COLUMNS) + "\n" + ",".join(row) + "\n")
    with pytest.raises(ValueError, match=r"bad\.csv, row 2: p_homo sums to 0\.7"):
        read_labels(bad)
