"""What people look at: the ranked table as CSV/JSON text and the campaign progress plot."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from pipeline.objectives import Objective
from pipeline.store import RoundRecord


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text of table rows (empty cells for missing values)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def rows_to_json(rows: Sequence[dict[str, Any]]) -> str:
    """JSON text of table rows, as a list of objects (missing values are null)."""
    return json.dumps(list(rows), indent=2)


def progress_plot(
    path: Path, rounds: Sequence[RoundRecord], values_by_round: dict[int, list[float]],
    objective: Objective, title: str,
) -> Path:
    """Plots the oracle values of each round against the target, and hits per round.

    Args:
        path: PNG file to write.
        rounds: the campaign's rounds with their metrics.
        values_by_round: round -> ok oracle values of the objective property.
        objective: the target (its window is shaded).
        title: plot title.
    """
    fig, (ax_values, ax_hits) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r, values in sorted(values_by_round.items()):
        ax_values.scatter([r] * len(values), values, s=18, alpha=0.7, color="tab:blue")
    if objective.goal == "window":
        assert objective.low is not None and objective.high is not None
        ax_values.axhspan(objective.low, objective.high, color="tab:green", alpha=0.2,
                          label=f"target {objective.low}-{objective.high}")
        ax_values.legend(loc="best")
    elif objective.threshold is not None:
        ax_values.axhline(objective.threshold, color="tab:green", ls="--", label="hit threshold")
        ax_values.legend(loc="best")
    ax_values.set_xlabel("round")
    ax_values.set_ylabel(f"oracle {objective.property}")
    ax_values.set_title("oracle results per round")
    idx = [r.round_index for r in rounds if r.metrics]
    hits = [r.metrics.get("hits_total", math.nan) for r in rounds if r.metrics]
    best = [r.metrics.get("best_objective", math.nan) for r in rounds if r.metrics]
    ax_hits.plot(idx, hits, marker="o", label="hits so far")
    ax_hits.set_xlabel("round")
    ax_hits.set_ylabel("hits so far")
    twin = ax_hits.twinx()
    twin.plot(idx, best, marker="s", color="tab:orange", label="best objective score")
    twin.set_ylabel("best objective score")
    lines = ax_hits.get_lines() + twin.get_lines()
    ax_hits.legend(lines, [line.get_label() for line in lines], loc="lower right")
    ax_hits.set_title("campaign progress")
    for ax in (ax_values, ax_hits):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
