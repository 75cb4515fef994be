"""Scheduled campaigns on a real Prefect server, logging to a real MLflow tracking server: a
cron deployment is registered, each triggered run continues the campaign, the budget ends it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from pipeline.store import Store
from tests.conftest import tiny_campaign, write_yaml
from tests.services import mlflow_server, prefect_server

REPO = Path(__file__).resolve().parents[2]


def _invdes(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_without_a_prefect_server_the_command_says_how_to_start_one(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "c.yaml", tiny_campaign())
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["INVDES_HOME"] = str(tmp_path / "home")
    done = _invdes("schedule", str(config), "--cron", "0 2 * * *", env=env)
    assert done.returncode == 2
    assert "need a Prefect server" in done.stderr and "prefect server start" in done.stderr
    assert not (tmp_path / "home" / "campaigns.db").exists()  # nothing was created


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("servers")
    with prefect_server(root / "prefect") as prefect_api, mlflow_server(root / "mlflow") as mlflow:
        yield prefect_api, mlflow


def test_a_cron_schedule_continues_the_campaign_until_its_budget_is_spent(
        tmp_path: Path, servers: tuple[str, str]) -> None:
    prefect_api, mlflow = servers
    data = tiny_campaign(name="nightly", rounds=1, budget={"rounds": 2},
                         tracking={"tracking_uri": mlflow})
    config = write_yaml(tmp_path / "nightly.yaml", data)
    home = tmp_path / "home"
    env = dict(os.environ, INVDES_HOME=str(home), PREFECT_API_URL=prefect_api)
    done = _invdes("schedule", str(config), "--cron", "0 2 * * *", "--rounds-per-run", "1",
                   env=env)
    assert done.returncode == 0, done.stderr
    api = httpx.Client(base_url=prefect_api, timeout=30)
    [deployment] = api.post("/deployments/filter", json={}).json()
    assert deployment["name"] == "nightly" and not deployment["paused"]
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 2 * * *"]
    assert deployment["work_pool_name"] == "invdes"
    listed = _invdes("schedule", "--list", env=env)
    assert "nightly" in listed.stdout and "0 2 * * *" in listed.stdout, listed.stderr

    store = Store(f"sqlite:///{home / 'campaigns.db'}")
    for expected in (1, 2, 2):  # the third run finds the budget spent and computes nothing
        run = api.post(f"/deployments/{deployment['id']}/create_flow_run", json={}).json()
        worked = _invdes("worker", "--run-once", env=env)
        assert worked.returncode == 0, worked.stdout[-2000:] + worked.stderr[-2000:]
        state = api.get(f"/flow_runs/{run['id']}").json()["state"]["type"]
        assert state == "COMPLETED", worked.stdout[-3000:] + worked.stderr[-3000:]
        assert sum(r.complete for r in store.rounds("nightly")) == expected
    assert api.get(f"/deployments/{deployment['id']}").json()["paused"]  # stopped for good
    store.close()

    client = MlflowClient(tracking_uri=mlflow)  # the rounds were logged to the tracking server
    experiment = client.get_experiment_by_name("nightly")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    rounds = sorted(r.data.tags["invdes.round"] for r in runs)
    assert rounds == ["0", "1", "campaign"]
    round_run = next(r for r in runs if r.data.tags["invdes.round"] == "1")
    assert "oracle_calls" in round_run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(round_run.info.run_id)}
    assert "ranked_candidates.csv" in artifacts

    removed = _invdes("schedule", "--remove", "nightly", env=env)
    assert removed.returncode == 0, removed.stderr
    assert api.post("/deployments/filter", json={}).json() == []
    unknown = _invdes("schedule", "--remove", "nightly", env=env)
    assert unknown.returncode == 2 and "no scheduled campaign named 'nightly'" in unknown.stderr
