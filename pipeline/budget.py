"""A campaign's budget: how many rounds and how much oracle cost it may spend in all.

Scheduled runs continue a campaign round after round; the budget (``budget:`` in the config)
is what ends it for good. Spending is read from the store (the rounds completed and their
``oracle_cost`` metric), so every run, on any machine, sees the same account.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import CampaignConfig
from pipeline.store import Store


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """What a campaign has spent.

    Attributes:
        rounds_done: rounds completed (every stage committed).
        oracle_cost: oracle cost of those rounds, in the fidelities' cost unit.
        spent: whether no further round may start.
        reason: why not (empty while the budget lasts).
    """

    rounds_done: int
    oracle_cost: float
    spent: bool
    reason: str


def budget_status(config: CampaignConfig, store: Store) -> BudgetStatus:
    """The campaign's spending so far against ``config.budget``."""
    rounds = [r for r in store.rounds(config.name) if r.complete]
    cost = float(sum(r.metrics.get("oracle_cost", 0.0) or 0.0 for r in rounds))
    budget = config.budget
    reason = ""
    if budget.rounds is not None and len(rounds) >= budget.rounds:
        reason = f"budget spent: {len(rounds)} of {budget.rounds} rounds done"
    elif budget.oracle_cost is not None and cost >= budget.oracle_cost:
        reason = f"budget spent: oracle cost {cost:g} of {budget.oracle_cost:g}"
    return BudgetStatus(len(rounds), cost, bool(reason), reason)


def capped_rounds(config: CampaignConfig, rounds: int) -> int:
    """``rounds`` (a total to reach) within the budget's rounds."""
    return rounds if config.budget.rounds is None else min(rounds, config.budget.rounds)
