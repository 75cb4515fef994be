"""Benchmark of scale-out: the oracle throughput of one campaign round on a local Dask cluster of
1 and of 2 workers.

Usage:
    .venv/bin/python bench/scaling.py --json bench/results/scaling.json [--workers 1 2]

The demo campaign (``conf/demo_molecules.yaml``: graph GA, C/N/O/F up to 9 heavy atoms) runs
one round with a batch of ``--batch`` molecules picked for diversity (max-min, no labels yet) at
the ``standard`` level (B3LYP/def2-SVP, one thread per calculation), through Prefect's Dask task
runner on a ``LocalCluster`` of N worker processes of one thread each, once per N, each in a
fresh home (no cached answer). The same seed picks the same molecules every time. Measured:
the oracle stage's wall time (``seconds_oracle``), calculations per hour, the workers named in
the results' provenance, and the speed-up of N workers over 1. On the 2-core machine the
2-worker cluster can at best double the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def _config(n_workers: int, batch: int, level: str) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "conf" / "demo_molecules.yaml").read_text())
    data.update(name=f"scaling-{n_workers}", rounds=1,
                executor={"kind": "dask", "n_workers": n_workers, "threads_per_worker": 1})
    data["acquisition"].update(batch_size=batch, min_labels=batch + 1, initial_batch="maxmin")
    data["oracle"]["params"] = {"level": level, "timeout_s": 3600, "threads": 1}
    data["oracle"]["max_parallel"] = n_workers
    return data


def run_once(n_workers: int, batch: int, level: str) -> dict[str, Any]:
    """One round on a fresh home with a local cluster of ``n_workers``; its oracle figures."""
    from pipeline.store import Store

    with tempfile.TemporaryDirectory(prefix="invdes-scaling-") as tmp:
        config = Path(tmp) / "campaign.yaml"
        config.write_text(yaml.safe_dump(_config(n_workers, batch, level), sort_keys=False))
        env = dict(os.environ, INVDES_HOME=str(Path(tmp) / "home"))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(config)], cwd=REPO,
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"campaign with {n_workers} workers failed:\n{done.stderr[-3000:]}")
        store = Store(f"sqlite:///{Path(tmp) / 'home' / 'campaigns.db'}")
        metrics = store.rounds(f"scaling-{n_workers}")[0].metrics
        evaluations = [e.evaluation for e in store.evaluations(f"scaling-{n_workers}")
                       if e.evaluation.property == "gap_ev"]
        store.close()
    ok = [e for e in evaluations if e.ok]
    workers = sorted({str(e.provenance.get("worker")) for e in ok})
    seconds = float(metrics["seconds_oracle"])
    calc_seconds = [float(e.provenance["wall_s"]) for e in ok if "wall_s" in e.provenance]
    return {
        "n_workers": n_workers, "calculations": len(evaluations), "succeeded": len(ok),
        "oracle_seconds": seconds, "calculations_per_hour": 3600 * len(ok) / seconds,
        "sum_of_calculation_seconds": sum(calc_seconds),
        "workers_in_provenance": workers, "campaign_wall_seconds": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=8, help="calculations in the round")
    parser.add_argument("--level", default="standard", help="level of theory (oracles/levels.py)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "scaling.json")
    args = parser.parse_args()
    runs = []
    for n in args.workers:
        result = run_once(n, args.batch, args.level)
        print(json.dumps(result), flush=True)
        runs.append(result)
    base = next((r for r in runs if r["n_workers"] == 1), runs[0])
    for r in runs:
        r["speedup_over_1_worker"] = r["calculations_per_hour"] / base["calculations_per_hour"]
    out = {"benchmark": "oracle throughput of one round on a local Dask cluster",
           "level": args.level, "batch": args.batch, "cpu_count": os.cpu_count(),
           "python": platform.python_version(), "runs": runs,
           "command": " ".join([Path(sys.executable).name, *sys.argv])}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
