"""Benchmark of the 3D molecule generator: sample quality, conditional accuracy and speed.

Usage:
    python bench/generator.py --pool ../shared/data/qm9/train_pool.csv.gz \
        --json bench/results/generator.json --plot bench/results/generator.png

Unconditional: ``--n`` samples, measured as the literature does (EDM's atom and molecule
stability, RDKit validity, uniqueness among valid, novelty against the training molecules), and
speed as valid molecules per second (sampling and the 3D-to-molecule step, ``--threads``
threads); the same with fewer steps (``--tradeoff-steps``) shows what speed costs in quality.

Both are measured on the generator's output (valence-constrained decoding, ``--max-log-loss``)
and, on the same samples, on the argmax read-out (``unconditional_argmax``).

Conditional: ``--targets`` gap targets at evenly spaced quantiles (5 % to 95 %) of the pool's
gap. For each, ``--n-per-target`` x ``--oversample`` guided samples are drawn; the first
``--n-per-target`` are guided sampling alone, and conditional generation as the product does it
(:func:`chem.conditioned.select_closest`) keeps the ``--n-per-target`` valid distinct ones the
property model predicts closest (judged at a new embedding of each SMILES, or with
``--judge-geometry generated`` at its relaxed generated coordinates). The mean absolute error
between target and gap is measured with the pretrained property model on every valid sample of
both, and with the PySCF oracle at the pool's level of theory (``qm9``: B3LYP/6-31G(2df,p)) on
``--dft-per-target`` molecules drawn at random from those kept for each target, at exactly the
coordinates ``invdes generate molecules`` writes by default: the generated heavy atoms with
RDKit hydrogens, relaxed from there with MMFF94 (:func:`chem.generated.relax_molecule` with
``"mmff"``; not a new embedding from the SMILES, and not a B3LYP optimisation, which would take
hours per molecule here). A molecule whose relaxation fails is a failed DFT row with the reason.
The same error of the unconditional samples against each target shows what conditioning adds.
DFT rows are written to the JSON as they finish; a rerun with the same JSON skips those already done.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import Progress

from chem.conditioned import select_closest
from chem.flow_generator import DEFAULT_WEIGHTS
from chem.flow_matching import FlowGenerator, SampledGraph
from chem.generated import (
    GeneratedMolecule,
    RelaxationFailed,
    build_molecule,
    relax_molecule,
    summarise,
)
from chem.prior import DEFAULT_WEIGHTS as SURROGATE_WEIGHTS
from chem.property_model import PropertyEnsemble
from oracles.pyscf_oracle import PySCFOracle
from pipeline.types import Candidate, Geometry

GOALS = {"validity": 0.95, "validity_x_uniqueness": 0.90, "molecule_stability": 0.90,
         "novelty": 0.60, "gap_mae_ev": 0.4, "valid_per_s": 20.0}


def sample_and_build(generator: FlowGenerator, n: int, condition: dict[str, float] | None,
                     args: argparse.Namespace, seed: int
                     ) -> tuple[list[GeneratedMolecule], float, list[SampledGraph]]:
    """Samples ``n`` molecules and checks them.

    Returns:
        The molecules as the generator gives them (valence-constrained decoding), the wall time
        of that, s, and the sampled graphs (for other read-outs, untimed).
    """
    start = time.perf_counter()
    graphs = generator.sample_graphs(n, condition, steps=args.steps, guidance=args.guidance,
                                     seed=seed, batch_size=args.batch_size)
    molecules = [build_molecule(*g.decoded(args.max_log_loss)) for g in graphs]
    return molecules, time.perf_counter() - start, graphs


def surrogate_gaps(model: PropertyEnsemble, smiles: list[str]) -> dict[str, float]:
    """Predicted gap (eV) of each distinct SMILES (from its RDKit geometry)."""
    k = model.properties.index("gap_ev")
    return {s: float(mean[k]) for s, (mean, _) in model.predict_smiles(smiles).items()}


def dft_geometry(molecule: GeneratedMolecule) -> Geometry:
    """The molecule at the coordinates ``invdes generate molecules`` writes by default: its
    generated heavy atoms with RDKit hydrogens, relaxed with MMFF94 from there (UFF where MMFF94
    has no parameters; :func:`chem.generated.relax_molecule`).

    Raises:
        ValueError: an invalid molecule (it has no RDKit molecule).
        RelaxationFailed: the relaxation failed or changed the molecule's bonds.
    """
    if molecule.mol is None:
        raise ValueError(f"no geometry for an invalid molecule ({molecule.reason})")
    mol = relax_molecule(molecule.mol, "mmff")
    pos = mol.GetConformer().GetPositions()
    return Geometry(tuple(a.GetSymbol() for a in mol.GetAtoms()),
                    tuple((float(x), float(y), float(z)) for x, y, z in pos))


def metrics(molecules: list[GeneratedMolecule], reference: tuple[str, ...], wall_s: float
            ) -> dict[str, Any]:
    """Literature metrics of a sample plus speed."""
    summary = summarise(molecules, reference)
    summary["validity_x_uniqueness"] = summary["validity"] * summary["uniqueness"]  # type: ignore[operator]
    summary["wall_s"] = wall_s
    summary["valid_per_s"] = summary["n_valid"] / wall_s  # type: ignore[operator]
    return summary


def main() -> None:
    """Runs the benchmark and writes JSON after each part."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, required=True, help="QM9 pool CSV (gap_ev column)")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--surrogate", type=Path, default=SURROGATE_WEIGHTS)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=5)
    parser.add_argument("--n-per-target", type=int, default=200)
    parser.add_argument("--dft-per-target", type=int, default=6)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=6.0)
    parser.add_argument("--max-log-loss", type=float, default=2.0,
                        help="budget of the valence-constrained decoding, nats")
    parser.add_argument("--oversample", type=int, default=4,
                        help="conditional: draws per kept molecule (the property model picks)")
    parser.add_argument("--judge-geometry", choices=("embedded", "generated"), default="embedded",
                        help="conditional: geometry the property model judges "
                             "(chem.conditioned.JudgedGeometry)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tradeoff-steps", default="20,30",
                        help="further step counts for the speed/quality trade-off (n/2 samples)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = FlowGenerator.load(args.weights)
    surrogate = PropertyEnsemble.load(args.surrogate)
    pool_gap = pd.read_csv(args.pool)["gap_ev"].to_numpy()
    targets = [float(np.quantile(pool_gap, q)) for q in np.linspace(0.05, 0.95, args.targets)]
    old = json.loads(args.json.read_text()) if args.json.is_file() else {}
    done_dft = {(r["target_ev"], r["smiles"]): r for r in old.get("dft", {}).get("rows", [])}
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "threads": args.threads,
                    "processor": platform.processor(), "python": platform.python_version()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "generator": {"weights": str(args.weights), **generator.metrics,
                      "config": generator.config.model_dump()},
        "goals": GOALS,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        args.json.write_text(json.dumps(report, indent=2, default=float))

    reference = generator.reference_smiles
    molecules, wall, graphs = sample_and_build(generator, args.n, None, args, args.seed)
    argmax = [build_molecule(g.types, g.positions, g.bonds) for g in graphs]
    report["unconditional"] = metrics(molecules, reference, wall)
    report["unconditional_argmax"] = {k: v for k, v in metrics(argmax, reference, wall).items()
                                      if k not in ("wall_s", "valid_per_s")}
    save()
    unconditional_smiles = [m.smiles for m in molecules if m.valid]
    tradeoff = []
    for steps in [int(v) for v in args.tradeoff_steps.split(",") if v]:
        fewer = argparse.Namespace(**{**vars(args), "steps": steps})
        mols, wall, _ = sample_and_build(generator, args.n // 2, None, fewer, args.seed)
        row = metrics(mols, reference, wall)
        tradeoff.append({"steps": steps, **{k: row[k] for k in (
            "n_requested", "validity", "uniqueness", "atom_stability", "molecule_stability",
            "novelty", "wall_s", "valid_per_s")}})
    report["steps_tradeoff"] = tradeoff
    save()
    conditional: list[dict[str, Any]] = []
    samples: dict[float, list[GeneratedMolecule]] = {}
    selected: dict[float, list[GeneratedMolecule]] = {}
    selected_gap: dict[float, dict[str, float]] = {}
    for k, target in enumerate(targets):
        condition = {"gap_ev": target}
        drawn, wall, _ = sample_and_build(generator, args.n_per_target * args.oversample,
                                          condition, args, args.seed + 1 + k)
        # guided sampling alone: the first n_per_target draws
        guided_wall = wall * args.n_per_target / len(drawn)
        samples[target] = drawn[: args.n_per_target]
        row = {"target_ev": target, **metrics(samples[target], reference, guided_wall)}
        start = time.perf_counter()
        chosen = select_closest(drawn, condition, surrogate, args.n_per_target,
                                geometry=args.judge_geometry)
        selected[target] = chosen.molecules
        select_wall = wall + time.perf_counter() - start
        kept_gaps = chosen.predicted[:, chosen.properties.index("gap_ev")]
        selected_gap[target] = {m.smiles: float(v) for m, v in
                                zip(chosen.molecules, kept_gaps, strict=True)}
        row["selected"] = {
            "n_drawn": len(drawn), "n_judged": chosen.n_judged, "n_selected": len(kept_gaps),
            "wall_s": select_wall, "selected_per_s": len(kept_gaps) / select_wall,
            "surrogate_gaps_ev": kept_gaps.tolist(),
            "surrogate_mae_ev": (float(np.mean(np.abs(kept_gaps - target)))
                                 if len(kept_gaps) else None),
        }
        conditional.append(row)
    valid_smiles = [m.smiles for mols in samples.values() for m in mols if m.valid]
    predicted = surrogate_gaps(surrogate, valid_smiles + unconditional_smiles)
    errors, baseline, picked_errors = [], [], []
    for row, target in zip(conditional, targets, strict=True):
        gaps = [predicted[m.smiles] for m in samples[target] if m.valid and m.smiles in predicted]
        free = [predicted[s] for s in unconditional_smiles if s in predicted]
        row["surrogate_gaps_ev"] = gaps
        row["surrogate_mae_ev"] = float(np.mean(np.abs(np.array(gaps) - target))) if gaps else None
        row["unconditional_surrogate_mae_ev"] = (float(np.mean(np.abs(np.array(free) - target)))
                                                 if free else None)
        errors += [abs(g - target) for g in gaps]
        baseline += [abs(g - target) for g in free]
        picked_errors += [abs(g - target) for g in row["selected"]["surrogate_gaps_ev"]]
    report["conditional"] = {
        "targets_ev": targets, "per_target": conditional,
        "surrogate_mae_ev": float(np.mean(errors)) if errors else None,
        "selected_surrogate_mae_ev": float(np.mean(picked_errors)) if picked_errors else None,
        "unconditional_surrogate_mae_ev": float(np.mean(baseline)) if baseline else None,
        "n_valid": sum(r["n_valid"] for r in conditional),
        "validity": float(np.mean([r["validity"] for r in conditional])),
        "selected_per_s": float(np.mean([r["selected"]["selected_per_s"] for r in conditional])),
    }
    report["unconditional"]["surrogate_gaps_ev"] = [predicted[s] for s in unconditional_smiles
                                                    if s in predicted]
    save()

    oracle = PySCFOracle(PySCFOracle.Params(level="qm9", threads=args.threads, timeout_s=3600,
                                            max_memory_mb=8000))
    rows: list[dict[str, Any]] = []
    with Progress() as progress:
        task = progress.add_task("DFT (qm9 level) of conditional samples",
                                 total=args.dft_per_target * len(targets))
        rng = np.random.default_rng(args.seed)
        for target in targets:
            # a random few of the molecules conditional generation delivers (not its best few)
            chosen_ones = selected[target]
            draw = rng.choice(len(chosen_ones), min(args.dft_per_target, len(chosen_ones)),
                              replace=False) if chosen_ones else []
            picked = {chosen_ones[i].smiles: chosen_ones[i] for i in sorted(draw)}
            for smiles, m in picked.items():
                if (target, smiles) in done_dft:
                    rows.append(done_dft[(target, smiles)])
                else:
                    start = time.perf_counter()
                    row = {"target_ev": target, "smiles": smiles,
                           "surrogate_gap_ev": selected_gap[target].get(smiles)}
                    try:
                        geometry = dft_geometry(m)
                    except RelaxationFailed as err:
                        row.update({"status": "failed", "reason": f"relaxation: {err}",
                                    "gap_ev": None})
                    else:
                        result = oracle.run(Candidate(smiles, smiles, smiles, 0, "bench",
                                                      geometry=geometry))
                        row.update({"status": result.status.value, "reason": result.reason,
                                    "gap_ev": result.values.get("gap_ev")})
                    rows.append({**row, "wall_s": time.perf_counter() - start})
                ok = [r for r in rows if r["status"] == "ok"]
                report["dft"] = {
                    "level": "qm9",
                    "geometry": "as invdes generate molecules writes it: generated heavy atoms "
                                "+ RDKit H, MMFF94-relaxed from there (relax_molecule 'mmff')",
                    "molecules": f"{args.dft_per_target} drawn at random per target from those "
                                 f"conditional generation keeps (guidance {args.guidance}, "
                                 f"property model picks 1 in {args.oversample})",
                    "n": len(rows), "n_ok": len(ok),
                    "gap_mae_ev": (float(np.mean([abs(r["gap_ev"] - r["target_ev"]) for r in ok]))
                                   if ok else None),
                    "surrogate_vs_dft_mae_ev": (float(np.mean(
                        [abs(r["gap_ev"] - r["surrogate_gap_ev"]) for r in ok
                         if r["surrogate_gap_ev"] is not None])) if ok else None),
                    "rows": rows,
                }
                save()
                progress.advance(task)
    if args.plot:
        plot(report, args.plot)


def plot(report: dict[str, Any], path: Path) -> None:
    """Predicted gaps of the samples of each target (violins), DFT gaps (dots), targets (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_target = report["conditional"]["per_target"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    free = report["unconditional"]["surrogate_gaps_ev"] or [np.nan]
    guided = [r["surrogate_gaps_ev"] or [np.nan] for r in per_target]
    picked = [r["selected"]["surrogate_gaps_ev"] or [np.nan] for r in per_target]
    positions = list(range(len(per_target) + 1))
    ax.violinplot([free], positions=[0], showmedians=True)
    parts = ax.violinplot(guided, positions=[i - 0.2 for i in positions[1:]], widths=0.35,
                          showmedians=True)
    for body in parts["bodies"]:  # type: ignore[attr-defined]
        body.set_alpha(0.25)
    ax.violinplot(picked, positions=[i + 0.2 for i in positions[1:]], widths=0.35,
                  showmedians=True)
    for i, r in enumerate(per_target, start=1):
        ax.hlines(r["target_ev"], i - 0.4, i + 0.4, colors="red", label="target" if i == 1 else "_")
        dft = [d["gap_ev"] for d in report.get("dft", {}).get("rows", [])
               if d["target_ev"] == r["target_ev"] and d["status"] == "ok"]
        ax.scatter([i + 0.2] * len(dft), dft, color="black", s=12, zorder=3,
                   label="B3LYP/6-31G(2df,p)" if i == 1 else "_")
    ax.set_xticks(positions, ["none"] + [f"{r['target_ev']:.2f}" for r in per_target])
    ax.set_xlabel("gap target (eV)")
    ax.set_ylabel("gap of generated molecules (eV)")
    ax.set_title("Gap of generated molecules by the property model (violins; per target, left: "
                 "guided samples,\nright: those kept after selection) and by DFT (dots, "
                 "kept molecules)", fontsize=10)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
