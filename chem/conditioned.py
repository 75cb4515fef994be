"""Conditional generation: guided sampling, then the pretrained property model picks.

Classifier-free guidance moves the generator's samples towards the requested HOMO, LUMO or gap,
but their spread around the target stays wide (0.5-0.6 eV mean absolute error for the gap). The
pretrained property model (:mod:`chem.property_model`, 0.14 eV gap error on QM9 molecules) is a
far sharper judge of a given molecule than the generator is a sampler, so conditional
generation samples ``oversample`` times as many molecules as asked for and keeps the valid,
distinct ones the model predicts closest to the targets: rejection sampling with a learned
property model, the selection step of classifier guidance without its gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from rich.progress import Progress

from chem.generated import GeneratedMolecule, RelaxationFailed, relax_molecule
from chem.property_model import PropertyEnsemble
from pipeline.conditions import Condition, selection_score

if TYPE_CHECKING:
    from chem.orbital_model import OrbitalShareEnsemble

JudgedGeometry = Literal["embedded", "generated"]
"""The geometry the property model judges a molecule at: ``embedded``, a new embedding of its
SMILES made the way the model's training geometries were (RDKit ETKDG + MMFF94, then GFN2-xTB
for an ``xtb`` model; about 20 ms a molecule); ``generated``, its generated coordinates relaxed
by the same method (:func:`chem.generated.relax_molecule`: about 3 ms a molecule with MMFF94),
i.e. the coordinates ``invdes generate molecules`` writes by default.

