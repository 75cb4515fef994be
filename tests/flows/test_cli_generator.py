"""`invdes train generator` on a tiny literal set, and its errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from chem.flow_matching import FlowGenerator
from flows.cli import app
from tests.chem.test_flow_matching import MOLECULES, _frame


def test_train_generator_writes_a_checkpoint_and_resumes(tmp_path: Path) -> None:
    xyz = tmp_path / "tiny.xyz"
    xyz.write_text("".join(_frame(*m) for m in MOLECULES))
    out, state, cache = tmp_path / "gen.pt", tmp_path / "state.pt", tmp_path / "mols.npz"
    args = ["train", "generator", "--data", str(xyz), "--out", str(out), "--epochs", "2",
            "--features", "8", "--layers", "1", "--batch-size", "4", "--holdout", "2",
            "--device", "cpu", "--state", str(state), "--molecules", str(cache)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    generator = FlowGenerator.load(out)
    assert generator.metrics["n_train"] == len(MOLECULES) - 2
    assert len(generator.reference_smiles) == len(MOLECULES) - 2
    assert state.is_file() and cache.is_file()
    again = CliRunner().invoke(app, args)  # finished state: nothing left to train
    assert again.exit_code == 0, again.output
    other = CliRunner().invoke(app, [*args[:-4], "--epochs", "3", "--state", str(state)])
    assert other.exit_code == 2 and "training state of other settings or data" in other.output


def test_train_generator_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xyz"
    bad.write_text("two\nsmiles=O\n")
    result = CliRunner().invoke(app, ["train", "generator", "--data", str(bad), "--out",
                                      str(tmp_path / "g.pt")])
    assert result.exit_code == 2
    assert "bad.xyz: line 1: expected an atom count, got 'two'" in result.output
    assert not (tmp_path / "g.pt").exists()
