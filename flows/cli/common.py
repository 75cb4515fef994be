"""What every command group of the ``invdes`` command line shares: consoles, errors, the store,
progress and tables.

Heavy libraries (torch, RDKit, PySCF, MLflow, Prefect) are imported inside the commands that use
them, so that ``invdes --help`` and ``invdes status`` start at once.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pipeline.home import Home

if TYPE_CHECKING:
    from pipeline.config import CampaignConfig
    from pipeline.store import Store


def _width(stream: Any) -> int | None:
    """Rich's own width on a terminal; on a pipe (files, tests, CI logs) the terminal's width
    when one is known (``COLUMNS``), else 160, instead of rich's 80-column default."""
    if stream.isatty():
        return None
    return max(shutil.get_terminal_size((160, 24)).columns, 100)


err = Console(stderr=True, width=_width(sys.stderr))
out = Console(width=_width(sys.stdout))

REPO_DATA = Path(__file__).resolve().parents[2] / "chem" / "data"
"""Where the shipped checkpoints lie (read without importing the chem package and torch)."""
PROPERTY_MODEL = REPO_DATA / "property_model.pt"
GENERATOR = REPO_DATA / "generator.pt"
ORBITAL_MODEL = REPO_DATA / "orbital_model.pt"
CRYSTAL_MODEL = Path(__file__).resolve().parents[2] / "materials" / "data" / "crystal_model.pt"
CRYSTAL_GENERATOR = CRYSTAL_MODEL.with_name("crystal_generator.pt")
STABILITY_MODEL = CRYSTAL_MODEL.with_name("stability_model.npz")


def fail(message: str, code: int = 2) -> NoReturn:
    """Prints ``error: message`` on stderr and exits with ``code``."""
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def open_store(store_url: str | None) -> Store:
    """The store at ``store_url``, or the home's; an error when the home has none yet."""
    from pipeline.store import Store

    home = Home.resolve()
    url = store_url or home.store_url
    if store_url is None and not (home.root / "campaigns.db").exists():
        fail(f"no campaign store at {home.root} (set INVDES_HOME or run a campaign first)")
    return Store(url)


def campaign_config(store: Store, name: str) -> CampaignConfig:
    """The stored config of campaign ``name``; an error listing the known campaigns."""
    from pipeline.config import CampaignConfig

    record = store.campaign(name)
    if record is None:
        known = ", ".join(c.name for c in store.campaigns()) or "(none)"
        fail(f"no campaign {name!r} in {store!r}; known: {known}")
    return CampaignConfig.model_validate(record.config)


class PipedProgress(Progress):
    """Rich progress that, when its console is not a terminal (a run in the background writing
    a log), also prints a plain line each time a task passes another tenth of its total: rich's
    live bars print nothing there until the end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._logged_tenths: dict[TaskID, int] = {}

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        if self.console.is_terminal:
            return
        task = self._tasks[task_id]
        if not task.total:
            return
        tenths = int(10 * task.completed / task.total)
        if tenths > self._logged_tenths.get(task_id, 0):
            self._logged_tenths[task_id] = tenths
            left = task.time_remaining
            self.console.print(
                f"{task.description}: {task.completed:.0f}/{task.total:.0f} "
                f"({100 * task.completed / task.total:.0f} %), {task.elapsed or 0:.0f} s elapsed"
                + (f", about {left:.0f} s left" if left is not None else ""), highlight=False)


def training_progress() -> Progress:
    """Progress bars for long work, on stderr (plain lines when piped to a log)."""
    return PipedProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                         MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                         console=err)


def num(value: float | None, spec: str = ".3f") -> str:
    """A number for a table cell, ``-`` when missing or not finite."""
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def fitted_table(title: str, columns: list[tuple[str, int]], rows: list[list[str]],
                 console: Console | None = None) -> Table:
    """A table that fits the console without wrapping or cutting the essential columns.

    Args:
        title: the table's title.
        columns: ``(name, priority)``; priority 0 marks an essential column (ids, SMILES,
            measured values) that is never wrapped, cut or dropped; where the table is wider
            than the console, the other columns are dropped, highest priority number first.
        rows: cell texts, one list per row, in the order of ``columns``.
        console: where it will be printed (default: stdout's).
    """
    width = (console or out).width
    keep = list(range(len(columns)))

    def needed(cols: list[int]) -> int:  # folded columns count at a narrow width
        total = 1
        for c in cols:
            widest = max([len(columns[c][0])] + [len(r[c]) for r in rows])
            total += 3 + (widest if columns[c][1] == 0 else min(widest, max(12, len(columns[c][0]))))
        return total

    for c in sorted((c for c in keep if columns[c][1] > 0), key=lambda c: -columns[c][1]):
        if needed(keep) <= width:
            break
        keep.remove(c)
    t = Table(title=title)
    for c in keep:
        name, priority = columns[c]
        widest = max([len(name)] + [len(r[c]) for r in rows])
        if priority == 0:
            t.add_column(name, no_wrap=True, overflow="ignore", min_width=widest)
        else:
            t.add_column(name, overflow="fold")
    for r in rows:
        t.add_row(*(r[c] for c in keep))
    dropped = len(columns) - len(keep)
    if dropped:
        t.caption = (f"{dropped} column(s) left out to fit {width} characters: "
                     + ", ".join(columns[c][0] for c in range(len(columns)) if c not in keep))
    return t


def print_ranked(rows: list[dict[str, object]], title: str, prop: str, empty: str,
                 also: Sequence[str] = ()) -> None:
    """Compact ranked table: id, SMILES, round, status, prediction and oracle value of ``prop``,
    and a column per property in ``also`` (the constraints': oracle value, or ``~`` and the
    prediction where there is none).

    Args:
        rows: flat rows of :func:`pipeline.engine.ranked_rows`.
        title: the table's title.
        prop: the objective property.
        empty: what to say when there are no rows.
        also: further properties to show (constraints, ``predict_properties``).
    """
    if not rows:
        out.print(empty)
        return
    rep = "smiles" if "smiles" in rows[0] else "design"
    also = [p for p in dict.fromkeys(also) if p != prop]
    columns = [("rank", 0), ("id", 0), (rep, 0), ("round", 3), ("status", 2),
               (f"predicted {prop}", 1), (f"oracle {prop}", 0), *((p, 1) for p in also),
               ("hit", 0)]
    cells = []
    for row in rows:
        mean, std = row.get(f"{prop}_pred_mean"), row.get(f"{prop}_pred_std")
        predicted = "-" if mean is None else f"{mean:.2f} ± {std:.2f}"
        value = row.get(prop)
        extra = []
        for p in also:
            known, guess = row.get(p), row.get(f"{p}_pred_mean")
            extra.append(f"{known:.3f}" if isinstance(known, float) else
                         f"~{guess:.2f}" if isinstance(guess, float) else "-")
        cells.append([str(row["rank"]), str(row["id"]), str(row.get(rep)), str(row["round"]),
                      str(row["status"]), predicted, "-" if value is None else f"{value:.3f}",
                      *extra, "yes" if row["hit"] else ""])
    out.print(fitted_table(title, columns, cells))
