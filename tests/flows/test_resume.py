"""A campaign killed with SIGKILL during the oracle step resumes without losing or redoing work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from pipeline.orbital_shares import DESCRIPTORS
from tests.conftest import query_sqlite, tiny_campaign, write_yaml

REPO = Path(__file__).resolve().parents[2]


def _run(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", str(config)], cwd=REPO, env=env,
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def test_sigkill_during_oracle_step_then_rerun_keeps_and_reuses_results(tmp_path: Path) -> None:
    data = tiny_campaign(name="killed", rounds=2)
    data["acquisition"]["batch_size"] = 4
    data["filters"][3]["params"]["max"] = 5
    # one calculation at a time, B3LYP: the oracle step lasts long enough to be caught
    data["oracle"] = {"name": "pyscf", "max_parallel": 1,
                      "params": {"method": "b3lyp", "basis": "sto-3g"}}
    config = write_yaml(tmp_path / "killed.yaml", data)
    home = tmp_path / "home"
    env = dict(os.environ, INVDES_HOME=str(home))
    db = home / "campaigns.db"

    first = _run(config, env, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = query_sqlite(db, "select count(*) from oracle_calls where status = 'ok'")
        running = query_sqlite(db, "select count(*) from oracle_calls where status = 'running'")
        if done and done[0][0] >= 1 and running and running[0][0] >= 1:
            break
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        time.sleep(0.05)
    else:
        raise AssertionError("the campaign never reached its oracle step")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)

    evals_before = query_sqlite(db, "select id, candidate_id, property, value, status, "
                                    "created_at from evaluations order by id")
    finished_before = {row[0] for row in query_sqlite(
        db, "select candidate_id from oracle_calls where status = 'ok'")}
    assert evals_before and finished_before

    second = _run(config, env, tmp_path / "second.log")
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    # a log file (not a terminal) gets one plain line per finished stage and calculation
    log = (tmp_path / "second.log").read_text()
    assert "round 1: generated and filtered:" in log and "round 1: selected 4 for the oracle" in log
    assert "round 1: oracle 4/4 " in log and "round 1: recorded and logged to MLflow" in log

    evals_after = query_sqlite(db, "select id, candidate_id, property, value, status, "
                                   "created_at from evaluations order by id")
    assert evals_after[: len(evals_before)] == evals_before  # nothing lost or rewritten
    calls = query_sqlite(db, "select candidate_id, status from oracle_calls order by id")
    for cid in finished_before:  # a finished calculation was never launched again
        assert [s for c, s in calls if c == cid] == ["ok"]
    assert ("interrupted" in {s for _, s in calls})  # the killed calculation is marked
    assert query_sqlite(db, "select round_index, stage from rounds order by round_index") == [
        (0, "logged"), (1, "logged")]
    selected = query_sqlite(db, "select id from candidates where selected_rank is not null")
    per_candidate = query_sqlite(db, "select candidate_id, count(*) from evaluations "
                                     "group by candidate_id")
    assert len(selected) == 8 and len(per_candidate) == 8
    assert all(n == 5 + len(DESCRIPTORS) for _, n in per_candidate)  # SCF values, descriptors

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("killed")
    runs = client.search_runs([experiment.experiment_id])
    tags = sorted(r.data.tags["invdes.round"] for r in runs)
    assert tags == ["0", "1", "campaign"]  # no duplicate runs after the restart

    # Prefect: the killed run is marked crashed by the rerun, which completed; its database
    # can be read at once after the run (it was once left locked)
    flow_runs = query_sqlite(home / "prefect" / "prefect.db",
                             "select state_type from flow_run order by created")
    assert [s for (s,) in flow_runs] == ["CRASHED", "COMPLETED"]
    listing = subprocess.run([str(Path(sys.executable).with_name("prefect")), "flow-run", "ls"],
                             env={**{k: v for k, v in env.items() if not k.startswith("PREFECT_")},
                                  "PREFECT_HOME": str(home / "prefect"), "COLUMNS": "250"},
                             cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "locked" not in listing.stdout + listing.stderr
    assert "killed" in listing.stdout and "CRASHED" in listing.stdout
