"""A campaign that can run two levels of theory picks which to run for each design, by cost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from pipeline.config import ConfigError, parse_config
from pipeline.home import Home
from pipeline.store import Store
from tests.conftest import tiny_campaign

FIDELITIES = [
    {"name": "dft-fast", "cost": 1.0},
    {"name": "dft-cheap-dft", "cost": 6.0,
     "oracle": {"name": "pyscf", "params": {"level": "cheap-dft", "timeout_s": 120}}},
]


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_fidelity_oracles_are_checked() -> None:
    wrong_name = [FIDELITIES[0], {**FIDELITIES[1], "name": "dft-standard"}]
    with pytest.raises(ConfigError, match=r"fidelities\[1\]\.oracle: its results carry fidelity "
                                          r"'dft-cheap-dft', not 'dft-standard'"):
        parse_config(tiny_campaign(fidelities=wrong_name, surrogate={"name": "multifidelity_gp"}))
    with pytest.raises(ConfigError, match="2 fidelities can be run, which needs a multi-fidelity"):
        parse_config(tiny_campaign(fidelities=FIDELITIES))
    bad_level = [FIDELITIES[0], {**FIDELITIES[1], "oracle": {"name": "pyscf",
                                                             "params": {"level": "ultra"}}}]
    with pytest.raises(ConfigError, match=r"fidelities\[1\]\.oracle\.params: unknown level 'ultra'"):
        parse_config(tiny_campaign(fidelities=bad_level, surrogate={"name": "multifidelity_gp"}))


def test_campaign_runs_each_pick_at_its_chosen_fidelity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    from flows.campaign import run_campaign

    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    data = tiny_campaign(name="twolevels", rounds=3, fidelities=FIDELITIES,
                         surrogate={"name": "multifidelity_gp"})
    data["acquisition"]["min_labels"] = 2
    run_campaign(parse_config(data), quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    rounds = store.rounds("twolevels")
    assert [r.stage for r in rounds] == ["logged"] * 3
    chosen = store.selected_fidelities("twolevels")
    selected = [r for r in store.candidates("twolevels") if r.selected_rank is not None]
    assert {r.candidate.id for r in selected} == set(chosen)
    measured = {(e.evaluation.candidate_id, e.evaluation.fidelity)
                for e in store.evaluations("twolevels")}
    assert measured == set(chosen.items())  # each pick ran once, at its chosen level
    first = sorted((r for r in selected if r.candidate.round_index == 0),
                   key=lambda r: r.selected_rank or 0)
    # cold start: the best picks go to the trusted level until it has min_labels results
    assert [chosen[r.candidate.id] for r in first] == ["dft-cheap-dft", "dft-cheap-dft",
                                                       "dft-fast"]
    for r in rounds:
        ids = [s.candidate.id for s in selected if s.candidate.round_index == r.round_index]
        cost = sum(1.0 if chosen[i] == "dft-fast" else 6.0 for i in ids)
        assert r.metrics["oracle_cost"] == pytest.approx(cost)
    store.close()
