"""`invdes train generator` on a tiny literal set, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdkit import Chem
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


def test_generate_molecules_prints_the_summary_and_writes_sdf(tmp_path: Path) -> None:
    import json

    from chem.flow_data import read_labelled_xyz
    from chem.flow_matching import GeneratorTraining, train_generator

    xyz = tmp_path / "tiny.xyz"
    xyz.write_text("".join(_frame(*m) for m in MOLECULES))
    data, _ = read_labelled_xyz(xyz)
    weights = tmp_path / "gen.pt"
    train_generator(data, GeneratorTraining(features=8, n_layers=1, n_rbf=4, epochs=2,
                                            batch_size=5)).save(weights)
    sdf = tmp_path / "out.sdf"
    result = CliRunner().invoke(app, ["generate", "molecules", "--n", "12", "--out", str(sdf),
                                      "--weights", str(weights), "--condition", "gap_ev=9.5",
                                      "--steps", "5", "--seed", "2", "--oversample", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in ("n_requested", "n_valid", "validity", "uniqueness", "novelty", "atom_stability",
                "molecule_stability", "wall_s"):
        assert key in summary
    assert summary["n_requested"] == 12 and summary["condition"] == ["gap_ev=9.5"]
    assert summary["guidance_targets"] == {"gap_ev": 9.5} and summary["not_guided"] == []
    assert sum(summary["failures"].values()) == 12 - summary["n_valid"]  # every failure has a reason
    assert sdf.is_file()
    # one record per valid sample, unless its relaxation failed (counted, with the reason)
    assert summary["n_written"] + summary["n_relaxation_failed"] == summary["n_valid"]
    assert sdf.read_text().count("$$$$") == summary["n_written"]
    assert len(summary["relaxation_failures"]) == summary["n_relaxation_failed"]
    # oversampled (shipped generator): 3 x 4 drawn, the property model keeps the 4 closest
    # valid distinct ones
    picked = CliRunner().invoke(app, ["generate", "molecules", "--n", "4", "--out", str(sdf),
                                      "--condition", "gap_ev=6.5", "--seed", "2",
                                      "--oversample", "3", "--json"])
    assert picked.exit_code == 0, picked.output
    chosen = json.loads(picked.stdout)
    # progress on stderr, as plain lines where it is not a terminal
    assert "sampling molecules: " in picked.stderr and "embedding 3D geometries" in picked.stderr
    assert chosen["n_requested"] == 4 and chosen["n_sampled"] == 12
    written = list(Chem.SDMolSupplier(str(sdf)))
    assert 1 <= len(written) == chosen["n_selected"] <= min(4, chosen["n_valid"])
    errors = [abs(m.GetDoubleProp("predicted_gap_ev") - 6.5) for m in written]
    assert errors == sorted(errors)
    # written relaxed (MMFF94 by default), with every hydrogen and sane C-H bonds
    with_h = list(Chem.SDMolSupplier(str(sdf), removeHs=False))
    assert all(m.GetProp("relaxation") in ("mmff94", "uff") for m in with_h)
    for m in with_h:
        pos = m.GetConformer().GetPositions()
        for bond in m.GetBonds():
            ends = {bond.GetBeginAtom().GetSymbol(), bond.GetEndAtom().GetSymbol()}
            if ends == {"C", "H"}:
                length = float(((pos[bond.GetBeginAtomIdx()] - pos[bond.GetEndAtomIdx()])**2)
                               .sum() ** 0.5)
                assert 1.07 < length < 1.11
    raw_sdf = tmp_path / "raw.sdf"
    raw = CliRunner().invoke(app, ["generate", "molecules", "--n", "4", "--out", str(raw_sdf),
                                   "--condition", "gap_ev=6.5", "--seed", "2",
                                   "--oversample", "3", "--geometry", "raw", "--json"])
    assert raw.exit_code == 0, raw.output
    as_generated = list(Chem.SDMolSupplier(str(raw_sdf), removeHs=False))
    assert [m.GetProp("smiles") for m in as_generated] == [m.GetProp("smiles") for m in with_h]
    assert all(m.GetProp("relaxation") == "raw" for m in as_generated)
    moved = [abs(a.GetConformer().GetPositions() - b.GetConformer().GetPositions()).max()
             for a, b in zip(as_generated, with_h, strict=True)]
    assert max(moved) > 0.01  # MMFF moved the atoms from where the generator put them
    assert chosen["selected_predicted_gap_ev_mae"] == pytest.approx(sum(errors) / len(errors))
    bad = CliRunner().invoke(app, ["generate", "molecules", "--n", "2", "--out", str(sdf),
                                   "--weights", str(weights), "--condition", "gap_ev=high"])
    assert bad.exit_code == 2 and "expected NAME=VALUE, NAME<=VALUE or NAME>=VALUE" in bad.output
    unknown = CliRunner().invoke(app, ["generate", "molecules", "--n", "2", "--out", str(sdf),
                                       "--weights", str(weights), "--condition", "mu=1"])
    assert unknown.exit_code == 2 and "unknown property 'mu'" in unknown.output
