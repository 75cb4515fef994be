"""Which result counts when a design has several: most trusted fidelity first."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.engine import ok_values_by_candidate, preferred_evaluations
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