On 292 distinct generated molecules (80 drawn at each of 5.5, 6.5, 7.5 and 8.5 eV) the shipped
model's gap predictions at the two differed by 0.04 eV on average (median 0.02, 90th percentile
0.11, largest 0.35; the model's own error is 0.13 eV); the 20 kept of each 80 had 13 to 20
molecules in common, and their predicted gap errors were alike (0.04-0.08 eV either way). The
default stays ``embedded`` until the DFT benchmark has compared the two."""


@dataclass(frozen=True)
class Selection:
    """The molecules kept and how they were judged.

    Attributes:
        molecules: the kept molecules, closest first.
        predicted: (len(molecules), n_properties) predicted mean of each property, eV, in the
            order of ``properties``.
        properties: the property model's property names.
        distance_ev: (len(molecules),) sum over the targets of |predicted - target|, eV.
        n_judged: distinct valid molecules the model judged.
    """

    molecules: list[GeneratedMolecule]
    predicted: npt.NDArray[np.float64]
    properties: tuple[str, ...]
    distance_ev: npt.NDArray[np.float64]
    n_judged: int
    predicted_std: npt.NDArray[np.float64] | None = None


def select_closest(molecules: Sequence[GeneratedMolecule], condition: dict[str, float],
                   model: PropertyEnsemble, keep: int, progress: Progress | None = None,
                   geometry: JudgedGeometry = "embedded") -> Selection:
    """Keeps the ``keep`` distinct valid molecules predicted closest to ``condition``.

    By default each molecule is judged from a geometry made from its SMILES the way the property
    model's training geometries were (RDKit ETKDG + MMFF, relaxed with GFN2-xTB for an ``xtb``
    model); ``geometry="generated"`` judges its generated coordinates relaxed by that method
    instead, several times faster (:data:`JudgedGeometry`).

    Args:
        molecules: generated molecules; invalid ones and repeats of a SMILES are passed over.
        condition: targets, e.g. ``{"gap_ev": 6.5}`` (eV).
        model: the pretrained property model.
        keep: how many to keep at most.
        progress: gets a task advanced once per distinct valid molecule whose geometry is made
            (most of the time; the network's pass after it is a small part).
        geometry: what the model reads (:data:`JudgedGeometry`). Molecules without a geometry
            (no embedding, or a relaxation that fails) are passed over.

    Raises:
        ValueError: a target the property model does not predict, or ``keep`` < 1.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    unknown = [name for name in condition if name not in model.properties]
    if unknown:
        raise ValueError(f"the property model does not predict {', '.join(unknown)}; it "
                         f"predicts {', '.join(model.properties)}")
    first = _first_valid(molecules)
    properties = tuple(model.properties)
    if not first:
        return Selection([], np.zeros((0, len(properties))), properties, np.zeros(0), 0)
    if geometry == "embedded":
        predicted = model.predict_smiles(list(first), progress)
    elif geometry == "generated":
        predicted = _predict_generated(first, model, progress)
    else:
        raise ValueError(f"geometry must be 'embedded' or 'generated', got {geometry!r}")
    judged = list(predicted)
    mean = np.array([predicted[s][0] for s in judged], dtype=np.float64).reshape(
        len(judged), len(properties))
    distance = np.zeros(len(judged))
    for name, target in condition.items():
        distance += np.abs(mean[:, properties.index(name)] - target)
    order = np.argsort(distance, kind="stable")[:keep]
    return Selection([first[judged[i]] for i in order], mean[order], properties,
                     distance[order], len(judged))


def _first_valid(molecules: Sequence[GeneratedMolecule]) -> dict[str, GeneratedMolecule]:
    """The first valid molecule of each SMILES, in order."""
    first: dict[str, GeneratedMolecule] = {}
    for m in molecules:
        if m.valid and m.smiles not in first:
            first[m.smiles] = m
    return first


def _predict_generated(molecules: dict[str, GeneratedMolecule], model: PropertyEnsemble,
                       progress: Progress | None
                       ) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """The model's mean and standard deviation of each molecule at its relaxed generated
    coordinates; molecules whose relaxation fails are left out."""
    task = (progress.add_task(f"relaxing generated geometries ({model.config.geometry})",
                              total=len(molecules)) if progress is not None else None)
    relaxed = {}
    for smiles, m in molecules.items():
        if m.mol is not None:
            with contextlib.suppress(RelaxationFailed):
                relaxed[smiles] = relax_molecule(m.mol, model.config.geometry)
        if progress is not None and task is not None:
            progress.advance(task)
    mean, std = model.predict_molecules(list(relaxed.values()))
    return {s: (mean[k], std[k]) for k, s in enumerate(relaxed)}


def guidance_point(condition: Condition, mean: float, std: float) -> float:
    """Where guidance aims for a condition on a property the generator was trained on: the
    value of ``=``; for ``<=`` (``>=``) half a label standard deviation inside the bound, or
    the labels' mean when that already lies inside, so that guidance aims inside the window
    rather than at its edge.

    Args:
        condition: the condition.
        mean, std: the generator's training-label mean and standard deviation of the property.
    """
    if condition.op == "=":
        return condition.value
    if condition.op == "<=":
        return min(condition.value - 0.5 * std, mean)
    return max(condition.value + 0.5 * std, mean)


def judge_molecules(smiles: Sequence[str], model: PropertyEnsemble,
                    orbital_model: OrbitalShareEnsemble | None = None,
                    progress: Progress | None = None
                    ) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """Predicted mean and standard deviation of every property the models predict (energies,
    and the orbital-location descriptors with ``orbital_model``), per SMILES the energy model
    can read, from embedded geometries."""
    energies = model.predict_smiles(list(smiles), progress)
    orbital = orbital_model.predict_smiles(list(energies))[0] if orbital_model else {}
    out = {}
    for smi, (mean, std) in energies.items():
        m = dict(zip(model.properties, map(float, mean), strict=True))
        sd = dict(zip(model.properties, map(float, std), strict=True))
        if smi in orbital:
            for name, (dm, ds) in orbital[smi].descriptors.items():
                m[name], sd[name] = dm, ds
        out[smi] = (m, sd)
    return out


def select_for_conditions(molecules: Sequence[GeneratedMolecule],
                          conditions: Sequence[Condition], model: PropertyEnsemble, keep: int,
                          orbital_model: OrbitalShareEnsemble | None = None,
                          progress: Progress | None = None) -> Selection:
    """Keeps the ``keep`` distinct valid molecules whose predictions best meet ``conditions``
    (points and windows, on energies and, with ``orbital_model``, on descriptors), judged from
    embedded geometries.

    The order is :func:`pipeline.conditions.selection_score`: distance to a point target in
    units of the model's held-out error, -log of the predicted probability of meeting a
    window. ``distance_ev`` of the result holds that score.

    Raises:
        ValueError: a condition on a property neither model predicts, or ``keep`` < 1.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    properties = (*model.properties, *(orbital_model.properties if orbital_model else ()))
    unknown = [c.name for c in conditions if c.name not in properties]
    if unknown:
        raise ValueError(f"no property model predicts {', '.join(unknown)}; they predict "
                         f"{', '.join(properties)}")
    first = _first_valid(molecules)
    if not first:
        return Selection([], np.zeros((0, len(properties))), properties, np.zeros(0), 0,
                         np.zeros((0, len(properties))))
    judged = judge_molecules(list(first), model, orbital_model, progress)
    validation = model.metrics.get("validation", {})
    scale = {p: float(validation.get(f"mae_{p}", 1.0)) for p in model.properties}
    if orbital_model is not None:
        v = orbital_model.metrics.get("validation", {})
        scale.update({p: float(v.get(f"{p}_mae", 1.0)) for p in orbital_model.properties})
    names = list(judged)
    scores = np.array([selection_score(conditions, *judged[s], scale) for s in names])
    order = [i for i in np.argsort(scores, kind="stable")[:keep] if np.isfinite(scores[i])]
    mean = np.array([[judged[names[i]][0].get(p, np.nan) for p in properties] for i in order]
                    ).reshape(len(order), len(properties))
    std = np.array([[judged[names[i]][1].get(p, np.nan) for p in properties] for i in order]
                   ).reshape(len(order), len(properties))
    return Selection([first[names[i]] for i in order], mean, properties, scores[order],
                     len(names), std)
