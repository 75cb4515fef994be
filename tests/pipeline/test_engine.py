"""Which result counts when a design has several: most trusted fidelity first."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from pipeline.engine import filter_report
from pipeline.metrics import campaign_totals, surrogate_error_metrics
from pipeline.ranking import ok_values_by_candidate, preferred_evaluations
from pipeline.store import EvaluationRecord
from pipeline.types import Evaluation, EvaluationStatus

TRUST = {"dft-fast": 0, "dft-standard": 1, "lab": 2}


def _rec(i: int, cid: str, value: float, fidelity: str, ok: bool = True) -> EvaluationRecord:
    status = EvaluationStatus.OK if ok else EvaluationStatus.FAILED
    evaluation = Evaluation(cid, "gap_ev", value if ok else float("nan"), "eV", fidelity,
                            status, "" if ok else "did not converge")
    return EvaluationRecord(i, evaluation, f"k{i}", datetime(2026, 1, 1, tzinfo=UTC))


def test_the_most_trusted_successful_result_counts_whatever_the_order() -> None:
    records = [_rec(1, "a", 5.0, "lab"), _rec(2, "a", 4.0, "dft-standard"),
               _rec(3, "a", 3.0, "dft-fast"), _rec(4, "b", 3.5, "dft-fast"),
               _rec(5, "b", 0.0, "lab", ok=False), _rec(6, "c", 0.0, "dft-fast", ok=False)]
    values = ok_values_by_candidate(records, TRUST)
    assert values == {"a": {"gap_ev": 5.0}, "b": {"gap_ev": 3.5}}  # a failed lab run loses
    assert ok_values_by_candidate(records[::-1], TRUST) == values
    preferred = preferred_evaluations(records, TRUST)
    assert preferred["a"]["gap_ev"].fidelity == "lab"
    assert preferred["c"]["gap_ev"].reason == "did not converge"


def test_unlisted_fidelities_rank_lowest_and_equals_keep_the_latest() -> None:
    records = [_rec(1, "a", 7.0, "someone-else"), _rec(2, "a", 4.0, "dft-fast")]
    assert ok_values_by_candidate(records, TRUST) == {"a": {"gap_ev": 4.0}}
    assert ok_values_by_candidate(records) == {"a": {"gap_ev": 4.0}}  # no trust: the latest


def test_surrogate_drift_is_flagged_when_errors_far_exceed_the_predicted_sigma() -> None:
    y = np.array([5.0, 6.0, 7.0, 8.0])
    calibrated = surrogate_error_metrics("gap_ev", y, y + np.array([0.3, -0.2, 0.1, -0.4]),
                                         np.full(4, 0.3))
    assert calibrated["surrogate_mae_gap_ev"] == pytest.approx(0.25)
    assert calibrated["surrogate_sigma_gap_ev"] == pytest.approx(0.3)
    assert calibrated["surrogate_zrms_gap_ev"] == pytest.approx(np.sqrt(0.30 / 4) / 0.3)
    assert calibrated["surrogate_drift_gap_ev"] == 0.0
    # errors of about 1.5 eV against a predicted sigma of 0.5 eV: three times, drifted
    drifted = surrogate_error_metrics("gap_ev", y, y + 1.5, np.full(4, 0.5))
    assert drifted["surrogate_zrms_gap_ev"] == pytest.approx(3.0)
    assert drifted["surrogate_drift_gap_ev"] == 1.0
    # large errors that the model predicted (sigma 2.8 eV) are honest, not drift
    honest = surrogate_error_metrics("gap_ev", y, y + 1.58, np.full(4, 2.8))
    assert honest["surrogate_drift_gap_ev"] == 0.0
    # two results are too few to call it
    few = surrogate_error_metrics("gap_ev", y[:2], y[:2] + 1.5, np.full(2, 0.5))
    assert few["surrogate_drift_gap_ev"] == 0.0


def test_filter_report_lists_every_rejecting_filter() -> None:
    from pipeline.types import Candidate, FilterResult

    class Short:
        def __call__(self, cands):
            return FilterResult(tuple(len(c.key) < 4 for c in cands),
                                tuple("" if len(c.key) < 4 else "too long" for c in cands))

    class NoO:
        def __call__(self, cands):
            return FilterResult(tuple("O" not in c.key for c in cands),
                                tuple("" if "O" not in c.key else "has O" for c in cands))

    designs = [Candidate(str(i), s, s, 0, "t") for i, s in enumerate(["CC", "CCCO", "CO"])]
    report = filter_report([("short", Short()), ("no_o", NoO())], designs)
    assert report == [[], [("short", "too long"), ("no_o", "has O")], [("no_o", "has O")]]


def test_campaign_totals_sum_counts_and_keep_the_latest_bests() -> None:
    rounds = [{"oracle_calls": 10.0, "oracle_cost": 10.0, "hits_total": 1.0, "best_objective": 0.5,
               "seconds_round_total": 60.0, "surrogate_drift_gap_ev": 0.0},
              {"oracle_calls": 8.0, "oracle_cost": float("nan"), "hits_total": 4.0,
               "best_objective": 0.9, "seconds_round_total": 90.0, "surrogate_drift_gap_ev": 1.0}]
    totals = campaign_totals(rounds, "gap_ev")
    assert totals == {"rounds_done": 2.0, "oracle_calls_total": 18.0, "oracle_cost_total": 10.0,
                      "wall_seconds_total": 150.0, "hits_total": 4.0, "best_objective": 0.9,
                      "surrogate_drift_rounds": 1.0}
    assert campaign_totals([], "gap_ev") == {}
