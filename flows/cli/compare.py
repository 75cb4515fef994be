"""``invdes compare``: campaigns side by side, from what MLflow recorded."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import fail, fitted_table, out
from pipeline.home import Home


def compare(
    campaigns: Annotated[list[str], typer.Argument(help="Campaign names.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="PNG: best score so far against oracle calls and cost, a line a campaign.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI (default: the home's SQLite database).")] = None,
) -> None:
    """Compare campaigns: oracle calls and cost, best objective score, calls to the first hit,
    hit rate, area under the best-so-far curve (its mean over the calls), surrogate error and
    wall time per stage, read from their MLflow runs (one point per round)."""
    from mlflow.tracking import MlflowClient

    from pipeline.comparison import comparison_plot, read_campaign, summary

    client = MlflowClient(tracking_uri=tracking_uri or Home.resolve().mlflow_uri)
    try:
        curves = [read_campaign(client, name) for name in campaigns]
    except LookupError as exc:
        fail(str(exc))
    rows = [summary(c) for c in curves]
    objectives = {r["objective"] for r in rows}
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        comparison_plot(curves, plot)
    if as_json:
        clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                  for k, v in r.items()} for r in rows]
        sys.stdout.write(json.dumps(clean, indent=2) + "\n")
        return

    def num(v: object, fmt: str = ".4g") -> str:
        return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else \
            format(v, fmt)

    stages = sorted({s for r in rows for s in r["wall_seconds_by_stage"]})
    names = [("", 0), *((r["campaign"], 0) for r in rows)]
    lines = [
        ("objective", [r["objective"] for r in rows]),
        ("generator", [r["generator"] or "-" for r in rows]),
        ("surrogate", [r["surrogate"] or "-" for r in rows]),
        ("acquisition", [r["acquisition"] or "-" for r in rows]),
        ("level of theory", [r["level_of_theory"] or "-" for r in rows]),
        ("rounds", [str(r["rounds"]) for r in rows]),
        ("oracle calls", [num(r["oracle_calls"], ".0f") for r in rows]),
        ("oracle cost", [num(r["oracle_cost"], ".4g") for r in rows]),
        ("best objective score", [num(r["best_objective"]) for r in rows]),
        ("calls to the first hit", [num(r["calls_to_first_hit"], ".0f") for r in rows]),
        ("hits", [num(r["hits"], ".0f") for r in rows]),
        ("hit rate", [num(r["hit_rate"], ".3f") for r in rows]),
        ("area under best so far", [num(r["area_under_best"]) for r in rows]),
        ("surrogate MAE (objective)", [num(r["surrogate_mae"], ".3g") for r in rows]),
        *((f"wall s: {s}", [num(r["wall_seconds_by_stage"].get(s), ".1f") for r in rows])
          for s in stages),
    ]
    out.print(fitted_table("Campaigns compared (from MLflow)", names,
                           [[label, *values] for label, values in lines]))
    if len(objectives) > 1:
        out.print("The campaigns have different objectives: their scores do not compare.",
                  highlight=False)
    if plot is not None:
        out.print(f"plot: {plot}", highlight=False)
