"""``invdes results``: results measured outside the pipeline (the lab)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.campaigns import invdes_command
from flows.cli.common import fail, open_store, out
from pipeline.home import Home

results_app = typer.Typer(help="Results measured outside the pipeline (the lab).",
                          no_args_is_help=True)


@results_app.command("import")
def import_results(
    config_path: Annotated[Path, typer.Argument(help="The campaign's YAML file (its "
                                                     "fidelities list names this fidelity).")],
    results_file: Annotated[Path, typer.Argument(help="CSV: one of id/smiles/key/cif, then "
                                                      "property columns (gap_ev, or with a "
                                                      "unit: gap_ev [meV]), optional note.")],
    fidelity: Annotated[str, typer.Option(help="Fidelity the results carry.")] = "lab",
) -> None:
    """Import measured results (for example from the lab) into a campaign.

    Every row is checked first (known design, known property and unit, finite number, no
    other value already imported at this fidelity); one bad row rejects the file and nothing is
    written. Values imported before with the same value are skipped: importing a file twice
    changes nothing. The next
    round's surrogate learns from them; where a design has results at several fidelities, the
    most trusted one (last in the config's ``fidelities``) counts for ranking and hits.
    """
    from pipeline.config import ConfigError, load_config
    from pipeline.engine import CampaignEngine
    from pipeline.home import CampaignBusyError
    from pipeline.imports import ResultsFileError, read_results, store_results
    from pipeline.registry import DOMAINS
    from pipeline.store import StoreError

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))
    home = Home.resolve()
    store = open_store(config.store.url)
    if store.campaign(config.name) is None:
        fail(f"no campaign {config.name!r} in {store!r}; run it first")
    engine = CampaignEngine(config, store)
    oracle = engine.components.oracle
    trust = config.trust_levels(oracle.fidelity)
    if fidelity not in trust:
        fail(f"{config_path}: fidelity {fidelity!r} is not listed under 'fidelities' (listed: "
              f"{', '.join(trust)}); add it, with its cost, after the oracle's")
    try:
        with home.campaign_lock(config.name):
            props = oracle.properties()
            # every row is checked before anything is written: a rejected file changes nothing
            rows = read_results(results_file, store, config.name, props, fidelity,
                                DOMAINS.build(config.domain).parse_key)
            stored = store.campaign(config.name)
            engine.open(stored.rounds_target if stored else None)  # the grown fidelities list
            n = store_results(store, config.name, rows, props, fidelity, str(results_file))
    except (ResultsFileError, StoreError, CampaignBusyError) as exc:
        fail(str(exc))
    unchanged = sum(r.unchanged for r in rows)
    again = f"; {unchanged} were imported before and are unchanged" if unchanged else ""
    out.print(f"imported {n} {fidelity} result(s) for {sum(bool(r.values) for r in rows)} "
              f"design(s) into {config.name!r}{again}; they steer the next round "
              f"({invdes_command()} run {config_path})")
