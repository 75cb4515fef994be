"""Perovskite benchmarks: the crystal property model on held-out compositions, CHGNet's
formation energies against the pool's DFT, and the periodic DFT oracle's cost per level.

Usage (each part on its own, results merged into one JSON):
    .venv/bin/python bench/perovskite.py model --data ../shared/data/perov5/perov5_pool.csv.gz
    .venv/bin/python bench/perovskite.py chgnet --data ../shared/data/perov5/perov5_pool.csv.gz --n 300
    .venv/bin/python bench/perovskite.py pbc

``model``: the shipped crystal model on the pool's test split (15 % of the compositions, by a hash
of the reduced formula; the model never saw them): formation energy MAE per atom and per cell
(goal 0.008 eV/atom = 0.04 eV/cell), 90 % interval coverage (goal 0.87-0.93), band gap MAE
against the all-zero guess and on the non-metals, metal/non-metal ROC AUC (goal 0.9); a parity
plot ``bench/results/perovskite_parity.png``; and ``robustness``: how far the predictions move
when every site of the same cells is displaced at random by 0.02 and 0.05 Angstrom (Gaussian,
per coordinate; a fraction of thermal motion, so a sound model barely moves).
``chgnet``: n test-split structures, CHGNet's energy at the pool's geometry (and, for the first
``--n-relaxed``, after relaxation), formation energies against CHGNet's element phases
(:mod:`oracles.competing_phases`), Spearman correlation with the pool's ``heat_all`` per atom,
and seconds per structure.
``pbc``: wall time of the periodic oracle on cubic CsPbI3 (a = 6.3 Angstrom) per level.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results_json import merge_part  # noqa: E402

RESULTS = ROOT / "bench" / "results"
OUT = RESULTS / "perovskite.json"


def _test_split(data: Path) -> Any:
    from materials.datasets import composition_split, read_perovskite_table

    table = read_perovskite_table(data)
    split = composition_split(table.reduced_formulas)
    return table, np.flatnonzero(split == "test")


def bench_model(data: Path, weights: str | None, plots: Path = RESULTS) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from materials.crystal_graph import build_graphs
    from materials.crystal_model import crystal_metrics
    from materials.prior import load_crystal_model

    model = load_crystal_model(weights)
    table, test = _test_split(data)
    graphs = build_graphs([table.structures[i] for i in test], model.config.cutoff,
                          table.targets[test])
    start = time.perf_counter()
    mean, std, p_gap = model.predict_graphs(graphs)
    seconds = time.perf_counter() - start
    y = table.targets[test]
    metrics = crystal_metrics(y, mean, std, p_gap)
    goals = {"mae_formation_energy_ev_per_atom": 0.008, "coverage90_formation_energy_ev_per_atom":
             [0.87, 0.93], "roc_auc_nonmetal": 0.9,
             "mae_band_gap_ev_below": metrics["mae_band_gap_ev_all_zero"]}
    report = {"n_test": len(test), "metrics": metrics, "goals": goals,
              "training": {k: model.metrics.get(k) for k in ("n_train", "n_validation", "epochs",
                                                             "train_seconds", "calibration")},
              "config": model.config.model_dump(), "predict_seconds": seconds}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, k, name in ((axes[0], 0, "formation energy (eV/atom)"), (axes[1], 1, "band gap (eV)")):
        ax.errorbar(y[:, k], mean[:, k], yerr=1.645 * std[:, k], fmt="o", ms=2, alpha=0.4,
                    elinewidth=0.5)
        low, high = float(min(y[:, k].min(), mean[:, k].min())), float(
            max(y[:, k].max(), mean[:, k].max()))
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        ax.set_xlabel(f"DFT {name}")
        ax.set_ylabel(f"predicted {name} (90 % interval)")
        mae = metrics[f"mae_{('formation_energy_ev_per_atom', 'band_gap_ev')[k]}"]
        ax.set_title(f"{len(test)} held-out structures, MAE {mae:.3f}")
    fig.tight_layout()
    fig.savefig(plots / "perovskite_parity.png", dpi=120)
    report["robustness"] = robustness(model, [table.structures[i] for i in test], mean)
    return report


def robustness(model: Any, structures: list[Any], mean: np.ndarray,
               sigmas: tuple[float, ...] = (0.02, 0.05), seed: int = 0) -> dict[str, Any]:
    """Changes of the predicted means when the sites are displaced at random.

    Args:
        model: the crystal ensemble.
        structures: the cells ``mean`` was predicted for.
        mean: (n, 2) predictions on them, eV/atom and eV.
        sigmas: Angstrom, standard deviations of the Gaussian displacements.
        seed: seed of the displacements.
    """
    from pymatgen.core import Structure

    from materials.prior import predict_structures

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for sigma in sigmas:
        moved = [Structure(s.lattice, s.species,
                           s.cart_coords + rng.normal(0.0, sigma, (len(s), 3)),
                           coords_are_cartesian=True) for s in structures]
        again = predict_structures(model, moved)[0]
        delta = np.abs(again - mean)
        fe, gap = delta[:, 0][np.isfinite(delta[:, 0])], delta[:, 1][np.isfinite(delta[:, 1])]
        out[f"rattle_{sigma:g}_angstrom"] = {
            "n": len(fe),
            "formation_energy_change_ev_per_atom": {
                "median": float(np.median(fe)), "p95": float(np.percentile(fe, 95)),
                "max": float(fe.max()), "share_above_0.1": float(np.mean(fe > 0.1))},
            "band_gap_change_ev": {
                "median": float(np.median(gap)), "p95": float(np.percentile(gap, 95)),
                "max": float(gap.max()), "share_above_0.5": float(np.mean(gap > 0.5))},
        }
    return out


def bench_chgnet(data: Path, n: int, n_relaxed: int) -> dict[str, Any]:
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from scipy.stats import spearmanr

    from oracles.chgnet_oracle import CHGNetOracle, _optimizer, relax
    from oracles.competing_phases import competing_phases

    table, test = _test_split(data)
    rows = test[:n]
    oracle = CHGNetOracle()
    element_energy: dict[str, float] = {}

    def reference(el: str) -> float:
        if el not in element_energy:
            ok = [r.values["energy_ev_per_atom"] for r in
                  (oracle.phase_energy(p) for p in competing_phases([el])) if r.ok]
            element_energy[el] = min(ok) if ok else float("nan")
        return element_energy[el]

    def formation(structure: Any, energy_per_atom: float) -> float:
        refs = [PDEntry(el, reference(el)) for el in {s.specie.symbol for s in structure}]
        entry = PDEntry(structure.composition, energy_per_atom * len(structure))
        return float(PhaseDiagram([*refs, entry]).get_form_energy_per_atom(entry))

    model = _optimizer().calculator.model
    static, relaxed, dft, dft_relaxed = [], [], [], []
    static_s, relax_s, failed = [], [], []
    for k, i in enumerate(rows):
        structure = table.structures[i]
        for el in {s.specie.symbol for s in structure}:
            reference(el)
        start = time.perf_counter()
        energy = float(model.predict_structure(structure)["e"])
        static_s.append(time.perf_counter() - start)
        static.append(formation(structure, energy))
        dft.append(table.targets[i, 0])
        if k < n_relaxed:
            start = time.perf_counter()
            try:
                final, e_relaxed, _ = relax(structure, fmax=0.05, steps=500)
            except Exception as exc:  # a structure CHGNet cannot relax is counted, not fatal
                failed.append(f"{table.ids[i]}: {exc}")
                continue
            relax_s.append(time.perf_counter() - start)
            relaxed.append(formation(final, e_relaxed))
            dft_relaxed.append(table.targets[i, 0])
        if (k + 1) % 25 == 0:
            print(f"{k + 1}/{len(rows)} structures", flush=True)
    return {"n": len(rows), "n_relaxed": len(relaxed), "failed": failed,
            "spearman_formation_energy_at_pool_geometry": float(spearmanr(static, dft).statistic),
            "spearman_formation_energy_relaxed": float(spearmanr(relaxed, dft_relaxed).statistic)
            if len(relaxed) > 2 else None,
            "seconds_per_structure_single_point": float(np.mean(static_s)),
            "seconds_per_structure_relaxation_mean": float(np.mean(relax_s)) if relax_s else None,
            "seconds_per_structure_relaxation_median": float(np.median(relax_s))
            if relax_s else None,
            "element_references": element_energy}


def bench_pbc(levels: list[str], timeout_s: float) -> dict[str, Any]:
    from materials.domain import structure_candidate
    from materials.structures import cubic_perovskite
    from oracles.pyscf_pbc_oracle import PySCFPBCOracle

    cell = cubic_perovskite("Cs", "Pb", "I", 6.3)
    out: dict[str, Any] = {}
    for level in levels:
        oracle = PySCFPBCOracle(PySCFPBCOracle.Params(level=level, threads=2,
                                                      timeout_s=timeout_s))
        start = time.perf_counter()
        result = oracle.run(structure_candidate(cell, level))
        out[level] = {"ok": result.ok, "reason": result.reason,
                      "wall_s": time.perf_counter() - start, "values": dict(result.values),
                      "vbm_site_shares": dict(zip(["Cs", "Pb", "I1", "I2", "I3"],
                                                  result.details.get("vbm_site_shares", []),
                                                  strict=False)),
                      "cbm_site_shares": dict(zip(["Cs", "Pb", "I1", "I2", "I3"],
                                                  result.details.get("cbm_site_shares", []),
                                                  strict=False))}
        print(level, json.dumps(out[level]), flush=True)
    return {"structure": "cubic CsPbI3, a = 6.3 Angstrom", "levels": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["model", "chgnet", "pbc"])
    parser.add_argument("--data", type=Path, default=None, help="perov-5 style CSV.")
    parser.add_argument("--weights", default=None, help="Crystal-model checkpoint.")
    parser.add_argument("--n", type=int, default=300, help="Structures for the CHGNet part.")
    parser.add_argument("--n-relaxed", type=int, default=40,
                        help="Of them, relaxed with CHGNet (the rest: single points at the "
                             "pool's geometry).")
    parser.add_argument("--levels", nargs="+", default=["pbe-szv-gamma", "pbe-szv", "pbe-dzvp"])
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--out", type=Path, default=OUT,
                        help="JSON the part is merged into (its plot goes beside it).")
    args = parser.parse_args()
    if args.part in ("model", "chgnet") and args.data is None:
        sys.exit(f"{args.part} needs --data")
    if args.part == "model":
        report = bench_model(args.data, args.weights, args.out.parent)
    elif args.part == "chgnet":
        report = bench_chgnet(args.data, args.n, args.n_relaxed)
    else:
        report = bench_pbc(args.levels, args.timeout)
    print(json.dumps(report, indent=2))
    merge_part(args.part, report, args.out)


if __name__ == "__main__":
    main()
