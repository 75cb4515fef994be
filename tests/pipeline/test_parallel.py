"""Jobs in worker processes: results in order, progress reported, both start methods."""

from __future__ import annotations

import pytest

from pipeline.parallel import Advance, run_jobs


def _square(job: int, advance: Advance) -> int:
    advance(job)
    return job * job


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_jobs_run_in_workers_and_report_progress(start_method: str) -> None:
    steps: list[int] = []
    assert run_jobs(_square, [1, 2, 3], 2, steps.append, start_method) == [1, 4, 9]
    assert sorted(steps) == [1, 2, 3]


def test_one_worker_runs_in_this_process() -> None:
    steps: list[int] = []
    assert run_jobs(_square, [4], 1, steps.append) == [16]
    assert steps == [4]
