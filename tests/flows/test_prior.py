"""A campaign whose surrogate starts from the pretrained property model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from chem.datasets import embed_dataset
from chem.prior import PretrainedPaiNNPrior
from chem.property_model import TrainingConfig, train_ensemble
from pipeline.config import ConfigError, parse_config
from pipeline.home import Home
from pipeline.store import Store
from pipeline.types import Candidate
from tests.chem.test_property_model import ROWS
from tests.conftest import tiny_campaign


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.DataFrame(ROWS, columns=["smiles", "homo_ev", "lumo_ev", "gap_ev"])
    config = TrainingConfig(features=8, n_layers=1, n_rbf=6, members=2, epochs=3,
                            warmup_epochs=1, batch_size=4, validation_fraction=0.25)
    path = tmp_path_factory.mktemp("prior") / "tiny.pt"
    train_ensemble(embed_dataset(frame, processes=1), config).save(path)
    return path


def test_fine_tuned_prior_changes_its_predictions_and_keeps_the_checkpoint(weights: Path) -> None:
    params = PretrainedPaiNNPrior.Params(weights=str(weights), fine_tune=True,
                                         fine_tune_epochs=20, fine_tune_learning_rate=3e-3)
    prior = PretrainedPaiNNPrior(params)
    cands = [Candidate(str(i), s, s, 0, "t") for i, s in enumerate(["CCO", "CC=O", "CN", "OC=O"])]
    before = prior.predict(cands)["gap_ev"][0]
    prior.fit(cands, {"gap_ev": before + 2.0})  # the campaign's level says 2 eV more
    after = prior.predict(cands)["gap_ev"][0]
    assert np.all(after > before + 0.5)
    assert prior.pretrained is not prior.ensemble
    untouched = PretrainedPaiNNPrior(PretrainedPaiNNPrior.Params(weights=str(weights)))
    untouched.fit(cands, {"gap_ev": before + 2.0})  # without fine_tune: nothing changes
    np.testing.assert_allclose(untouched.predict(cands)["gap_ev"][0], before)


def test_prior_predicts_per_candidate_and_marks_what_it_cannot(weights: Path) -> None:
    prior = PretrainedPaiNNPrior(PretrainedPaiNNPrior.Params(weights=str(weights)))
    cands = [Candidate("a", "CCO", "CCO", 0, "t"), Candidate("b", "[Si]", "[Si]", 0, "t"),
             Candidate("c", "CCO", "CCO", 0, "t")]
    out = prior.predict(cands)
    assert set(out) == {"homo_ev", "lumo_ev", "gap_ev"}
    mean, std = out["gap_ev"]
    assert np.isfinite(mean[0]) and mean[0] == mean[2] and std[0] > 0
    assert np.isnan(mean[1])  # silicon: outside the network's elements


def test_prior_needs_a_surrogate_that_takes_it_and_an_existing_checkpoint(weights: Path) -> None:
    with pytest.raises(ConfigError, match="prior: surrogate 'tanimoto_gp' cannot use a prior; "
                                          "use one of: multifidelity_gp, prior_gp"):
        parse_config(tiny_campaign(prior={"name": "pretrained_painn",
                                          "params": {"weights": str(weights)}}))
    with pytest.raises(ConfigError, match=r"prior\.params\.weights.*no property-model checkpoint"):
        parse_config(tiny_campaign(surrogate={"name": "multifidelity_gp"},
                                   prior={"name": "pretrained_painn",
                                          "params": {"weights": "/nope.pt"}}))


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.parametrize("surrogate, fine_tune", [("prior_gp", False), ("prior_gp", True),
                                                  ("multifidelity_gp", False)])
def test_campaign_with_a_prior_runs_and_predicts(
    surrogate: str, fine_tune: bool, weights: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, prefect_harness: None,
) -> None:
    from flows.campaign import run_campaign

    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    prior = {"name": "pretrained_painn",
             "params": {"weights": str(weights), "fine_tune": fine_tune, "fine_tune_epochs": 5}}
    data = tiny_campaign(name="prior", rounds=2, surrogate={"name": surrogate}, prior=prior)
    data["acquisition"]["min_labels"] = 2
    run_campaign(parse_config(data), quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    rounds = store.rounds("prior")
    assert [r.stage for r in rounds] == ["logged", "logged"]
    predicted = [r for r in store.candidates("prior", round_index=1) if r.predictions]
    assert predicted and all(np.isfinite(r.predictions["gap_ev"].mean) for r in predicted)
    assert "surrogate_mae_gap_ev" in rounds[1].metrics
    store.close()
