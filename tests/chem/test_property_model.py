"""The property-model pipeline on a tiny literal set: embed, train, recalibrate, save, load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from chem.datasets import embed_dataset, load_labelled_smiles
from chem.property_model import PropertyEnsemble, TrainingConfig, train_ensemble

# (smiles, homo_ev, lumo_ev, gap_ev): QM9-like values, literal
ROWS = [
    ("C", -10.55, 3.19, 13.74), ("N", -6.99, 2.26, 9.25), ("O", -7.96, 1.82, 9.78),
    ("C#C", -7.74, 1.28, 9.02), ("C#N", -9.82, 0.53, 10.35), ("C=O", -7.00, -0.79, 6.21),
    ("CO", -7.11, 2.29, 9.40), ("CC", -8.50, 2.44, 10.94), ("CN", -6.15, 2.21, 8.36),
    ("CCO", -7.09, 2.08, 9.17), ("CC=O", -6.74, -0.43, 6.31), ("C1CC1", -7.67, 2.62, 10.29),
    ("OC=O", -7.88, 0.36, 8.24), ("NC=O", -6.93, 0.87, 7.80), ("CC#N", -8.82, 0.69, 9.51),
    ("FC", -9.53, 1.65, 11.18),
]


@pytest.fixture(scope="module")
def dataset():
    frame = pd.DataFrame(ROWS, columns=["smiles", "homo_ev", "lumo_ev", "gap_ev"])
    return embed_dataset(frame, processes=1)


@pytest.fixture(scope="module")
def ensemble(dataset):
    config = TrainingConfig(features=8, n_layers=1, n_rbf=6, members=2, epochs=3,
                            warmup_epochs=1, batch_size=4, validation_fraction=0.25)
    return train_ensemble(dataset, config)


def test_dataset_is_packed_per_molecule(dataset) -> None:
    assert len(dataset) == len(ROWS)
    counts = np.diff(dataset.offsets)
    assert counts[0] == 5 and counts[1] == 4  # CH4, NH3 with hydrogens
    assert dataset.z.shape[0] == dataset.pos.shape[0] == counts.sum()
    sub = dataset.subset(np.array([3, 0]))
    assert sub.smiles.tolist() == ["C#C", "C"] and np.diff(sub.offsets).tolist() == [4, 5]


def test_training_recalibrates_and_reports_validation_metrics(ensemble) -> None:
    val = ensemble.metrics["validation"]
    for prop in ("homo_ev", "lumo_ev", "gap_ev"):
        assert {f"mae_{prop}", f"nll_{prop}", f"coverage90_{prop}"} <= set(val)
    assert ensemble.metrics["n_train"] == 12 and ensemble.metrics["n_validation"] == 4
    assert all(s > 0 for s in ensemble.calibration.tolist())


def test_checkpoint_round_trip_with_weights_only(ensemble, dataset, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    ensemble.save(path)
    torch.load(path, weights_only=True)  # no pickled code inside
    again = PropertyEnsemble.load(path)
    np.testing.assert_allclose(again.predict_dataset(dataset)[0],
                               ensemble.predict_dataset(dataset)[0], rtol=1e-6)
    assert repr(again) == repr(ensemble)
    junk = tmp_path / "junk.pt"
    torch.save({"format": "other"}, junk)
    with pytest.raises(ValueError, match="not an invdes property-model checkpoint"):
        PropertyEnsemble.load(junk)


def test_predict_command(ensemble, tmp_path: Path) -> None:
    from flows.cli import app

    weights = tmp_path / "model.pt"
    ensemble.save(weights)
    smiles = tmp_path / "in.smi"
    smiles.write_text("# candidates\nCCO\nnot_a_smiles\nc1ccccc1\n")
    result = CliRunner().invoke(app, ["predict", "--smiles-file", str(smiles), "--weights",
                                      str(weights), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "B3LYP" not in report["level"] and "model.pt" in report["model"]  # not the shipped one
    assert set(report["held_out_error"]) >= {"mae_gap_ev", "coverage90_gap_ev"}
    rows = report["predictions"]
    assert [r["line"] for r in rows] == [2, 3, 4]
    assert rows[0]["status"] == "ok" and rows[0]["gap_ev_std"] > 0
    assert {"homo_ev_mean", "lumo_ev_mean", "gap_ev_mean"} <= set(rows[2])
    assert rows[1]["status"] == "failed" and "invalid SMILES 'not_a_smiles'" in rows[1]["reason"]
    unusable = tmp_path / "bad.smi"
    unusable.write_text("not_a_smiles\n[Si]\n")
    none_ok = CliRunner().invoke(app, ["predict", "--smiles-file", str(unusable), "--weights",
                                       str(weights), "--json"])
    assert none_ok.exit_code == 0, none_ok.output
    failed = json.loads(none_ok.stdout)["predictions"]
    assert [r["status"] for r in failed] == ["failed", "failed"]
    assert "element(s) Si outside" in failed[1]["reason"]
    missing = CliRunner().invoke(app, ["predict", "--smiles-file", str(smiles), "--weights",
                                       str(tmp_path / "none.pt")])
    assert missing.exit_code == 2 and "no property-model checkpoint" in missing.output


def test_bad_training_data_names_file_row_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("smiles,homo_ev,lumo_ev\nC,-10,3\n")
    with pytest.raises(ValueError, match=r"bad.csv: missing column\(s\) \['gap_ev'\]"):
        load_labelled_smiles(bad)
    bad.write_text("smiles,homo_ev,lumo_ev,gap_ev\nC,-10,3,13\nN,x,2,9\n")
    with pytest.raises(ValueError, match=r"bad\.csv: row 3: non-numeric"):
        load_labelled_smiles(bad)


def test_fine_tuning_moves_a_copy_towards_new_labels(ensemble, dataset) -> None:
    from dataclasses import replace

    from chem.property_model import fine_tune

    shifted = replace(dataset, y=dataset.y + np.float32(1.5))  # another level of theory
    shifted.y[:, 0] = np.nan  # HOMO unknown: left out of the loss
    before = ensemble.predict_dataset(dataset)[0]
    tuned = fine_tune(ensemble, shifted, epochs=40, learning_rate=3e-3)
    after = tuned.predict_dataset(dataset)[0]
    target = dataset.y[:, 1:] + 1.5
    assert np.abs(after[:, 1:] - target).mean() < 0.6 * np.abs(before[:, 1:] - target).mean()
    np.testing.assert_allclose(ensemble.predict_dataset(dataset)[0], before)  # original kept
    assert tuned.metrics["fine_tuned_on"] == len(dataset)
    with pytest.raises(ValueError, match="at least one molecule with a known target"):
        fine_tune(ensemble, replace(dataset, y=np.full_like(dataset.y, np.nan)))


def test_training_continues_from_a_checkpoint(ensemble, dataset) -> None:
    config = ensemble.config.model_copy(update={"epochs": 2, "learning_rate": 1e-4})
    continued = train_ensemble(dataset, config, init_from=ensemble)
    assert len(continued.metrics["history"]) == 1
    assert continued.metrics["n_validation"] == ensemble.metrics["n_validation"]
    changed = any(not torch.equal(a, b) for a, b in zip(
        continued.members[0].state_dict().values(), ensemble.members[0].state_dict().values(),
        strict=True))
    assert changed
    with pytest.raises(ValueError, match="trained on 16 molecules with seed 0 on 15 molecules"):
        train_ensemble(dataset.subset(np.arange(15)), config, init_from=ensemble)
    with pytest.raises(ValueError, match="validation split would not be kept"):
        train_ensemble(dataset, config.model_copy(update={"seed": 1}), init_from=ensemble)
    wider = config.model_copy(update={"features": 16})
    with pytest.raises(ValueError, match=r"cannot continue from a checkpoint with other \['features'\]"):
        train_ensemble(dataset, wider, init_from=ensemble)


def test_members_trained_in_parallel_processes_match_one_after_the_other(ensemble, dataset
                                                                         ) -> None:
    parallel = train_ensemble(dataset, ensemble.config.model_copy(update={"workers": 2}))
    for a, b in zip(parallel.members, ensemble.members, strict=True):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)
    np.testing.assert_allclose(parallel.calibration.numpy(), ensemble.calibration.numpy(),
                               rtol=1e-3)


def test_parallel_members_refuse_a_gpu(dataset) -> None:
    config = TrainingConfig(features=8, n_layers=1, members=2, epochs=1, workers=2,
                            device="cuda")
    with pytest.raises(ValueError, match="parallel processes on the CPU only"):
        train_ensemble(dataset, config)


def test_calibration_is_fitted_on_the_whole_validation_split(ensemble, dataset) -> None:
    from chem.property_model import calibrate
    from pipeline.uncertainty import Z90

    scale, metrics = calibrate(ensemble, dataset)
    mean, std = ensemble.predict_dataset(dataset, calibrated=False)
    covered = (np.abs(dataset.y - mean) <= Z90 * std * scale).mean(axis=0)
    assert ((covered >= 0.85) & (covered <= 0.95)).all(), covered  # 90 % of 16 molecules
    # the reported coverage is cross-fitted: each half scored with the other half's factor
    ratio = np.abs(dataset.y - mean) / std
    first, second = ratio[:8], ratio[8:]
    crossed = np.concatenate([first <= np.quantile(second, 0.9, axis=0),
                              second <= np.quantile(first, 0.9, axis=0)]).mean(axis=0)
    for k, prop in enumerate(("homo_ev", "lumo_ev", "gap_ev")):
        assert metrics[f"coverage90_{prop}"] == pytest.approx(crossed[k])
        assert metrics[f"mae_{prop}"] == pytest.approx(np.abs(dataset.y[:, k] - mean[:, k]).mean())
