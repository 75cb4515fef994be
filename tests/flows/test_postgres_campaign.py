"""A campaign whose store is a real PostgreSQL server, started twice at once from two homes (as
from two machines): one computes, the other is refused by the store's lease."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from pipeline.store import Store
from tests.conftest import tiny_campaign, write_yaml
from tests.services import fresh_database

REPO = Path(__file__).resolve().parents[2]


def test_two_runs_of_one_campaign_on_postgresql_do_not_both_compute(
        tmp_path: Path, postgres_url: str) -> None:
    url = fresh_database(postgres_url, "campaign_twice")
    config = write_yaml(tmp_path / "c.yaml", tiny_campaign(name="twice", rounds=1,
                                                            store={"url": url}))
    runs = []
    for machine in ("a", "b"):  # two homes: no shared file lock, only the store
        env = dict(os.environ, INVDES_HOME=str(tmp_path / machine))
        runs.append(subprocess.Popen([sys.executable, "-m", "flows.cli", "run", str(config)],
                                     cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=600) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes[0] == 0, outputs
    if codes == [0, 2]:  # they overlapped: the loser says who holds the campaign
        loser = next(err for run, (_, err) in zip(runs, outputs, strict=True)
                     if run.returncode == 2)
        assert "is being computed by" in loser or "was just taken by another" in loser, loser
    else:  # the second started after the first had finished: it found nothing to do
        assert codes == [0, 0], outputs
    store = Store(url)
    assert [r.complete for r in store.rounds("twice")] == [True]
    engine = create_engine(url)
    with engine.connect() as conn:
        calls = conn.execute(text("select candidate_id, status from oracle_calls")).fetchall()
    engine.dispose()
    assert calls and len(calls) == len({cid for cid, _ in calls})  # none computed twice
    assert {status for _, status in calls} == {"ok"}
    store.close()
