"""Crystal generation for people and campaigns: de novo and structure prediction, conditions,
selection by the property model, and the summary (validity, uniqueness, novelty, time).

Conditions are ``NAME=VALUE``, ``NAME<=VALUE`` or ``NAME>=VALUE`` over the generator's
properties (:data:`materials.crystal_flow.PROPERTIES`). Guidance aims at the value, or for a
bound at the median of the training labels inside it (:meth:`CrystalGenerator.target_for`);
a property the generator was trained without labels of is not guided on.
Where the crystal property model predicts the property (formation energy, band gap),
``oversample`` times as many cells are drawn and the ones the model predicts best inside the
conditions are kept: violations first, then distance to the ``=`` targets; the selection step
of classifier guidance, as for molecules (:mod:`chem.conditioned`).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pymatgen.core import Composition, Structure
from rich.progress import Progress

from materials.cell_encoding import canonical_cell
from materials.crystal_flow import CrystalGenerator, reference_structures
from materials.crystal_model import PROPERTIES as MODEL_PROPERTIES
from materials.sampling_defaults import ANNEAL, MIN_DISTANCE
from materials.validity import composition_valid, structure_problem
from pipeline.conditions import Condition, selection_score

MAX_SITES = 40
"""Largest cell that structure prediction takes (sites)."""


def matcher() -> Any:
    """pymatgen's StructureMatcher with the tolerances of the CSP benchmarks (DiffCSP, CDVAE):
    stol 0.5, angle_tol 10, ltol 0.3."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)


@dataclass
class CrystalSample:
    """One generated cell and what was found of it.

    Attributes:
        formula: the requested formula (structure prediction) or the generated reduced formula.
        structure: the cell (None where none could be built).
        composition_valid: SMACT validity of the composition.
        structure_valid: no two sites closer than 0.5 Angstrom, volume above 0.1 A^3.
        reason: why the cell is invalid or missing ("" when valid).
        predicted: mean and standard deviation per property, where a model predicts it (the
            property model; the stability model for ``decomposition_energy_ev_per_atom``).
        redecoded: the species are the charge-aware decoding's, not the most probable ones
            (:meth:`materials.crystal_flow.CrystalGenerator.sample`).
    """

    formula: str
    structure: Structure | None
    composition_valid: bool = False
    structure_valid: bool = False
    reason: str = ""
    predicted: dict[str, tuple[float, float]] = field(default_factory=dict)
    redecoded: bool = False

    @property
    def valid(self) -> bool:
        """Both compositionally and structurally valid."""
        return self.composition_valid and self.structure_valid


def _judge(formula: str, structure: Structure | None, reason: str, redecoded: bool = False
           ) -> CrystalSample:
    if structure is None:
        return CrystalSample(formula, None, reason=reason or "no cell")
    species = [site.specie.symbol for site in structure]
    comp_ok = composition_valid(species)
    problem = structure_problem(structure)
    reasons = [r for r in (problem, "" if comp_ok else "composition fails SMACT charge "
                                                        "neutrality / electronegativity") if r]
    return CrystalSample(formula, structure, comp_ok, not problem, "; ".join(reasons),
                         redecoded=redecoded)


def predict_properties(samples: Sequence[CrystalSample], model: Any) -> None:
    """Adds the crystal property model's predictions (mean, std) to the samples in place."""
    from materials.prior import predict_structures

    structures = [s.structure for s in samples]
    if not structures:
        return
    mean, std, _, _ = predict_structures(model, structures)
    for k, s in enumerate(samples):
        s.predicted = {name: (float(mean[k, j]), float(std[k, j]))
                       for j, name in enumerate(MODEL_PROPERTIES) if np.isfinite(mean[k, j])}


def predict_stability(samples: Sequence[CrystalSample], model: Any) -> None:
    """Adds the stability model's relaxed decomposition energy (mean, std; eV/atom) to the
    samples' predictions in place (:mod:`materials.stability_model`)."""
    from materials.stability_model import STABILITY_PROPERTY

    if not samples:
        return
    mean, std = model.predict([s.structure for s in samples])
    for k, s in enumerate(samples):
        if np.isfinite(mean[k]):
            s.predicted[STABILITY_PROPERTY] = (float(mean[k]), float(std[k]))


