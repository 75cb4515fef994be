"""The ``invdes`` command line."""

from __future__ import annotations

import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import chem  # noqa: F401  (registers the molecules domain)
import oracles  # noqa: F401  (registers the oracles)
from pipeline.config import CampaignConfig, ConfigError, load_config
from pipeline.engine import rank_candidates, ranked_rows
from pipeline.home import Home
from pipeline.report import rows_to_csv, rows_to_json
from pipeline.store import Store, StoreError

app = typer.Typer(
    help=(
        "Inverse design of molecules: state the properties you want (for example a HOMO-LUMO gap "
        "window) and invdes invents candidates, checks them, ranks them with a surrogate model, "
        "sends the most promising to quantum chemistry (PySCF), and learns from every result, "
        "round after round. Everything is stored under $INVDES_HOME (default ./.invdes)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# piped output (files, tests, CI logs) gets a wide table instead of rich's 80-column default
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)


class Format(StrEnum):
    """Output formats of ``invdes candidates``."""

    table = "table"
    csv = "csv"
    json = "json"


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _open_store(store_url: str | None) -> Store:
    home = Home.resolve()
    url = store_url or home.store_url
    if store_url is None and not (home.root / "campaigns.db").exists():
        _fail(f"no campaign store at {home.root} (set INVDES_HOME or run a campaign first)")
    return Store(url)


def _campaign_config(store: Store, name: str) -> CampaignConfig:
    record = store.campaign(name)
    if record is None:
        known = ", ".join(c.name for c in store.campaigns()) or "(none)"
        _fail(f"no campaign {name!r} in {store!r}; known: {known}")
    assert record is not None
    return CampaignConfig.model_validate(record.config)


@app.command()
def run(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Campaign YAML file.")],
    rounds: Annotated[int | None, typer.Option(
        "--rounds", min=1, help="Total rounds to reach (default: the config's 'rounds').")] = None,
    top: Annotated[int, typer.Option(help="Candidates to show at the end.")] = 10,
) -> None:
    """Run a design campaign, or resume it where it stopped.

    Each round generates molecules, filters them, ranks them with a surrogate, sends a batch to
    the oracle and records everything (store and MLflow). Rerunning the same command after a crash
    continues without repeating any finished calculation.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    home = Home.resolve().ensure()
    from flows.settings import configure_prefect

    configure_prefect(home)
    from flows.campaign import run_campaign

    try:
        result = run_campaign(config, rounds)
    except StoreError as exc:
        _fail(str(exc))
    store = Store(result.store_url)
    prop = config.objective.property
    _print_table(ranked_rows(rank_candidates(store, config.name, config)[:top], config, [prop]),
                 f"Top {top} of {config.name}", prop)
    out.print(f"\nTarget: {config.objective.describe()}. Store: {result.store_url}")
    out.print("Look further:")
    out.print(f"  invdes candidates {config.name} --top 50")
    out.print(f"  invdes status {config.name}")
    out.print(f"  mlflow ui --backend-store-uri {result.tracking_uri}")


@app.command()
def status(
    campaign: Annotated[str | None, typer.Argument(help="Campaign name (default: all).")] = None,
    store_url: Annotated[str | None, typer.Option("--store", help="SQLAlchemy URL.")] = None,
) -> None:
    """Show campaigns, or the rounds of one campaign with their metrics."""
    store = _open_store(store_url)
    if campaign is None:
        table = Table(title="Campaigns")
        for col in ("name", "rounds done", "target", "oracle results", "hits", "best score"):
            table.add_column(col)
        for rec in store.campaigns():
            rounds = store.rounds(rec.name)
            done = sum(r.complete for r in rounds)
            last = next((r.metrics for r in reversed(rounds) if r.metrics), {})
            table.add_row(rec.name, str(done), str(rec.rounds_target),
                          str(store.count_evaluated(rec.name)), _num(last.get("hits_total"), ".0f"),
                          _num(last.get("best_objective")))
        out.print(table)
        return
    config = _campaign_config(store, campaign)
    record = store.campaign(campaign)
    assert record is not None
    table = Table(title=f"{campaign}: {config.objective.describe()}")
    cols = ["round", "stage", "made", "valid", "unique", "novel", "calls", "failed", "hit rate",
            "hits", "best", "MAE"]
    for col in cols:
        table.add_column(col, no_wrap=True)
    for r in store.rounds(campaign):
        m = r.metrics
        table.add_row(str(r.round_index), r.stage, _num(m.get("n_generated"), ".0f"),
                      _num(m.get("validity_rate")), _num(m.get("uniqueness")),
                      _num(m.get("novelty")), _num(m.get("oracle_calls"), ".0f"),
                      _num(m.get("oracle_failures"), ".0f"), _num(m.get("hit_rate")),
                      _num(m.get("hits_total"), ".0f"), _num(m.get("best_objective")),
                      _num(m.get(f"surrogate_mae_{config.objective.property}"), ".3f"))
    out.print(table)
    out.print("made: proposals; valid/unique/novel: shares; calls: oracle calculations; hits: "
              "oracle results in the target so far; best: best objective score; MAE: surrogate "
              f"error on the round's new {config.objective.property} results before refitting")
    out.print(f"rounds target {record.rounds_target}; MLflow parent run {record.mlflow_run_id}")


@app.command()
def candidates(
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    top: Annotated[int, typer.Option(min=1, help="How many, best first.")] = 20,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
    store_url: Annotated[str | None, typer.Option("--store", help="SQLAlchemy URL.")] = None,
) -> None:
    """Ranked candidates: oracle results by objective first, then by surrogate prediction.

    JSON gives a list of objects with id, smiles, round, status, and for each property its
    predicted mean and standard deviation and its oracle value.
    """
    store = _open_store(store_url)
    config = _campaign_config(store, campaign)
    from pipeline.registry import ORACLES

    props = list(ORACLES.build(config.oracle.name, config.oracle.params).properties())
    rows = ranked_rows(rank_candidates(store, campaign, config)[:top], config, props)
    if fmt is Format.json:
        sys.stdout.write(rows_to_json(rows) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(rows_to_csv(rows))
    else:
        _print_table(rows, f"{campaign}: top {top}", config.objective.property)


def _num(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _print_table(rows: list[dict[str, object]], title: str, prop: str) -> None:
    """Compact ranked table: id, SMILES, round, status, prediction and oracle value of ``prop``."""
    if not rows:
        out.print(f"{title}: no candidates yet")
        return
    table = Table(title=title)
    for col in ("rank", "id", "smiles", "round", "status", f"predicted {prop}", f"oracle {prop}",
                "hit"):
        table.add_column(col, overflow="fold")
    for row in rows:
        mean, std = row.get(f"{prop}_pred_mean"), row.get(f"{prop}_pred_std")
        predicted = "-" if mean is None else f"{mean:.2f} ± {std:.2f}"
        value = row.get(prop)
        table.add_row(str(row["rank"]), str(row["id"]), str(row.get("smiles")), str(row["round"]),
                      str(row["status"]), predicted, "-" if value is None else f"{value:.3f}",
                      "yes" if row["hit"] else "")
    out.print(table)


def main() -> None:
    """Entry point."""
    app()


if __name__ == "__main__":
    main()
