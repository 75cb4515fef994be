"""Calibration of p_perovskite: the slope of 1 / (1 + exp(s (tau - 4.18))) fitted on Bartel et
al.'s ICSD double perovskites A2BB'X6 (868 perovskites, 50 not), then scored, without refitting,
on the 576 experimentally characterised ABX3 (Brier score and a reliability table).

Usage:
    .venv/bin/python bench/perovskite_calibration.py --json bench/results/perovskite_calibration.json

The slope it prints is :data:`materials.formability.P_SLOPE` (rounded to two decimals).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from materials.formability import TAU_THRESHOLD, FormabilityError, assess, p_perovskite

DATA = Path(__file__).resolve().parent / "data"


def _taus(path: Path, b2: str | None) -> tuple[np.ndarray, np.ndarray]:
    with path.open() as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    taus, labels = [], []
    for row in rows:
        label_column = "icsd_label" if "icsd_label" in row else "exp_label"
        try:
            f = assess(row["A"], row["B1" if b2 else "B"], row["X"], row[b2] if b2 else None)
        except FormabilityError:
            continue
        if math.isnan(f.tau):
            continue
        taus.append(f.tau)
        labels.append(float(row[label_column]) == 1)
    return np.asarray(taus), np.asarray(labels, dtype=float)


def fit_slope(tau: np.ndarray, label: np.ndarray) -> float:
    """Maximum-likelihood slope s of p = 1 / (1 + exp(s (tau - 4.18)))."""
    def nll(s: float) -> float:
        p = np.clip(1 / (1 + np.exp(np.clip(s * (tau - TAU_THRESHOLD), -700, 700))), 1e-12,
                    1 - 1e-12)
        return float(-np.sum(label * np.log(p) + (1 - label) * np.log(1 - p)))
    return float(minimize_scalar(nll, bounds=(0.01, 50.0), method="bounded").x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tau_fit, label_fit = _taus(DATA / "bartel2019_icsd_a2bbx6.csv", "B2")
    slope = fit_slope(tau_fit, label_fit)
    tau_test, label_test = _taus(DATA / "bartel2019_abx3.csv", None)
    p = np.array([p_perovskite(t) for t in tau_test])
    edges = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    table = []
    for low, high in itertools.pairwise(edges):
        inside = (p >= low) & ((p < high) if high < 1.0 else (p <= high))
        if inside.any():
            table.append({"p_range": [low, high], "n": int(inside.sum()),
                          "mean_p": float(p[inside].mean()),
                          "share_perovskite": float(label_test[inside].mean())})
    report = {
        "fit": {"data": "bartel2019_icsd_a2bbx6.csv", "n": len(tau_fit),
                "share_perovskite": float(label_fit.mean()), "slope": slope,
                "midpoint_tau": TAU_THRESHOLD},
        "test": {"data": "bartel2019_abx3.csv (assessable, tau defined)", "n": len(tau_test),
                 "brier": float(np.mean((p - label_test) ** 2)),
                 "brier_hard_tau_verdict": float(np.mean(((tau_test < TAU_THRESHOLD)
                                                          - label_test) ** 2)),
                 "reliability": table},
    }
    print(f"slope {slope:.3f} from {len(tau_fit)} double perovskites; Brier on "
          f"{len(tau_test)} ABX3: {report['test']['brier']:.3f}")
    for row in table:
        print(f"  p in [{row['p_range'][0]}, {row['p_range'][1]}]: n {row['n']:4d}, mean p "
              f"{row['mean_p']:.2f}, perovskites {row['share_perovskite']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
