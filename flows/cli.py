"""The ``invdes`` command line."""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
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

import chem  # noqa: F401  (registers the molecules domain)
import oracles  # noqa: F401  (registers the oracles)
from chem.flow_generator import DEFAULT_WEIGHTS as FLOW_WEIGHTS
from chem.prior import DEFAULT_WEIGHTS as PRIOR_WEIGHTS
from pipeline.config import CampaignConfig, ConfigError, load_config
from pipeline.engine import rank_candidates, ranked_rows
from pipeline.home import CampaignBusyError, Home
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


class _PipedProgress(Progress):
    """Rich progress that, when stderr is not a terminal (a run in the background writing a
    log), also prints a plain line each time a task passes another tenth of its total: rich's
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


def _training_progress() -> Progress:
    """Progress bars for long training runs, on stderr (plain lines when piped to a log)."""
    return _PipedProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                          console=err)


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
    except (StoreError, CampaignBusyError) as exc:
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


oracle_app = typer.Typer(help="Run an oracle on one design, outside any campaign.",
                         no_args_is_help=True)
app.add_typer(oracle_app, name="oracle")


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
    from oracles.pyscf_oracle import PySCFOracle
    from pipeline.types import Candidate

    if (smiles is None) == (xyz is None):
        _fail("give exactly one of --smiles and --xyz")
    if level is not None and (method or basis):
        _fail("give either --level or --method with --basis, not both")
    if (method is None) != (basis is None):
        _fail("--method and --basis go together")
    try:
        params = PySCFOracle.Params(
            level=level if (level or method) else "standard", method=method, basis=basis,
            optimize_geometry=optimize, optimize_level=optimize_level, fukui=fukui.value,
            timeout_s=timeout,
        )
    except ValidationError as exc:
        _fail("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
    try:
        if xyz is not None:
            geometry = read_xyz(xyz, charge=charge, multiplicity=multiplicity)
            name = xyz.stem
        else:
            assert smiles is not None
            geometry = embed_geometry(smiles)
            name = smiles
    except ValueError as exc:
        _fail(str(exc))
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
        **{k: result.values.get(k) for k in oracle.properties()},
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


results_app = typer.Typer(help="Results measured outside the pipeline (the lab).",
                          no_args_is_help=True)
app.add_typer(results_app, name="results")


@results_app.command("import")
def import_results(
    config_path: Annotated[Path, typer.Argument(help="The campaign's YAML file (its "
                                                     "fidelities list names this fidelity).")],
    results_file: Annotated[Path, typer.Argument(help="CSV: one of id/smiles/key, then "
                                                      "property columns (gap_ev, ...), "
                                                      "optional note.")],
    fidelity: Annotated[str, typer.Option(help="Fidelity the results carry.")] = "lab",
) -> None:
    """Import measured results (for example from the lab) into a campaign.

    Every row is checked first (known design, known property, finite number, not already
    imported at this fidelity); one bad row rejects the file and nothing is written. The next
    round's surrogate learns from them; where a design has results at several fidelities, the
    most trusted one (last in the config's ``fidelities``) counts for ranking and hits.
    """
    from chem.molecules import canonical_smiles
    from pipeline.engine import CampaignEngine
    from pipeline.imports import ResultsFileError, read_results, store_results

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    home = Home.resolve()
    store = _open_store(config.store.url)
    if store.campaign(config.name) is None:
        _fail(f"no campaign {config.name!r} in {store!r}; run it first")
    engine = CampaignEngine(config, store)
    oracle = engine.components.oracle
    trust = config.trust_levels(oracle.fidelity)
    if fidelity not in trust:
        _fail(f"{config_path}: fidelity {fidelity!r} is not listed under 'fidelities' (listed: "
              f"{', '.join(trust)}); add it, with its cost, after the oracle's")
    try:
        with home.campaign_lock(config.name):
            engine.open()
            props = oracle.properties()
            rows = read_results(results_file, store, config.name, props, fidelity,
                                canonical_smiles)
            n = store_results(store, config.name, rows, props, fidelity, str(results_file))
    except (ResultsFileError, StoreError, CampaignBusyError) as exc:
        _fail(str(exc))
    out.print(f"imported {n} {fidelity} result(s) for {len(rows)} design(s) into "
              f"{config.name!r}; they steer the next round (invdes run {config_path})")


generate_app = typer.Typer(help="Generate designs with a trained generator.",
                           no_args_is_help=True)
app.add_typer(generate_app, name="generate")


@generate_app.command("molecules")
def generate_molecules(
    n: Annotated[int, typer.Option("--n", min=1, help="Molecules to sample.")],
    sdf: Annotated[Path, typer.Option("--out", help="SDF file for the valid molecules (3D).")],
    condition: Annotated[list[str] | None, typer.Option(
        help="Property target NAME=VALUE (eV), repeatable, e.g. gap_ev=6.5.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Integration steps.")] = 50,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance weight.")] = 6.0,
    weights: Annotated[Path | None, typer.Option(help="Generator checkpoint.")] = None,
    oversample: Annotated[int, typer.Option(
        min=1, help="With --condition: sample this many times --n molecules and keep the --n "
                    "that the pretrained property model predicts closest to the targets "
                    "(1: keep every valid sample).")] = 4,
    property_model: Annotated[Path | None, typer.Option(
        help="Property model that judges conditioned samples (default: the shipped one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Sample 3D molecules, optionally conditioned on HOMO/LUMO/gap targets; write the valid
    ones to SDF and print validity, uniqueness, novelty, stability and time.

    The sample metrics (validity, stability, ...) are over every sample drawn; with
    --condition and --oversample K > 1, K x N are drawn and the SDF gets the N closest to the
    targets by the property model, each with its predicted properties."""
    import time

    from rdkit import Chem

    from chem.flow_matching import FlowGenerator
    from chem.generated import build_molecule, summarise

    path = weights or GENERATOR_WEIGHTS
    if not path.is_file():
        _fail(f"no generator checkpoint at {path}; train one with `invdes train generator`")
    targets: dict[str, float] = {}
    for item in condition or []:
        name, _, value = item.partition("=")
        try:
            targets[name.strip()] = float(value)
        except ValueError:
            _fail(f"--condition {item!r}: expected NAME=VALUE with a number, e.g. gap_ev=6.5")
    try:
        generator = FlowGenerator.load(path)
    except ValueError as exc:
        _fail(str(exc))
    select = bool(targets) and oversample > 1
    judge = None
    if select:
        from chem.property_model import PropertyEnsemble

        judge_path = property_model or PRIOR_WEIGHTS
        if not judge_path.is_file():
            _fail(f"no property model at {judge_path}; train one with `invdes train surrogate` "
                  "or pass --oversample 1")
        judge = PropertyEnsemble.load(judge_path)
    start = time.perf_counter()
    n_sampled = n * oversample if select else n
    try:
        samples = generator.sample(n_sampled, targets or None, steps=steps, guidance=guidance,
                                   seed=seed)
    except ValueError as exc:
        _fail(str(exc))
    molecules = [build_molecule(*sample) for sample in samples]
    summary = summarise(molecules, generator.reference_smiles)
    kept = [m for m in molecules if m.valid]
    predicted: list[dict[str, float]] = [{} for _ in kept]
    if judge is not None:
        from chem.conditioned import select_closest

        try:
            chosen = select_closest(molecules, targets, judge, n)
        except ValueError as exc:
            _fail(str(exc))
        kept = chosen.molecules
        predicted = [dict(zip(chosen.properties, map(float, row), strict=True))
                     for row in chosen.predicted]
        summary["n_selected"] = len(kept)
        for name, target in targets.items():
            summary[f"selected_predicted_{name}_mae"] = (
                sum(abs(p[name] - target) for p in predicted) / len(kept) if kept else None)
    wall_s = time.perf_counter() - start
    summary = {"n_requested": n, "n_sampled": n_sampled,
               **{k: v for k, v in summary.items() if k != "n_requested"}}
    n_valid = sum(m.valid for m in molecules)
    summary.update({"condition": targets, "steps": steps, "seed": seed, "wall_s": wall_s,
                    "valid_per_second": n_valid / wall_s if wall_s else None, "out": str(sdf)})
    sdf.parent.mkdir(parents=True, exist_ok=True)
    with Chem.SDWriter(str(sdf)) as writer:
        for k, (m, props) in enumerate(zip(kept, predicted, strict=True)):
            assert m.mol is not None  # valid molecules carry theirs
            mol = Chem.Mol(m.mol)
            mol.SetProp("_Name", f"sample-{k}")
            mol.SetProp("smiles", m.smiles)
            for prop, predicted_ev in props.items():
                mol.SetDoubleProp(f"predicted_{prop}", predicted_ev)
            writer.write(mol)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    for key, shown in summary.items():
        out.print(f"{key}: {shown:.3f}" if isinstance(shown, float) else f"{key}: {shown}")


train_app = typer.Typer(help="Train the models that campaigns use.", no_args_is_help=True)
app.add_typer(train_app, name="train")

DEFAULT_WEIGHTS = PRIOR_WEIGHTS


@train_app.command("surrogate")
def train_surrogate(
    data: Annotated[Path, typer.Option(help="CSV with smiles, homo_ev, lumo_ev, gap_ev "
                                            "(e.g. the QM9 pool's train_pool.csv.gz).")],
    out: Annotated[Path, typer.Option(help="Checkpoint to write.")] = DEFAULT_WEIGHTS,
    limit: Annotated[int | None, typer.Option(min=10, help="Use only the first N rows.")] = None,
    holdout: Annotated[int, typer.Option(min=0, help="Leave the last N rows out of training "
                                                      "(for bench/surrogate.py).")] = 0,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    members: Annotated[int, typer.Option(min=1, help="Networks in the ensemble.")] = 3,
    features: Annotated[int, typer.Option(min=8)] = 64,
    layers: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    learning_rate: Annotated[float, typer.Option()] = 5e-4,
    seed: Annotated[int, typer.Option()] = 0,
    processes: Annotated[int, typer.Option(min=1, help="Processes for 3D embedding.")] = 2,
    workers: Annotated[int, typer.Option(
        min=1, help="Members trained at once, one single-threaded process each (CPU).")] = 1,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    geometry: Annotated[str, typer.Option(
        help="3D input made from each SMILES: mmff (RDKit ETKDG + MMFF94) or xtb (that "
             "geometry relaxed with GFN2-xTB, about 0.2 s per molecule).")] = "mmff",
    geometries: Annotated[Path | None, typer.Option(
        help="Cache of the embedded 3D geometries (.npz): read when it exists and matches the "
             "rows used and --geometry, else written after embedding.")] = None,
    init_from: Annotated[Path | None, typer.Option(
        help="Continue from this checkpoint (same architecture, molecules and seed): --epochs "
             "more epochs on a new learning-rate cycle (also onto other --geometry inputs).")] = None,
) -> None:
    """Train the pretrained property model: a PaiNN deep ensemble predicting HOMO, LUMO and gap
    (eV, with calibrated uncertainty) from 3D geometries made from the SMILES."""
    import torch

    from chem.datasets import load_labelled_smiles
    from chem.property_model import PropertyEnsemble, TrainingConfig, train_ensemble

    try:
        frame = load_labelled_smiles(data)
        if len(frame) - holdout < 4:
            raise ValueError(f"{data}: {len(frame)} rows minus --holdout {holdout} leaves too few "
                             "to train on")
        config = TrainingConfig(epochs=epochs, members=members, features=features,
                                n_layers=layers, batch_size=batch_size,
                                learning_rate=learning_rate, seed=seed,
                                warmup_epochs=min(5, epochs // 4), device=device,
                                geometry=geometry, workers=workers)  # type: ignore[arg-type]
    except (ValueError, ValidationError) as exc:
        _fail(str(exc))
    if holdout:
        frame = frame.iloc[: len(frame) - holdout]
    if limit:
        frame = frame.iloc[:limit]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with _training_progress() as progress:
        dataset = _embedded(frame, config.geometry, geometries, processes, progress)
        try:
            start_from = PropertyEnsemble.load(init_from) if init_from is not None else None
            ensemble = train_ensemble(dataset, config, progress=progress, init_from=start_from)
        except ValueError as exc:
            _fail(f"{data}: {exc}")
    ensemble.metrics.update({"data": data.name, "rows_used": len(frame), "holdout": holdout})
    out.parent.mkdir(parents=True, exist_ok=True)
    ensemble.save(out)
    out_metrics = ensemble.metrics["validation"]
    err.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); validation: "
              + ", ".join(f"{k} {v:.3f}" for k, v in out_metrics.items()))


