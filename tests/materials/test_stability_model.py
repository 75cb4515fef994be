"""The CHGNet stability model: a Tanimoto GP on what sits on the A, B and X sites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from materials.stability_model import (
    StabilityModel,
    labelled_cells,
    stability_features,
    stability_metrics,
)


def cubic(a: str, b: str, x: str, length: float = 4.0) -> Structure:
    frac = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]
    return Structure(Lattice.cubic(length), [a, b, x, x, x], frac)


# a family of stable oxides (below the hull) and one of unstable iodides
OXIDES = [("Sr", "Ti"), ("Ba", "Ti"), ("Ca", "Ti"), ("Sr", "Zr"), ("Ba", "Zr"), ("Ca", "Zr"),
          ("Sr", "Hf"), ("Ba", "Hf")]
IODIDES = [("Cs", "Pb"), ("Rb", "Pb"), ("K", "Pb"), ("Cs", "Sn"), ("Rb", "Sn"), ("K", "Sn"),
           ("Cs", "Ge"), ("Rb", "Ge")]


def _training() -> tuple[list[Structure], np.ndarray]:
    cells = [cubic(a, b, "O") for a, b in OXIDES] + [cubic(a, b, "I", 6.2) for a, b in IODIDES]
    labels = np.r_[np.linspace(-0.2, -0.05, len(OXIDES)), np.linspace(0.15, 0.4, len(IODIDES))]
    return cells, labels


@pytest.fixture(scope="module")
def model() -> StabilityModel:
    cells, labels = _training()
    x = np.array([stability_features(c) for c in cells])
    return StabilityModel.fit(x, labels, [str(k) for k in range(len(cells))])


def test_features_see_sites_not_geometry() -> None:
    a, b = stability_features(cubic("Sr", "Ti", "O", 3.9)), stability_features(cubic("Sr", "Ti", "O", 4.2))
    np.testing.assert_array_equal(a, b)  # a generated cell is not yet the relaxed one
    assert not np.array_equal(a, stability_features(cubic("Ti", "Sr", "O")))  # sites swapped


def test_predicts_the_family_and_keeps_the_stable_first(model: StabilityModel) -> None:
    unseen = [cubic("Ca", "Hf", "O"), cubic("K", "Ge", "I", 6.2), None]
    mean, std = model.predict(unseen)
    assert mean[0] < 0.0 < mean[1]
    assert np.isnan(mean[2]) and np.isnan(std[2])
    p = model.probability_stable(unseen)
    assert p[0] > 0.5 > p[1]


def test_checkpoint_round_trip_predicts_alike(model: StabilityModel, tmp_path: Path) -> None:
    model.metrics = {"test": {"mae_ev_per_atom": 0.1}}
    model.std_scale = 0.8
    path = tmp_path / "stability.npz"
    model.save(path)
    loaded = StabilityModel.load(path)
    cells = [cubic("Ca", "Hf", "O"), cubic("K", "Ge", "I", 6.2)]
    for a, b in zip(model.predict(cells), loaded.predict(cells), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert loaded.metrics == model.metrics and loaded.std_scale == 0.8
    (tmp_path / "bad.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.npz: not a stability model checkpoint"):
        StabilityModel.load(tmp_path / "bad.npz")


def test_calibration_scales_intervals_to_cover_ninety_percent(model: StabilityModel) -> None:
    rng = np.random.default_rng(0)
    cells, labels = _training()
    x = np.array([stability_features(c) for c in cells])
    y = labels + rng.normal(scale=0.2, size=len(labels))  # held-out cells the GP did not see
    model.calibrate(x, y)
    mean, std = model.predict_fingerprints(x)
    assert stability_metrics(y, mean, std)["coverage_90"] == pytest.approx(0.9, abs=0.07)
    model.std_scale = 1.0


def test_metrics_score_ranking_and_shares() -> None:
    y = np.array([-0.1, -0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    m = stability_metrics(y, y + 0.01, np.full(8, 0.1))
    assert m["auc_stable"] == 1.0 and m["stable_share_top_quarter"] == 1.0
    assert m["stable_share"] == 0.25 and m["mae_ev_per_atom"] == pytest.approx(0.01)


def _pool(tmp_path: Path) -> tuple[Path, Path]:
    import pandas as pd

    cells, labels = _training()
    extra = [cubic(a, b, "Br", 5.9) for a, b in IODIDES] + [cubic("La", b, "O") for b in
                                                            ("Al", "Ga", "Sc", "In", "Cr", "Fe")]
    cells = cells + extra
    labels = np.r_[labels, np.linspace(0.1, 0.3, len(IODIDES)), np.linspace(-0.15, 0.0, 6)]
    pool = pd.DataFrame({"material_id": range(len(cells)),
                         "cif": [c.to(fmt="cif") for c in cells],
                         "heat_all": -1.0, "ind_gap": 1.0})
    pool_path = tmp_path / "pool.csv"
    pool.to_csv(pool_path, index=False)
    rows = pd.DataFrame({"material_id": range(len(cells)),
                         "formula": [c.composition.reduced_formula for c in cells],
                         "energy_ev_per_atom": -5.0, "formation_energy_ev_per_atom": -1.0,
                         "decomposition_energy_ev_per_atom": labels, "relaxation_steps": 10,
                         "reason": ""})
    labels_path = tmp_path / "relaxed.csv"
    rows.to_csv(labels_path, index=False)
    return pool_path, labels_path


def test_train_command_writes_a_model_and_refuses_static_labels(tmp_path: Path) -> None:
    import pandas as pd

    from flows.cli import app

    pool, labels = _pool(tmp_path)
    out = tmp_path / "model.npz"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "stability-model", "--data", str(pool), "--labels",
                                 str(labels), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    held_out = metrics.get("test", {}).get("n", 0) + metrics["validation_cells"]
    assert metrics["train_cells"] + held_out == 30
    loaded = StabilityModel.load(out)
    assert len(loaded.ids) == metrics["train_cells"]
    mean, _ = loaded.predict([cubic("Ba", "Sn", "O"), cubic("Cs", "Pb", "Cl", 5.6)])
    assert mean[0] < mean[1]
    static = tmp_path / "static.csv"
    pd.read_csv(labels).drop(columns="relaxation_steps").to_csv(static, index=False)
    result = runner.invoke(app, ["train", "stability-model", "--data", str(pool), "--labels",
                                 str(static), "--out", str(tmp_path / "other.npz")])
    assert result.exit_code == 2 and "not a relaxed stability labels file" in result.output
    assert not (tmp_path / "other.npz").exists()
    with pytest.raises(ValueError, match=r"static\.csv"):
        labelled_cells(static, [], [])
