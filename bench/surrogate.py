"""Benchmark of the pretrained property model on QM9-pool molecules it never saw.

Usage:
    python bench/surrogate.py --data ../shared/data/qm9/train_pool.csv.gz \
        --weights chem/data/property_model.pt --json bench/results/surrogate.json

The shipped checkpoint is trained with ``invdes train surrogate --holdout N``: the last N rows of
the pool (a random sample, the pool being in random order) are never used. This benchmark makes
those rows' geometries from their SMILES the way the checkpoint's training geometries were made
(RDKit ETKDG + MMFF, then GFN2-xTB where its ``geometry`` is ``xtb``: what a campaign has for a
new molecule) and reports, per property, the mean absolute error (eV), the Gaussian negative
log-likelihood and the share of values inside the 90 % predictive interval. Goals: gap MAE
<= 0.10 eV; 90 % intervals cover 87 to 93 %.

Orbital location (issue 19):
    python bench/surrogate.py --orbital-labels runs/orbitals/qm9_orbitals.csv \
        --orbital-weights chem/data/orbital_model.pt --json bench/results/surrogate_orbitals.json

The orbital-share checkpoint is trained by ``invdes train orbital-model`` without the labelled
molecules whose id falls in its test split (a hash of the id; ``test_fraction`` in its metrics);
this mode scores those: the per-heavy-atom HOMO and LUMO share MAE, each descriptor's MAE
(element shares over the molecules that have the element) and 90 % interval coverage. Goals:
share MAE <= 0.03, frontier_overlap MAE <= 0.05, coverage 0.87-0.93.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from chem.datasets import load_labelled_smiles
from chem.property_model import PropertyEnsemble
from pipeline.uncertainty import regression_metrics


def main() -> None:
    """Evaluates the checkpoint on its held-out rows and writes JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--weights", type=Path, default=Path("chem/data/property_model.pt"))
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--orbital-labels", type=Path,
                        help="orbital labels CSV: score the orbital-share model instead")
    parser.add_argument("--orbital-weights", type=Path,
                        default=Path("chem/data/orbital_model.pt"))
    args = parser.parse_args()
    if args.orbital_labels is not None:
        orbital_main(args.orbital_labels, args.orbital_weights, args.json)
        return
    if args.data is None:
        parser.error("--data is required (or --orbital-labels)")
    ensemble = PropertyEnsemble.load(args.weights)
    holdout = int(ensemble.metrics.get("holdout", 0))
    if holdout <= 0:
        raise SystemExit(f"{args.weights} was trained without --holdout; no unseen rows to test")
    frame = load_labelled_smiles(args.data, ensemble.properties)
    test = frame.iloc[len(frame) - holdout :].reset_index(drop=True)
    start = time.perf_counter()
    with Progress() as progress:
        data = ensemble.embed(test, processes=args.processes, progress=progress)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    mean, std = ensemble.predict_dataset(data)
    predict_s = time.perf_counter() - start
    metrics = regression_metrics(data.y.astype(float), mean, std, ensemble.properties)
    report = {
        "weights": str(args.weights), "geometry": ensemble.config.geometry,
        "n_test": len(data), "n_holdout_rows": holdout,
        "test": metrics,
        "goals": {"mae_gap_ev": 0.10, "coverage90": [0.87, 0.93]},
        "anchors_ev": {"SchNet (DFT geometries, 110k)": 0.063, "PaiNN (DFT geometries, 110k)": 0.046},
        "model": {"members": len(ensemble.members), **ensemble.config.model_dump()},
        "training": {k: v for k, v in ensemble.metrics.items() if k != "validation"},
        "validation": ensemble.metrics.get("validation", {}),
        "seconds": {"embed": embed_s, "predict": predict_s,
                    "predict_per_molecule": predict_s / max(1, len(data))},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    plot(data.y.astype(float), mean, std, ensemble.properties, args.json.with_suffix(".png"))
    print(json.dumps(report["test"], indent=2))


def orbital_main(labels: Path, weights: Path, out: Path) -> None:
    """Scores the orbital-share model on the labelled molecules of its test split."""
    from chem.orbital_model import OrbitalShareEnsemble, evaluate, is_test_id, share_dataset
    from oracles.orbital_labels import read_labels

    model = OrbitalShareEnsemble.load(weights)
    fraction = float(model.metrics.get("test_fraction", 0.0))
    if fraction <= 0:
        raise SystemExit(f"{weights} was trained without a test split; nothing unseen to score")
    rows = [r for r in read_labels(labels) if is_test_id(str(r["id"]), fraction)]
    with Progress() as progress:
        data = share_dataset([str(r["smiles"]) for r in rows], [r["p_homo"] for r in rows],  # type: ignore[misc]
                             [r["p_lumo"] for r in rows], method=model.config.geometry,  # type: ignore[misc]
                             progress=progress)
    start = time.perf_counter()
    metrics, _ = evaluate(model, data)
    seconds = time.perf_counter() - start
    report = {
        "weights": str(weights), "labels": str(labels), "n_test": len(data),
        "n_labelled_rows": model.metrics.get("labelled_rows"), "test_fraction": fraction,
        "test": metrics,
        "goals": {"share_mae": 0.03, "frontier_overlap_mae": 0.05, "coverage90": [0.87, 0.93]},
        "model": {"members": len(model.members), **model.config.model_dump()},
        "training": {k: v for k, v in model.metrics.items() if k != "validation"},
        "validation": model.metrics.get("validation", {}),
        "seconds": {"predict": seconds, "predict_per_molecule": seconds / max(1, len(data))},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    orbital_plot(model, data, out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in metrics.items() if not k.endswith("_n")}, indent=2))