GENERATOR_WEIGHTS = FLOW_WEIGHTS


@train_app.command("generator")
def train_generator_command(
    data: Annotated[Path, typer.Option(help="Multi-frame XYZ (.xyz or .xyz.gz) whose comment "
                                            "lines carry smiles=, homo_ev=, lumo_ev=, gap_ev= "
                                            "(e.g. the QM9 pool's train_pool_geometries.xyz.gz).")],
    out: Annotated[Path, typer.Option(help="Checkpoint to write.")] = GENERATOR_WEIGHTS,
    limit: Annotated[int | None, typer.Option(min=2, help="Read only the first N frames.")] = None,
    holdout: Annotated[int, typer.Option(min=0, help="Leave the last N molecules out.")] = 0,
    epochs: Annotated[int, typer.Option(min=1)] = 100,
    features: Annotated[int, typer.Option(min=8)] = 128,
    layers: Annotated[int, typer.Option(min=1)] = 6,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    learning_rate: Annotated[float, typer.Option()] = 5e-4,
    weight_types: Annotated[float, typer.Option(help="Weight of the atom-class loss.")] = 1.0,
    weight_bonds: Annotated[float, typer.Option(help="Weight of the bond-class loss.")] = 2.0,
    categorical_noise: Annotated[float, typer.Option(
        help="Noise scale of the atom-class and bond states.")] = 3.0,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    molecules: Annotated[Path | None, typer.Option(
        help="Cache of the read molecules with their bonds (.npz): read when it exists, else "
             "written.")] = None,
    state: Annotated[Path | None, typer.Option(
        help="Training state written after every epoch; an interrupted run given the same "
             "file resumes where it stopped.")] = None,
    init_from: Annotated[Path | None, typer.Option(
        help="Start from this generator checkpoint (same architecture, or the same without "
             "self-conditioning): a further stage.")] = None,
    self_condition: Annotated[bool, typer.Option(
        help="The denoiser also reads its previous prediction of the clean molecule.")] = False,
    p_drop_property: Annotated[float, typer.Option(
        help="Probability of dropping each conditioning target on its own.")] = 0.3,
    ema_decay: Annotated[float, typer.Option(
        help="Decay of the moving average of the weights that the checkpoint gets (0: off).")
    ] = 0.999,
) -> None:
    """Train the 3D molecule generator (E(3)-equivariant flow matching over atoms, positions
    and bonds, conditioned on HOMO, LUMO and gap) on labelled 3D molecules."""
    from chem.flow_data import MoleculeSet, read_labelled_xyz
    from chem.flow_matching import FlowGenerator, GeneratorTraining, train_generator

    try:
        config = GeneratorTraining(epochs=epochs, features=features, n_layers=layers,
                                   batch_size=batch_size, learning_rate=learning_rate,
                                   weight_types=weight_types, weight_bonds=weight_bonds,
                                   categorical_noise=categorical_noise,
                                   p_drop_property=p_drop_property, ema_decay=ema_decay,
                                   self_condition=self_condition, seed=seed, device=device)
    except ValidationError as exc:
        _fail(str(exc))
    with _training_progress() as progress:
        try:
            if molecules is not None and molecules.is_file():
                mols = MoleculeSet.load(molecules)
            else:
                mols, skipped = read_labelled_xyz(data, limit=limit, progress=progress)
                err.print(f"read {len(mols)} molecules from {data}; left out: {skipped}")
                if molecules is not None:
                    mols.save(molecules)
            if holdout:
                mols = mols.subset(range(len(mols) - holdout))
            start_from = FlowGenerator.load(init_from) if init_from is not None else None
            generator = train_generator(mols, config, progress=progress, state_path=state,
                                        init_from=start_from)
        except ValueError as exc:
            _fail(str(exc))
    generator.metrics.update({"data": data.name, "holdout": holdout})
    out.parent.mkdir(parents=True, exist_ok=True)
    generator.save(out)
    err.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); trained on {len(mols)} "
              f"molecules for {epochs} epochs in {generator.metrics['train_seconds']:.0f} s; "
              f"last losses: {generator.metrics['final_loss']}")


