"""``invdes schedule`` and ``invdes worker``: campaigns that run on a schedule (:mod:`flows.scheduled`)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.campaigns import load
from flows.cli.common import fail, fitted_table, out
from pipeline.home import Home

NO_SERVER = (
    "schedules need a Prefect server, and none is configured (PREFECT_API_URL is not set). "
    "Start one and point invdes at it:\n"
    "  prefect server start --host 127.0.0.1 --port 4200 &\n"
    "  export PREFECT_API_URL=http://127.0.0.1:4200/api\n"
    "then run this command again, and `invdes worker` to run what is scheduled."
)


def _api_url() -> str:
    """The configured Prefect server's API URL, or an error saying how to start one."""
    home = Home.resolve().ensure()
    from flows.settings import configure_prefect

    configure_prefect(home)
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        fail(NO_SERVER)
    return str(url)


def _client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _check_server(url: str) -> None:
    """An error naming ``url`` when no Prefect server answers there."""
    with _client() as client:
        try:
            client.api_healthcheck()
            client.hello()
        except Exception as exc:
            fail(f"no Prefect server answers at PREFECT_API_URL={url} ({type(exc).__name__}: "
                 f"{exc}); start one with `prefect server start` or fix the URL")


def schedule(
    config_path: Annotated[Path | None, typer.Argument(
        metavar="CONFIG", help="Campaign YAML file to schedule.")] = None,
    cron: Annotated[str | None, typer.Option(
        help='When to run, as a cron expression ("0 2 * * *": every night at 02:00).')] = None,
    rounds_per_run: Annotated[int, typer.Option(
        min=1, max=1000, help="Rounds each scheduled run adds to the campaign.")] = 1,
    name: Annotated[str | None, typer.Option(
        help="Schedule (deployment) name; default: the campaign's name.")] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of the cron expression.")] = "UTC",
    pool: Annotated[str, typer.Option(help="Prefect work pool (type process).")] = "invdes",
    list_: Annotated[bool, typer.Option("--list", help="List the scheduled campaigns.")] = False,
    remove: Annotated[str | None, typer.Option(
        "--remove", metavar="NAME", help="Remove the schedule NAME.")] = None,
) -> None:
    """Run a campaign on a schedule: each run continues it for --rounds-per-run rounds until its
    budget (`budget: {oracle_cost: ..., rounds: ...}` in the config) is spent.

    Needs a Prefect server (PREFECT_API_URL) and a worker on its pool (`invdes worker`).
    """
    modes = sum([config_path is not None, list_, remove is not None])
    if modes != 1:
        fail("give a CONFIG with --cron, or --list, or --remove NAME")
    url = _api_url()
    _check_server(url)
    if list_:
        _list()
    elif remove is not None:
        _remove(remove)
    else:
        assert config_path is not None
        if cron is None:
            fail('--cron is required with a CONFIG, for example --cron "0 2 * * *"')
        _register(config_path, cron, rounds_per_run, name, timezone, pool, url)


def _register(config_path: Path, cron: str, rounds_per_run: int, name: str | None,
              timezone: str, pool: str, url: str) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.schedules import Cron
    from pydantic import ValidationError

    from flows.scheduled import ENTRYPOINT, SOURCE_ROOT, scheduled_campaign

    config = load(config_path)
    try:  # the server's own validation, here with the option named
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as exc:
        fail(f"--cron {cron!r} --timezone {timezone!r}: {exc.errors()[0]['msg']}")
    cron_schedule = Cron(cron, timezone=timezone)
    with _client() as client, contextlib.suppress(ObjectAlreadyExists):  # one pool for all
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    home = Home.resolve().ensure()
    deployment = name or config.name
    parameters = {"config": config.model_dump(mode="json"), "rounds_per_run": rounds_per_run,
                  "home": str(home.root.resolve())}
    budget = config.budget
    deployment_id = scheduled_campaign.from_source(  # type: ignore[union-attr]
        source=str(SOURCE_ROOT), entrypoint=ENTRYPOINT,
    ).deploy(
        name=deployment, work_pool_name=pool, schedule=cron_schedule, parameters=parameters,
        concurrency_limit=1, enforce_parameter_schema=False, print_next_steps=False,
        ignore_warnings=True,
        tags=["invdes", f"campaign:{config.name}"],
        description=(f"{config.name} from {config_path.resolve()}: {rounds_per_run} round(s) "
                     f"per run; budget rounds {budget.rounds}, oracle cost {budget.oracle_cost}"),
    )
    out.print(f"scheduled {config.name} as deployment scheduled-campaign/{deployment} "
              f"({deployment_id}) on {url}: cron {cron!r} ({timezone}), {rounds_per_run} "
              f"round(s) per run, work pool {pool!r}", highlight=False, soft_wrap=True)
    out.print(f"Run what is scheduled with:  invdes worker --pool {pool}", highlight=False)
    if budget.rounds is None and budget.oracle_cost is None:
        out.print("note: the config has no budget, so the schedule runs until it is removed",
                  highlight=False)


def _deployments() -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from flows.scheduled import SCHEDULE_FLOW

    with _client() as client:
        return list(client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[SCHEDULE_FLOW]))))


def _list() -> None:
    deployments = _deployments()
    if not deployments:
        out.print("no scheduled campaigns")
        return
    rows = []
    for dep in sorted(deployments, key=lambda d: d.name):
        crons = ", ".join(str(getattr(s.schedule, "cron", s.schedule)) for s in dep.schedules)
        params = dep.parameters or {}
        campaign = (params.get("config") or {}).get("name", "?")
        budget = (params.get("config") or {}).get("budget") or {}
        limits = ", ".join(f"{k} {v:g}" for k, v in budget.items() if v is not None) or "none"
        rows.append([dep.name, campaign, crons, str(params.get("rounds_per_run", "?")),
                     limits, "paused" if dep.paused else "active", dep.work_pool_name or "-"])
    out.print(fitted_table("Scheduled campaigns", [
        ("name", 0), ("campaign", 0), ("cron", 0), ("rounds per run", 1), ("budget", 0),
        ("state", 0), ("work pool", 0)], rows))


def _remove(name: str) -> None:
    known = {d.name: d for d in _deployments()}
    if name not in known:
        fail(f"no scheduled campaign named {name!r}; scheduled: "
             f"{', '.join(sorted(known)) or 'none'}")
    with _client() as client:
        client.delete_deployment(known[name].id)
    out.print(f"removed the schedule {name!r} (the campaign's store and MLflow runs are kept)",
              highlight=False)


def worker(
    pool: Annotated[str, typer.Option(help="Prefect work pool to take runs from.")] = "invdes",
    run_once: Annotated[bool, typer.Option(
        "--run-once", help="Take the runs that are due once, run them, and exit.")] = False,
) -> None:
    """Run scheduled campaigns: Prefect's process worker on the work pool (`prefect worker start
    --pool invdes --type process`), each run in its own process."""
    _check_server(_api_url())
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect) if prefect.exists() else "prefect", "worker", "start", "--pool", pool,
               "--type", "process"] + (["--run-once"] if run_once else [])
    out.print(" ".join(command), highlight=False)
    sys.stdout.flush()
    os.execvpe(command[0], command, os.environ)
