"""A campaign's budget: rounds and oracle cost spent, read from the store."""

from __future__ import annotations

import pytest

from pipeline.budget import budget_status, capped_rounds
from pipeline.config import ConfigError, parse_config
from pipeline.store import Store
from tests.conftest import tiny_campaign


def _store(tmp_path, costs: list[float]) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'campaigns.db'}")
    store.open_campaign("tiny", "molecules", {}, {}, 5)
    for r, cost in enumerate(costs):
        store.record_round("tiny", r, {"oracle_cost": cost})
        store.set_round_logged("tiny", r, f"run{r}")
    store.record_round("tiny", len(costs), {"oracle_cost": 100.0})  # recorded, not logged
    return store


def test_rounds_and_cost_are_counted_over_completed_rounds(tmp_path) -> None:
    store = _store(tmp_path, [3.0, 3.0])
    open_ended = parse_config(tiny_campaign())
    status = budget_status(open_ended, store)
    assert (status.rounds_done, status.oracle_cost, status.spent) == (2, 6.0, False)
    by_rounds = parse_config(tiny_campaign(budget={"rounds": 2}))
    assert budget_status(by_rounds, store).reason == "budget spent: 2 of 2 rounds done"
    by_cost = parse_config(tiny_campaign(budget={"oracle_cost": 6}))
    assert budget_status(by_cost, store).reason == "budget spent: oracle cost 6 of 6"
    assert not budget_status(parse_config(tiny_campaign(budget={"oracle_cost": 6.5})),
                             store).spent
    assert capped_rounds(by_rounds, 10) == 2 and capped_rounds(open_ended, 10) == 10


def test_executor_and_budget_are_checked_and_leave_the_identity_alone() -> None:
    with pytest.raises(ConfigError, match="needs kind: dask"):
        parse_config(tiny_campaign(executor={"kind": "local", "address": "tcp://h:8786"}))
    with pytest.raises(ConfigError, match="executor"):
        parse_config(tiny_campaign(executor={"kind": "spark"}))
    with pytest.raises(ConfigError, match="budget"):
        parse_config(tiny_campaign(budget={"oracle_cost": -1}))
    plain = parse_config(tiny_campaign())
    scaled = parse_config(tiny_campaign(executor={"kind": "dask", "n_workers": 4},
                                        budget={"rounds": 9}))
    assert plain.identity() == scaled.identity()  # the same campaign, run elsewhere
