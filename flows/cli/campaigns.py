"""``invdes run``, ``status``, ``candidates`` and ``filter``: campaigns and their results."""

from __future__ import annotations

import json
import os
import shutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.common import (
    campaign_config,
    fail,
    fitted_table,
    num,
    open_store,
    out,
    print_ranked,
)
from pipeline.home import Home

if TYPE_CHECKING:
    from pipeline.config import CampaignConfig
    from pipeline.store import Store


class Format(StrEnum):
    """Output formats of ``invdes candidates``."""

    table = "table"
    csv = "csv"
    json = "json"


def invdes_command() -> str:
    """How to call ``invdes`` from the current directory in a new shell: ``invdes`` when that
    is this program on the PATH, else the path of this program (``.venv/bin/invdes``)."""
    me = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if me is None or me.name != "invdes":
        return "invdes"
    found = shutil.which("invdes")
    if found and Path(found).resolve() == me:
        return "invdes"
    relative = os.path.relpath(me)
    return str(me) if relative.startswith("..") else relative


def load(config_path: Path) -> CampaignConfig:
    """The validated campaign file, or an error naming the file, key and value."""
    from pipeline.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))


def run(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Campaign YAML file.")],
    rounds: Annotated[int | None, typer.Option(
        "--rounds", min=1, help="Total rounds to reach (default: the config's 'rounds').")] = None,
    top: Annotated[int, typer.Option(min=1, help="Candidates to show at the end.")] = 10,
) -> None:
    """Run a design campaign, or resume it where it stopped.

    Each round generates molecules, filters them, ranks them with a surrogate, sends a batch to
    the oracle and records everything (store and MLflow). Rerunning the same command after a crash
    continues without repeating any finished calculation.
    """
    config = load(config_path)
    home = Home.resolve().ensure()
    from flows.settings import configure_prefect

    configure_prefect(home)
    from flows.campaign import run_campaign
    from pipeline.home import CampaignBusyError
    from pipeline.ranking import rank_candidates, ranked_rows
    from pipeline.store import Store, StoreError

    try:
        result = run_campaign(config, rounds)
    except (StoreError, CampaignBusyError) as exc:
        fail(str(exc))
    store = Store(result.store_url)
    if result.stopped:
        out.print(f"{config.name}: {result.stopped} ({result.rounds_done} rounds done)",
                  highlight=False)
    prop = config.objective.property
    shown = [prop, *(c.property for c in config.constraints)]
    print_ranked(ranked_rows(rank_candidates(store, config.name, config)[:top], config, shown),
                 f"Top {top} of {config.name}", prop,
                 f"{config.name}: no candidate passed the filters", also=shown[1:])
    me = invdes_command()
    mlflow = str(Path(me).with_name("mlflow")) if "/" in me else "mlflow"
    out.print(f"\nTarget: {config.objective.describe()}. Store: {result.store_url}")
    out.print("Look further:", highlight=False)
    out.print(f"  {me} candidates {config.name} --top 50", highlight=False, soft_wrap=True)
    out.print(f"  {me} status {config.name}", highlight=False, soft_wrap=True)
    out.print(f"  {mlflow} ui --backend-store-uri {result.tracking_uri}", highlight=False,
              soft_wrap=True)


def status(
    campaign: Annotated[str | None, typer.Argument(help="Campaign name (default: all).")] = None,
    store_url: Annotated[str | None, typer.Option("--store", help="SQLAlchemy URL.")] = None,
) -> None:
    """Show campaigns, or the rounds of one campaign with their metrics.

    A running round shows its oracle calculations done out of selected; a surrogate whose
    errors on new results drifted far beyond its predicted uncertainty is flagged.
    """
    store = open_store(store_url)
    if campaign is None:
        rows = []
        for rec in store.campaigns():
            rounds = store.rounds(rec.name)
            done = sum(r.complete for r in rounds)
            last = next((r.metrics for r in reversed(rounds) if r.metrics), {})
            rows.append([rec.name, str(done), str(rec.rounds_target),
                         str(store.count_evaluated(rec.name)), num(last.get("hits_total"), ".0f"),
                         num(last.get("best_objective"))])
        out.print(fitted_table("Campaigns", [("name", 0), ("rounds done", 0), ("target", 1),
                                             ("oracle results", 2), ("hits", 0),
                                             ("best score", 1)], rows))
        return
    config = campaign_config(store, campaign)
    record = store.campaign(campaign)
    assert record is not None
    prop = config.objective.property
    columns = [("round", 0), ("stage", 0), ("made", 3), ("valid", 3), ("unique", 4),
               ("novel", 4), ("calls", 0), ("failed", 2), ("hit rate", 2), ("hits", 0),
               ("best", 1), ("MAE", 1), ("sigma", 2), ("drift", 0)]
    rows = []
    for r in store.rounds(campaign):
        m = r.metrics
        calls = num(m.get("oracle_calls"), ".0f")
        if r.stage == "selected":  # oracle running (or interrupted): done out of selected
            done, selected = oracle_progress(store, campaign, r.round_index)
            calls = f"{done}/{selected} running"
        drift = m.get(f"surrogate_drift_{prop}")
        rows.append([str(r.round_index), r.stage, num(m.get("n_generated"), ".0f"),
                     num(m.get("validity_rate")), num(m.get("uniqueness")), num(m.get("novelty")),
                     calls, num(m.get("oracle_failures"), ".0f"), num(m.get("hit_rate")),
                     num(m.get("hits_total"), ".0f"), num(m.get("best_objective")),
                     num(m.get(f"surrogate_mae_{prop}"), ".3f"),
                     num(m.get(f"surrogate_sigma_{prop}"), ".3f"),
                     "-" if drift is None else ("DRIFT" if drift else "ok")])
    out.print(fitted_table(f"{campaign}: {config.objective.describe()}", columns, rows))
    out.print("made: proposals; valid/unique/novel: shares; calls: oracle calculations; hits: "
              "oracle results in the target so far; best: best objective score; MAE: surrogate "
              f"error on the round's new {prop} results before refitting; sigma: its predicted "
              "standard deviation there (root mean square); drift: DRIFT when the errors are "
              "far beyond sigma (see the README)", highlight=False)
    drifted = [r.round_index for r in store.rounds(campaign)
               if r.metrics.get(f"surrogate_drift_{prop}")]
    if drifted:
        out.print(f"[bold yellow]warning:[/bold yellow] the surrogate's errors on new {prop} "
                  f"results drifted far beyond its predicted uncertainty in round(s) "
                  f"{', '.join(map(str, drifted))}: its ranking is not to be trusted there")
    out.print(f"rounds target {record.rounds_target}; MLflow parent run {record.mlflow_run_id}",
              highlight=False)


