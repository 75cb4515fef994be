"""Ranking a campaign's candidates: the results that count, hits, the Pareto front and the
ranked table that the command line, MLflow and the review page show."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.config import CampaignConfig
from pipeline.registry import DOMAINS
from pipeline.store import CandidateRecord, EvaluationRecord, Store
from pipeline.types import CandidateStatus, Evaluation


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    """One row of the ranked candidates table.

    Attributes:
        rank: 1 is best.
        record: the stored candidate.
        oracle: property -> oracle value (NaN where failed or not measured).
        score: objective score from the oracle value, else from the predicted mean, else NaN.
        hit: whether the oracle value meets the target.
        reason: why the oracle failed, when it did.
        fidelity: property -> fidelity of the value in ``oracle``.
    """

    rank: int
    record: CandidateRecord
    oracle: dict[str, float]
    score: float
    hit: bool
    reason: str = ""
    fidelity: dict[str, str] = field(default_factory=dict)



def preferred_evaluations(
    records: Sequence[EvaluationRecord], trust: Mapping[str, int] | None = None
) -> dict[str, dict[str, Evaluation]]:
    """Candidate id -> property -> the result that counts.

    That is the successful result of the most trusted fidelity (``trust``: fidelity -> level,
    higher is more trusted; unlisted fidelities rank lowest; among equals the latest), else
    the latest failed one.
    """
    levels = trust or {}
    out: dict[str, dict[str, Evaluation]] = {}

    def rank(e: Evaluation) -> tuple[bool, int]:
        return e.ok, levels.get(e.fidelity, -1)

    for r in records:
        e = r.evaluation
        mine = out.setdefault(e.candidate_id, {})
        if e.property not in mine or rank(e) >= rank(mine[e.property]):
            mine[e.property] = e
    return out


def ok_values_by_candidate(
    records: Sequence[EvaluationRecord], trust: Mapping[str, int] | None = None
) -> dict[str, dict[str, float]]:
    """Candidate id -> property -> value of the successful results that count (see
    :func:`preferred_evaluations`); candidates without any are left out."""
    out: dict[str, dict[str, float]] = {}
    for cid, props in preferred_evaluations(records, trust).items():
        values = {p: e.value for p, e in props.items() if e.ok}
        if values:
            out[cid] = values
    return out


def is_feasible(config: CampaignConfig, values: dict[str, float]) -> bool:
    """Whether measured values meet every outcome constraint of the campaign."""
    return all(bool(c.satisfied(values.get(c.property, math.nan))) for c in config.constraints)


def is_hit(config: CampaignConfig, values: dict[str, float]) -> bool:
    """Whether measured values meet every objective's target and every constraint."""
    return all(bool(o.is_hit(values.get(o.property, math.nan))) for o in config.objectives()) \
        and is_feasible(config, values)


def non_dominated(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Rows of ``scores`` (n, k), higher better, that no other row dominates."""
    n = scores.shape[0]
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        better_eq = (scores >= scores[i]).all(axis=1)
        strictly = (scores > scores[i]).any(axis=1)
        keep[i] = not bool((better_eq & strictly).any())
    return keep


def pareto_front(config: CampaignConfig, measured: dict[str, dict[str, float]]) -> set[str]:
    """Ids of the measured candidates that meet the constraints and are Pareto-optimal in the
    objective scores (every measured feasible candidate when there is one objective only)."""
    objectives = config.objectives()
    rows = {cid: v for cid, v in measured.items()
            if is_feasible(config, v) and all(o.property in v for o in objectives)}
    if not rows:
        return set()
    ids = list(rows)
    scores = np.array([[float(o.score(rows[c][o.property])) for o in objectives] for c in ids])
    return {c for c, keep in zip(ids, non_dominated(scores), strict=True) if keep}


def rank_candidates(store: Store, campaign: str, config: CampaignConfig) -> list[RankedCandidate]:
    """See :meth:`CampaignEngine.ranked`; usable without building the components."""
    objective = config.objective
    records = store.evaluations(campaign)
    trust = config.trust_levels()
    evals = preferred_evaluations(records, trust)
    front = (pareto_front(config, ok_values_by_candidate(records, trust)) if config.pareto_with
             else set())
    rows: list[tuple[tuple[float, float, float], CandidateRecord, dict[str, Evaluation], float,
                     bool, str]] = []
    for rec in store.candidates(campaign):
        if rec.status is CandidateStatus.REJECTED:
            continue
        mine = evals.get(rec.candidate.id, {})
        measured = mine.get(objective.property)
        reason = next((e.reason for e in mine.values() if not e.ok), "")
        if measured is not None and measured.ok:
            values = {p: e.value for p, e in mine.items() if e.ok}
            score = float(objective.score(measured.value))
            hit = is_hit(config, values)
            tier = 0.0 if is_feasible(config, values) else 0.5
            if config.pareto_with and rec.candidate.id not in front:
                tier += 0.25  # with several objectives, the Pareto front comes first
        elif measured is not None:
            score, hit, tier = math.nan, False, 2.0
        elif objective.property in rec.predictions:
            score = float(objective.score(rec.predictions[objective.property].mean))
            hit, tier = False, 1.0
        else:
            score, hit, tier = math.nan, False, 1.5
        sort_score = -score if math.isfinite(score) else math.inf
        rows.append(((tier, sort_score, rec.candidate.round_index), rec, mine, score, hit, reason))
    rows.sort(key=lambda r: r[0])
    return [
        RankedCandidate(rank=i + 1, record=rec, oracle={p: e.value for p, e in mine.items()},
                        score=score, hit=hit, reason=reason,
                        fidelity={p: e.fidelity for p, e in mine.items()})
        for i, (_k, rec, mine, score, hit, reason) in enumerate(rows)
    ]


def ranked_rows(ranked: Sequence[RankedCandidate], config: CampaignConfig,
                properties: Sequence[str]) -> list[dict[str, Any]]:
    """Flat rows of the ranked table (for CSV, JSON and MLflow artifacts).

    Each row: ``rank``, ``id``, the representation (``smiles`` for molecules; ``design``, the
    canonical key, and ``cif`` for crystals), ``round``, ``status``,
    ``origin``, ``score``, ``hit``, then for each property ``<p>_pred_mean``, ``<p>_pred_std`` and
    ``<p>`` (the oracle value), and ``reason`` when the oracle failed.
    """
    rep = DOMAINS.build(config.domain).label
    out = []
    for r in ranked:
        c = r.record.candidate
        design = {} if rep == "smiles" else {"design": c.key}  # a CIF is no table cell
        row: dict[str, Any] = {
            "rank": r.rank, "id": c.id, **design, rep: c.representation, "round": c.round_index,
            "status": r.record.status.value, "origin": c.origin,
            "score": _none_if_nan(r.score), "hit": r.hit,
        }
        for p in properties:
            pred = r.record.predictions.get(p)
            row[f"{p}_pred_mean"] = None if pred is None else _none_if_nan(pred.mean)
            row[f"{p}_pred_std"] = None if pred is None else _none_if_nan(pred.std)
            row[p] = _none_if_nan(r.oracle.get(p, math.nan))
        row["reason"] = r.reason
        out.append(row)
    return out


def _none_if_nan(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)
