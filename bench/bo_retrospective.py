"""Retrospective design campaign on a labelled pool: does the campaign's BO beat the baselines?

Usage:
    python bench/bo_retrospective.py --pool ../shared/data/qm9/train_pool.csv.gz \
        --budget 300 --seeds 3 --json bench/results/bo_retrospective.json

The oracle is a lookup into the pool's ``gap_ev`` column. The target is the top 1 % of the pool by
the objective score (``--objective max`` for the largest gap, or ``--objective window`` with
``--low``/``--high``). Every method starts from the same random initial batch per seed and then
picks ``--batch`` molecules per round until ``--budget`` oracle calls:

* ``random``: uniform picks;
* ``greedy``: the Tanimoto GP's best predicted mean (pure exploitation);
* ``bo``: the campaign's acquisition, BoTorch qLogNoisyExpectedImprovement on the Tanimoto GP;
* ``bo_prior``: the same BO on the ``prior_gp`` surrogate: a Tanimoto GP around the pretrained
  property model's gap predictions (``--prior-weights``), recalibrated on the labels. Fair only
  on molecules the network was not trained on: use
  ``--tail N`` with the ``--holdout N`` the checkpoint was trained with;
* ``ga``: the campaign's graph genetic algorithm, restricted to the pool: it proposes
  ``10 x batch`` molecules from the best measured ones, keeps those that are in the pool and not
  yet measured, and fills any shortfall with the unmeasured pool molecules most similar
  (Tanimoto) to its proposals.

Reported per method and seed (and plotted next to the JSON, ``.png``): oracle calls to find
10 of the top-1 % molecules (``null`` when the
budget ran out first) and the top-10 AUC of the PMO benchmark (mean over calls of the mean score
of the best 10 found so far, with scores min-max normalised over the pool).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

import chem  # noqa: F401  (registers the molecules domain)
from chem.featurize import MorganFingerprint
from chem.ga import GraphGAGenerator
from chem.molecules import canonical_smiles
from pipeline.acquisition import GreedyAcquisition, QLogNEIAcquisition, RandomAcquisition
from pipeline.objectives import Objective
from pipeline.protocols import GenerationContext, ScoredDesign
from pipeline.surrogates import PriorGPSurrogate, TanimotoGPSurrogate, TanimotoKernel
from pipeline.types import Candidate

METHODS = ("random", "greedy", "bo", "ga")
"""Default methods; ``bo_prior`` runs when asked for (it needs ``--prior-weights``)."""


def top10_auc(scores_in_order: np.ndarray, budget: int, lo: float, hi: float) -> float:
    """PMO top-10 AUC: mean over calls 1..budget of the mean normalised top-10 score so far."""
    normalised = (scores_in_order - lo) / (hi - lo)
    curve = []
    for n in range(1, budget + 1):
        best = np.sort(normalised[:n])[::-1][:10]
        curve.append(np.pad(best, (0, 10 - best.size)).mean())
    return float(np.mean(curve))


def run_method(method: str, seed: int, x: np.ndarray, scores: np.ndarray, smiles: list[str],
               objective: Objective, y: np.ndarray, budget: int, batch: int,
               initial: np.ndarray, x_full: np.ndarray,
               prior_mean: np.ndarray | None = None,
               bo_params: dict[str, Any] | None = None) -> list[int]:
    """One retrospective campaign; returns pool indices in the order they were measured.

    ``x`` are the pool's fingerprints without the bits no pool molecule sets (the surrogates'
    input), ``x_full`` all bits (to compare the GA's proposals with the pool), ``prior_mean``
    the pretrained model's predicted gap of each pool molecule (NaN where it has none),
    ``bo_params`` the qLogNEI settings (default: the campaign defaults).
    """
    measured = list(initial)
    rng = np.random.default_rng(seed)
    index_of = {s: i for i, s in enumerate(smiles)}
    ga = GraphGAGenerator(GraphGAGenerator.Params(population_size=30)) if method == "ga" else None
    kernel = TanimotoKernel()
    round_index = 0
    while len(measured) < budget:
        round_index += 1
        q = min(batch, budget - len(measured))
        free = np.setdiff1d(np.arange(len(smiles)), measured)
        if method == "random":
            picks = free[list(RandomAcquisition().select(x[free], q, objective=objective,
                                                         seed=int(rng.integers(2**31))).indices)]
        elif method in ("greedy", "bo", "bo_prior"):
            if method == "bo_prior":
                gp: Any = PriorGPSurrogate().fit(x[measured], y[measured], prior_x=x,
                                                 prior_values=prior_mean)
            else:
                gp = TanimotoGPSurrogate().fit(x[measured], y[measured])
            acq = GreedyAcquisition() if method == "greedy" else QLogNEIAcquisition(
                QLogNEIAcquisition.Params(**(bo_params or {})))
            sel = acq.select(x[free], q, objective=objective, seed=int(rng.integers(2**31)),
                             surrogate=gp, x_train=x[measured])
            picks = free[list(sel.indices)]
        else:
            assert ga is not None
            population = tuple(sorted(
                (ScoredDesign(smiles[i], smiles[i], float(scores[i])) for i in measured),
                key=lambda d: -d.score))
            proposals = ga.sample(10 * batch, context=GenerationContext(
                round_index, int(rng.integers(2**31)), population))
            taken = set(measured)
            chosen: list[int] = []
            for p in proposals:
                i = index_of.get(canonical_smiles(p.representation) or "")
                if i is not None and i not in taken and i not in chosen:
                    chosen.append(i)
                if len(chosen) == q:
                    break
            if len(chosen) < q:
                valid = [p for p in proposals if canonical_smiles(p.representation)]
                fp = MorganFingerprint()([Candidate(str(k), p.key, p.representation, 0, "ga")
                                          for k, p in enumerate(valid)])
                import torch

                with torch.no_grad():
                    sim = kernel.forward(torch.as_tensor(x_full[free]), torch.as_tensor(fp))
                nearest = sim.max(dim=1).values.numpy() if fp.size else rng.random(len(free))
                for j in np.argsort(-nearest):
                    if free[j] not in chosen:
                        chosen.append(int(free[j]))
                    if len(chosen) == q:
                        break
            picks = np.array(chosen[:q])
        measured += [int(i) for i in picks]
    return measured


def main() -> None:
    """Runs every method for every seed and writes JSON after each run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, required=True, help="CSV with smiles and gap_ev")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds first-seed .. first-seed + seeds - 1 (with --append: "
                             "add seeds to an earlier run)")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--pool-size", type=int, default=None,
                        help="random subsample of the pool (default: all rows)")
    parser.add_argument("--objective", choices=["max", "window"], default="max")
    parser.add_argument("--low", type=float, default=None)
    parser.add_argument("--high", type=float, default=None)
    parser.add_argument("--tail", type=int, default=None,
                        help="use only the last N rows of the pool (a checkpoint's holdout)")
    parser.add_argument("--prior-weights", type=Path, default=None,
                        help="property-model checkpoint for the bo_prior method")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--append", action="store_true",
                        help="keep the other methods' runs already in --json (same benchmark)")
    parser.add_argument("--bo-params", type=json.loads, default=None,
                        help='qLogNEI settings as JSON, e.g. \'{"max_similarity": 0.85}\'')
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()

    frame = pd.read_csv(args.pool, usecols=["smiles", "gap_ev"])
    if args.tail:
        frame = frame.iloc[-args.tail:].reset_index(drop=True)
    if args.pool_size:
        frame = frame.sample(n=args.pool_size, random_state=0).reset_index(drop=True)
    frame["key"] = [canonical_smiles(s) for s in frame["smiles"]]
    frame = frame.dropna(subset=["key"]).drop_duplicates("key").reset_index(drop=True)
    smiles = frame["key"].tolist()
    y = frame["gap_ev"].to_numpy(dtype=np.float64)
    objective = (Objective(property="gap_ev", goal="maximize") if args.objective == "max" else
                 Objective(property="gap_ev", goal="window", low=args.low, high=args.high))
    scores = objective.score(y)
    threshold = float(np.quantile(scores, 0.99))
    top = scores >= threshold
    x = MorganFingerprint()([Candidate(str(i), s, s, 0, "pool") for i, s in enumerate(smiles)])
    # bits no pool molecule sets add nothing to any Tanimoto similarity: dropping them leaves
    # every kernel value unchanged and makes the GP several times cheaper
    x_full, x = x, x[:, x.any(axis=0)]
    prior_mean = None
    if "bo_prior" in args.methods.split(","):
        if args.prior_weights is None:
            parser.error("method bo_prior needs --prior-weights")
        from chem.prior import PretrainedPaiNNPrior

        prior = PretrainedPaiNNPrior(PretrainedPaiNNPrior.Params(weights=str(args.prior_weights)))
        pool_cands = [Candidate(str(i), s, s, 0, "pool") for i, s in enumerate(smiles)]
        prior_mean = prior.predict(pool_cands)["gap_ev"][0]
        report_prior = {"weights": str(args.prior_weights),
                        "mae_gap_ev_on_pool": float(np.nanmean(np.abs(prior_mean - y)))}
    report: dict[str, Any] = {
        "pool": str(args.pool), "pool_size": len(smiles), "objective": objective.describe(),
        "top1pct_threshold_score": threshold, "n_top1pct": int(top.sum()),
        "budget": args.budget, "batch": args.batch, "seeds": args.seeds,
        "bo_params": QLogNEIAcquisition.Params(**(args.bo_params or {})).model_dump(),
        "expected_random_calls_to_10": 10 * len(smiles) / int(top.sum()),
        "runs": [],
    }
    if prior_mean is not None:
        report["prior"] = report_prior
    args.json.parent.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.append and args.json.is_file():
        earlier = json.loads(args.json.read_text())
        same = ("pool", "pool_size", "objective", "budget", "batch", "n_top1pct")
        differ = [k for k in same if earlier.get(k) != report[k]]
        if differ:
            parser.error(f"--append: {args.json} is another benchmark (differs in {differ})")
        redo = {(m, seed) for m in methods for seed in seeds}
        report["runs"] = [r for r in earlier["runs"] if (r["method"], r["seed"]) not in redo]
        report["seeds"] = len({r["seed"] for r in report["runs"]} | set(seeds))
        report.setdefault("prior", earlier.get("prior"))
    with Progress() as progress:
        bar = progress.add_task("retrospective campaigns", total=len(methods) * args.seeds)
        for seed in seeds:
            initial = np.random.default_rng(1000 + seed).choice(len(smiles), args.batch,
                                                                replace=False)
            for method in methods:
                start = time.perf_counter()
                order = run_method(method, seed, x, scores, smiles, objective, y, args.budget,
                                   args.batch, initial, x_full, prior_mean, args.bo_params)
                hits = np.cumsum(top[order])
                reached = np.flatnonzero(hits >= 10)
                report["runs"].append({
                    "method": method, "seed": seed,
                    "calls_to_10_top1pct": int(reached[0] + 1) if reached.size else None,
                    "top1pct_found": int(hits[-1]),
                    "top10_auc": top10_auc(scores[order], args.budget, float(scores.min()),
                                           float(scores.max())),
                    "best_gap_ev": float(y[order].max()), "wall_s": time.perf_counter() - start,
                    "top1pct_found_by_call": hits.tolist(),
                })
                args.json.write_text(json.dumps(report, indent=2))
                progress.advance(bar)
    summary = {}
    for method in dict.fromkeys(r["method"] for r in report["runs"]):
        runs = [r for r in report["runs"] if r["method"] == method]
        calls = [r["calls_to_10_top1pct"] for r in runs]
        found = [c for c in calls if c is not None]
        summary[method] = {
            "calls_to_10_top1pct": calls,
            "mean_calls_to_10_top1pct": float(np.mean(found)) if len(found) == len(calls)
            else None,
            "mean_top10_auc": float(np.mean([r["top10_auc"] for r in runs])),
            "mean_top1pct_found": float(np.mean([r["top1pct_found"] for r in runs])),
        }
    report["summary"] = summary
    args.json.write_text(json.dumps(report, indent=2))
    plot_curves(report, args.json.with_suffix(".png"))
    print(json.dumps(summary, indent=2))


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """Top-1 % molecules found against oracle calls, mean and range over seeds per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in report["runs"]):
        curves = np.array([r["top1pct_found_by_call"] for r in report["runs"]
                           if r["method"] == method], dtype=float)
        calls = np.arange(1, curves.shape[1] + 1)
        ax.plot(calls, curves.mean(0), label=method)
        ax.fill_between(calls, curves.min(0), curves.max(0), alpha=0.2)
    ax.axhline(10, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("oracle calls")
    ax.set_ylabel("top-1 % molecules found")
    ax.set_title(f"{report['objective']}, pool of {report['pool_size']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
