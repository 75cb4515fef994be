"""The design campaign as a Prefect flow: one task per stage of each round.

Import this module only after :func:`flows.settings.configure_prefect` has pointed Prefect at the
invdes home (Prefect reads its settings on import).
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pipeline.budget import budget_status, capped_rounds
from pipeline.config import CampaignConfig, ExecutorConfig
from pipeline.engine import CampaignEngine, OracleRequest
from pipeline.home import Home
from pipeline.lease import campaign_lease
from pipeline.protocols import Oracle
from pipeline.ranking import rank_candidates, ranked_rows
from pipeline.report import progress_plot, rows_to_csv
from pipeline.store import ROUND_STAGES, Store
from pipeline.tracking import CampaignTracker
from pipeline.types import Candidate, OracleResult


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """What a campaign run ends with."""

    name: str
    rounds_done: int
    store_url: str
    tracking_uri: str
    parent_run_id: str
    metrics: dict[str, float]
    stopped: str = ""
    """Why the run stopped before its target (the budget), or empty."""


@task(name="generate-and-filter", cache_policy=NO_CACHE, task_run_name="generate-r{round_index}")
def generate_task(engine: CampaignEngine, round_index: int) -> int:
    """Stage 1-2: proposals and validity filters; returns the pool size."""
    records = engine.generate(round_index)
    return sum(r.status.value == "pool" for r in records)


@task(name="surrogate-and-acquisition", cache_policy=NO_CACHE,
      task_run_name="select-r{round_index}")
def select_task(engine: CampaignEngine, round_index: int) -> int:
    """Stage 3-4: fit the surrogate on every oracle result, pick the batch; returns its size."""
    return len(engine.select(round_index))


@task(name="oracle", cache_policy=NO_CACHE, task_run_name="oracle-{candidate.id}")
def oracle_task(oracle: Oracle, candidate: Candidate) -> OracleResult:
    """Stage 5: one oracle calculation for one candidate, its provenance naming the worker
    that computed it (the Dask worker's address, or host and process)."""
    result = oracle.run(candidate)
    return dataclasses.replace(result, provenance={**result.provenance, "worker": worker_name()})


def worker_name() -> str:
    """The Dask worker running this code (``tcp://10.0.0.5:39113``), or outside Dask the host
    and process (``host:pid``)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # ValueError: not in a Dask worker
        return f"{socket.gethostname()}:{os.getpid()}"


TRANSIENT_ERRORS = frozenset({"KilledWorker", "CommClosedError", "CrashedRun", "CancelledError",
                              "FutureCancelledError", "StreamClosedError"})
"""Names of the errors with which a task's infrastructure, not its calculation, failed (a lost
Dask worker, a broken connection, a crashed task run): such a task is sent again."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is in :data:`TRANSIENT_ERRORS`."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in TRANSIENT_ERRORS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@task(name="record", cache_policy=NO_CACHE, task_run_name="record-r{round_index}")
def record_task(engine: CampaignEngine, round_index: int) -> dict[str, float]:
    """Stage 6a: round metrics into the store."""
    return engine.record(round_index)


