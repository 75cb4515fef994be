"""Benchmark of the 3D molecule generator: sample quality, conditional accuracy and speed.

Usage:
    python bench/generator.py --pool ../shared/data/qm9/train_pool.csv.gz \
        --json bench/results/generator.json --plot bench/results/generator.png

Unconditional: ``--n`` samples, measured as the literature does (EDM's atom and molecule
stability, RDKit validity, uniqueness among valid, novelty against the training molecules), and
speed as valid molecules per second (sampling and the 3D-to-molecule step, ``--threads``
threads); the same with fewer steps (``--tradeoff-steps``) shows what speed costs in quality.

Conditional: ``--targets`` gap targets at evenly spaced quantiles (5 % to 95 %) of the pool's
gap, ``--n-per-target`` samples each. The mean absolute error between target and gap is measured
with the pretrained property model on every valid sample, and with the PySCF oracle at the
pool's level of theory (``qm9``: B3LYP/6-31G(2df,p)) on the first ``--dft-per-target`` distinct
valid molecules of each target, at their generated heavy-atom coordinates with RDKit hydrogens,
relaxed with MMFF94 (a B3LYP optimisation of each would take hours here). The same error of the
unconditional samples against each target shows what conditioning adds. DFT rows are written to
the JSON as they finish; a rerun with the same JSON skips those already done.
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
from rdkit import Chem
from rdkit.Chem import rdForceFieldHelpers
from rich.progress import Progress

from chem.datasets import embed_dataset
from chem.flow_generator import DEFAULT_WEIGHTS
from chem.flow_matching import FlowGenerator
from chem.generated import GeneratedMolecule, build_molecule, summarise
from chem.prior import DEFAULT_WEIGHTS as SURROGATE_WEIGHTS
from chem.property_model import PropertyEnsemble
from oracles.pyscf_oracle import PySCFOracle
from pipeline.types import Candidate, Geometry

GOALS = {"validity": 0.95, "validity_x_uniqueness": 0.90, "molecule_stability": 0.90,
         "novelty": 0.60, "gap_mae_ev": 0.4, "valid_per_s": 20.0}


def sample_and_build(generator: FlowGenerator, n: int, condition: dict[str, float] | None,
                     args: argparse.Namespace, seed: int) -> tuple[list[GeneratedMolecule], float]:
    """Samples ``n`` molecules and checks them; returns them with the wall time, s."""
    start = time.perf_counter()
    samples = generator.sample(n, condition, steps=args.steps, guidance=args.guidance, seed=seed,
                               batch_size=args.batch_size)
    molecules = [build_molecule(*s) for s in samples]
    return molecules, time.perf_counter() - start


def surrogate_gaps(model: PropertyEnsemble, smiles: list[str]) -> dict[str, float]:
    """Predicted gap (eV) of each distinct SMILES (from its RDKit geometry)."""
    distinct = sorted(set(smiles))
    frame = pd.DataFrame({"smiles": distinct, **{p: np.nan for p in model.properties}})
    data = embed_dataset(frame, model.properties, processes=1)
    mean, _ = model.predict_dataset(data)
    k = model.properties.index("gap_ev")
    return {str(s): float(mean[i, k]) for i, s in enumerate(data.smiles)}


def dft_geometry(molecule: GeneratedMolecule) -> Geometry:
    """The generated molecule with RDKit hydrogens, relaxed with MMFF94."""
    assert molecule.mol is not None
    mol = Chem.Mol(molecule.mol)
    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        rdForceFieldHelpers.MMFFOptimizeMolecule(mol, maxIters=2000)
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
    parser.add_argument("--batch-size", type=int, default=500)
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
    molecules, wall = sample_and_build(generator, args.n, None, args, args.seed)
    report["unconditional"] = metrics(molecules, reference, wall)
    save()
    unconditional_smiles = [m.smiles for m in molecules if m.valid]
    tradeoff = []
    for steps in [int(v) for v in args.tradeoff_steps.split(",") if v]:
        fewer = argparse.Namespace(**{**vars(args), "steps": steps})
        mols, wall = sample_and_build(generator, args.n // 2, None, fewer, args.seed)
        row = metrics(mols, reference, wall)
        tradeoff.append({"steps": steps, **{k: row[k] for k in (
            "n_requested", "validity", "uniqueness", "atom_stability", "molecule_stability",
            "novelty", "wall_s", "valid_per_s")}})
    report["steps_tradeoff"] = tradeoff
    save()
    conditional: list[dict[str, Any]] = []
    samples: dict[float, list[GeneratedMolecule]] = {}
    for k, target in enumerate(targets):
        mols, wall = sample_and_build(generator, args.n_per_target, {"gap_ev": target}, args,
                                      args.seed + 1 + k)
        samples[target] = mols
        row = {"target_ev": target, **metrics(mols, reference, wall)}
        conditional.append(row)
    valid_smiles = [m.smiles for mols in samples.values() for m in mols if m.valid]
    predicted = surrogate_gaps(surrogate, valid_smiles + unconditional_smiles)
    errors, baseline = [], []
    for row, target in zip(conditional, targets, strict=True):
        gaps = [predicted[m.smiles] for m in samples[target] if m.valid and m.smiles in predicted]
        free = [predicted[s] for s in unconditional_smiles if s in predicted]
        row["surrogate_gaps_ev"] = gaps
        row["surrogate_mae_ev"] = float(np.mean(np.abs(np.array(gaps) - target))) if gaps else None
        row["unconditional_surrogate_mae_ev"] = (float(np.mean(np.abs(np.array(free) - target)))
                                                 if free else None)
        errors += [abs(g - target) for g in gaps]
        baseline += [abs(g - target) for g in free]
    report["conditional"] = {
        "targets_ev": targets, "per_target": conditional,
        "surrogate_mae_ev": float(np.mean(errors)) if errors else None,
        "unconditional_surrogate_mae_ev": float(np.mean(baseline)) if baseline else None,
        "n_valid": sum(r["n_valid"] for r in conditional),
        "validity": float(np.mean([r["validity"] for r in conditional])),
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
        for target in targets:
            picked: dict[str, GeneratedMolecule] = {}
            for m in samples[target]:
                if m.valid and m.smiles not in picked and len(picked) < args.dft_per_target:
                    picked[m.smiles] = m
            for smiles, m in picked.items():
                if (target, smiles) in done_dft:
                    rows.append(done_dft[(target, smiles)])
                else:
                    start = time.perf_counter()
                    result = oracle.run(Candidate(smiles, smiles, smiles, 0, "bench",
                                                  geometry=dft_geometry(m)))
                    rows.append({"target_ev": target, "smiles": smiles,
                                 "status": result.status.value, "reason": result.reason,
                                 "gap_ev": result.values.get("gap_ev"),
                                 "surrogate_gap_ev": predicted.get(smiles),
                                 "wall_s": time.perf_counter() - start})
                ok = [r for r in rows if r["status"] == "ok"]
                report["dft"] = {
                    "level": "qm9", "geometry": "generated heavy atoms + RDKit H, MMFF94 relaxed",
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
    data = [report["unconditional"]["surrogate_gaps_ev"]] + [r["surrogate_gaps_ev"] or [np.nan]
                                                             for r in per_target]
    positions = list(range(len(data)))
    ax.violinplot(data, positions=positions, showmedians=True)
    for i, r in enumerate(per_target, start=1):
        ax.hlines(r["target_ev"], i - 0.4, i + 0.4, colors="red", label="target" if i == 1 else "_")
        dft = [d["gap_ev"] for d in report.get("dft", {}).get("rows", [])
               if d["target_ev"] == r["target_ev"] and d["status"] == "ok"]
        ax.scatter([i] * len(dft), dft, color="black", s=12, zorder=3,
                   label="B3LYP/6-31G(2df,p)" if i == 1 else "_")
    ax.set_xticks(positions, ["none"] + [f"{r['target_ev']:.2f}" for r in per_target])
    ax.set_xlabel("gap target (eV)")
    ax.set_ylabel("gap of generated molecules (eV)")
    ax.set_title("Conditional generation: surrogate (violins) and DFT (dots)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
