"""The ``invdes`` command line: one module per command group, each a Typer app.

| module | commands |
|---|---|
| :mod:`flows.cli.campaigns` | ``run``, ``status``, ``candidates``, ``filter`` |
| :mod:`flows.cli.results` | ``results import`` |
| :mod:`flows.cli.oracle` | ``oracle molecule`` |
| :mod:`flows.cli.generate` | ``generate molecules`` |
| :mod:`flows.cli.models` | ``train surrogate``, ``train generator``, ``predict`` |
| :mod:`flows.cli.perovskite` | ``perovskite screen``, ``perovskite label-stability`` |
| :mod:`flows.cli.labels` | ``label orbitals`` |
| :mod:`flows.cli.review` | ``review`` (the review page, :mod:`flows.review`) |
| :mod:`flows.cli.compare` | ``compare`` |
| :mod:`flows.cli.schedule` | ``schedule``, ``worker`` (:mod:`flows.scheduled`) |
"""

from __future__ import annotations

import typer

from flows.cli import (
    campaigns,
    compare,
    generate,
    labels,
    models,
    oracle,
    perovskite,
    results,
    review,
    schedule,
)

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
app.command()(campaigns.run)
app.command()(campaigns.status)
app.command()(campaigns.candidates)
app.command("filter")(campaigns.filter_designs)
app.command()(models.predict)
app.command()(review.review)
app.command()(compare.compare)
app.command()(schedule.schedule)
app.command()(schedule.worker)
app.add_typer(oracle.oracle_app, name="oracle")
app.add_typer(results.results_app, name="results")
app.add_typer(generate.generate_app, name="generate")
app.add_typer(models.train_app, name="train")
app.add_typer(perovskite.perovskite_app, name="perovskite")
app.add_typer(labels.label_app, name="label")


def main() -> None:
    """Entry point."""
    app()


__all__ = ["app", "main"]