def _embedded(frame: Any, method: Any, cache: Path | None, processes: int,
              progress: Progress) -> Any:
    """The frame's molecules with 3D geometries made by ``method`` (``mmff`` or ``xtb``), from
    ``cache`` when it holds these rows made that way."""
    from chem.datasets import GeometryDataset, embed_dataset

    if cache is not None and cache.is_file():
        dataset = GeometryDataset.load(cache)
        if dataset.method != method:
            err.print(f"{cache}: cached geometries are {dataset.method}, not {method}; "
                      "embedding again")
        elif set(dataset.smiles.tolist()) <= set(frame["smiles"]) and len(dataset) >= 0.95 * len(frame):
            return dataset
        else:
            err.print(f"{cache}: cached geometries are for other molecules; embedding again")
    dataset = embed_dataset(frame, method=method, processes=processes, progress=progress)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        dataset.save(cache)
    return dataset


@app.command()
def predict(
    smiles_file: Annotated[Path, typer.Option(help="One SMILES per line ('#' comments).")],
    weights: Annotated[Path, typer.Option(help="Checkpoint.")] = DEFAULT_WEIGHTS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict HOMO, LUMO and gap (eV) with standard deviations for each SMILES, with the
    pretrained property model."""
    from chem.property_model import PropertyEnsemble

    if not smiles_file.is_file():
        _fail(f"{smiles_file}: file not found")
    if not weights.is_file():
        _fail(f"no property-model checkpoint at {weights}; train one with "
              "`invdes train surrogate --data ...`")
    lines = [(i + 1, line.split()[0]) for i, line in enumerate(smiles_file.read_text().splitlines())
             if line.strip() and not line.lstrip().startswith("#")]
    try:
        ensemble = PropertyEnsemble.load(weights)
    except ValueError as exc:
        _fail(str(exc))
    predicted, failures = ensemble.predict_smiles_report([s for _, s in lines])
    rows: list[dict[str, object]] = []
    for lineno, smi in lines:
        row: dict[str, object] = {"line": lineno, "smiles": smi}
        if smi not in predicted:
            row.update(status="failed", reason=failures[smi])
        else:
            row["status"] = "ok"
            mean, std = predicted[smi]
            for j, prop in enumerate(ensemble.properties):
                row[f"{prop}_mean"] = round(float(mean[j]), 4)
                row[f"{prop}_std"] = round(float(std[j]), 4)
        rows.append(row)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"predicted with {weights.name}")
    for col in ("line", "smiles", *(f"{p} (mean ± std)" for p in ensemble.properties)):
        table.add_column(col)
    for row in rows:
        cells = [f"{row[f'{p}_mean']:.3f} ± {row[f'{p}_std']:.3f}" if row["status"] == "ok"
                 else str(row["reason"])[:40] for p in ensemble.properties]
        table.add_row(str(row["line"]), str(row["smiles"]), *cells)
    out.print(table)


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
