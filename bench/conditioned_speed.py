"""Time of conditioned against unconditioned generation, per molecule written (goal: at most
3 times), through the command line as a user runs it.

Each repeat runs ``invdes generate molecules --n N --out F.sdf --json`` once without and once
with ``--condition gap_ev=V`` (default oversampling: 4 x N drawn, the property model keeps the N
closest), in new processes, and records the process's wall time (imports and model loading
included) and the command's own ``wall_s`` (sampling, building, judging), each divided by the
molecules written to the SDF.

Usage:
    .venv/bin/python bench/conditioned_speed.py --json bench/results/conditioned_speed.json
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INVDES = Path(sys.executable).with_name("invdes")
GOAL_RATIO = 3.0


def run(args: list[str]) -> dict[str, Any]:
    """One ``invdes generate molecules`` run: its JSON summary plus ``process_s``."""
    start = time.perf_counter()
    done = subprocess.run([str(INVDES), "generate", "molecules", *args, "--json"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    summary: dict[str, Any] = json.loads(done.stdout)
    summary["process_s"] = time.perf_counter() - start
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--gap", type=float, default=6.5, help="target gap, eV")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {"unconditioned": [], "conditioned": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.repeats):
            common = ["--n", str(args.n), "--out", f"{tmp}/out.sdf", "--seed", str(seed)]
            rows["unconditioned"].append(run(common))
            rows["conditioned"].append(run([*common, "--condition", f"gap_ev={args.gap}"]))
    report: dict[str, Any] = {
        "n": args.n, "target_gap_ev": args.gap, "goal_ratio": GOAL_RATIO,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"load {os.getloadavg()[0]:.1f} at the end",
    }
    for mode, runs in rows.items():
        report[mode] = {
            "process_s": [r["process_s"] for r in runs], "wall_s": [r["wall_s"] for r in runs],
            "written": [r["n_written"] for r in runs],
            "process_s_per_written": statistics.median(r["process_s"] / r["n_written"]
                                                       for r in runs),
            "wall_s_per_written": statistics.median(r["wall_s"] / r["n_written"] for r in runs),
        }
    for what in ("process_s_per_written", "wall_s_per_written"):
        report[f"ratio_{what}"] = (report["conditioned"][what]
                                   / report["unconditioned"][what])
    print(json.dumps({k: v for k, v in report.items() if k.startswith("ratio")}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
