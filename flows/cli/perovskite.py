"""``invdes perovskite``: the perovskite domain's tools."""

from __future__ import annotations

import csv
import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import fail, fitted_table, out

perovskite_app = typer.Typer(help="Perovskites (ABX3, A2BB'X6): formability screening.",
                             no_args_is_help=True)

SITES = ("A", "B", "X")


@perovskite_app.command("screen")
def screen(
    csv_file: Annotated[Path, typer.Argument(
        metavar="FILE.csv", help="Columns A, B, X (element symbols), and B2 for a double "
                                 "perovskite A2BB'X6.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Will each ABX3 (or A2BB'X6) form a perovskite? States, radii, t, tau, verdict.

    The tool chooses the oxidation states and radii (see materials/formability.py); the
    verdict is Bartel's tau < 4.18 (for a double perovskite with the B ions' mean radius), and
    p_perovskite its calibrated probability (bench/perovskite_calibration.py). A
    row it cannot assess (unknown element, no charge-balanced states) says why. On Bartel et
    al.'s 576 experimentally characterised compounds the verdict agrees with experiment for
    92.5 % (bench/perovskite_formability.py).
    """
    from materials.formability import FormabilityError, assess, p_perovskite

    if not csv_file.is_file():
        fail(f"{csv_file}: file not found")
    with csv_file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in SITES if c not in header]
        if missing:
            fail(f"{csv_file}: missing column(s) {', '.join(missing)}; found {header or 'none'}")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    results: list[dict[str, Any]] = []
    for lineno, row in enumerate(rows, start=2):
        b2 = row.get("B2") or None
        base = {"line": lineno, **{s: row[s] for s in SITES}, **({"B2": b2} if b2 else {})}
        try:
            f = assess(row["A"], row["B"], row["X"], b2)
        except FormabilityError as exc:
            results.append({**base, "verdict": None, "charge_balanced": False,
                            "reason": str(exc)})
            continue
        states = {row["A"]: f.n_a, row["B"]: f.n_b, **({b2: f.n_b2} if b2 else {}),
                  row["X"]: f.n_x}
        results.append({**base, "oxidation_states": states,
                         "rA": f.r_a, "rB": f.r_b, "rX": f.r_x, "t": round(f.t, 4),
                         "octahedral_factor": round(f.octahedral_factor, 4),
                         "tau": None if math.isnan(f.tau) else round(f.tau, 4),
                         "p_perovskite": round(p_perovskite(f.tau), 4),
                         "charge_balanced": True,
                         "verdict": "perovskite" if f.perovskite else "not perovskite",
                         "reason": "" if f.perovskite else (
                             "tau >= 4.18" if not math.isnan(f.tau)
                             else "A is not larger than B: tau undefined")})
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return
    columns = [("line", 0), ("ABX3", 0), ("states", 1), ("rA", 2), ("rB", 2), ("rX", 3),
               ("t", 1), ("mu", 2), ("tau", 0), ("p", 0), ("verdict", 0), ("reason", 1)]
    cells = []
    for r in results:
        shown = r.get("oxidation_states")
        name = (f"{r['A']}2{r['B']}{r['B2']}{r['X']}6" if r.get("B2")
                else f"{r['A']}{r['B']}{r['X']}3")
        cells.append([str(r["line"]), name,
                      "/".join(f"{v:+d}" for v in shown.values()) if shown else "-",
                      *(f"{r[k]:.3f}" if isinstance(r.get(k), float) else "-"
                        for k in ("rA", "rB", "rX", "t", "octahedral_factor", "tau")),
                      f"{r['p_perovskite']:.2f}" if "p_perovskite" in r else "-",
                      r["verdict"] or "cannot assess", r["reason"]])
    out.print(fitted_table(f"{csv_file.name}: perovskite formability", columns, cells))


class LabelOrder(StrEnum):
    """Which rows of a table a labelling run takes first."""

    table = "table"
    formation_energy = "formation-energy"


@perovskite_app.command("label-stability")
def label_stability_command(
    data: Annotated[Path, typer.Option(help="perov-5 style CSV with material_id and cif (e.g. "
                                            "the perov5 pool).")],
    out_file: Annotated[Path, typer.Option("--out", help="Labels CSV to append to; a run "
                                                          "stopped part-way continues.")],
    store: Annotated[str | None, typer.Option(
        help="Store (SQLAlchemy URL) that keeps the competing phases' relaxations; default: "
             "the campaigns' store.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows.")] = None,
    order: Annotated[LabelOrder, typer.Option(
        help="Which rows first: 'table' (file order) or 'formation-energy' (lowest DFT "
             "formation energy first, the rows most likely to be stable).")] = LabelOrder.table,
    relax: Annotated[bool, typer.Option(
        "--relax/--static", help="Relax each structure with the CHGNet oracle first (its own "
                                 "quantity, a few seconds a cell) or label it at its DFT "
                                 "geometry (about 0.3 s a cell).")] = False,
) -> None:
    """CHGNet stability labels of DFT-relaxed structures: energy, formation energy and
    decomposition energy (eV/atom), at each structure's own geometry or after the CHGNet
    oracle's relaxation (--relax), against the competing phases of the CHGNet oracle. The
    crystal generator is conditioned on them."""
    from flows.cli.common import open_store, training_progress
    from materials.datasets import read_perovskite_table
    from oracles.chgnet_labels import label_stability

    try:
        table = read_perovskite_table(data, limit)
        with training_progress() as progress:
            counts = label_stability(
                table.ids, table.structures, out_file, open_store(store), progress,
                priority=table.targets[:, 0].tolist() if order is LabelOrder.formation_energy else None,
                relaxed=relax)
    except (ValueError, OSError) as exc:
        fail(f"{data}: {exc}")
    print(json.dumps(counts))
