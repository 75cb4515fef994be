"""Plots of the review page, as PNG bytes: best so far against oracle calls, a property's
distribution per round, predicted against measured, and the Pareto front."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from pipeline.objectives import Objective


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _empty(message: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#666")
    ax.set_axis_off()
    return _png(fig)


def best_so_far_plot(scores: Sequence[float], hits: Sequence[bool], objective: Objective
                     ) -> bytes:
    """The best objective score after each oracle result, in the order they came.

    Args:
        scores: objective score of each ok oracle result of the objective, in time order
            (higher is better).
        hits: whether each result was a hit.
        objective: the campaign's objective (for the axis label).
    """
    if not scores:
        return _empty("no oracle results yet")
    best, running = [], -math.inf
    for s in scores:
        running = max(running, s) if math.isfinite(s) else running
        best.append(running)
    calls = list(range(1, len(scores) + 1))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.scatter(calls, scores, s=12, alpha=0.45, color="tab:blue", label="each result")
    ax.step(calls, best, where="post", color="tab:orange", label="best so far")
    hit_calls = [c for c, h in zip(calls, hits, strict=True) if h]
    if hit_calls:
        ax.scatter(hit_calls, [scores[c - 1] for c in hit_calls], s=30, marker="*",
                   color="tab:green", label="hit", zorder=3)
    ax.set_xlabel("oracle results")
    ax.set_ylabel(f"objective score ({objective.describe()})", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def distribution_plot(values_by_round: dict[int, list[float]], prop: str, unit: str,
                      objective: Objective | None = None) -> bytes:
    """Box plots of a property's oracle values per round (the target shaded when the property
    is the objective's)."""
    rounds = sorted(r for r, v in values_by_round.items() if v)
    if not rounds:
        return _empty(f"no oracle values of {prop} yet")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.boxplot([values_by_round[r] for r in rounds], positions=rounds, widths=0.6)
    for r in rounds:
        ax.scatter([r] * len(values_by_round[r]), values_by_round[r], s=8, alpha=0.5,
                   color="tab:blue")
    if objective is not None and objective.property == prop:
        if objective.goal == "window" and objective.low is not None and objective.high is not None:
            ax.axhspan(objective.low, objective.high, color="tab:green", alpha=0.15)
        elif objective.threshold is not None:
            ax.axhline(objective.threshold, color="tab:green", ls="--")
    ax.set_xlabel("round")
    ax.set_ylabel(f"{prop} ({unit})")
    return _png(fig)


def parity_plot(predicted: Sequence[float], std: Sequence[float], measured: Sequence[float],
                prop: str, unit: str) -> bytes:
    """Predicted (at selection, with 90 % error bars) against measured."""
    if not measured:
        return _empty(f"no {prop} measured after a prediction yet")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bars = [1.645 * s for s in std]
    ax.errorbar(measured, predicted, yerr=bars, fmt="o", ms=4, alpha=0.7, elinewidth=0.8)
    low = min(min(measured), min(p - b for p, b in zip(predicted, bars, strict=True)))
    high = max(max(measured), max(p + b for p, b in zip(predicted, bars, strict=True)))
    ax.plot([low, high], [low, high], color="grey", lw=0.8)
    mae = sum(abs(p - m) for p, m in zip(predicted, measured, strict=True)) / len(measured)
    inside = sum(abs(p - m) <= b for p, m, b in zip(predicted, measured, bars, strict=True))
    ax.set_title(f"MAE {mae:.3g} {unit}; {inside}/{len(measured)} inside 90 %", fontsize=9)
    ax.set_xlabel(f"measured {prop} ({unit})")
    ax.set_ylabel(f"predicted {prop} ({unit})")
    return _png(fig)


def pareto_plot(x: Sequence[float], y: Sequence[float], on_front: Sequence[bool],
                x_name: str, y_name: str) -> bytes:
    """Measured designs in the plane of two objectives, the Pareto front joined."""
    if not x:
        return _empty("no design measured on both objectives yet")
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.scatter(x, y, s=14, alpha=0.5, color="tab:blue", label="measured")
    front = sorted((a, b) for a, b, f in zip(x, y, on_front, strict=True) if f)
    if front:
        ax.plot([a for a, _ in front], [b for _, b in front], "o-", color="tab:red", ms=5,
                label="Pareto front")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.legend(fontsize=8)
    return _png(fig)
