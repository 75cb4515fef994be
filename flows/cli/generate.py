"""``invdes generate``: designs from a trained generator."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
    CRYSTAL_GENERATOR,
    CRYSTAL_MODEL,
    GENERATOR,
    ORBITAL_MODEL,
    PROPERTY_MODEL,
    STABILITY_MODEL,
    fail,
    out,
    training_progress,
)
from materials.sampling_defaults import ANNEAL, MIN_DISTANCE

OVERSAMPLE_GUIDED = 4
"""Molecules drawn per kept one when every condition is guided."""
OVERSAMPLE_SELECTION_ONLY = 64
"""... when a condition is met by the property models' selection alone: measured by DFT
(bench/orbital_design.py, 30 kept), lumo_share_N>=0.5 was met by 5/30 selecting from 8 times
as many, 15/30 from 32 and 25/30 from 64 (a rare target needs a wide draw to choose from)."""


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
        help="Target NAME=VALUE, NAME<=VALUE or NAME>=VALUE, repeatable: energies (gap_ev=6.5, "
             "eV) and orbital-location descriptors (frontier_overlap<=0.3, lumo_share_N>=0.5)."
    )] = None,
    seed: Annotated[int, typer.Option()] = 0,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Integration steps.")] = 50,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance weight.")] = 6.0,
    weights: Annotated[Path | None, typer.Option(help="Generator checkpoint.")] = None,
    oversample: Annotated[int | None, typer.Option(
        min=1, help="With --condition: sample this many times --n molecules and keep the --n "
                    "that the pretrained property model predicts closest to the targets "
                    "(1: keep every valid sample).",
        show_default=f"{OVERSAMPLE_GUIDED}, or {OVERSAMPLE_SELECTION_ONLY} where a condition "
                     "is met by selection alone (not_guided)")] = None,
    property_model: Annotated[Path | None, typer.Option(
        help="Property model that judges conditioned samples (default: the shipped one).")
    ] = None,
    orbital_model: Annotated[Path | None, typer.Option(
        help="Orbital-location model that judges descriptor conditions and annotates the SDF "
             "(default: the shipped one, when there is one).")] = None,
    geometry: Annotated[Geometry, typer.Option(
        help="Coordinates written: mmff (MMFF94 relaxation from the generated coordinates), "
             "xtb (GFN2-xTB relaxation, about 0.2 s per molecule) or raw (as generated: not "
             "at a minimum; B3LYP gaps on them were up to 2.7 eV off).")] = Geometry.mmff,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Sample 3D molecules, optionally conditioned on HOMO/LUMO/gap targets and on where the
    frontier orbitals sit; write the valid ones to SDF and print validity, uniqueness,
    novelty, stability and time.

    The sample metrics (validity, stability, ...) are over every sample drawn; with
    --condition and --oversample K > 1, K x N are drawn and the SDF gets the N closest to the
    targets by the property models, each with its predicted properties (energies and, with
    an orbital model, the orbital-location descriptors). Windows (<=, >=) guide towards a point
    inside them and keep the molecules most likely to lie inside; conditions the generator is
    not trained on (listed as not_guided) are met by selection alone. The SDF holds every
    hydrogen and coordinates relaxed from the generated ones (--geometry); a molecule whose
    relaxation fails (it would change its bonds) is left out and counted."""
    import time

    import numpy as np
    from rdkit import Chem

    from chem.flow_matching import FlowGenerator
    from chem.generated import RelaxationFailed, build_molecule, relax_molecule, summarise

    path = weights or GENERATOR
    if not path.is_file():
        fail(f"no generator checkpoint at {path}; train one with `invdes train generator`")
    try:
        generator = FlowGenerator.load(path)
    except ValueError as exc:
        fail(str(exc))
    orbital_path = orbital_model or ORBITAL_MODEL
    orbital = None
    if orbital_path.is_file():
        from chem.orbital_model import OrbitalShareEnsemble

        orbital = OrbitalShareEnsemble.load(orbital_path)
    elif orbital_model is not None:
        fail(f"no orbital model at {orbital_model}; train one with `invdes train orbital-model`")
    from chem.conditioned import guidance_point
    from pipeline.conditions import parse_condition
    from pipeline.orbital_shares import DESCRIPTORS

    known = list(dict.fromkeys([*generator.properties, *(DESCRIPTORS if orbital else ())]))
    try:
        conditions = [parse_condition(item, known) for item in condition or []]
    except ValueError as exc:
        descriptor = any(name in item for item in condition or [] for name in DESCRIPTORS)
        hint = ("; conditions on orbital-location descriptors need an orbital model (`invdes "
                "train orbital-model`)" if descriptor and orbital is None else "")
        fail(f"--condition: {exc}{hint}")
    stats = generator.conditioning
    targets = {c.name: guidance_point(c, float(stats.mean[stats.properties.index(c.name)]),
                                      float(stats.std[stats.properties.index(c.name)]))
               for c in conditions if c.name in generator.properties}
    not_guided = [str(c) for c in conditions if c.name not in generator.properties]
    if oversample is None:
        oversample = OVERSAMPLE_SELECTION_ONLY if not_guided else OVERSAMPLE_GUIDED
    select = bool(conditions) and oversample > 1
    if not_guided and not select:
        fail(f"--condition {', '.join(not_guided)}: the generator is not trained on them, so "
             "only selection by the property model can meet them; use --oversample 2 or more")
    judge = None
    if select or orbital is not None:
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
        if select:
            from chem.conditioned import select_for_conditions

            assert judge is not None
            try:
                chosen = select_for_conditions(molecules, conditions, judge, n, orbital,
                                               progress=progress)
            except ValueError as exc:
                fail(str(exc))
        elif judge is not None:  # every valid molecule, annotated with what the models predict
            from chem.conditioned import judge_molecules

            judged = judge_molecules(list(dict.fromkeys(m.smiles for m in molecules if m.valid)),
                                     judge, orbital, progress)
    summary = summarise(molecules, generator.reference_smiles)
    kept = [m for m in molecules if m.valid]
    predicted: list[dict[str, float]] = [{} for _ in kept]
    if select:
        kept = chosen.molecules
        predicted = [{p: float(v) for p, v in zip(chosen.properties, row, strict=True)
                      if np.isfinite(v)} for row in chosen.predicted]
        summary["n_selected"] = len(kept)
    elif judge is not None:
        predicted = [dict(judged[m.smiles][0]) if m.smiles in judged else {} for m in kept]
    if judge is not None:
        for c in conditions:
            values = [p[c.name] for p in predicted if c.name in p]
            if c.op == "=":
                summary[f"selected_predicted_{c.name}_mae"] = (
                    sum(abs(v - c.value) for v in values) / len(values) if values else None)
            else:
                summary[f"selected_predicted_meeting_{c}"] = (
                    sum(c.met(v) for v in values) / len(values) if values else None)
    summary["not_guided"] = not_guided
    wall_s = time.perf_counter() - start
    summary = {"n_requested": n, "n_sampled": n_sampled,
               **{k: v for k, v in summary.items() if k != "n_requested"}}
    n_valid = sum(m.valid for m in molecules)
    summary.update({"condition": [str(c) for c in conditions], "guidance_targets": targets,
                    "steps": steps, "seed": seed, "wall_s": wall_s,
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
            for prop, predicted_value in props.items():
                mol.SetDoubleProp(f"predicted_{prop}", predicted_value)
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


@generate_app.command("perovskites")
def generate_perovskites(
    csv_out: Annotated[Path, typer.Option("--out", help="CSV: one row per cell with formula, "
                                                         "cif, validity and predictions.")],
    n: Annotated[int | None, typer.Option("--n", min=1, help="De novo: cells to keep.")] = None,
    compositions: Annotated[Path | None, typer.Option(
        help="Structure prediction: a file with one formula a line ('#' comments), e.g. "
             "SrTiO3 or Cs2AgBiBr6 (the cell has the sites as written).")] = None,
    per_composition: Annotated[int, typer.Option(
        min=1, help="Structure prediction: cells per formula.")] = 1,
    condition: Annotated[list[str] | None, typer.Option(
        help="NAME=VALUE, NAME<=VALUE or NAME>=VALUE (eV, eV/atom), repeatable: "
             "formation_energy_ev_per_atom, band_gap_ev, decomposition_energy_ev_per_atom.")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    atoms: Annotated[int | None, typer.Option(
        min=1, max=40, help="De novo: sites per cell (5; 10 for the double-perovskite cell); "
                            "default: the training cells' sizes.")] = None,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Integration steps.")] = 100,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance weight.")] = 1.0,
    anneal: Annotated[float, typer.Option(
        min=0.0, help="Coordinate velocity scaled by 1 + anneal t (sharper sites).")] = ANNEAL,
    min_distance: Annotated[float, typer.Option(
        min=0.0, max=3.0, help="Angstrom: from half way on, sites closer than this are pushed "
                               "apart after each step (0: never).")] = MIN_DISTANCE,
    oversample: Annotated[int, typer.Option(
        min=1, help="De novo with a condition the property or stability model predicts: draw "
                    "this many times --n and keep the --n predicted best inside the "
                    "conditions.")] = 4,
    weights: Annotated[Path | None, typer.Option(help="Generator checkpoint.")] = None,
    property_model: Annotated[Path | None, typer.Option(
        help="Crystal property model for predictions and selection (default: the shipped "
             "one).")] = None,
    stability_model: Annotated[Path | None, typer.Option(
        help="CHGNet stability model: predicted decomposition_energy_ev_per_atom and "
             "selection on it (default: the shipped one, where there is one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Generate perovskite cells: de novo (--n) or the structures of given compositions
    (--compositions), optionally conditioned; write a CSV and print validity (SMACT
    composition; no two sites within 0.5 Angstrom), uniqueness, novelty against the training
    cells, time and failures by reason."""
    import csv

    from materials.crystal_flow import CrystalGenerator
    from materials.crystal_generation import (
        canonical_cif,
        generate_crystals,
        predict_crystal_structures,
        predict_stability,
        summarize,
        timed,
    )
    from materials.crystal_model import PROPERTIES as MODEL_PROPERTIES
    from materials.prior import load_crystal_model
    from materials.stability_model import STABILITY_PROPERTY
    from pipeline.conditions import parse_condition

    if (n is None) == (compositions is None):
        fail("give either --n (de novo) or --compositions FILE (structure prediction)")
    path = weights or CRYSTAL_GENERATOR
    if not path.is_file():
        fail(f"no crystal generator at {path}; train one with `invdes train generator "
             "--domain perovskites --data ...`")
    try:
        generator = CrystalGenerator.load(path)
        conditions = [parse_condition(c, generator.properties) for c in condition or []]
        judge = load_crystal_model(str(property_model or CRYSTAL_MODEL))
        stability = None
        if stability_model is not None or STABILITY_MODEL.is_file():
            from materials.stability_model import StabilityModel

            stability = StabilityModel.load(stability_model or STABILITY_MODEL)
        formulas: list[str] = []
        if compositions is not None:
            formulas = [line.strip() for line in compositions.read_text().splitlines()
                        if line.strip() and not line.lstrip().startswith("#")]
            if not formulas:
                raise ValueError(f"{compositions}: no formula in the file")
    except (ValueError, OSError) as exc:
        fail(str(exc))
    with training_progress() as progress:
        try:
            if compositions is not None:
                samples, wall = timed(predict_crystal_structures, generator, formulas,
                                      per_composition, seed, judge, steps, conditions,
                                      guidance, progress, anneal, min_distance)
                drawn = len(samples)
                if stability is not None:
                    predict_stability(samples, stability)
            else:
                assert n is not None
                (samples, drawn), wall = timed(generate_crystals, generator, n, conditions,
                                               seed, atoms, judge, oversample, guidance, steps,
                                               progress, anneal, min_distance, stability)
        except ValueError as exc:
            fail(f"{compositions}: {exc}" if compositions is not None else str(exc))
    summary = summarize(samples, drawn, wall, generator)
    summary.update({"mode": "structure prediction" if compositions is not None else "de novo",
                    "conditions": [str(c) for c in conditions], "seed": seed, "steps": steps,
                    "guidance": guidance, "anneal": anneal, "min_distance": min_distance,
                    "out": str(csv_out)})
    unguided = [str(c) for c in conditions if not generator.labelled(c.name)]
    if unguided:
        summary["not_guided"] = {c: "the generator was trained without labels of this "
                                    "property" for c in unguided}
    for c in conditions:
        values = [s.predicted[c.name][0] for s in samples if c.name in s.predicted]
        if values:
            summary[f"predicted_{c.name}_mean"] = float(sum(values) / len(values))
            summary[f"inside_{c}_by_model"] = sum(c.violation(v) == 0 for v in values
                                                  ) / len(values) if c.op != "=" else None
    predicted = [*MODEL_PROPERTIES, *([STABILITY_PROPERTY] if stability is not None else [])]
    csv_out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["formula", "generated_formula", "cif", "composition_valid", "structure_valid",
               "reason"] + [f"{p}{suffix}" for p in predicted for suffix in ("", "_std")]
    written = 0
    with csv_out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for s in samples:
            if s.structure is None:
                continue
            row = [s.formula, s.structure.composition.reduced_formula,
                   canonical_cif(s.structure), s.composition_valid, s.structure_valid, s.reason]
            for p in predicted:
                mean, std = s.predicted.get(p, (float("nan"), float("nan")))
                row += [f"{mean:.4f}", f"{std:.4f}"]
            writer.writerow(row)
            written += 1
    summary["rows_written"] = written
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    for key, shown in summary.items():
        out.print(f"{key}: {shown:.3f}" if isinstance(shown, float) else f"{key}: {shown}",
                  highlight=False)
