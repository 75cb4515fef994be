from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.objectives import Objective


def test_window_score_is_one_at_centre_zero_on_edges_negative_outside() -> None:
    obj = Objective(property="gap_ev", goal="window", low=4.0, high=6.0)
    np.testing.assert_allclose(obj.score([5.0, 4.0, 6.0, 7.0]), [1.0, 0.0, 0.0, -3.0])
    assert obj.is_hit([3.99, 4.0, 5.5, 6.0, 6.01, np.nan]).tolist() == [
        False, True, True, True, False, False]


def test_maximize_and_minimize_scores_and_thresholds() -> None:
    up = Objective(property="gap_ev", goal="maximize", threshold=8.0)
    down = Objective(property="lumo_ev", goal="minimize", threshold=-1.0)
    np.testing.assert_allclose(up.score([1.0, 9.0]), [1.0, 9.0])
    np.testing.assert_allclose(down.score([1.0, -2.0]), [-1.0, 2.0])
    assert up.is_hit([7.9, 8.0]).tolist() == [False, True]
    assert down.is_hit([-0.5, -1.5]).tolist() == [False, True]
    assert not Objective(property="x", goal="maximize").is_hit([1e9]).any()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"goal": "window", "low": 5.0}, "needs both 'low' and 'high'"),
        ({"goal": "window", "low": 5.0, "high": 4.0}, "low < high"),
        ({"goal": "maximize", "low": 1.0}, "are for goal 'window'"),
        ({"goal": "sideways"}, "'maximize', 'minimize' or 'window'"),
    ],
)
def test_invalid_objectives_are_rejected(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Objective(property="gap_ev", **fields)


def test_constraints_bound_values_and_give_botorch_slacks() -> None:
    import torch

    from pipeline.objectives import Constraint

    both = Constraint(property="gap_ev", min=4.0, max=6.0)
    assert both.satisfied([3.9, 4.0, 6.0, 6.1, np.nan]).tolist() == [False, True, True, False,
                                                                      False]
    slacks = both.slacks(torch.tensor([5.0, 7.0]))
    assert [s.tolist() for s in slacks] == [[-1.0, -3.0], [-1.0, 1.0]]  # <= 0 where met
    assert both.describe() == "gap_ev >= 4.0 and gap_ev <= 6.0"
    with pytest.raises(ValidationError, match="needs 'min' or 'max'"):
        Constraint(property="gap_ev")
    with pytest.raises(ValidationError, match="min < max"):
        Constraint(property="gap_ev", min=2.0, max=1.0)


def test_a_hit_meets_the_objective_and_every_constraint() -> None:
    from pipeline.config import parse_config
    from pipeline.ranking import is_feasible, is_hit
    from tests.conftest import tiny_campaign

    config = parse_config(tiny_campaign(constraints=[{"property": "dipole_debye", "max": 3.0}]))
    assert is_hit(config, {"gap_ev": 13.0, "dipole_debye": 1.0})
    assert not is_hit(config, {"gap_ev": 13.0, "dipole_debye": 4.0})  # breaks the constraint
    assert not is_hit(config, {"gap_ev": 15.0, "dipole_debye": 1.0})  # misses the window
    assert not is_feasible(config, {"gap_ev": 13.0})  # unmeasured constraint: not met
