"""Benchmark of the PySCF oracle: accuracy against QM9 and speed of each named level.

Usage:
    python bench/oracle.py --pool ../shared/data/qm9 --json bench/results/oracle.json

Accuracy: the first ``--n-accuracy`` molecules of the QM9 reference pool's geometry file (a random
subsample) at the ``qm9`` level (B3LYP/6-31G(2df,p)) on the QM9 geometries as given; mean
absolute error of HOMO, LUMO and gap against QM9's values (eV).

Speed: the first ``--n-speed`` molecules at each named level, one calculation at a time with all
threads, timed from the caller's side (worker start-up included), as molecules per hour; beside
them a plain PySCF run of the standard level's method and basis (no density fitting, default
grid, default guess, default convergence) through the same worker, and the largest gap
difference between the two.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from oracles.levels import LEVELS, Level
from oracles.pyscf_oracle import PySCFOracle
from pipeline.types import Candidate, Geometry

PLAIN = Level(method="b3lyp", basis="def2-svp", description="plain PySCF run of 'standard'")


def read_pool(path: Path, n: int) -> list[tuple[Geometry, dict[str, Any]]]:
    """The first ``n`` molecules of the pool's XYZ file, with the values on their comment line."""
    out: list[tuple[Geometry, dict[str, Any]]] = []
    with gzip.open(path / "train_pool_geometries.xyz.gz", "rt") as handle:
        while len(out) < n:
            header = handle.readline()
            if not header:
                break
            count = int(header)
            meta = dict(item.split("=", 1) for item in handle.readline().split())
            rows = [handle.readline().split() for _ in range(count)]
            geometry = Geometry(tuple(r[0] for r in rows),
                                tuple((float(r[1]), float(r[2]), float(r[3])) for r in rows))
            out.append((geometry, meta))
    return out


def run_level(oracle: PySCFOracle, molecules: list[tuple[Geometry, dict[str, Any]]],
              progress: Progress, label: str) -> list[dict[str, Any]]:
    """Runs the oracle on each molecule; one row per molecule with values and wall time."""
    task = progress.add_task(label, total=len(molecules))
    rows = []
    for geometry, meta in molecules:
        cand = Candidate(meta["qm9_index"], meta["smiles"], meta["smiles"], 0, "bench",
                         geometry=geometry)
        start = time.perf_counter()
        result = oracle.run(cand)
        rows.append({
            "qm9_index": int(meta["qm9_index"]), "smiles": meta["smiles"],
            "n_atoms": len(geometry.symbols), "status": result.status.value,
            "reason": result.reason, "wall_s": time.perf_counter() - start,
            **{k: result.values.get(k) for k in ("homo_ev", "lumo_ev", "gap_ev")},
            **{f"qm9_{k}": float(meta[k]) for k in ("homo_ev", "lumo_ev", "gap_ev")},
        })
        progress.advance(task)
    return rows


def oracle_for(level: Level, threads: int) -> PySCFOracle:
    """An oracle at exactly ``level`` with generous limits."""
    return PySCFOracle(PySCFOracle.Params(
        method=level.method, basis=level.basis, density_fitting=level.density_fitting,
        cartesian=level.cartesian, grid_level=level.grid_level, conv_tol=level.conv_tol,
        threads=threads, timeout_s=7200, max_memory_mb=8000,
    ))


def main() -> None:
    """Runs the benchmark and writes JSON (after each part, so partial results survive)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, required=True, help="folder of the QM9 pool")
    parser.add_argument("--json", type=Path, required=True, help="output JSON file")
    parser.add_argument("--n-accuracy", type=int, default=12)
    parser.add_argument("--n-speed", type=int, default=3)
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "threads": args.threads,
                    "processor": platform.processor(), "python": platform.python_version()},
        "levels": {name: lv.model_dump() for name, lv in LEVELS.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        args.json.write_text(json.dumps(report, indent=2))

    n_total = max(args.n_accuracy, args.n_speed)
    molecules = read_pool(args.pool, n_total)
    with Progress() as progress:
        rows = run_level(oracle_for(LEVELS["qm9"], args.threads), molecules[: args.n_accuracy],
                         progress, "accuracy: qm9 level vs QM9")
        ok = [r for r in rows if r["status"] == "ok"]
        report["accuracy"] = {
            "level": "qm9", "n_molecules": len(rows), "n_ok": len(ok),
            **{f"mae_{k}": float(np.mean([abs(r[k] - r[f"qm9_{k}"]) for r in ok]))
               for k in ("homo_ev", "lumo_ev", "gap_ev")},
            "goal_mae_ev": 0.03, "molecules": rows,
        }
        save()
        speed: dict[str, Any] = {}
        speed_set = molecules[: args.n_speed]
        for name in args.levels.split(","):
            level_rows = (rows[: args.n_speed] if name == "qm9"
                          else run_level(oracle_for(LEVELS[name], args.threads), speed_set,
                                         progress, f"speed: {name}"))
            mean_s = float(np.mean([r["wall_s"] for r in level_rows]))
            speed[name] = {"seconds_per_molecule": mean_s, "molecules_per_hour": 3600 / mean_s,
                           "molecules": level_rows}
            report["speed"] = speed
            save()
        plain_rows = run_level(oracle_for(PLAIN, args.threads), speed_set, progress,
                               "speed: plain PySCF (standard without shortcuts)")
        mean_plain = float(np.mean([r["wall_s"] for r in plain_rows]))
        speed["plain_standard"] = {"seconds_per_molecule": mean_plain,
                                   "molecules_per_hour": 3600 / mean_plain,
                                   "molecules": plain_rows}
        if "standard" in speed:
            gap_diff = [abs(a["gap_ev"] - b["gap_ev"])
                        for a, b in zip(speed["standard"]["molecules"], plain_rows, strict=True)]
            report["standard_vs_plain"] = {
                "speedup": mean_plain / speed["standard"]["seconds_per_molecule"],
                "max_abs_gap_difference_ev": float(max(gap_diff)),
                "goal": "speedup >= 2 with gaps equal to 0.01 eV",
            }
        save()
    print(json.dumps({k: v for k, v in report.items() if k in ("standard_vs_plain",)}, indent=2))
    acc = report["accuracy"]
    print(f"accuracy (qm9 level, {acc['n_ok']} molecules): MAE homo {acc['mae_homo_ev']:.4f} "
          f"lumo {acc['mae_lumo_ev']:.4f} gap {acc['mae_gap_ev']:.4f} eV")


if __name__ == "__main__":
    main()
