"""Independent jobs (ensemble members, say) run in single-threaded worker processes, reporting
progress to the parent."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")

Advance = Callable[[int], None]
"""Called by a job with a number of steps it finished."""

_QUEUE: Any = None


def _set_queue(queue: Any) -> None:
    global _QUEUE
    _QUEUE = queue


def _in_worker(func: Callable[[Any, Advance], Any], job: Any) -> Any:
    import torch

    torch.set_num_threads(1)
    return func(job, _QUEUE.put)


def run_jobs(func: Callable[[J, Advance], R], jobs: Sequence[J], workers: int,
             advance: Advance | None = None, start_method: str = "fork") -> list[R]:
    """``func(job, advance)`` for every job, in ``workers`` processes of one torch thread each
    (in this process, one after the other, when ``workers`` is 1).

    Args:
        func: a module-level function (it is sent to the workers by reference).
        jobs: its first arguments, picklable.
        workers: processes at once.
        advance: receives the step counts the jobs report, in this process.
        start_method: ``fork`` (fast; the workers share this process's imports), or ``spawn``
            for jobs that use CUDA, which cannot be used in a process forked from one where it
            was initialised (importing torch-geometric initialises it).

    Returns:
        The results in the order of ``jobs``. A worker that dies (killed, out of memory) fails
        the call instead of hanging it.
    """
    report: Advance = advance if advance is not None else (lambda n: None)
    if workers <= 1 or len(jobs) <= 1:
        return [func(job, report) for job in jobs]
    ctx = multiprocessing.get_context(start_method)
    queue = ctx.SimpleQueue()

    def drain() -> None:
        while not queue.empty():
            report(queue.get())

    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_set_queue,
                             initargs=(queue,)) as pool:
        pending = [pool.submit(_in_worker, func, job) for job in jobs]
        while wait(pending, timeout=0.2).not_done:
            drain()
        drain()
        return [p.result() for p in pending]
