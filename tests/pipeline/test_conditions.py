"""Generator conditions: parsing, probabilities of meeting a window, selection scores."""

from __future__ import annotations

import math

import pytest

from pipeline.conditions import Condition, parse_condition, selection_score


def test_parse_points_and_windows_with_clear_errors() -> None:
    names = ["gap_ev", "frontier_overlap"]
    assert parse_condition("frontier_overlap<=0.3", names) == Condition("frontier_overlap", "<=",
                                                                       0.3)
    assert parse_condition(" gap_ev = 6.5 ", names) == Condition("gap_ev", "=", 6.5)
    assert str(parse_condition("gap_ev>=4", names)) == "gap_ev>=4"
    with pytest.raises(ValueError, match="unknown property 'homo_pr'; known: gap_ev"):
        parse_condition("homo_pr=2", names)
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_condition("gap_ev<6", names)


def test_probability_and_score() -> None:
    below = Condition("x", "<=", 1.0)
    assert below.probability(1.0, 0.5) == pytest.approx(0.5)
    assert below.probability(0.0, 0.5) == pytest.approx(0.97725, abs=1e-5)
    assert Condition("x", ">=", 1.0).probability(0.0, 0.5) == pytest.approx(0.02275, abs=1e-5)
    assert below.probability(2.0, 0.0) == 0.0 and below.met(0.5)
    with pytest.raises(ValueError, match="point target"):
        Condition("x", "=", 1.0).probability(1.0, 0.1)
    point = Condition("gap_ev", "=", 6.0)
    score = selection_score([point, below], {"gap_ev": 6.2, "x": 1.0}, {"gap_ev": 0.1, "x": 0.5},
                            {"gap_ev": 0.1})
    assert score == pytest.approx(2.0 + math.log(2.0))
    assert selection_score([point], {"gap_ev": math.nan}, {}, {}) == math.inf
