"""Round and campaign metrics: how well the surrogate predicted the new results (and whether
it drifted), how well earlier rounds predicted the lab's results, and a campaign's totals and
bests over its rounds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from pipeline.store import CandidateRecord, EvaluationRecord, Store
from pipeline.types import Prediction

DRIFT_Z_RMS = 2.0
"""A surrogate has drifted when the root mean square of its standardised errors on a round's new
results, |y - mean| / std, exceeds this (a calibrated model gives about 1)..."""
DRIFT_MIN_RESULTS = 3
"""... on at least this many results (for a calibrated Gaussian model the chance of a false
alarm on 3 results is 0.7 %, less on more)."""

TOTALS = {"oracle_calls": "oracle_calls_total", "oracle_results": "oracle_results_total",
          "oracle_cost": "oracle_cost_total", "oracle_failures": "oracle_failures_total",
          "n_generated": "n_generated_total", "n_pool": "n_pool_total",
          "seconds_round_total": "wall_seconds_total"}
"""Round metrics that add up over a campaign, and the name of their sum in
:func:`campaign_totals`."""
LATEST = ("hits_total", "labels_total", "feasible_total", "pareto_front_size", "best_objective",
          "best_value")
"""Round metrics that already describe the whole campaign (the latest round's value counts)."""


def surrogate_error_metrics(prop: str, y: npt.NDArray[np.float64], mean: npt.NDArray[np.float64],
                            std: npt.NDArray[np.float64]) -> dict[str, float]:
    """How well predictions made before the oracle ran matched its results.

    Args:
        prop: the property (metric names end in it).
        y: oracle values, (n,).
        mean: predicted means, (n,), same unit.
        std: predicted standard deviations, (n,).

    Returns:
        ``surrogate_mae_<prop>`` (mean absolute error), ``surrogate_sigma_<prop>`` (root mean
        square of the predicted std), ``surrogate_coverage90_<prop>`` (share within the 90 %
        interval), ``surrogate_nll_<prop>`` (Gaussian negative log likelihood),
        ``surrogate_zrms_<prop>`` (root mean square of |y - mean| / std, about 1 when
        calibrated) and ``surrogate_drift_<prop>`` (1 when the errors have drifted far beyond
        the predicted uncertainty: z RMS above :data:`DRIFT_Z_RMS` on at least
        :data:`DRIFT_MIN_RESULTS` results, else 0).
    """
    std = np.maximum(std, 1e-12)
    z = np.abs(y - mean) / std
    z_rms = float(np.sqrt(np.mean(z**2)))
    return {
        f"surrogate_mae_{prop}": float(np.mean(np.abs(y - mean))),
        f"surrogate_sigma_{prop}": float(np.sqrt(np.mean(std**2))),
        f"surrogate_coverage90_{prop}": float(np.mean(z <= 1.6448536)),
        f"surrogate_nll_{prop}": float(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5 * z**2)),
        f"surrogate_zrms_{prop}": z_rms,
        f"surrogate_drift_{prop}": float(len(y) >= DRIFT_MIN_RESULTS and z_rms > DRIFT_Z_RMS),
    }


def campaign_totals(rounds: Sequence[Mapping[str, float]], objective_property: str
                    ) -> dict[str, float]:
    """A campaign's totals and bests after its recorded rounds (for comparing campaigns).

    Args:
        rounds: the metrics of each recorded round, in round order.
        objective_property: the objective (its drift flag is counted).

    Returns:
        The sums of :data:`TOTALS` under their total names, the latest round's value of each of
        :data:`LATEST`, ``rounds_done`` and ``surrogate_drift_rounds`` (rounds whose objective
        surrogate drifted); empty without rounds.
    """
    if not rounds:
        return {}
    out: dict[str, float] = {"rounds_done": float(len(rounds))}
    for key, total in TOTALS.items():
        values = [m[key] for m in rounds if m.get(key) is not None and math.isfinite(m[key])]
        if values:
            out[total] = float(sum(values))
    last = rounds[-1]
    out.update({k: float(last[k]) for k in LATEST if last.get(k) is not None})
    drift = f"surrogate_drift_{objective_property}"
    out["surrogate_drift_rounds"] = float(sum(bool(m.get(drift)) for m in rounds))
    return out


def lab_prediction_metrics(prop: str, y: npt.NDArray[np.float64], mean: npt.NDArray[np.float64],
                           std: npt.NDArray[np.float64]) -> dict[str, float]:
    """How well the surrogate had predicted results that came back from outside (the lab), as
    :func:`surrogate_error_metrics` measures it: ``lab_prediction_mae_<prop>``,
    ``lab_prediction_coverage90_<prop>`` (share within the 90 % interval) and
    ``lab_prediction_n_<prop>``."""
    errors = surrogate_error_metrics(prop, y, mean, std)
    return {f"lab_prediction_mae_{prop}": errors[f"surrogate_mae_{prop}"],
            f"lab_prediction_coverage90_{prop}": errors[f"surrogate_coverage90_{prop}"],
            f"lab_prediction_n_{prop}": float(len(y))}


def predicted_and_measured(
    prop: str, evals: Sequence[EvaluationRecord], preds: Mapping[str, Mapping[str, Prediction]]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Measured values of ``prop`` (ok results) and the predictions made for them at selection:
    (y, mean, std), each (n,); None when no result has a prediction."""
    pairs = [(e.evaluation.value, preds[e.evaluation.candidate_id][prop]) for e in evals
             if e.evaluation.property == prop and e.evaluation.ok
             and prop in preds.get(e.evaluation.candidate_id, {})]
    if not pairs:
        return None
    return (np.array([p[0] for p in pairs]), np.array([p[1].mean for p in pairs]),
            np.array([p[1].std for p in pairs]))


def surrogate_errors(properties: Sequence[str], records: Sequence[CandidateRecord],
                     evals: Sequence[EvaluationRecord]) -> dict[str, float]:
    """Error of the predictions made at selection time (before refitting) on a round's new
    results (:func:`surrogate_error_metrics` per property)."""
    preds = {r.candidate.id: r.predictions for r in records}
    out: dict[str, float] = {}
    for prop in properties:
        arrays = predicted_and_measured(prop, evals, preds)
        if arrays is not None:
            out.update(surrogate_error_metrics(prop, *arrays))
    return out


def lab_metrics(store: Store, campaign: str, round_index: int, properties: Sequence[str]
                ) -> dict[str, float]:
    """Results imported from outside (the lab) that a round's surrogate could learn from
    (``lab_results_used``: imported before the round started), and how well the surrogates
    of earlier rounds had predicted those imported since the previous round started (their
    predictions at selection; :func:`lab_prediction_metrics`)."""
    this = store.round(campaign, round_index)
    if this is None:
        return {}
    previous = store.round(campaign, round_index - 1) if round_index else None
    imported = [e for e in store.evaluations(campaign)
                if e.evaluation.ok and "file_sha256" in e.evaluation.provenance
                and e.created_at < this.started_at]
    out = {"lab_results_used": float(len(imported))}
    new = [e for e in imported if previous is None or e.created_at >= previous.started_at]
    if not new:
        return out
    preds = {r.candidate.id: r.predictions
             for r in store.candidates(campaign, ids={e.evaluation.candidate_id for e in new})}
    for prop in properties:
        arrays = predicted_and_measured(prop, new, preds)
        if arrays is not None:
            out.update(lab_prediction_metrics(prop, *arrays))
    return out
