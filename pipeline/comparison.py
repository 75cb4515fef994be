"""Campaigns compared from what MLflow recorded: cost, bests, first hit, hit rate, area under the
best-so-far curve, surrogate error and wall time per stage, and a plot of the curves.

Every number comes from the MLflow runs the campaign flow writes (:mod:`pipeline.tracking`):
the campaign's parent run carries its totals after each round (step = round) and the round runs
carry the round metrics. The curves therefore have one point per round: "oracle calls to the
first hit" is the number of calls made by the end of the first round that had a hit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from pipeline.tracking import CAMPAIGN_TAG, ROUND_TAG


@dataclass
class CampaignCurve:
    """One campaign as MLflow recorded it.

    Attributes:
        name: campaign.
        tags: the parent run's ``invdes.*`` tags (domain, generator, surrogate, ...).
        objective: the objective's property and goal (``gap_ev window``).
        calls: oracle calls so far after each round, (n_rounds,).
        cost: oracle cost so far after each round, (n_rounds,).
        best: best objective score so far after each round (higher is better), (n_rounds,).
        hits: hits so far after each round, (n_rounds,).
        results: oracle results so far after each round, (n_rounds,).
        rounds: the round runs' metrics, in round order.
    """

    name: str
    tags: dict[str, str]
    objective: str
    calls: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    hits: list[float] = field(default_factory=list)
    results: list[float] = field(default_factory=list)
    rounds: list[dict[str, float]] = field(default_factory=list)


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def read_campaign(client: MlflowClient, name: str) -> CampaignCurve:
    """The campaign's curves and round metrics from MLflow.

    Raises:
        LookupError: no MLflow run of that campaign (naming the ones there are).
    """
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, filter_string=(
        f"tags.`{CAMPAIGN_TAG}` = '{name}' and tags.`{ROUND_TAG}` = 'campaign'"))
    if not parents:
        known = sorted({r.data.tags.get(CAMPAIGN_TAG, "") for r in client.search_runs(
            experiments, filter_string=f"tags.`{ROUND_TAG}` = 'campaign'")} - {""})
        raise LookupError(f"no MLflow record of campaign {name!r}; recorded: "
                          f"{', '.join(known) or 'none'}")
    parent = parents[0]
    params = parent.data.params
    objective = f"{params.get('objective.property', '?')} {params.get('objective.goal', '')}"
    curve = CampaignCurve(name, {k: v for k, v in parent.data.tags.items()
                                 if k.startswith("invdes.")}, objective.strip())
    series = {key: _history(client, parent.info.run_id, key)
              for key in ("oracle_calls_total", "oracle_cost_total", "best_objective",
                          "hits_total", "oracle_results_total")}
    for step in sorted(series["oracle_calls_total"]):
        curve.calls.append(series["oracle_calls_total"][step])
        curve.cost.append(series["oracle_cost_total"].get(step, math.nan))
        curve.best.append(series["best_objective"].get(step, math.nan))
        curve.hits.append(series["hits_total"].get(step, 0.0))
        curve.results.append(series["oracle_results_total"].get(step, math.nan))
    children = client.search_runs([parent.info.experiment_id], filter_string=(
        f"tags.`{CAMPAIGN_TAG}` = '{name}' and tags.`{ROUND_TAG}` != 'campaign'"))
    by_round = sorted(children, key=lambda r: int(r.data.tags.get(ROUND_TAG, "0")))
    curve.rounds = [dict(r.data.metrics) for r in by_round]
    return curve


def area_under_best(calls: Sequence[float], best: Sequence[float]) -> float:
    """Mean best score over the oracle calls: the area under the best-so-far step curve divided
    by the calls made (a campaign that finds its best early scores higher). NaN without
    results."""
    points = [(c, b) for c, b in zip(calls, best, strict=True) if math.isfinite(b)]
    if not points or points[-1][0] <= 0:
        return math.nan
    area, previous_calls, previous_best = 0.0, None, None
    for c, b in points:
        if previous_calls is not None and previous_best is not None:
            area += (c - previous_calls) * previous_best
        previous_calls, previous_best = c, b
    first_calls = points[0][0]
    span = points[-1][0] - first_calls
    return area / span if span > 0 else points[-1][1]


def summary(curve: CampaignCurve) -> dict[str, Any]:
    """The side-by-side numbers of one campaign."""
    first_hit = next((c for c, h in zip(curve.calls, curve.hits, strict=True) if h > 0), None)
    prop = curve.objective.split()[0]
    maes = [r[f"surrogate_mae_{prop}"] for r in curve.rounds
            if math.isfinite(r.get(f"surrogate_mae_{prop}", math.nan))]
    stages: dict[str, float] = {}
    for r in curve.rounds:
        for key, value in r.items():
            if key.startswith("seconds_") and math.isfinite(value):
                stages[key.removeprefix("seconds_")] = stages.get(
                    key.removeprefix("seconds_"), 0.0) + value
    results = curve.results[-1] if curve.results else math.nan
    hits = curve.hits[-1] if curve.hits else 0.0
    return {
        "campaign": curve.name, "objective": curve.objective,
        "domain": curve.tags.get("invdes.domain"), "generator": curve.tags.get("invdes.generator"),
        "surrogate": curve.tags.get("invdes.surrogate"),
        "acquisition": curve.tags.get("invdes.acquisition"),
        "level_of_theory": curve.tags.get("invdes.level"),
        "rounds": len(curve.calls),
        "oracle_calls": curve.calls[-1] if curve.calls else 0.0,
        "oracle_cost": curve.cost[-1] if curve.cost else 0.0,
        "best_objective": curve.best[-1] if curve.best else math.nan,
        "calls_to_first_hit": first_hit,
        "hits": hits,
        "hit_rate": hits / results if results and math.isfinite(results) else math.nan,
        "area_under_best": area_under_best(curve.calls, curve.best),
        "surrogate_mae": sum(maes) / len(maes) if maes else math.nan,
        "wall_seconds_by_stage": stages,
    }


def comparison_plot(curves: Sequence[CampaignCurve], path: Path) -> Path:
    """Best score so far against oracle calls and against oracle cost, one line a campaign."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_calls, by_cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    for curve in curves:
        by_calls.step(curve.calls, curve.best, where="post", marker="o", ms=3, label=curve.name)
        by_cost.step(curve.cost, curve.best, where="post", marker="o", ms=3, label=curve.name)
    by_calls.set_xlabel("oracle calls")
    by_cost.set_xlabel("oracle cost")
    for ax in (by_calls, by_cost):
        ax.set_ylabel("best objective score so far")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
