"""Oracle calculations on a Dask cluster (``executor: {kind: dask}``): every worker recorded with
its results, a lost worker's calculations done elsewhere, each result stored exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import query_sqlite, tiny_campaign, write_yaml

REPO = Path(__file__).resolve().parents[2]


def _campaign(name: str, executor: dict[str, Any], oracle_params: dict[str, Any]) -> dict:
    data = tiny_campaign(name=name, rounds=1)
    data["acquisition"].update(batch_size=6, min_labels=10)  # one batch of 6 at random
    data["oracle"] = {"name": "pyscf", "max_parallel": 2, "params": oracle_params}
    data["executor"] = executor
    return data


def _run(config: Path, home: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "run", str(config)], cwd=REPO,
                            env=dict(os.environ, INVDES_HOME=str(home)), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def _check_stored_once(db: Path, n: int) -> list[dict]:
    """Each of the ``n`` selected candidates has one finished call, one cached answer and one
    evaluation per property; returns the answers' provenance."""
    calls = query_sqlite(db, "select candidate_id, status from oracle_calls")
    assert sorted(status for _, status in calls) == ["ok"] * n, calls
    assert len({cid for cid, _ in calls}) == n
    keys = query_sqlite(db, "select request_key from oracle_results")
    assert len(keys) == n
    per_property = query_sqlite(db, "select candidate_id, property, count(*) from evaluations "
                             "group by candidate_id, property")
    assert per_property and {count for *_, count in per_property} == {1}
    return [json.loads(p) for (p,) in query_sqlite(db, "select provenance_json from oracle_results")]


def test_a_local_cluster_of_two_workers_computes_the_round(tmp_path: Path) -> None:
    data = _campaign("dask2", {"kind": "dask", "n_workers": 2},
                     {"level": "fast", "timeout_s": 120})
    home = tmp_path / "home"
    run = _run(write_yaml(tmp_path / "c.yaml", data), home, tmp_path / "log")
    assert run.wait(timeout=600) == 0, (tmp_path / "log").read_text()[-3000:]
    provenance = _check_stored_once(home / "campaigns.db", 6)
    workers = {p["worker"] for p in provenance}
    assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers), workers
    log = (tmp_path / "log").read_text()
    assert all(f"on {w}" in log for w in workers)  # the log line of each calculation names it


def test_a_killed_worker_loses_no_calculation_and_none_is_stored_twice(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        data = _campaign("lost", {"kind": "dask", "address": cluster.scheduler_address,
                                  "retry_delay_s": 0.5},
                         {"method": "b3lyp", "basis": "6-31g", "timeout_s": 300})
        home = tmp_path / "home"
        db = home / "campaigns.db"
        run = _run(write_yaml(tmp_path / "c.yaml", data), home, tmp_path / "log")
        deadline = time.monotonic() + 400
        first: list[tuple] = []
        while not first and time.monotonic() < deadline:
            assert run.poll() is None, (tmp_path / "log").read_text()[-3000:]
            first = query_sqlite(db, "select provenance_json from oracle_results")
            time.sleep(0.1)
        assert first, "no calculation finished in time"
        # kill the worker that did not give the first answer: it is busy with another one
        done_on = json.loads(first[0][0])["worker"]
        pids = client.run(os.getpid)
        victim = next(address for address in pids if address != done_on)
        os.kill(pids[victim], signal.SIGKILL)
        assert run.wait(timeout=600) == 0, (tmp_path / "log").read_text()[-3000:]
    provenance = _check_stored_once(db, 6)
    assert {p["worker"] for p in provenance} - {victim}  # the work went on elsewhere
