"""``invdes label``: quantum-chemical labels for training sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from flows.cli.common import fail

label_app = typer.Typer(help="Compute labels for training sets with the project's oracles.",
                        no_args_is_help=True)


@label_app.command("orbitals")
def label_orbitals_command(
    data: Annotated[Path, typer.Option(help="Concatenated XYZ file (.xyz or .xyz.gz) whose "
                                            "comment lines hold qm9_index=... smiles=... (the "
                                            "QM9 pool's geometries).")],
    out_file: Annotated[Path, typer.Option("--out", help="Labels CSV to append to; a run "
                                                          "stopped part-way continues.")],
    level: Annotated[str, typer.Option(help="Named level of theory.")] = "standard",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N molecules.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Calculations at once.")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="Threads per calculation.")] = 1,
    timeout: Annotated[float, typer.Option(help="Wall-time limit per calculation, s.")] = 1800.0,
    store: Annotated[str | None, typer.Option(
        help="Store (SQLAlchemy URL) that keeps every calculation; default: the campaigns' "
             "store.")] = None,
) -> None:
    """Orbital-location labels: PySCF on each molecule's own geometry, then per-heavy-atom
    HOMO and LUMO shares (in the order of its SMILES) and the descriptors (frontier_overlap,
    homo_pr, lumo_share_N, ...). Every calculation is kept in the store, so a restart is free."""
    import itertools

    from chem.datasets import read_xyz_records
    from chem.molecules import heavy_atom_order
    from flows.cli.common import open_store, training_progress
    from oracles.orbital_labels import LabelJob, label_orbitals
    from oracles.pyscf_oracle import PySCFOracle
    from pipeline.types import Geometry

    try:
        oracle = PySCFOracle(PySCFOracle.Params(level=level, threads=threads, timeout_s=timeout))
    except ValidationError as exc:
        fail("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
    jobs, skipped = [], []
    try:
        for k, record in enumerate(itertools.islice(read_xyz_records(data), limit)):
            ident = record.fields.get("qm9_index") or str(k)
            smiles = record.fields.get("smiles")
            if smiles is None:
                fail(f"{data}: structure {k + 1} has no smiles=... on its comment line")
            try:
                order = heavy_atom_order(smiles, record.symbols,
                                         record.positions_angstrom.tolist())
            except ValueError as exc:
                skipped.append(f"{ident}: {exc}")
                continue
            geometry = Geometry(record.symbols, tuple((float(x), float(y), float(z))
                                                      for x, y, z in record.positions_angstrom))
            jobs.append(LabelJob(ident, smiles, geometry, order))
        with training_progress() as progress:
            counts = label_orbitals(jobs, out_file, oracle, open_store(store), workers, progress)
    except (ValueError, OSError) as exc:
        fail(f"{data}: {exc}")
    print(json.dumps({**counts, "unmatched": len(skipped), "unmatched_examples": skipped[:5]}))