@task(name="log-mlflow", cache_policy=NO_CACHE, task_run_name="mlflow-r{round_index}")
def log_task(engine: CampaignEngine, tracker: CampaignTracker, parent_run_id: str,
             round_index: int) -> str:
    """Stage 6b: the round as a nested MLflow run spanning the round's wall time, with the
    ranked table and the progress plot; the campaign's totals and bests on the parent run."""
    record = engine.store.round(engine.name, round_index)
    assert record is not None
    rows = ranked_rows(engine.ranked(), engine.config,
                       list(engine.components.oracle.properties()))
    table = rows_to_csv(rows)
    end = _unix_ms(record.finished_at) if record.finished_at else None
    seconds = record.metrics.get("seconds_round_total")
    start = (end - int(1000 * seconds) if end is not None and seconds is not None
             and math.isfinite(seconds) else _unix_ms(record.started_at))
    key = f"surrogate_drift_{engine.objective.property}"
    drift = record.metrics.get(key)
    tags = {} if drift is None else {"invdes.surrogate_drift": "true" if drift else "false"}
    drifted = [str(r.round_index) for r in engine.store.rounds(engine.name)
               if r.round_index <= round_index and r.metrics.get(key)]
    parent_tags = {"invdes.surrogate_drift_rounds": ",".join(drifted)} if drifted else {}
    with tempfile.TemporaryDirectory() as tmp:
        plot = _plot(engine, Path(tmp) / "progress.png")
        run_id = tracker.log_round(engine.name, parent_run_id, round_index, record.metrics,
                                   artifacts={"ranked_candidates.csv": table}, files=[plot],
                                   campaign_metrics=engine.campaign_totals(round_index),
                                   start_time_ms=start, end_time_ms=end, tags=tags,
                                   parent_tags=parent_tags)
        tracker.log_campaign_artifacts(parent_run_id, {"ranked_candidates.csv": table}, [plot])
    engine.store.set_round_logged(engine.name, round_index, run_id)
    return run_id


def _unix_ms(moment: datetime) -> int:
    """Unix time in ms of a stored time (SQLite gives them back without a zone: UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _plot(engine: CampaignEngine, path: Path) -> Path:
    prop = engine.objective.property
    ids = {r.candidate.id: r.candidate.round_index for r in engine.store.candidates(engine.name)}
    values: dict[int, list[float]] = {}
    for e in engine.store.evaluations(engine.name):
        if e.evaluation.property == prop and e.evaluation.ok:
            values.setdefault(ids[e.evaluation.candidate_id], []).append(e.evaluation.value)
    return progress_plot(path, engine.store.rounds(engine.name), values, engine.objective,
                         f"{engine.name}: {engine.objective.describe()}")


def _run_oracle(engine: CampaignEngine, requests: list[OracleRequest], progress: Progress,
                round_index: int) -> None:
    """Runs the requests on the flow's task runner and stores each answer once as it comes.

    An exception inside a calculation is retried by the task itself (``executor.retries``,
    exponential backoff); a task lost with its infrastructure (:func:`is_transient`) is sent
    again after ``retry_delay_s``, doubled each time; what still fails is stored as failed.
    """
    executor = engine.config.executor
    bar = progress.add_task(f"round {round_index}: oracle ({engine.config.oracle.name})",
                            total=len(requests))
    oracle_run = oracle_task.with_options(
        retries=executor.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=executor.retry_delay_s))
    pending, attempt, done = list(requests), 0, 0
    store_error: Exception | None = None
    while pending:
        futures = {oracle_run.submit(engine.oracles[req.fidelity], req.candidate): req
                   for req in pending}
        again: list[OracleRequest] = []
        for future in as_completed(list(futures)):
            req = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # a crash of the oracle code itself must not stop the round
                if is_transient(exc) and attempt < executor.retries:
                    again.append(req)
                    progress.console.print(
                        f"round {round_index}: {req.candidate.id} lost its worker "
                        f"({type(exc).__name__}: {exc}); sending it again", highlight=False,
                        markup=False)
                    continue
                result = engine.failed_result(req.request_key, f"oracle task crashed: {exc!r}",
                                              req.fidelity)
            try:
                engine.store_oracle_result(req, result)
            except Exception as exc:  # keep storing the others; the rerun redoes only this one
                store_error = store_error or exc
            done += 1
            progress.advance(bar)
            _oracle_line(progress, engine, round_index, done, len(requests), req, result)
        pending = again
        if pending:
            time.sleep(executor.retry_delay_s * 2**attempt)
            attempt += 1
    if store_error is not None:
        raise store_error


def _oracle_line(progress: Progress, engine: CampaignEngine, round_index: int, done: int,
                 total: int, req: OracleRequest, result: OracleResult) -> None:
    """One plain line per calculation when the output is a log file, not a terminal."""
    if progress.console.is_terminal:
        return
    prop = engine.objective.property
    value = result.values.get(prop)
    what = (f"{prop} {value:.3f}" if result.ok and value is not None
            else f"failed: {result.reason}")
    wall = result.details.get("wall_s")
    worker = result.provenance.get("worker")
    progress.console.print(
        f"round {round_index}: oracle {done}/{total} {req.candidate.id} "
        f"{req.candidate.key} [{req.fidelity}]: {what}"
        + (f" ({wall:.1f} s)" if isinstance(wall, int | float) else "")
        + (f" on {worker}" if worker else ""),
        highlight=False, markup=False, soft_wrap=True)


def _stage_index(stage: str | None) -> int:
    """How many of the round's stages (:data:`pipeline.store.ROUND_STAGES`) are committed."""
    return 0 if stage is None else ROUND_STAGES.index(stage) + 1