def orbital_plot(model: object, data: object, path: Path) -> None:
    """Per-atom shares and frontier_overlap, predicted against the oracle's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chem.orbital_model import OrbitalShareEnsemble, ShareDataset, target_descriptors
    from pipeline.orbital_shares import DESCRIPTORS

    assert isinstance(model, OrbitalShareEnsemble) and isinstance(data, ShareDataset)
    s_mean, _, d_mean, d_std = model.predict_dataset(data)
    heavy = data.z > 1
    y_desc = target_descriptors(data)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for k, name in enumerate(("HOMO", "LUMO")):
        y = data.shares[heavy, k]
        axes[k].scatter(y, s_mean[heavy, k], s=3, alpha=0.3)
        axes[k].plot([0, 1], [0, 1], color="grey", lw=0.8)
        axes[k].set_xlabel(f"{name} share per heavy atom, DFT")
        axes[k].set_ylabel("predicted")
        axes[k].set_title(f"{name}: MAE {np.mean(np.abs(y - s_mean[heavy, k])):.3f}")
    j = list(DESCRIPTORS).index("frontier_overlap")
    axes[2].errorbar(y_desc[:, j], d_mean[:, j], yerr=1.645 * d_std[:, j], fmt="o", ms=2,
                     alpha=0.4, elinewidth=0.5)
    axes[2].plot([0, 1], [0, 1], color="grey", lw=0.8)
    axes[2].set_xlabel("frontier_overlap, DFT")
    axes[2].set_ylabel("predicted (90 % interval)")
    axes[2].set_title(f"frontier_overlap: MAE {np.nanmean(np.abs(y_desc[:, j] - d_mean[:, j])):.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(y: np.ndarray, mean: np.ndarray, std: np.ndarray, properties: tuple[str, ...],
         path: Path) -> None:
    """Predicted against reference per property, and the calibration curve (share of test
    values inside the central p interval against p)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    fig, axes = plt.subplots(1, len(properties) + 1, figsize=(4 * (len(properties) + 1), 4))
    for k, prop in enumerate(properties):
        ax = axes[k]
        ax.scatter(y[:, k], mean[:, k], s=3, alpha=0.4)
        lo, hi = float(y[:, k].min()), float(y[:, k].max())
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.set_xlabel(f"{prop} reference (eV)")
        ax.set_ylabel("predicted (eV)")
        ax.set_title(f"{prop}: MAE {np.mean(np.abs(y[:, k] - mean[:, k])):.3f} eV")
    levels = np.linspace(0.05, 0.95, 19)
    ax = axes[-1]
    for k, prop in enumerate(properties):
        z = np.abs(y[:, k] - mean[:, k]) / np.maximum(std[:, k], 1e-9)
        ax.plot(levels, [np.mean(z <= norm.ppf(0.5 + p / 2)) for p in levels], label=prop)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set_xlabel("nominal interval")
    ax.set_ylabel("observed coverage")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
