"""Scheduled campaigns: Prefect deployments that continue a campaign a few rounds per run.

``invdes schedule CONFIG --cron ...`` registers a deployment of :func:`scheduled_campaign` on a
Prefect server, in the ``invdes`` work pool (a process pool); ``invdes worker`` (Prefect's
process worker) runs what the schedule creates. Each run continues the stored campaign for
``rounds_per_run`` more rounds (resuming a round a killed run left unfinished) and, once the
campaign's budget is spent, pauses its own schedule, so the campaign stops for good.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow

from pipeline.budget import BudgetStatus, budget_status, capped_rounds
from pipeline.config import CampaignConfig
from pipeline.home import Home
from pipeline.store import Store

SCHEDULE_FLOW = "scheduled-campaign"
"""The Prefect flow name of scheduled campaign runs; deployments are ``scheduled-campaign/NAME``."""

WORK_POOL = "invdes"
"""The default work pool (type ``process``) that scheduled runs are queued on."""

SOURCE_ROOT = Path(__file__).resolve().parents[1]
"""The directory the workers import the flow from (the project, or its installed packages)."""

ENTRYPOINT = "flows/scheduled.py:scheduled_campaign"


def _run_name() -> str:
    """``CAMPAIGN-YYYYmmdd-HHMM`` (UTC), the name of a scheduled run in Prefect's UI."""
    from prefect.runtime import flow_run

    campaign = (flow_run.parameters.get("config") or {}).get("name", "campaign")
    return f"{campaign}-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name=SCHEDULE_FLOW, flow_run_name=_run_name, validate_parameters=False, log_prints=True)
def scheduled_campaign(config: dict[str, Any], rounds_per_run: int = 1,
                       home: str | None = None) -> dict[str, Any]:
    """One scheduled run: continues the campaign for ``rounds_per_run`` rounds within its budget.

    Args:
        config: the campaign config as registered (``CampaignConfig.model_dump``), so a later
            edit of the YAML file does not change a running schedule.
        rounds_per_run: rounds to add per run.
        home: the invdes home (store and MLflow defaults) of the machine that registered it.

    Returns:
        ``campaign``, ``rounds_done``, ``oracle_cost`` and ``stopped`` (why the campaign is over,
        or empty).
    """
    if home:
        os.environ["INVDES_HOME"] = home
    invdes_home = Home.resolve().ensure()
    from flows.settings import configure_prefect

    configure_prefect(invdes_home)
    campaign = CampaignConfig.model_validate(config)
    url = campaign.store.url or invdes_home.store_url
    before = _budget(campaign, url)
    if not before.spent:
        from flows.campaign import run_campaign

        run_campaign(campaign, capped_rounds(campaign, before.rounds_done + rounds_per_run),
                     quiet=True)
    after = _budget(campaign, url)
    if after.spent:
        _pause_own_schedule(f"{campaign.name}: {after.reason}")
    print(f"{campaign.name}: {after.rounds_done} rounds done, oracle cost {after.oracle_cost:g}"
          + (f"; {after.reason}: schedule paused" if after.spent else ""))
    return {"campaign": campaign.name, "rounds_done": after.rounds_done,
            "oracle_cost": after.oracle_cost, "stopped": after.reason}


def _budget(campaign: CampaignConfig, url: str) -> BudgetStatus:
    """The campaign's spending as the store at ``url`` holds it now."""
    store = Store(url)
    try:
        return budget_status(campaign, store)
    finally:
        store.close()


def _pause_own_schedule(reason: str) -> None:
    """Pauses the deployment this run belongs to (none when the flow is called directly)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import deployment

    deployment_id = deployment.id
    if not deployment_id:
        return
    with get_client(sync_client=True) as client:
        client.pause_deployment(deployment_id)
    print(f"{reason}: deployment {deployment.name} paused")


__all__ = ["ENTRYPOINT", "SCHEDULE_FLOW", "SOURCE_ROOT", "WORK_POOL", "scheduled_campaign"]