def _select(samples: list[CrystalSample], conditions: Sequence[Condition], keep: int,
            scale: dict[str, float] | None = None,
            predicted: Collection[str] = MODEL_PROPERTIES) -> list[CrystalSample]:
    """The ``keep`` valid samples that best meet the conditions by the model's predictions and
    their uncertainty (:func:`pipeline.conditions.selection_score`, as for molecules: a point
    target's distance in units of the model's held-out error ``scale``, -log of the predicted
    probability of meeting a window, so that a wild prediction with a wide interval does not
    pass for one inside); conditions no model predicts (not in ``predicted``) do not rank."""
    ranked_on = [c for c in conditions if c.name in predicted]

    def score(s: CrystalSample) -> float:
        mean = {name: value[0] for name, value in s.predicted.items()}
        std = {name: value[1] for name, value in s.predicted.items()}
        return selection_score(ranked_on, mean, std, scale or {})

    ranked = sorted((s for s in samples if s.valid), key=score)  # unpredicted ones last
    return ranked[:keep]


def generate_crystals(generator: CrystalGenerator, n: int,
                      conditions: Sequence[Condition] = (), seed: int = 0,
                      n_atoms: int | None = None, property_model: Any = None,
                      oversample: int = 4, guidance: float = 1.0, steps: int = 100,
                      progress: Progress | None = None, anneal: float = ANNEAL,
                      min_distance: float = MIN_DISTANCE, stability_model: Any = None
                      ) -> tuple[list[CrystalSample], int]:
    """De novo cells.

    Args:
        generator: the trained generator.
        n: cells wanted.
        conditions: targets; with a model that predicts one of them (the property model, the
            stability model), ``oversample`` x ``n`` are drawn and the best ``n`` kept.
        seed: the same seed gives the same cells.
        n_atoms: sites per cell (5, or 10 for the double cell); default: the training sizes.
        property_model: the crystal property model (predictions on every sample; selection).
        oversample: draws per kept cell when selecting.
        guidance: classifier-free guidance weight.
        steps: integration steps.
        progress: progress bars.
        anneal: coordinate velocity scaling (:meth:`CrystalGenerator.sample`).
        min_distance: site separation in sampling, Angstrom (0: none).
        stability_model: the CHGNet stability model (:mod:`materials.stability_model`):
            predictions of ``decomposition_energy_ev_per_atom``; selection.

    Returns:
        The samples (kept ones, each judged) and how many were drawn.
    """
    from materials.stability_model import STABILITY_PROPERTY

    predicted = set(MODEL_PROPERTIES) if property_model is not None else set()
    if stability_model is not None:
        predicted.add(STABILITY_PROPERTY)
    selecting = oversample > 1 and any(c.name in predicted for c in conditions)
    drawn = n * oversample if selecting else n
    rng = np.random.default_rng(seed)
    if n_atoms is None:
        counts = generator.size_counts.double().numpy()
        sizes = rng.choice(len(counts), size=drawn, p=counts / counts.sum())
    else:
        sizes = np.full(drawn, n_atoms)
    target = generator.guidance_targets(conditions)
    cells = generator.sample(sizes.tolist(), condition=target, steps=steps, guidance=guidance,
                             seed=seed, progress=progress, anneal=anneal,
                             min_distance=min_distance)
    samples = []
    for c in cells:
        formula = c.structure.composition.reduced_formula if c.structure is not None else ""
        samples.append(_judge(formula, c.structure, c.reason, c.redecoded))
    if property_model is not None:
        predict_properties(samples, property_model)
    if stability_model is not None:
        predict_stability(samples, stability_model)
    if selecting:
        validation = getattr(property_model, "metrics", {}).get("validation", {})
        scale = {p: float(validation.get(f"mae_{p}", 1.0)) for p in MODEL_PROPERTIES}
        if stability_model is not None:
            scale[STABILITY_PROPERTY] = float(stability_model.metrics.get("test", {}).get(
                "mae_ev_per_atom", 1.0))
        samples = _select(samples, conditions, n, scale, predicted)
    return samples, drawn


def composition_species(formula: str) -> list[str]:
    """One symbol per site of ``formula`` as written (``Cs2AgBiBr6``: 10 sites).

    Raises:
        ValueError: not a formula, fractional amounts, or more than :data:`MAX_SITES` sites.
    """
    try:
        comp = Composition(formula)
    except Exception as exc:
        raise ValueError(f"{formula!r} is not a formula: {exc}") from None
    species = []
    for el, amount in comp.items():
        if abs(amount - round(amount)) > 1e-6:
            raise ValueError(f"{formula!r}: {el} has a fractional amount ({amount})")
        species += [el.symbol] * round(amount)
    if not species or len(species) > MAX_SITES:
        raise ValueError(f"{formula!r}: {len(species)} sites; structure prediction takes 1 to "
                         f"{MAX_SITES}")
    return species