@flow(name="design-campaign", validate_parameters=False, log_prints=False)
def campaign_flow(config: CampaignConfig, rounds: int | None = None,
                  quiet: bool = False) -> CampaignResult:
    """Runs (or resumes) a campaign until ``rounds`` rounds are complete.

    Each stage of a round commits to the store before the next starts; on a rerun, stages a round
    already committed are skipped and only oracle requests without a stored result are launched.
    """
    home = Home.resolve().ensure()
    with home.campaign_lock(config.name):
        _mark_dead_runs_crashed(config.name)
        return _campaign(config, home, rounds, quiet)


def _mark_dead_runs_crashed(name: str) -> int:
    """Marks earlier flow runs of this campaign that Prefect still has as running or pending
    CRASHED: this process holds the campaign's lock, so their processes are gone (killed, or
    the machine went down) and Prefect would show them running for good.

    Returns:
        How many runs were marked.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run
    from prefect.states import Crashed

    current = str(flow_run.id)
    with get_client(sync_client=True) as client:
        stale = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[str(campaign_flow.name)])),
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[name]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(
                    any_=[StateType.RUNNING, StateType.PENDING])),
            ),
        )
        stale = [run for run in stale if str(run.id) != current]
        for run in stale:
            client.set_flow_run_state(run.id, Crashed(
                message=f"the process running campaign {name!r} ended without finishing the "
                        f"run (killed or lost); resumed by flow run {current}"), force=True)
    return len(stale)


def _campaign(config: CampaignConfig, home: Home, rounds: int | None,
              quiet: bool) -> CampaignResult:
    store = Store(config.store.url or home.store_url)
    with campaign_lease(store, config.name):  # across machines sharing the store
        return _campaign_leased(config, home, store, rounds, quiet)


def _campaign_leased(config: CampaignConfig, home: Home, store: Store, rounds: int | None,
                     quiet: bool) -> CampaignResult:
    engine = CampaignEngine(config, store)
    target = capped_rounds(config, rounds or config.rounds)
    engine.open(target)
    tracker = CampaignTracker(config.tracking.tracking_uri or home.mlflow_uri,
                              home.mlflow_artifacts, config.tracking.experiment or config.name)
    parent = tracker.campaign_run(config.name, config.model_dump(mode="json"))
    store.set_campaign_run_id(config.name, parent)
    console = Console(quiet=quiet, stderr=True, soft_wrap=True)  # a log gets whole lines
    metrics: dict[str, float] = {}
    stopped = ""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        for r in range(target):
            stage = _stage_index(engine.round_stage(r))
            if stage == len(ROUND_STAGES):
                continue
            budget = budget_status(config, store)
            if stage == 0 and budget.spent:  # a round already begun is finished, not dropped
                stopped = budget.reason
                console.print(f"[bold]{config.name}[/bold]: {budget.reason}; no round "
                              f"{r} is started", highlight=False)
                break
            start = time.perf_counter()
            say = _plain_lines(console, r)
            step = progress.add_task(f"round {r}: generate, filter, select", total=None)
            if stage < 1:
                n_pool = generate_task(engine, r)
                say(f"generated and filtered: {n_pool} in the pool", start)
            if stage < 2:
                n_picked = select_task(engine, r)
                say(f"selected {n_picked} for the oracle", start)
            progress.update(step, total=1, completed=1)
            if stage < 3:
                oracle_start = time.perf_counter()
                _run_oracle(engine, engine.oracle_requests(r), progress, r)
                engine.timer.add("oracle", oracle_start)
                engine.finish_oracle(r)
                say("oracle done", start)
            if stage < 4:
                engine.timer.seconds["round_total"] = time.perf_counter() - start
                metrics = record_task(engine, r)
            log_task(engine, tracker, parent, r)
            say("recorded and logged to MLflow", start)
            record = store.round(config.name, r)
            metrics = record.metrics if record else metrics
            console.print(_round_line(r, metrics, engine), highlight=False)
    tracker.finish_campaign(parent)
    done = budget_status(config, store).rounds_done
    store.close()
    return CampaignResult(config.name, done, store.url, tracker.tracking_uri, parent, metrics,
                          stopped)


def _plain_lines(console: Console, round_index: int) -> Callable[[str, float], None]:
    """A printer of one plain line per finished stage, for output that is not a terminal (a
    log file, a scheduler); on a terminal the progress bars say it."""

    def say(what: str, start: float) -> None:
        if not console.is_terminal:
            console.print(f"round {round_index}: {what} "
                          f"({time.perf_counter() - start:.1f} s into the round)",
                          highlight=False, markup=False)

    return say


def _round_line(r: int, m: dict[str, Any], engine: CampaignEngine) -> str:
    def fmt(key: str, spec: str = ".2f") -> str:
        v = m.get(key, math.nan)
        return "n/a" if v is None or not math.isfinite(v) else format(v, spec)

    prop = engine.objective.property
    line = (
        f"[bold]round {r}[/bold]: generated {fmt('n_generated', '.0f')}, "
        f"valid {fmt('validity_rate')}, unique {fmt('uniqueness')}, novel {fmt('novelty')}, "
        f"oracle calls {fmt('oracle_calls', '.0f')} (failed {fmt('oracle_failures', '.0f')}), "
        f"hit rate {fmt('hit_rate')}, hits so far {fmt('hits_total', '.0f')}, "
        f"surrogate MAE {fmt(f'surrogate_mae_{prop}', '.3f')} "
        f"(predicted sigma {fmt(f'surrogate_sigma_{prop}', '.3f')})"
    )
    if m.get(f"surrogate_drift_{prop}"):
        line += (f"\n[bold yellow]warning:[/bold yellow] the surrogate's errors on this round's "
                 f"{prop} results are {fmt(f'surrogate_zrms_{prop}', '.1f')} times its predicted "
                 "uncertainty (root mean square; about 1 when calibrated): its ranking has "
                 "drifted and is not to be trusted")
    return line


def task_runner(executor: ExecutorConfig, max_parallel: int) -> TaskRunner[Any]:
    """Prefect's task runner for ``executor``: a thread pool of ``max_parallel`` (``local``), or
    the Dask task runner on the cluster at ``executor.address`` or on a local cluster of
    ``executor.n_workers`` processes started for the run (``dask``)."""
    if executor.kind == "local":
        return ThreadPoolTaskRunner(max_workers=max_parallel)
    from prefect_dask import DaskTaskRunner

    if executor.address is not None:
        return DaskTaskRunner(address=executor.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": executor.n_workers, "threads_per_worker": executor.threads_per_worker,
        "processes": True, "dashboard_address": None})


def run_campaign(config: CampaignConfig, rounds: int | None = None, *,
                 quiet: bool = False) -> CampaignResult:
    """Runs the campaign flow on the task runner of ``config.executor``."""
    configured = campaign_flow.with_options(
        task_runner=task_runner(config.executor, config.oracle.max_parallel),
        flow_run_name=config.name)
    return configured(config, rounds, quiet)


__all__ = ["CampaignResult", "campaign_flow", "rank_candidates", "run_campaign"]
