"""Start-up time of the command line: ``invdes --help`` and ``invdes status`` (goal: under
1.5 s each), the median of repeated cold starts of a new process.

Usage:
    .venv/bin/python bench/startup.py --json bench/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INVDES = Path(sys.executable).with_name("invdes")
GOAL_S = 1.5


def timed(args: list[str], env: dict[str, str], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` runs of ``invdes ARGS`` (each must exit 0)."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([str(INVDES), *args], env=env, cwd=REPO, check=True,
                       capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, INVDES_HOME=tmp)
        sqlite = Path(tmp) / "campaigns.db"
        from pipeline.store import Store  # an empty store, so that status has one to read

        Store(f"sqlite:///{sqlite}").close()
        results = {}
        for name, command in (("help", ["--help"]), ("status", ["status"])):
            times = timed(command, env, args.repeats)
            results[name] = {"command": f"invdes {' '.join(command)}",
                             "median_s": statistics.median(times), "max_s": max(times),
                             "runs_s": times}
    report = {"goal_s": GOAL_S, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                           f"Python {platform.python_version()}",
              **results}
    for r in results.values():
        print(f"{r['command']}: median {r['median_s']:.2f} s, max {r['max_s']:.2f} s "
              f"(goal {GOAL_S} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