def predict_crystal_structures(generator: CrystalGenerator, formulas: Sequence[str],
                               per_composition: int = 1, seed: int = 0,
                               property_model: Any = None, steps: int = 100,
                               conditions: Sequence[Condition] = (), guidance: float = 1.0,
                               progress: Progress | None = None, anneal: float = ANNEAL,
                               min_distance: float = MIN_DISTANCE) -> list[CrystalSample]:
    """Structure prediction: ``per_composition`` cells for each formula, with its species
    (``min_distance``: site separation in sampling, Angstrom, as :func:`generate_crystals`).

    Raises:
        ValueError: a formula that is not one (its line is named), or an element the generator
            does not know.
    """
    species: list[list[str]] = []
    known = set(generator.vocabulary)
    for line, f in enumerate(formulas, start=1):
        try:
            species.append(composition_species(f))
        except ValueError as exc:
            raise ValueError(f"formula {line}: {exc}") from None
        unknown = sorted(set(species[-1]) - known)
        if unknown:
            raise ValueError(f"formula {line} ({f}): element(s) {', '.join(unknown)} not known "
                             f"to the generator (trained on {len(known)} elements)")
    repeated = [s for s in species for _ in range(per_composition)]
    target = generator.guidance_targets(conditions)
    cells = generator.sample([len(s) for s in repeated], species=repeated, condition=target,
                             steps=steps, guidance=guidance, seed=seed, progress=progress,
                             anneal=anneal, min_distance=min_distance)
    requested = [f for f in formulas for _ in range(per_composition)]
    samples = [_judge(f, c.structure, c.reason) for f, c in zip(requested, cells, strict=True)]
    if property_model is not None:
        predict_properties(samples, property_model)
    return samples


def unique_and_novel(samples: Sequence[CrystalSample], generator: CrystalGenerator | None
                     ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which valid samples are the first of their kind among the samples (uniqueness) and
    which match no training cell of the same reduced formula (novelty), with
    :func:`matcher`; invalid samples are neither.
    """
    sm = matcher()
    unique = np.zeros(len(samples), dtype=bool)
    novel = np.zeros(len(samples), dtype=bool)
    by_formula: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if s.valid and s.structure is not None:
            by_formula[s.structure.composition.reduced_formula].append(i)
    reference: dict[str, list[int]] = defaultdict(list)
    ref_structures: list[Structure] | None = None
    if generator is not None:
        for k, species in enumerate(generator.reference["species"]):
            reference[Composition("".join(species)).reduced_formula].append(k)
    for formula, members in by_formula.items():
        kept: list[Structure] = []
        for i in members:
            st = samples[i].structure
            assert st is not None
            if not any(sm.fit(st, other) for other in kept):
                unique[i] = True
                kept.append(st)
        if reference.get(formula):
            if ref_structures is None and generator is not None:
                ref_structures = reference_structures(generator.reference)
            assert ref_structures is not None
            for i in members:
                st = samples[i].structure
                assert st is not None
                novel[i] = not any(sm.fit(st, ref_structures[k]) for k in reference[formula])
        else:
            novel[members] = True
    return unique, novel


def summarize(samples: Sequence[CrystalSample], drawn: int, wall_s: float,
              generator: CrystalGenerator | None = None) -> dict[str, Any]:
    """Counts and rates for people and ``--json``: validity (compositional, structural, both),
    the share of cells whose species the charge-aware decoding chose, uniqueness and novelty
    among the valid, wall time, samples per second and failures by reason."""
    n = len(samples)
    comp = sum(s.composition_valid for s in samples)
    struct = sum(s.structure_valid for s in samples)
    valid = sum(s.valid for s in samples)
    unique, novel = unique_and_novel(samples, generator)
    reasons: Counter[str] = Counter()
    for s in samples:
        if s.structure is None:
            reasons[s.reason.split(":")[0] or "no cell"] += 1
        else:
            if not s.structure_valid:
                reasons["sites closer than 0.5 A or volume below 0.1 A^3"] += 1
            if not s.composition_valid:
                reasons["composition fails SMACT"] += 1
    return {"samples": n, "drawn": drawn,
            "composition_validity": comp / n if n else 0.0,
            "structure_validity": struct / n if n else 0.0,
            "validity": valid / n if n else 0.0,
            "redecoded": sum(s.redecoded for s in samples) / n if n else 0.0,
            "uniqueness": float(unique.sum() / valid) if valid else 0.0,
            "novelty": float(novel.sum() / valid) if valid else 0.0,
            "wall_s": wall_s, "samples_per_s": drawn / wall_s if wall_s > 0 else None,
            "failures": dict(reasons)}


def canonical_cif(structure: Structure) -> str:
    """CIF of the canonical cell (:func:`materials.cell_encoding.canonical_cell`)."""
    from materials.structures import to_cif

    return to_cif(canonical_cell(structure))


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """(fn(*args, **kwargs), wall seconds)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
