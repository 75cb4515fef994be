"""Benchmark of design steered by where the frontier orbitals sit (issue 19).

Usage:
    python bench/orbital_design.py --json bench/results/orbital_design.json \
        --store sqlite:///runs/orbital_design/cache.db

For each target (default ``frontier_overlap<=0.45``, ``lumo_share_N>=0.5``,
``homo_share_O>=0.5``), three arms of ``--n`` kept molecules each:

* ``unconditional``: the shipped generator without conditions; the first ``--n`` valid
  distinct molecules (the base rate; one set serves every target);
* ``selection``: unconditional samples, ``--oversample`` times as many, and the ``--n`` that the
  property models (energies and orbital shares) predict most likely to meet the target
  (:func:`chem.conditioned.select_for_conditions`): selection alone, without guidance;
* ``conditioned``: what ``invdes generate molecules --condition TARGET`` does: guidance where the
  generator is trained on the property, then the same selection. Where the generator is not
  trained on the property (``not_guided``), this arm is the selection arm and is not run twice.

Each kept molecule is computed by the PySCF oracle at the level of the orbital labels
(``standard``: B3LYP/def2-SVP) at exactly the coordinates ``invdes generate molecules`` writes
(the generated heavy atoms with RDKit hydrogens, relaxed with MMFF94), and the share meeting
the target by DFT is reported per arm, with the validity of the samples drawn. Goals, per
target: conditioned >= 60 % meeting it by DFT, >= 3 times the unconditional base rate, and
validity >= 90 %. Every calculation is kept in ``--store`` (a rerun computes only what is
missing), and the JSON is rewritten after each arm.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from chem.conditioned import guidance_point, select_for_conditions
from chem.flow_generator import DEFAULT_WEIGHTS
from chem.flow_matching import FlowGenerator
from chem.generated import GeneratedMolecule, RelaxationFailed, build_molecule, relax_molecule
from chem.orbital_model import OrbitalShareEnsemble
from chem.prior import DEFAULT_ORBITAL_WEIGHTS
from chem.prior import DEFAULT_WEIGHTS as ENERGY_WEIGHTS
from chem.property_model import PropertyEnsemble
from oracles.pyscf_oracle import PySCFOracle
from pipeline.conditions import Condition, parse_condition
from pipeline.orbital_shares import DESCRIPTORS
from pipeline.store import Store
from pipeline.types import Candidate, Geometry

TARGETS = ("frontier_overlap<=0.45", "lumo_share_N>=0.5", "homo_share_O>=0.5")


def _geometry(m: GeneratedMolecule) -> Geometry | str:
    """The coordinates ``invdes generate molecules`` writes, or why there are none."""
    assert m.mol is not None
    try:
        relaxed = relax_molecule(m.mol, "mmff")
    except RelaxationFailed as exc:
        return str(exc)
    pos = relaxed.GetConformer().GetPositions()
    return Geometry(tuple(a.GetSymbol() for a in relaxed.GetAtoms()),
                    tuple((float(x), float(y), float(z)) for x, y, z in pos))


def compute(molecules: list[GeneratedMolecule], oracle: PySCFOracle, store: Store,
            workers: int, progress: Progress, label: str) -> list[dict[str, Any]]:
    """DFT descriptors of each molecule (from the store where computed before)."""
    task = progress.add_task(f"DFT {label}", total=len(molecules))

    def one(m: GeneratedMolecule) -> dict[str, Any]:
        geometry = _geometry(m)
        row: dict[str, Any] = {"smiles": m.smiles}
        if isinstance(geometry, str):
            return {**row, "reason": f"relaxation: {geometry}"}
        candidate = Candidate(m.smiles, m.smiles, m.smiles, 0, "bench", geometry=geometry)
        key = oracle.request_key(candidate)
        result = store.oracle_result(key)
        if result is None:
            result = oracle.run(candidate)
            store.save_oracle_result(result)
        if not result.ok:
            return {**row, "reason": result.reason}
        return {**row, **{k: result.values.get(k) for k in (*DESCRIPTORS, "gap_ev")},
                "wall_s": result.details.get("wall_s")}

    rows = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for row in pool.map(one, molecules):
            rows.append(row)
            progress.advance(task)
    return rows


def meeting(rows: list[dict[str, Any]], condition: Condition) -> dict[str, Any]:
    """Share of the computed rows that meet the condition by DFT."""
    values = [r[condition.name] for r in rows if r.get(condition.name) is not None]
    hits = sum(condition.met(v) for v in values)
    return {"n_computed": len(values), "n_failed": len(rows) - len(values),
            "n_meeting": hits, "share_meeting": hits / len(values) if values else None,
            "dft_mean": float(np.mean(values)) if values else None}


def draw(generator: FlowGenerator, n: int, condition: dict[str, float] | None, seed: int,
         guidance: float, steps: int, progress: Progress) -> list[GeneratedMolecule]:
    """``n`` samples, built into molecules."""
    samples = generator.sample(n, condition, steps=steps, guidance=guidance, seed=seed,
                               progress=progress)
    return [build_molecule(*s) for s in samples]


def first_distinct(molecules: list[GeneratedMolecule], n: int) -> list[GeneratedMolecule]:
    """The first ``n`` valid molecules with distinct SMILES."""
    seen: dict[str, GeneratedMolecule] = {}
    for m in molecules:
        if m.valid and m.smiles not in seen:
            seen[m.smiles] = m
    return list(seen.values())[:n]


def main() -> None:
    """Runs the arms for every target and writes JSON and a plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--store", default="sqlite:///runs/orbital_design/cache.db")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--n", type=int, default=30, help="kept molecules per arm")
    parser.add_argument("--oversample", type=int, default=8)
    parser.add_argument("--level", default="standard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--generator", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--energy-model", type=Path, default=ENERGY_WEIGHTS)
    parser.add_argument("--orbital-model", type=Path, default=DEFAULT_ORBITAL_WEIGHTS)
    args = parser.parse_args()
    generator = FlowGenerator.load(args.generator)
    energy = PropertyEnsemble.load(args.energy_model)
    orbital = OrbitalShareEnsemble.load(args.orbital_model)
    conditions = [parse_condition(t, list(DESCRIPTORS) + list(energy.properties))
                  for t in args.targets]
    oracle = PySCFOracle(PySCFOracle.Params(level=args.level, timeout_s=1800))
    Path(args.store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.store)
    report: dict[str, Any] = {
        "level": args.level, "n_per_arm": args.n, "oversample": args.oversample,
        "generator": str(args.generator), "orbital_model": str(args.orbital_model),
        "orbital_model_labelled_rows": orbital.metrics.get("labelled_rows"),
        "machine": platform.processor() or platform.machine(),
        "goals": {"share_meeting": 0.6, "times_base_rate": 3.0, "validity": 0.9},
        "targets": {},
    }

    def write() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))

    start = time.perf_counter()
    with Progress() as progress:
        drawn = draw(generator, args.n * args.oversample, None, args.seed, args.guidance,
                     args.steps, progress)
        base = first_distinct(drawn, args.n)
        base_rows = compute(base, oracle, store, args.workers, progress, "unconditional")
        report["unconditional"] = {"validity": float(np.mean([m.valid for m in drawn])),
                                   "rows": base_rows}
        write()
        for condition in conditions:
            entry: dict[str, Any] = {"unconditional": meeting(base_rows, condition)}
            chosen = select_for_conditions(drawn, [condition], energy, args.n, orbital)
            rows = compute(chosen.molecules, oracle, store, args.workers, progress,
                           f"selection {condition}")
            entry["selection"] = {**meeting(rows, condition),
                                  "validity": report["unconditional"]["validity"],
                                  "rows": rows}
            guided = condition.name in generator.properties
            entry["guided"] = guided
            if guided:
                stats = generator.conditioning
                k = stats.properties.index(condition.name)
                target = {condition.name: guidance_point(condition, float(stats.mean[k]),
                                                         float(stats.std[k]))}
                pool = draw(generator, args.n * args.oversample, target, args.seed + 1,
                            args.guidance, args.steps, progress)
                kept = select_for_conditions(pool, [condition], energy, args.n, orbital)
                rows = compute(kept.molecules, oracle, store, args.workers, progress,
                               f"conditioned {condition}")
                entry["conditioned"] = {**meeting(rows, condition),
                                        "validity": float(np.mean([m.valid for m in pool])),
                                        "rows": rows}
            else:  # the generator has no label of it: conditioning is selection alone
                entry["conditioned"] = {k: v for k, v in entry["selection"].items()}
                entry["conditioned"]["same_as"] = "selection (the generator is not trained on "\
                    f"{condition.name})"
            base_rate = entry["unconditional"]["share_meeting"]
            share = entry["conditioned"]["share_meeting"]
            entry["times_base_rate"] = (share / base_rate if base_rate and share is not None
                                        else None)
            report["targets"][str(condition)] = entry
            report["seconds"] = time.perf_counter() - start
            write()
    plot(report, args.json.with_suffix(".png"))
    print(json.dumps({t: {arm: e[arm]["share_meeting"] for arm in
                          ("unconditional", "selection", "conditioned")}
                      for t, e in report["targets"].items()}, indent=2))


def plot(report: dict[str, Any], path: Path) -> None:
    """Share meeting each target by DFT, per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(report["targets"])
    arms = ("unconditional", "selection", "conditioned")
    fig, ax = plt.subplots(figsize=(2.6 * len(targets) + 2, 4))
    width = 0.27
    for j, arm in enumerate(arms):
        shares = [report["targets"][t][arm]["share_meeting"] or 0.0 for t in targets]
        ax.bar(np.arange(len(targets)) + (j - 1) * width, shares, width, label=arm)
    ax.axhline(report["goals"]["share_meeting"], color="grey", ls="--", lw=0.8, label="goal")
    ax.set_xticks(np.arange(len(targets)), targets)
    ax.set_ylabel(f"share meeting the target by DFT ({report['level']})")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
