"""A campaign steered by where the frontier orbitals sit: descriptor objective and prior."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from chem.datasets import embed_dataset
from chem.orbital_model import (
    OrbitalTrainingConfig,
    share_dataset,
    train_orbital_ensemble,
    trunk_states,
)
from chem.prior import PretrainedPaiNNPrior
from chem.property_model import TrainingConfig, train_ensemble
from pipeline.config import load_config, parse_config
from pipeline.home import Home
from pipeline.orbital_shares import DESCRIPTORS
from pipeline.store import Store
from pipeline.types import Candidate
from tests.chem.test_orbital_model import SMILES, _labels
from tests.chem.test_property_model import ROWS
from tests.conftest import tiny_campaign

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("orbital-prior")
    frame = pd.DataFrame(ROWS, columns=["smiles", "homo_ev", "lumo_ev", "gap_ev"])
    energy = TrainingConfig(features=8, n_layers=1, n_rbf=6, members=2, epochs=3,
                            warmup_epochs=1, batch_size=4, validation_fraction=0.25)
    train_ensemble(embed_dataset(frame, processes=1), energy).save(folder / "energy.pt")
    homo, lumo = zip(*(_labels(s) for s in SMILES), strict=True)
    data = share_dataset(SMILES * 2, list(homo) * 2, list(lumo) * 2)
    orbital = OrbitalTrainingConfig(features=8, n_layers=1, n_rbf=6, members=2, epochs=5,
                                    batch_size=8, validation_fraction=0.25)
    # the members start from the energy model's trunks
    trained = train_orbital_ensemble(data, orbital, trunks=trunk_states(folder / "energy.pt",
                                                                        orbital))
    assert trained.metrics["pretrained_trunk"] is True
    with pytest.raises(ValueError, match="features 8 differ from the orbital model's features 16"):
        trunk_states(folder / "energy.pt", orbital.model_copy(update={"features": 16}))
    trained.save(folder / "orbital.pt")
    return folder / "energy.pt", folder / "orbital.pt"


def test_prior_with_orbitals_predicts_descriptors(weights: tuple[Path, Path]) -> None:
    energy, orbital = weights
    prior = PretrainedPaiNNPrior(PretrainedPaiNNPrior.Params(
        weights=str(energy), orbitals=True, orbital_weights=str(orbital)))
    assert set(DESCRIPTORS) <= set(prior.properties())
    out = prior.predict([Candidate("a", "CCO", "CCO", 0, "t"), Candidate("b", "[Si]", "[Si]", 0,
                                                                         "t")])
    mean, std = out["frontier_overlap"]
    assert 0.0 <= mean[0] <= 1.0 and std[0] >= 0.0 and np.isnan(mean[1])
    assert out["homo_share_N"][0][0] == 0.0  # ethanol has no nitrogen
    plain = PretrainedPaiNNPrior(PretrainedPaiNNPrior.Params(weights=str(energy)))
    assert "frontier_overlap" not in plain.properties()


def test_shipped_charge_transfer_config_is_valid() -> None:
    config = load_config(REPO / "conf" / "demo_charge_transfer.yaml")
    assert config.objective.property == "frontier_overlap"
    assert [c.property for c in config.constraints] == ["gap_ev"]


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_campaign_minimises_frontier_overlap_inside_a_gap_window(
    weights: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    prefect_harness: None,
) -> None:
    from flows.campaign import run_campaign
    from pipeline.ranking import rank_candidates

    energy, orbital = weights
    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    data = tiny_campaign(
        name="ct", rounds=2,
        objective={"property": "frontier_overlap", "goal": "minimize", "threshold": 0.6},
        constraints=[{"property": "gap_ev", "min": 10.0, "max": 20.0}],
        predict_properties=["lumo_pr"], surrogate={"name": "prior_gp"},
        prior={"name": "pretrained_painn",
               "params": {"weights": str(energy), "orbitals": True,
                          "orbital_weights": str(orbital)}})
    data["acquisition"]["min_labels"] = 2
    config = parse_config(data)
    run_campaign(config, quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    values: dict[str, dict[str, float]] = {}
    for e in store.evaluations("ct"):
        if e.evaluation.ok:
            values.setdefault(e.evaluation.candidate_id, {})[e.evaluation.property] = \
                e.evaluation.value
    assert values and all(0.0 <= v["frontier_overlap"] <= 1.0 + 1e-9 for v in values.values())
    assert all(set(DESCRIPTORS) <= set(v) for v in values.values())
    predicted = [r for r in store.candidates("ct", round_index=1) if r.predictions]
    assert predicted and all(np.isfinite(r.predictions["frontier_overlap"].mean)
                             for r in predicted)
    # a hit must meet the overlap target and the gap window, measured
    for ranked in rank_candidates(store, "ct", config):
        v = values.get(ranked.record.candidate.id)
        if v is not None:
            assert ranked.hit == (v["frontier_overlap"] <= 0.6 and 10.0 <= v["gap_ev"] <= 20.0)
    store.close()


def test_generator_meets_descriptor_windows_by_selection(weights: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    import json

    from rdkit import Chem
    from typer.testing import CliRunner

    from flows.cli import app

    energy, orbital = weights
    sdf = tmp_path / "ct.sdf"
    result = CliRunner().invoke(app, [
        "generate", "molecules", "--n", "4", "--out", str(sdf), "--steps", "10", "--seed", "1",
        "--condition", "frontier_overlap<=0.9", "--condition", "gap_ev>=5",
        "--oversample", "3", "--property-model", str(energy), "--orbital-model", str(orbital),
        "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["not_guided"] == ["frontier_overlap<=0.9"]
    assert set(summary["guidance_targets"]) == {"gap_ev"}
    assert summary["guidance_targets"]["gap_ev"] > 5.0  # aimed inside the window
    written = list(Chem.SDMolSupplier(str(sdf)))
    assert written and all(m.HasProp("predicted_frontier_overlap") for m in written)
    assert all(m.HasProp("predicted_lumo_share_N") for m in written)
    meeting = summary["selected_predicted_meeting_frontier_overlap<=0.9"]
    predicted = [m.GetDoubleProp("predicted_frontier_overlap") for m in written]
    assert meeting == pytest.approx(sum(p <= 0.9 for p in predicted) / len(predicted))
    # a descriptor condition cannot be met without selection
    alone = CliRunner().invoke(app, [
        "generate", "molecules", "--n", "2", "--out", str(sdf), "--oversample", "1",
        "--condition", "frontier_overlap<=0.3", "--orbital-model", str(orbital)])
    assert alone.exit_code == 2 and "only selection by the property model" in alone.output


def test_generator_draws_widely_by_default_where_selection_alone_must_meet_a_condition(
        weights: tuple[Path, Path], tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from flows.cli import app
    from flows.cli.generate import OVERSAMPLE_GUIDED, OVERSAMPLE_SELECTION_ONLY

    energy, orbital = weights
    common = ["generate", "molecules", "--n", "1", "--out", str(tmp_path / "m.sdf"), "--steps",
              "5", "--property-model", str(energy), "--orbital-model", str(orbital), "--json"]
    guided = CliRunner().invoke(app, [*common, "--condition", "gap_ev>=5"])
    assert guided.exit_code == 0, guided.output
    assert json.loads(guided.stdout)["n_sampled"] == OVERSAMPLE_GUIDED
    by_selection = CliRunner().invoke(app, [*common, "--condition", "lumo_share_N>=0.5"])
    assert by_selection.exit_code == 0, by_selection.output
    assert json.loads(by_selection.stdout)["n_sampled"] == OVERSAMPLE_SELECTION_ONLY