def oracle_progress(store: Store, campaign: str, round_index: int) -> tuple[int, int]:
    """(calculations with a stored result, candidates selected) of one round."""
    from pipeline.types import CandidateStatus

    picked = store.candidates(campaign, round_index=round_index,
                              statuses=[CandidateStatus.SELECTED, CandidateStatus.EVALUATED,
                                        CandidateStatus.FAILED])
    done = sum(r.status is not CandidateStatus.SELECTED for r in picked)
    return done, len(picked)


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
    store = open_store(store_url)
    config = campaign_config(store, campaign)
    from pipeline.ranking import rank_candidates, ranked_rows
    from pipeline.registry import ORACLES
    from pipeline.report import rows_to_csv, rows_to_json

    props = list(ORACLES.build(config.oracle.name, config.oracle.params).properties())
    rows = ranked_rows(rank_candidates(store, campaign, config)[:top], config, props)
    if fmt is Format.json:
        sys.stdout.write(rows_to_json(rows) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(rows_to_csv(rows))
    else:
        print_ranked(rows, f"{campaign}: top {top}", config.objective.property,
                     f"{campaign}: no candidate passed the filters yet",
                     also=[*(c.property for c in config.constraints),
                           *(o.property for o in config.pareto_with),
                           *config.predict_properties])


def filter_designs(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Campaign YAML file "
                                                                     "whose filters to apply.")],
    smiles_file: Annotated[Path, typer.Option(help="One design per line (SMILES; '#' starts a "
                                                   "comment).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check designs against a campaign's validity filters.

    Each line passes or fails, with the reason of every filter that rejects it (a campaign
    stops at the first). Exit status 1 when any line fails.
    """
    config = load(config_path)
    if not smiles_file.is_file():
        fail(f"{smiles_file}: file not found")
    from pipeline.engine import filter_report
    from pipeline.registry import DOMAINS, FILTERS

    domain = DOMAINS.build(config.domain)
    lines = [(i + 1, line.split()[0]) for i, line in enumerate(smiles_file.read_text().splitlines())
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        fail(f"{smiles_file}: no designs (empty, or only comments)")
    designs = [domain.candidate(text, f"line-{n}") for n, text in lines]
    filters = [(f.name, FILTERS.build(f.name, f.params)) for f in config.filters]
    verdicts = filter_report(filters, designs)
    rows: list[dict[str, Any]] = [
        {"line": n, domain.label: text, "passed": not rejections,
         "reasons": [{"filter": name, "reason": reason} for name, reason in rejections]}
        for (n, text), rejections in zip(lines, verdicts, strict=True)]
    n_passed = sum(r["passed"] for r in rows)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        cells = [[str(r["line"]), r[domain.label], "pass" if r["passed"] else "FAIL",
                  "; ".join(f"{x['filter']}: {x['reason']}" for x in r["reasons"])] for r in rows]
        out.print(fitted_table(f"{smiles_file.name} against the filters of {config.name}",
                               [("line", 0), (domain.label, 0), ("verdict", 0),
                                ("reasons", 1)], cells))
        out.print(f"{n_passed} of {len(rows)} pass "
                  f"({', '.join(name for name, _ in filters) or 'no filters'})", highlight=False)
    if n_passed < len(rows):
        raise typer.Exit(1)
