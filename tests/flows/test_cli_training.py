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
