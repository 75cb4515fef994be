"""Crystal generator benchmark on perov-5 compositions held out from training.

Usage (each part on its own, results merged into ``bench/results/crystal_generator.json``):
    .venv/bin/python bench/crystal_generator.py denovo --data ../shared/data/perov5/perov5_pool.csv.gz
    .venv/bin/python bench/crystal_generator.py csp --data ../shared/data/perov5/perov5_pool.csv.gz
    .venv/bin/python bench/crystal_generator.py condition --data ../shared/data/perov5/perov5_pool.csv.gz
    .venv/bin/python bench/crystal_generator.py stability --data ... --weights G.pt --store URL

``denovo``: 1,000 unconditional cells (seed 0, the training cells' sizes). Validity with CDVAE's
definitions (:mod:`materials.validity`); COV-R and COV-P with CDVAE's perovskite cutoffs
(structure fingerprint distance <= 0.2: the mean over sites of matminer's CrystalNN "ops" site
fingerprint; composition distance <= 4: matminer's Magpie ElementProperty, standardised),
COV-P over all generated cells as in CDVAE's code (CDVAE's and DiffCSP's published COV come
from 10,000 drawn cells, 20 batches of 500: ``--n 10000`` draws as many, and the JSON then also
gives COV of the first 1,000); compositional validity of the product's
charge-aware decoding and of the most probable species (``composition_validity_argmax``: the
cells it re-decoded counted as invalid, which they were); Wasserstein distances of density (g/cm^3) and
of the number of elements between the valid cells and the held-out cells; valid cells per
second on this machine (sampling and validity checks). The composition features are
standardised as CDVAE does when ``--composition-scaler FILE.json`` gives its constants
(``{"means": [...132], "stds": [...132]}``: ``CompScalerMeans`` and ``CompScalerStds`` of
CDVAE's ``cdvae/common/constants.py``, not shipped here); without it, with the means and
standard deviations of the training compositions' features (the JSON says which).
``csp``: for each held-out cell, 1 and 20 cells of its composition; match rate and normalised
RMSE with ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)`` (a structurally invalid sample
does not match), as DiffCSP.
``condition``: 300 cells each unconditional and conditioned on a formation energy (perov-5's
heat of formation per atom, -0.08 to 1.0 eV/atom in the pool), a band gap and both, with the
property model's predictions of what they reached (stated as predictions),
with and without the selection step; and, where the generator has CHGNet stability labels,
the share of cells conditioned on "decomposition energy <= 0" that CHGNet (relaxed) finds
stable against unconditional cells. ``stability``: that comparison alone (``--n-chgnet`` cells
each).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results_json import merge_part  # noqa: E402

RESULTS = ROOT / "bench" / "results"
OUT = RESULTS / "crystal_generator.json"
COV_CUTOFFS = {"structure": 0.2, "composition": 4.0}
"""CDVAE's perovskite coverage cutoffs."""
FIRST = 1000
"""With ``--n`` above it, coverage is also given for the first this many cells drawn."""



