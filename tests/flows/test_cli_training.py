"""`invdes train surrogate` end to end on a tiny literal CSV: members in parallel, log lines."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from chem.property_model import PropertyEnsemble
from flows.cli import app

ROWS = """smiles,homo_ev,lumo_ev,gap_ev
C,-10.55,3.19,13.74
N,-6.99,2.26,9.25
O,-7.96,1.82,9.78
C#C,-7.74,1.28,9.02
C#N,-9.82,0.53,10.35
C=O,-7.00,-0.79,6.21
CO,-7.11,2.29,9.40
CC,-8.50,2.44,10.94
CN,-6.15,2.21,8.36
CCO,-7.09,2.08,9.17
CC=O,-6.74,-0.43,6.31
C1CC1,-7.67,2.62,10.29
"""


def test_train_surrogate_with_parallel_members_logs_progress_lines(tmp_path: Path) -> None:
    data = tmp_path / "pool.csv"
    data.write_text(ROWS)
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(app, [
        "train", "surrogate", "--data", str(data), "--out", str(out), "--holdout", "2",
        "--epochs", "2", "--members", "2", "--workers", "2", "--features", "8", "--layers", "1",
        "--batch-size", "4", "--processes", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    model = PropertyEnsemble.load(out)
    assert len(model.members) == 2 and model.config.workers == 2
    assert model.metrics["holdout"] == 2 and model.metrics["rows_used"] == 10
    # not a terminal: plain lines, one per tenth, for a log
    assert "training: " in result.output and "(100 %)" in result.output
    assert "embedding 3D geometries: 10/10 (100 %)" in result.output


XYZ = """4
qm9_index=10 smiles=C=O
H 0.0 0.943 -0.587
O 0.0 0.0 1.205
H 0.0 -0.943 -0.587
C 0.0 0.0 0.0
3
qm9_index=11 smiles=O
O 0.0 0.0 0.1173
H 0.0 0.7572 -0.4692
H 0.0 -0.7572 -0.4692
"""


def test_label_orbitals_then_train_the_orbital_model(tmp_path: Path) -> None:
    import csv
    import json

    from chem.orbital_model import OrbitalShareEnsemble

    xyz = tmp_path / "pool.xyz"
    xyz.write_text(XYZ)
    labels = tmp_path / "labels.csv"
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    args = ["label", "orbitals", "--data", str(xyz), "--out", str(labels), "--level", "fast",
            "--store", store]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout.splitlines()[-1])["labelled"] == 2
    again = CliRunner().invoke(app, args)  # resumes: nothing left to compute
    assert json.loads(again.stdout.splitlines()[-1]) == {
        "labelled": 0, "failed": 0, "skipped": 2, "unmatched": 0, "unmatched_examples": []}
    rows = list(csv.DictReader(labels.open()))
    assert [r["smiles"] for r in rows] == ["C=O", "O"]
    p_lumo = [float(v) for v in rows[0]["p_lumo"].split()]
    assert len(p_lumo) == 2 and p_lumo[0] > p_lumo[1]  # SMILES order: C first, then O
    # too few molecules to train on: a clear error, nothing written
    out = tmp_path / "orbital.pt"
    small = CliRunner().invoke(app, ["train", "orbital-model", "--labels", str(labels),
                                     "--out", str(out), "--init-trunk", "none"])
    assert small.exit_code == 2 and "at least 10 labelled molecules" in small.output
    assert not out.exists()
    # the same two molecules many times over (each under its own id) are enough to train
    body = labels.read_text().splitlines()
    many = tmp_path / "many.csv"
    many.write_text("\n".join([body[0]] + [line.replace(line.split(",")[0], str(100 + k), 1)
                                           for k, line in enumerate(body[1:] * 10)]) + "\n")
    trained = CliRunner().invoke(app, ["train", "orbital-model", "--labels", str(many),
                                       "--out", str(out), "--init-trunk", "none", "--epochs",
                                       "2", "--members", "2", "--features", "8", "--layers",
                                       "1", "--test-fraction", "0.2"])
    assert trained.exit_code == 0, trained.output
    model = OrbitalShareEnsemble.load(out)
    assert model.metrics["labelled_rows"] == 20 and model.metrics["test_fraction"] == 0.2
    assert model.config.overlap_weight == 1.0  # the overlap loss is on by default
    assert model.metrics["n_train"] + model.metrics["n_validation"] < 20  # the test split is out
