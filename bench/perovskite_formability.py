"""Formability verdicts against experiment on Bartel et al.'s 576 ABX3 compounds (goal: agree at
least 92 % of the time, the tool choosing oxidation states and radii itself; nothing is fitted
on them).

Usage:
    .venv/bin/python bench/perovskite_formability.py --json bench/results/perovskite_formability.json

Reported: agreement of the tau verdict (tau < 4.18) and of Goldschmidt t in Bartel's range
(0.825 < t < 1.059) with the experimental label, over all 576 (a composition the tool cannot
assess counts as "not perovskite", its verdict) and over those it assesses; the paper's own
numbers with its own assignments: tau 91.7 %, t 73.8 %.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from materials.formability import T_RANGE, FormabilityError, assess

DATA = Path(__file__).resolve().parent / "data" / "bartel2019_abx3.csv"
GOAL = 0.92


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with DATA.open() as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    results: list[dict[str, Any]] = []
    for row in rows:
        label = row["exp_label"] == "1"
        try:
            f = assess(row["A"], row["B"], row["X"])
        except FormabilityError as exc:
            results.append({**row, "assessed": False, "reason": str(exc), "tau_ok": not label,
                            "t_ok": not label})
            continue
        in_t = T_RANGE[0] < f.t < T_RANGE[1]
        results.append({**row, "assessed": True, "n_a": f.n_a, "n_b": f.n_b, "r_a": f.r_a,
                        "r_b": f.r_b, "tau": f.tau, "t": f.t, "tau_ok": f.perovskite == label,
                        "t_ok": in_t == label})
    assessed = [r for r in results if r["assessed"]]
    report = {
        "n": len(results), "n_assessed": len(assessed), "goal": GOAL,
        "tau_agreement": sum(r["tau_ok"] for r in results) / len(results),
        "tau_agreement_assessed": sum(r["tau_ok"] for r in assessed) / len(assessed),
        "t_agreement": sum(r["t_ok"] for r in results) / len(results),
        "paper": {"tau_agreement": 0.917, "t_agreement": 0.738},
        "not_assessed": [f"{r['A']}{r['B']}{r['X']}3: {r['reason']}" for r in results
                         if not r["assessed"]],
        "disagreements": [f"{r['A']}{r['B']}{r['X']}3 (label {r['exp_label']}, tau "
                          f"{r['tau']:.2f}, nA {r['n_a']}, nB {r['n_b']})" for r in assessed
                          if not r["tau_ok"]],
    }
    print(f"tau: {report['tau_agreement']:.3f} of {report['n']} "
          f"({report['tau_agreement_assessed']:.3f} of the {report['n_assessed']} assessed); "
          f"Goldschmidt t: {report['t_agreement']:.3f}; goal {GOAL}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