def _split(data: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    from materials.datasets import composition_split, read_perovskite_table

    table = read_perovskite_table(data)
    split = composition_split(table.reduced_formulas)
    return table, np.flatnonzero(split != "test"), np.flatnonzero(split == "test")


def _fingerprints(structures: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """CrystalNN "ops" site fingerprints averaged over sites, and Magpie composition features;
    a structure whose fingerprint fails gets NaN."""
    from matminer.featurizers.composition.composite import ElementProperty
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    site_fp = CrystalNNFingerprint.from_preset("ops")
    comp_fp = ElementProperty.from_preset("magpie", impute_nan=False)
    struct, comp = [], []
    for s in structures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                struct.append(np.mean([site_fp.featurize(s, i) for i in range(len(s))], axis=0))
            except Exception:
                struct.append(None)
            comp.append(np.asarray(comp_fp.featurize(s.composition), dtype=float))
    width = next(len(x) for x in struct if x is not None)
    return (np.array([x if x is not None else np.full(width, np.nan) for x in struct]),
            np.array(comp))


def composition_scaler(path: Path | None, train_comp: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, str]:
    """Means, standard deviations and a description of the composition features' scaler:
    from ``path`` (CDVAE's constants) or from the training compositions."""
    if path is None:
        mean = np.nanmean(train_comp, axis=0)
        std = np.nanstd(train_comp, axis=0)
        std[~np.isfinite(std) | (std == 0)] = 1.0
        return mean, std, ("means/stds of the Magpie features of 2,000 training cells "
                           "(CDVAE: its own constants)")
    spec = json.loads(path.read_text())
    mean, std = np.asarray(spec["means"], float), np.asarray(spec["stds"], float)
    width = train_comp.shape[1]
    if mean.shape != (width,) or std.shape != (width,):
        raise SystemExit(f"{path}: expected {width} means and stds, got {mean.shape[0]} and "
                         f"{std.shape[0]}")
    return mean, std, f"CDVAE's constants, from {path.name}"


def coverage(sd: np.ndarray, gen_comp: np.ndarray, gt_comp: np.ndarray, mean: np.ndarray,
             std: np.ndarray, parts: dict[str, float] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """CDVAE's coverage: per reference cell (recall) and per generated cell (precision),
    whether one of the other side lies within both cutoffs; ``sd`` (n_gen, n_ref) structure
    fingerprint distances, compositions standardised with ``mean`` and ``std`` (NaN -> 0).
    ``parts``, when given, receives which cutoff holds coverage down: recall and precision
    with each cutoff alone, and the median nearest distances."""
    from scipy.spatial.distance import cdist

    def scale(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / std
        return np.where(np.isfinite(z), z, 0.0)

    cd = cdist(scale(gen_comp), scale(gt_comp))
    recall = np.logical_and(sd.min(0) <= COV_CUTOFFS["structure"],
                            cd.min(0) <= COV_CUTOFFS["composition"])
    precision = np.logical_and(sd.min(1) <= COV_CUTOFFS["structure"],
                               cd.min(1) <= COV_CUTOFFS["composition"])
    if parts is not None:
        parts.update({
            "recall_structure_cutoff_alone": float((sd.min(0) <= COV_CUTOFFS["structure"]).mean()),
            "recall_composition_cutoff_alone": float(
                (cd.min(0) <= COV_CUTOFFS["composition"]).mean()),
            "precision_structure_cutoff_alone": float(
                (sd.min(1) <= COV_CUTOFFS["structure"]).mean()),
            "precision_composition_cutoff_alone": float(
                (cd.min(1) <= COV_CUTOFFS["composition"]).mean()),
            "median_nearest_structure_distance_of_references": float(np.median(sd.min(0))),
            "median_nearest_composition_distance_of_references": float(np.median(cd.min(0))),
        })
    return recall, precision


def bench_denovo(data: Path, weights: Path | None, n: int, seed: int, steps: int,
                 anneal: float, scaler_path: Path | None = None,
                 min_distance: float = 0.0, plots: Path = RESULTS) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from scipy.spatial.distance import cdist
    from scipy.stats import wasserstein_distance

    from flows.cli.common import CRYSTAL_GENERATOR
    from materials.crystal_flow import CrystalGenerator
    from materials.crystal_generation import generate_crystals, summarize

    torch.set_num_threads(2)
    table, train, test = _split(data)
    generator = CrystalGenerator.load(weights or CRYSTAL_GENERATOR)
    start = time.perf_counter()
    samples, drawn = generate_crystals(generator, n, seed=seed, steps=steps, anneal=anneal,
                                       min_distance=min_distance)
    wall = time.perf_counter() - start
    summary = summarize(samples, drawn, wall, generator)
    kept, valid = [], []
    for k, sample in enumerate(samples):
        if sample.valid and sample.structure is not None:
            kept.append(k)
            valid.append(sample.structure)
    print(f"{len(valid)} valid of {n} in {wall:.1f} s; fingerprints ...", flush=True)
    gt = [table.structures[i] for i in test]
    gen_struct, gen_comp = _fingerprints(valid)
    gt_struct, gt_comp = _fingerprints(gt)
    _, train_comp = _fingerprints([table.structures[i] for i in train[:2000]])
    ok = np.isfinite(gen_struct).all(1)
    ok_gt = np.isfinite(gt_struct).all(1)
    sd = cdist(gen_struct[ok], gt_struct[ok_gt])
    mean, std, scaler = composition_scaler(scaler_path, train_comp)
    parts: dict[str, float] = {}
    recall, precision = coverage(sd, gen_comp[ok], gt_comp[ok_gt], mean, std, parts)
    own_recall, own_precision, own = recall, precision, scaler
    first: dict[str, Any] = {}
    if n > FIRST:  # CDVAE and DiffCSP score coverage on 10,000 drawn; the count is 1,000
        head = np.array([k < FIRST for k in kept])[ok]
        head_recall, head_precision = coverage(sd[head], gen_comp[ok][head], gt_comp[ok_gt],
                                               mean, std)
        first = {"n": FIRST, "cov_recall": float(head_recall.mean()),
                 "cov_precision": float(head_precision.sum() / FIRST)}
    if scaler_path is not None:  # also with our training cells' statistics, for comparison
        own_mean, own_std, own = composition_scaler(None, train_comp)
        own_recall, own_precision = coverage(sd, gen_comp[ok], gt_comp[ok_gt], own_mean, own_std)
    gen_density = [s.density for s in valid]
    gt_density = [s.density for s in gt]
    gen_elems = [len(s.composition.elements) for s in valid]
    gt_elems = [len(s.composition.elements) for s in gt]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].hist([gt_density, gen_density], bins=40, density=True,
                 label=["held-out cells", "generated (valid)"])
    axes[0].set_xlabel("density (g/cm$^3$)")
    axes[0].legend()
    axes[1].hist([gt_elems, gen_elems], bins=np.arange(0.5, 6.5), density=True,
                 label=["held-out cells", "generated (valid)"])
    axes[1].set_xlabel("number of elements")
    fig.tight_layout()
    fig.savefig(plots / "crystal_generator_denovo.png", dpi=120)
    n_valid = len(valid)
    return {
        "n": n, "seed": seed, "steps": steps, "anneal": anneal,
        "min_distance": min_distance, "wall_s": wall,
        "valid_per_s": n_valid / wall if wall else None,
        "structure_validity": summary["structure_validity"],
        "composition_validity": summary["composition_validity"],
        "composition_validity_argmax": summary["composition_validity"] - summary["redecoded"],
        "redecoded": summary["redecoded"],
        "validity": summary["validity"], "uniqueness": summary["uniqueness"],
        "novelty": summary["novelty"], "failures": summary["failures"],
        "cov_recall": float(recall.mean()),
        "cov_precision": float(precision.sum() / n),
        "cov_precision_of_valid": float(precision.mean()) if len(precision) else None,
        "fingerprint_failures": int((~ok).sum()),
        "wdist_density": float(wasserstein_distance(gen_density, gt_density)),
        "wdist_num_elements": float(wasserstein_distance(gen_elems, gt_elems)),
        "reference": f"{len(gt)} held-out cells (15 % of compositions)",
        "composition_scaler": scaler,
        "cov_parts": parts,
        "cov_of_the_first_1000": first or None,
        "cov_with_training_scaler": {"scaler": own, "cov_recall": float(own_recall.mean()),
                                     "cov_precision": float(own_precision.sum() / n)},
        "cutoffs": COV_CUTOFFS,
        "goals": {"structure_validity": 1.0, "composition_validity": 0.99, "cov_recall": 0.995,
                  "cov_precision": 0.99, "valid_per_s": 50},
    }


def bench_csp(data: Path, weights: Path | None, k: int, seed: int, limit: int | None,
              steps: int, anneal: float, min_distance: float = 0.0, plots: Path = RESULTS
              ) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from flows.cli.common import CRYSTAL_GENERATOR
    from materials.crystal_flow import CrystalGenerator
    from materials.crystal_generation import matcher
    from materials.validity import structure_problem

    torch.set_num_threads(2)
    table, _, test = _split(data)
    if limit is not None:
        test = test[:limit]
    generator = CrystalGenerator.load(weights or CRYSTAL_GENERATOR)
    gt = [table.structures[i] for i in test]
    species = [[site.specie.symbol for site in s] for s in gt]
    start = time.perf_counter()
    repeated = [sp for sp in species for _ in range(k)]
    cells = generator.sample([len(sp) for sp in repeated], species=repeated, seed=seed,
                             steps=steps, anneal=anneal, min_distance=min_distance)
    wall = time.perf_counter() - start
    sm = matcher()
    rms = np.full((len(gt), k), np.nan)
    for i, target in enumerate(gt):
        for j in range(k):
            st = cells[i * k + j].structure
            if st is None or structure_problem(st):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = sm.get_rms_dist(st, target)
            if found is not None:
                rms[i, j] = found[0]
        if (i + 1) % 100 == 0:
            print(f"matched {i + 1}/{len(gt)}", flush=True)
    one = rms[:, 0]
    best = np.nanmin(np.where(np.isfinite(rms), rms, np.inf), axis=1)
    best[~np.isfinite(best)] = np.nan
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist([one[np.isfinite(one)], best[np.isfinite(best)]], bins=30,
            label=["1 sample", f"best of {k}"])
    ax.set_xlabel("normalised RMSE of matched structures")
    ax.legend()
    fig.tight_layout()
    fig.savefig(plots / "crystal_generator_csp.png", dpi=120)
    return {"n_compositions": len(gt), "samples_per_composition": k, "seed": seed,
            "steps": steps, "anneal": anneal, "min_distance": min_distance,
            "sampling_wall_s": wall,
            "match_rate_1": float(np.isfinite(one).mean()),
            "rmse_1": float(np.nanmean(one)) if np.isfinite(one).any() else None,
            f"match_rate_{k}": float(np.isfinite(best).mean()),
            f"rmse_{k}": float(np.nanmean(best)) if np.isfinite(best).any() else None,
            "matcher": "StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)",
            "goals": {"match_rate_1": 0.55, "match_rate_20": 0.986}}


def bench_condition(data: Path, weights: Path | None, n: int, seed: int,
                    n_chgnet: int, anneal: float, min_distance: float,
                    store: str | None = None) -> dict[str, Any]:
    import torch

    from flows.cli.common import CRYSTAL_GENERATOR
    from materials.crystal_flow import CrystalGenerator
    from materials.crystal_generation import generate_crystals
    from materials.prior import load_crystal_model
    from pipeline.conditions import Condition

    torch.set_num_threads(2)
    generator = CrystalGenerator.load(weights or CRYSTAL_GENERATOR)
    judge = load_crystal_model()
    settings = {
        "unconditional": [],
        "formation_energy=0.0": [Condition("formation_energy_ev_per_atom", "=", 0.0)],
        "band_gap>=1.5": [Condition("band_gap_ev", ">=", 1.5)],
        "formation_energy<=0.15 and band_gap>=1.5": [
            Condition("formation_energy_ev_per_atom", "<=", 0.15),
            Condition("band_gap_ev", ">=", 1.5)],
    }
    out: dict[str, Any] = {}
    for name, conditions in settings.items():
        for oversample in (1, 4):
            if oversample > 1 and not conditions:
                continue
            samples, drawn = generate_crystals(generator, n, conditions, seed, None, judge,
                                               oversample, anneal=anneal,
                                               min_distance=min_distance)
            row: dict[str, Any] = {"drawn": drawn, "kept": len(samples),
                                   "validity": float(np.mean([s.valid for s in samples]))}
            for prop in ("formation_energy_ev_per_atom", "band_gap_ev"):
                values = [s.predicted[prop][0] for s in samples if prop in s.predicted]
                row[f"predicted_{prop}_mean"] = float(np.mean(values)) if values else None
                row[f"predicted_{prop}_median"] = float(np.median(values)) if values else None
            for c in conditions:
                values = [s.predicted[c.name][0] for s in samples if c.name in s.predicted]
                if c.op == "=":
                    errors = [abs(v - c.value) for v in values]
                    row[f"predicted_mae_to_{c}"] = float(np.mean(errors))
                    row[f"predicted_median_error_to_{c}"] = float(np.median(errors))
                else:
                    row[f"predicted_share_inside_{c}"] = float(np.mean(
                        [c.violation(v) == 0 for v in values]))
            out[f"{name} (oversample {oversample})"] = row
            print(name, oversample, json.dumps(row), flush=True)
    if generator.labelled("decomposition_energy_ev_per_atom") and n_chgnet:
        out["stability_by_chgnet"] = _stability(generator, n_chgnet, seed, anneal,
                                                min_distance, store)
    else:
        out["stability_by_chgnet"] = ("not measured: the generator has no CHGNet stability "
                                      "labels (invdes perovskite label-stability)")
    out["note"] = ("formation energies and gaps here are the crystal property model's "
                   "predictions on the generated cells, not DFT")
    out["anneal"], out["min_distance"] = anneal, min_distance
    return out


def bench_stability(weights: Path | None, n_chgnet: int, seed: int, anneal: float,
                    min_distance: float, store: str | None = None,
                    stability_model: Path | None = None, oversample: int = 4
                    ) -> dict[str, Any]:
    """The ``condition`` part's CHGNet stability comparison on its own: guidance where the
    generator has stability labels, selection by the stability model where there is one."""
    import torch

    from flows.cli.common import CRYSTAL_GENERATOR, STABILITY_MODEL
    from materials.crystal_flow import CrystalGenerator
    from materials.stability_model import StabilityModel

    torch.set_num_threads(2)
    generator = CrystalGenerator.load(weights or CRYSTAL_GENERATOR)
    model_path = stability_model or (STABILITY_MODEL if STABILITY_MODEL.is_file() else None)
    model = StabilityModel.load(model_path) if model_path is not None else None
    if not generator.labelled("decomposition_energy_ev_per_atom") and model is None:
        raise SystemExit(f"{weights or CRYSTAL_GENERATOR}: the generator has no CHGNet "
                         "stability labels (train it with --stability) and there is no "
                         "stability model (invdes train stability-model)")
    return {"stability_by_chgnet": _stability(generator, n_chgnet, seed, anneal,
                                              min_distance, store, model, oversample),
            "stability_model": str(model_path) if model_path else None,
            "stability_model_metrics": model.metrics if model is not None else None,
            "anneal": anneal, "min_distance": min_distance}


def _stability(generator: Any, n: int, seed: int, anneal: float, min_distance: float,
               store: str | None = None, stability_model: Any = None,
               oversample: int = 4) -> dict[str, Any]:
    from materials.crystal_generation import generate_crystals
    from materials.domain import structure_candidate
    from oracles.chgnet_oracle import CHGNetOracle
    from pipeline.conditions import Condition

    oracle = CHGNetOracle(CHGNetOracle.Params(max_steps=200))
    if store is not None:  # competing phases relaxed before (e.g. by the labelling) are reused
        from pipeline.store import Store

        oracle.bind_cache(Store(store))
    report: dict[str, Any] = {}
    for name, conditions in (("unconditional", []),
                             ("decomposition<=0", [Condition(
                                 "decomposition_energy_ev_per_atom", "<=", 0.0)])):
        samples, drawn = generate_crystals(generator, n, conditions, seed, anneal=anneal,
                                           min_distance=min_distance, oversample=oversample,
                                           stability_model=stability_model if conditions
                                           else None)
        stable, done, static = 0, 0, []
        for s in samples:
            if not s.valid or s.structure is None:
                continue
            with contextlib.suppress(ValueError):  # as the labels are made: at its own geometry
                static.append(oracle.static_stability(s.structure)[
                    "decomposition_energy_ev_per_atom"])
            result = oracle.run(structure_candidate(s.structure, "chgnet"))
            if result.ok:
                done += 1
                stable += result.values["decomposition_energy_ev_per_atom"] <= 0.0
            print(f"{name}: {done} relaxed, {stable} stable", flush=True)
        report[name] = {"samples": len(samples), "drawn": drawn, "relaxed": done,
                        "stable_share": stable / done if done else None,
                        "stable_share_unrelaxed": float(np.mean(np.array(static) <= 0.0))
                        if static else None}
        print(name, report[name], flush=True)
    base = report["unconditional"]["stable_share"]
    cond = report["decomposition<=0"]["stable_share"]
    report["ratio"] = cond / base if base else None
    report["goal_ratio"] = 3.0
    report["guided"] = bool(generator.labelled("decomposition_energy_ev_per_atom"))
    report["selected_by_stability_model"] = stability_model is not None
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["denovo", "csp", "condition", "stability"])
    parser.add_argument("--data", type=Path, required=True, help="the perov5 pool CSV")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--k", type=int, default=20, help="csp: samples per composition")
    parser.add_argument("--limit", type=int, default=None, help="csp: first N held-out cells")
    parser.add_argument("--n-chgnet", type=int, default=60,
                        help="condition: cells relaxed by CHGNet per setting")
    parser.add_argument("--store", default=None,
                        help="condition: store (SQLAlchemy URL) keeping CHGNet's competing phases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100, help="integration steps")
    parser.add_argument("--anneal", type=float, default=None,
                        help="coordinate velocity scaling (default: the product's)")
    parser.add_argument("--min-distance", type=float, default=None,
                        help="site separation in sampling, Angstrom (default: the product's)")
    parser.add_argument("--out", type=Path, default=OUT,
                        help="JSON the part is merged into (its plots go beside it)")
    parser.add_argument("--stability-model", type=Path, default=None,
                        help="stability: the stability model selecting the conditioned cells "
                             "(default: the shipped one, where there is one)")
    parser.add_argument("--oversample", type=int, default=4,
                        help="stability: cells drawn per kept conditioned cell")
    parser.add_argument("--composition-scaler", type=Path, default=None,
                        help="denovo: JSON with CDVAE's Magpie scaler constants (means, stds)")
    args = parser.parse_args()
    from materials.sampling_defaults import ANNEAL, MIN_DISTANCE

    anneal = ANNEAL if args.anneal is None else args.anneal
    min_distance = MIN_DISTANCE if args.min_distance is None else args.min_distance
    if args.part == "denovo":
        report = bench_denovo(args.data, args.weights, args.n, args.seed, args.steps, anneal,
                              args.composition_scaler, min_distance, args.out.parent)
    elif args.part == "csp":
        report = bench_csp(args.data, args.weights, args.k, args.seed, args.limit, args.steps,
                           anneal, min_distance, args.out.parent)
    elif args.part == "stability":
        report = bench_stability(args.weights, args.n_chgnet, args.seed, anneal, min_distance,
                                 args.store, args.stability_model, args.oversample)
    else:
        report = bench_condition(args.data, args.weights, min(args.n, 300), args.seed,
                                 args.n_chgnet, anneal, min_distance, args.store)
    report["weights"] = str(args.weights or "shipped")
    merge_part(args.part, report, args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
