"""A 2-round campaign end to end, in process, under Prefect's test harness."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect.testing.utilities import prefect_test_harness

from pipeline.config import parse_config
from pipeline.home import Home
from pipeline.orbital_shares import DESCRIPTORS
from pipeline.ranking import rank_candidates
from pipeline.store import Store
from pipeline.types import CandidateStatus
from tests.conftest import tiny_campaign

ROUND_METRICS = {
    "n_generated", "validity_rate", "uniqueness", "novelty", "oracle_calls", "oracle_failures",
    "best_objective", "hit_rate",
}


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def finished_campaign(tmp_path_factory: pytest.TempPathFactory,
                      prefect_harness: None) -> Iterator[tuple[Path, object]]:
    root = tmp_path_factory.mktemp("campaign") / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("INVDES_HOME", str(root))
    from flows.campaign import run_campaign

    config = parse_config(tiny_campaign())
    result = run_campaign(config, quiet=True)
    yield root, result
    mp.undo()


def test_store_holds_every_stage_of_both_rounds(finished_campaign) -> None:
    root, result = finished_campaign
    assert result.rounds_done == 2
    store = Store(Home(root).store_url)
    rounds = store.rounds("tiny")
    assert [(r.round_index, r.stage) for r in rounds] == [(0, "logged"), (1, "logged")]
    for r in rounds:
        assert set(r.metrics) >= ROUND_METRICS
        assert r.metrics["n_generated"] == 40
        assert r.metrics["oracle_calls"] + r.metrics["oracle_failures"] >= 1
    for calibration in ("mae", "coverage90", "nll"):  # predictions existed before round 1
        assert f"surrogate_{calibration}_gap_ev" in rounds[1].metrics
    records = store.candidates("tiny")
    rejected = [r for r in records if r.status is CandidateStatus.REJECTED]
    assert rejected and all(r.filter_name and r.reason for r in rejected)
    assert any(r.filter_name == "heavy_atoms" for r in rejected)
    selected = [r for r in records if r.selected_rank is not None]
    assert len(selected) == 6  # batch of 3, two rounds
    assert all(r.status in (CandidateStatus.EVALUATED, CandidateStatus.FAILED) for r in selected)
    assert all(r.candidate.geometry is not None for r in selected)
    evals = store.evaluations("tiny")
    per_candidate = {r.candidate.id: [e for e in evals if e.evaluation.candidate_id == r.candidate.id]
                     for r in selected}
    # energy, homo, lumo, gap, dipole and the orbital-location descriptors
    assert all(len(v) == 5 + len(DESCRIPTORS) for v in per_candidate.values())
    gap = [e.evaluation for e in evals if e.evaluation.property == "gap_ev"]
    assert all(e.fidelity == "dft-fast" and e.unit == "eV" for e in gap)
    assert all(e.provenance["method"] == "hf" for e in gap if e.ok)
    round1 = [r for r in selected if r.candidate.round_index == 1]
    assert all("gap_ev" in r.predictions and r.predictions["gap_ev"].std > 0 for r in round1)
    store.close()


def test_mlflow_holds_a_parent_run_and_one_nested_run_per_round(finished_campaign) -> None:
    root, result = finished_campaign
    client = MlflowClient(tracking_uri=Home(root).mlflow_uri)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parent = [r for r in runs if r.data.tags.get("invdes.round") == "campaign"]
    nested = sorted((r for r in runs if r.data.tags.get("invdes.round") not in ("campaign", None)),
                    key=lambda r: int(r.data.tags["invdes.round"]))
    assert len(parent) == 1 and len(nested) == 2
    assert parent[0].info.run_id == result.parent_run_id
    assert parent[0].data.params["objective.goal"] == "window"
    assert parent[0].data.params["oracle.params.level"] == "fast"
    assert parent[0].info.status == "FINISHED"
    for _i, run in enumerate(nested):
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert set(run.data.metrics) >= ROUND_METRICS
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"ranked_candidates.csv", "progress.png"} <= artifacts
    # the parent holds campaign totals and bests, so its latest values compare campaigns
    history = client.get_metric_history(result.parent_run_id, "oracle_calls_total")
    assert sorted(m.step for m in history) == [0, 1]
    totals = parent[0].data.metrics
    calls = [run.data.metrics["oracle_calls"] for run in nested]
    assert totals["oracle_calls_total"] == sum(calls) and totals["rounds_done"] == 2
    assert totals["hits_total"] == nested[1].data.metrics["hits_total"]
    assert "validity_rate" not in totals and "n_generated" not in totals
    # each round's run spans the round's real wall time, one after the other
    for run in nested:
        span_s = (run.info.end_time - run.info.start_time) / 1000
        assert span_s == pytest.approx(run.data.metrics["seconds_round_total"], abs=0.01)
    assert nested[1].info.start_time >= nested[0].info.end_time - 1000
    table = Path(client.download_artifacts(nested[1].info.run_id, "ranked_candidates.csv",
                                           str(root)))
    header = table.read_text().splitlines()[0].split(",")
    assert header[:5] == ["rank", "id", "smiles", "round", "status"]
    assert "gap_ev_pred_mean" in header and "gap_ev" in header


def test_cli_reads_back_the_campaign(finished_campaign, monkeypatch) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    root, _ = finished_campaign
    monkeypatch.setenv("INVDES_HOME", str(root))
    runner = CliRunner()
    shown = runner.invoke(app, ["candidates", "tiny", "--top", "4", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)
    assert len(rows) == 4
    for key in ("id", "smiles", "round", "status", "gap_ev_pred_mean", "gap_ev_pred_std",
                "gap_ev", "homo_ev", "lumo_ev"):
        assert key in rows[0]
    scores = [r["score"] for r in rows if r["status"] == "evaluated"]
    assert scores == sorted(scores, reverse=True)
    csv = runner.invoke(app, ["candidates", "tiny", "--format", "csv"])
    assert csv.stdout.splitlines()[0].startswith("rank,id,smiles,round,status")
    status = runner.invoke(app, ["status", "tiny"])
    assert status.exit_code == 0 and "logged" in status.stdout
    listing = runner.invoke(app, ["status"])
    assert "tiny" in listing.stdout
    missing = runner.invoke(app, ["candidates", "nope"])
    assert missing.exit_code == 2 and "no campaign 'nope'" in missing.output


@pytest.mark.parametrize("limits, reason", [
    ({"max_scf_cycles": 1, "escalate": False}, "did not converge"),
    ({"timeout_s": 0.05}, "timeout: no result within 0.05 s"),
])
def test_a_failing_oracle_is_recorded_and_the_campaign_goes_on(
    limits: dict, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    prefect_harness: None,
) -> None:
    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    from flows.campaign import run_campaign

    data = tiny_campaign(name="failing", rounds=2)
    data["oracle"] = {"name": "pyscf", "params": {"level": "fast", **limits}}
    run_campaign(parse_config(data), quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    rounds = store.rounds("failing")
    assert [r.stage for r in rounds] == ["logged", "logged"]
    for r in rounds:  # every selected candidate failed, and each round still completed
        assert r.metrics["oracle_failures"] == r.metrics["n_selected"] >= 1
    assert math.isnan(rounds[1].metrics["hit_rate"])
    failed = [e.evaluation for e in store.evaluations("failing")]
    assert failed and all(not e.ok and reason in e.reason for e in failed)
    assert all(r.status is CandidateStatus.FAILED
               for r in store.candidates("failing") if r.selected_rank is not None)
    store.close()


def test_a_campaign_runs_in_one_process_at_a_time(tmp_path: Path) -> None:
    from pipeline.home import CampaignBusyError

    home = Home(tmp_path / "home")
    with home.campaign_lock("tiny"):
        busy = pytest.raises(CampaignBusyError, match=r"'tiny' is already running \(process \d+\)")
        with busy, home.campaign_lock("tiny"):
            pass
        with home.campaign_lock("other"):
            pass
    with home.campaign_lock("tiny"):  # released
        pass


def test_constrained_campaign_counts_only_feasible_hits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    from flows.campaign import run_campaign
    from pipeline.ranking import is_hit, ok_values_by_candidate

    data = tiny_campaign(name="constrained", rounds=2,
                         constraints=[{"property": "dipole_debye", "max": 2.0}])
    data["acquisition"]["min_labels"] = 2
    config = parse_config(data)
    run_campaign(config, quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    rounds = store.rounds("constrained")
    assert [r.stage for r in rounds] == ["logged", "logged"]
    measured = ok_values_by_candidate(store.evaluations("constrained"))
    feasible = [v for v in measured.values() if v["dipole_debye"] <= 2.0]
    assert rounds[1].metrics["feasible_total"] == len(feasible)
    assert rounds[1].metrics["hits_total"] == sum(is_hit(config, v) for v in measured.values())
    assert "surrogate_mae_dipole_debye" in rounds[1].metrics  # the constraint is modelled too
    store.close()


def test_pareto_campaign_tracks_its_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    from flows.campaign import run_campaign
    from pipeline.ranking import ok_values_by_candidate, pareto_front

    data = tiny_campaign(name="pareto", rounds=2,
                         pareto_with=[{"property": "dipole_debye", "goal": "minimize"}])
    data["acquisition"] = {"name": "qlognehvi", "batch_size": 3, "min_labels": 2,
                           "params": {"mc_samples": 32}}
    config = parse_config(data)
    run_campaign(config, quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    rounds = store.rounds("pareto")
    assert [r.stage for r in rounds] == ["logged", "logged"]
    front = pareto_front(config, ok_values_by_candidate(store.evaluations("pareto")))
    assert rounds[1].metrics["pareto_front_size"] == len(front) >= 1
    round1 = [r for r in store.candidates("pareto", round_index=1) if r.selected_rank is not None]
    assert all({"gap_ev", "dipole_debye"} <= set(r.predictions) for r in round1)
    ranked = rank_candidates(store, "pareto", config)
    assert {r.record.candidate.id for r in ranked[: len(front)]} == front
    store.close()


def test_a_campaign_mixes_the_3d_generator_with_the_ga_and_fine_tunes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    from flows.campaign import run_campaign

    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    data = tiny_campaign(name="flow", rounds=2)
    data["objective"] = {"property": "gap_ev", "goal": "window", "low": 11.0, "high": 13.0}
    data["generators"].append({"name": "equivariant_flow", "n_proposals": 40, "params": {
        "condition": {"gap_ev": 7.0}, "fine_tune": True, "fine_tune_min_labels": 2,
        "fine_tune_epochs": 1}})
    data["filters"][3] = {"name": "heavy_atoms", "params": {"min": 2, "max": 9}}
    data["acquisition"]["min_labels"] = 2
    run_campaign(parse_config(data), quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    records = store.candidates("flow")
    flow = [r for r in records if r.candidate.origin.startswith("equivariant_flow")]
    assert len(flow) == 80  # 40 per round, every sample kept (invalid ones with a reason)
    assert all(r.filter_name and r.reason for r in flow if r.status is CandidateStatus.REJECTED)
    reasons = [r.reason for r in flow if r.status is CandidateStatus.REJECTED]
    assert len(reasons) <= 50, reasons  # about 60 % are valid molecules
    assert {r.candidate.origin for r in flow if r.candidate.round_index == 1} == {
        "equivariant_flow+fine_tuned"}  # round 0's measured molecules tuned it
    assert [r.stage for r in store.rounds("flow")] == ["logged", "logged"]
    store.close()


def test_compare_reads_two_campaigns_from_mlflow(finished_campaign, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from flows.campaign import run_campaign
    from flows.cli import app

    root, _ = finished_campaign
    monkeypatch.setenv("INVDES_HOME", str(root))
    other = tiny_campaign(name="tiny-random", acquisition={"name": "random", "batch_size": 3})
    run_campaign(parse_config(other), quiet=True)
    plot = tmp_path / "compare.png"
    result = CliRunner().invoke(app, ["compare", "tiny", "tiny-random", "--json", "--plot",
                                      str(plot)])
    assert result.exit_code == 0, result.output
    rows = {r["campaign"]: r for r in json.loads(result.stdout)}
    assert rows["tiny"]["acquisition"] == "qlognei" and rows["tiny-random"]["acquisition"] == "random"
    assert rows["tiny"]["level_of_theory"] == "fast" and rows["tiny"]["domain"] == "molecules"
    store = Store(Home(root).store_url)
    for name, row in rows.items():
        calls = len(store.oracle_calls(name))
        assert row["oracle_calls"] == calls and row["rounds"] == 2
        assert row["best_objective"] == pytest.approx(store.rounds(name)[-1].metrics["best_objective"])
        first = [r for r in store.rounds(name) if r.metrics["hits_total"] > 0]
        expected = (None if not first else
                    sum(r.metrics["oracle_calls"] for r in store.rounds(name)
                        if r.round_index <= first[0].round_index))
        assert row["calls_to_first_hit"] == expected
        assert set(row["wall_seconds_by_stage"]) >= {"generate", "filter"}
    store.close()
    assert plot.is_file() and plot.read_bytes().startswith(b"\x89PNG")
    table = CliRunner().invoke(app, ["compare", "tiny", "tiny-random"])
    assert table.exit_code == 0 and "calls to the first hit" in table.stdout
    missing = CliRunner().invoke(app, ["compare", "tiny", "nope"])
    assert missing.exit_code == 2 and "no MLflow record of campaign 'nope'" in missing.output
    # the round runs carry the campaign's tags, for MLflow's compare view
    client = MlflowClient(tracking_uri=Home(root).mlflow_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              "tags.`invdes.round` = '1'")
    assert runs and all(r.data.tags.get("invdes.acquisition") in ("qlognei", "random")
                        for r in runs)


def test_a_campaign_leased_elsewhere_is_not_computed_twice(finished_campaign,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.campaign import run_campaign
    from pipeline.store import StoreError

    root, _ = finished_campaign
    monkeypatch.setenv("INVDES_HOME", str(root))
    store = Store(Home(root).store_url)
    store.acquire_lease("tiny", "other-machine:4242:abcd")  # as if another machine ran it
    before = len(store.evaluations("tiny"))
    try:
        with pytest.raises(StoreError, match="being computed by other-machine:4242:abcd"):
            run_campaign(parse_config(tiny_campaign(rounds=3)), quiet=True)
        assert len(store.evaluations("tiny")) == before and len(store.rounds("tiny")) == 2
    finally:
        store.release_lease("tiny", "other-machine:4242:abcd")
        store.close()
