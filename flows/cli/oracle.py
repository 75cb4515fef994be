"""``invdes oracle``: one calculation outside any campaign."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from flows.cli.common import err, fail, out
from pipeline.home import Home

oracle_app = typer.Typer(help="Run an oracle on one design, outside any campaign.",
                         no_args_is_help=True)


class Fukui(StrEnum):
    """How condensed Fukui functions are computed."""

    frontier = "frontier"
    finite_difference = "finite_difference"


@oracle_app.command("molecule")
def oracle_molecule(
    smiles: Annotated[str | None, typer.Option(help="Molecule as SMILES (RDKit ETKDG + MMFF "
                                                    "geometry).")] = None,
    xyz: Annotated[Path | None, typer.Option(help="XYZ file; its geometry is used exactly as "
                                                  "given.")] = None,
    level: Annotated[str | None, typer.Option(help="Named level: fast, cheap-dft, standard, "
                                                   "accurate, qm9 (default: standard).")] = None,
    method: Annotated[str | None, typer.Option(help="hf or a functional (with --basis).")] = None,
    basis: Annotated[str | None, typer.Option(help="Basis set (with --method).")] = None,
    charge: Annotated[int, typer.Option(help="Total charge (with --xyz).")] = 0,
    multiplicity: Annotated[int, typer.Option(min=1, help="2S+1 (with --xyz).")] = 1,
    optimize: Annotated[bool, typer.Option(help="Optimise the geometry first (geomeTRIC).")] = False,
    optimize_level: Annotated[str | None, typer.Option(
        help="Level of the optimisation (default: the calculation's).")] = None,
    fukui: Annotated[Fukui, typer.Option(help="frontier or finite_difference (anion and cation "
                                              "SCF).")] = Fukui.frontier,
    timeout: Annotated[float, typer.Option(help="Wall-time limit, seconds.")] = 3600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compute one molecule: energy, HOMO, LUMO, gap, dipole and per-atom frontier densities,
    condensed Fukui functions and charges. Identical requests are answered from the store."""
    from chem.molecules import embed_geometry, read_xyz
    from oracles.pyscf_oracle import SCF_PROPERTIES, PySCFOracle
    from pipeline.types import Candidate

    if (smiles is None) == (xyz is None):
        fail("give exactly one of --smiles and --xyz")
    if level is not None and (method or basis):
        fail("give either --level or --method with --basis, not both")
    if (method is None) != (basis is None):
        fail("--method and --basis go together")
    try:
        params = PySCFOracle.Params(
            level=level if (level or method) else "standard", method=method, basis=basis,
            optimize_geometry=optimize, optimize_level=optimize_level, fukui=fukui.value,
            timeout_s=timeout,
        )
    except ValidationError as exc:
        fail("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
    try:
        if xyz is not None:
            geometry = read_xyz(xyz, charge=charge, multiplicity=multiplicity)
            name = xyz.stem
        else:
            assert smiles is not None
            geometry = embed_geometry(smiles)
            name = smiles
    except ValueError as exc:
        fail(str(exc))
    from pipeline.store import Store

    oracle = PySCFOracle(params)
    candidate = Candidate("cli", name, name, 0, "cli", geometry=geometry)
    home = Home.resolve().ensure()
    store = Store(home.store_url)
    key = oracle.request_key(candidate)
    result = store.oracle_result(key)
    cached = result is not None
    if result is None:
        with err.status(f"PySCF {oracle.level.method}/{oracle.level.basis} on {name} ..."):
            result = oracle.run(candidate)
        store.save_oracle_result(result)
    report: dict[str, object] = {
        "status": result.status.value, "reason": result.reason, "level": params.level,
        "method": oracle.level.method, "basis": oracle.level.basis, "fidelity": result.fidelity,
        **{k: result.values.get(k) for k in SCF_PROPERTIES},
        **_orbital_location(result.values, result.details),
        "homo_degeneracy": result.details.get("homo_degeneracy"),
        "lumo_degeneracy": result.details.get("lumo_degeneracy"),
        "atoms": result.details.get("atoms", []),
        "wall_s": result.details.get("wall_s"), "cached": cached, "request_key": key,
        "versions": result.details.get("versions", {}),
    }
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_oracle(report)
    if not result.ok:
        raise typer.Exit(1)


def _orbital_location(values: Mapping[str, float], details: Mapping[str, Any]
                      ) -> dict[str, object]:
    """``descriptors`` and per-heavy-atom ``heavy_atoms`` shares of a successful result."""
    import numpy as np

    from oracles.orbital_features import DESCRIPTORS, molecule_descriptors

    atoms = details.get("atoms") or []
    if not atoms or all(a["symbol"] == "H" for a in atoms):
        return {"descriptors": {}, "heavy_atoms": []}
    heavy, p_h, p_l, descriptors = molecule_descriptors(
        [a["symbol"] for a in atoms], np.asarray(details["positions_angstrom"], dtype=float),
        np.array([a["homo_density"] for a in atoms]), np.array([a["lumo_density"] for a in atoms]))
    return {"descriptors": {k: values.get(k, descriptors[k]) for k in DESCRIPTORS},
            "heavy_atoms": [{"index": int(i), "symbol": atoms[i]["symbol"],
                             "p_homo": float(h), "p_lumo": float(lu)}
                            for i, h, lu in zip(heavy, p_h, p_l, strict=True)]}


def _print_oracle(report: dict[str, object]) -> None:
    out.print(f"{report['method']}/{report['basis']}: status {report['status']}"
              + (f" ({report['reason']})" if report["reason"] else "")
              + (" [cached]" if report["cached"] else ""))
    if report["status"] != "ok":
        return
    out.print(f"E = {report['energy_hartree']:.8f} Hartree; HOMO {report['homo_ev']:.3f} eV, "
              f"LUMO {report['lumo_ev']:.3f} eV, gap {report['gap_ev']:.3f} eV; "
              f"dipole {report['dipole_debye']:.3f} D")
    table = Table(title="per atom (Löwdin)")
    keys = ("homo_density", "lumo_density", "fukui_plus", "fukui_minus", "dual_descriptor",
            "charge")
    table.add_column("atom")
    for k in keys:
        table.add_column(k)
    atoms = report["atoms"]
    assert isinstance(atoms, list)
    for i, atom in enumerate(atoms):
        table.add_row(f"{i} {atom['symbol']}",
                      *["-" if atom[k] is None else f"{atom[k]:.4f}" for k in keys])
    out.print(table)
    descriptors = report.get("descriptors")
    if isinstance(descriptors, dict) and descriptors:
        out.print("orbital location: " + ", ".join(
            f"{k} {v:.3f}" for k, v in descriptors.items() if v or not k.startswith(
                ("homo_share", "lumo_share"))))
