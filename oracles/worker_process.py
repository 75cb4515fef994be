"""Running one calculation in a child process with a wall-time limit, a thread count and an
optional memory limit, so that a hung or crashing calculation costs only itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any


def run_worker(module: str, request: dict[str, Any], *, timeout_s: float, threads: int,
               max_memory_mb: int, memory_limit_mb: int | None, what: str) -> dict[str, Any] | str:
    """Runs ``python -m module`` with ``request`` as JSON on stdin.

    Args:
        module: the worker module (it reads JSON on stdin and writes JSON on stdout).
        request: the calculation.
        timeout_s: wall-time limit, seconds.
        threads: BLAS/OpenMP threads.
        max_memory_mb: PySCF's memory budget, MB.
        memory_limit_mb: hard address-space limit of the child, MB (None: none).
        what: the worker's name in messages (``PySCF``).

    Returns:
        The worker's JSON answer, or the reason there is none (timeout, crash, out of memory,
        no JSON).
    """
    n = str(threads)
    env = dict(os.environ, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
               PYSCF_MAX_MEMORY=str(max_memory_mb), INVDES_PARENT_PID=str(os.getpid()),
               INVDES_MEMORY_LIMIT_MB=str(memory_limit_mb or ""), MALLOC_ARENA_MAX="2")
    try:
        proc = subprocess.run([sys.executable, "-m", module], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return f"timeout: no result within {timeout_s:g} s"
    except OSError as exc:
        return f"could not start the {what} worker: {exc}"
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = " | ".join((proc.stderr or "").strip().splitlines()[-3:]) or "no output"
        if memory_limit_mb and ("malloc" in tail or "MemoryError" in tail):
            return f"out of memory: the limit of {memory_limit_mb} MB was reached ({tail})"
        signal_name = f" ({signal.Signals(-proc.returncode).name})" if proc.returncode < 0 else ""
        return f"{what} worker exited with code {proc.returncode}{signal_name}: {tail}"
    try:
        answer = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return f"{what} worker wrote no JSON: {proc.stdout[-200:]!r}"
    if not isinstance(answer, dict):
        return f"{what} worker wrote {type(answer).__name__}, not an object"
    return answer
