"""``invdes generate``: designs from a trained generator."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import GENERATOR, PROPERTY_MODEL, fail, out, training_progress


class Geometry(StrEnum):
    """Coordinates ``invdes generate molecules`` writes."""

    mmff = "mmff"
    xtb = "xtb"
    raw = "raw"


generate_app = typer.Typer(help="Generate designs with a trained generator.",
                           no_args_is_help=True)


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
    geometry: Annotated[Geometry, typer.Option(
        help="Coordinates written: mmff (MMFF94 relaxation from the generated coordinates), "
             "xtb (GFN2-xTB relaxation, about 0.2 s per molecule) or raw (as generated: not "
             "at a minimum; B3LYP gaps on them were up to 2.7 eV off).")] = Geometry.mmff,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Sample 3D molecules, optionally conditioned on HOMO/LUMO/gap targets; write the valid
    ones to SDF and print validity, uniqueness, novelty, stability and time.

    The sample metrics (validity, stability, ...) are over every sample drawn; with
    --condition and --oversample K > 1, K x N are drawn and the SDF gets the N closest to the
    targets by the property model, each with its predicted properties. The SDF holds every
    hydrogen and coordinates relaxed from the generated ones (--geometry); a molecule whose
    relaxation fails (it would change its bonds) is left out and counted."""
    import time

    from rdkit import Chem

    from chem.flow_matching import FlowGenerator
    from chem.generated import RelaxationFailed, build_molecule, relax_molecule, summarise

    path = weights or GENERATOR
    if not path.is_file():
        fail(f"no generator checkpoint at {path}; train one with `invdes train generator`")
    targets: dict[str, float] = {}
    for item in condition or []:
        name, _, value = item.partition("=")
        try:
            targets[name.strip()] = float(value)
        except ValueError:
            fail(f"--condition {item!r}: expected NAME=VALUE with a number, e.g. gap_ev=6.5")
    try:
        generator = FlowGenerator.load(path)
    except ValueError as exc:
        fail(str(exc))
    select = bool(targets) and oversample > 1
    judge = None
    if select:
        from chem.property_model import PropertyEnsemble

        judge_path = property_model or PROPERTY_MODEL
        if not judge_path.is_file():
            fail(f"no property model at {judge_path}; train one with `invdes train surrogate` "
                  "or pass --oversample 1")
        judge = PropertyEnsemble.load(judge_path)
    start = time.perf_counter()
    n_sampled = n * oversample if select else n
    with training_progress() as progress:
        try:
            samples = generator.sample(n_sampled, targets or None, steps=steps,
                                       guidance=guidance, seed=seed, progress=progress)
        except ValueError as exc:
            fail(str(exc))
        molecules = [build_molecule(*sample) for sample in samples]
        if judge is not None:
            from chem.conditioned import select_closest

            try:
                chosen = select_closest(molecules, targets, judge, n, progress=progress)
            except ValueError as exc:
                fail(str(exc))
    summary = summarise(molecules, generator.reference_smiles)
    kept = [m for m in molecules if m.valid]
    predicted: list[dict[str, float]] = [{} for _ in kept]
    if judge is not None:
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
    relax_start = time.perf_counter()
    relaxed: list[tuple[Chem.Mol, dict[str, float], str]] = []
    failures: dict[str, str] = {}
    for m, props in zip(kept, predicted, strict=True):
        assert m.mol is not None  # valid molecules carry theirs
        try:
            relaxed.append((relax_molecule(m.mol, geometry.value), props, m.smiles))
        except RelaxationFailed as exc:
            failures[m.smiles] = str(exc)
    summary.update({"geometry": geometry.value, "n_written": len(relaxed),
                    "n_relaxation_failed": len(failures), "relaxation_failures": failures,
                    "relax_s": time.perf_counter() - relax_start})
    sdf.parent.mkdir(parents=True, exist_ok=True)
    with Chem.SDWriter(str(sdf)) as writer:
        for k, (mol, props, smiles) in enumerate(relaxed):
            mol.SetProp("_Name", f"sample-{k}")
            mol.SetProp("smiles", smiles)
            for prop, predicted_ev in props.items():
                mol.SetDoubleProp(f"predicted_{prop}", predicted_ev)
            writer.write(mol)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    for key, shown in summary.items():
        if key == "relaxation_failures":
            for smiles, reason in failures.items():
                out.print(f"left out {smiles}: {reason}", highlight=False)
            continue
        out.print(f"{key}: {shown:.3f}" if isinstance(shown, float) else f"{key}: {shown}",
                  highlight=False)
