"""CHGNet oracle: relaxation, energy and thermodynamic stability of a crystal.

CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031, 2023) is a universal machine-learned
interatomic potential trained on the Materials Project's relaxation trajectories; its pip
package ships the pretrained weights. The oracle relaxes a candidate's cell and positions,
then places its energy in the phase diagram (pymatgen ``PhaseDiagram``) of the competing phases
of :mod:`oracles.competing_phases`, each relaxed with CHGNet once and kept in the store's
content-addressed cache (so every campaign of a store shares them).

Per result: ``energy_ev_per_atom``, ``formation_energy_ev_per_atom`` (against the element
phases), ``decomposition_energy_ev_per_atom`` (Bartel's decomposition enthalpy: the energy of
the design minus that of the most stable mixture of the other phases; negative when stable) and
``e_above_hull_ev_per_atom`` (its positive part), with the relaxed CIF in the details.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Lattice, Structure

from oracles.competing_phases import PHASE_SET_VERSION, Phase, competing_phases
from pipeline.protocols import ResultCache
from pipeline.registry import ORACLES
from pipeline.types import Candidate, Evaluation, EvaluationStatus, OracleResult

PROPERTIES = {
    "energy_ev_per_atom": "eV/atom",
    "formation_energy_ev_per_atom": "eV/atom",
    "decomposition_energy_ev_per_atom": "eV/atom",
    "e_above_hull_ev_per_atom": "eV/atom",
}
"""Scalar properties the oracle returns, with units."""

_MODEL_LOCK = threading.Lock()
_OPTIMIZER: Any = None


def chgnet_version() -> str:
    """Installed CHGNet version, or ``missing``."""
    try:
        return importlib.metadata.version("chgnet")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _optimizer() -> Any:
    """CHGNet's structure optimiser with the pretrained model, made once per process (quietly:
    CHGNet prints its size and device when made)."""
    global _OPTIMIZER
    if _OPTIMIZER is None:
        from chgnet.model import CHGNet, StructOptimizer

        with contextlib.redirect_stdout(io.StringIO()):
            _OPTIMIZER = StructOptimizer(model=CHGNet.load(verbose=False), use_device="cpu")
    return _OPTIMIZER


def relax(structure: Structure, *, fmax: float, steps: int, relax_cell: bool = True
          ) -> tuple[Structure, float, int]:
    """Relaxes a structure with CHGNet (FIRE, the Frechet cell filter when ``relax_cell``).

    Returns:
        The relaxed structure, its energy per atom (eV/atom) and the number of steps taken.
    """
    with _MODEL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _optimizer().relax(structure, fmax=fmax, steps=steps, relax_cell=relax_cell,
                                    verbose=False)
    trajectory: Any = result["trajectory"]
    final: Any = result["final_structure"]
    return final, float(trajectory.energies[-1]) / len(final), len(trajectory.energies)


@ORACLES.register("chgnet")
class CHGNetOracle:
    """Relaxation and thermodynamic stability with CHGNet (see the module docstring)."""

    class Params(BaseModel):
        """Settings.

        Attributes:
            fmax_ev_per_angstrom: relaxation stops when every force is below this.
            max_steps: relaxation steps at most (a relaxation that has not converged by then
                still gives its last energy; ``converged`` in the details says so).
            phase_fmax_ev_per_angstrom: the same for the competing phases.
            phase_max_steps: the same for the competing phases.
            fidelity: name stored with every result.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        fmax_ev_per_angstrom: float = Field(default=0.05, gt=0.0, le=1.0)
        max_steps: int = Field(default=500, ge=1, le=100_000)
        phase_fmax_ev_per_angstrom: float = Field(default=0.05, gt=0.0, le=1.0)
        phase_max_steps: int = Field(default=300, ge=1, le=100_000)
        fidelity: str = Field(default="chgnet", min_length=1)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self.cache: ResultCache | None = None
        self._phases: dict[str, OracleResult] = {}

    def __repr__(self) -> str:
        return f"CHGNetOracle({self.params!r}, chgnet={chgnet_version()})"

    @property
    def fidelity(self) -> str:
        """The fidelity name of this oracle's results."""
        return self.params.fidelity

    def properties(self) -> dict[str, str]:
        """Property names with units."""
        return dict(PROPERTIES)

    def bind_cache(self, cache: ResultCache) -> None:
        """Keeps the competing phases' relaxations in ``cache`` (the campaign's store)."""
        self.cache = cache

    def _settings(self) -> dict[str, object]:
        return {"chgnet": chgnet_version(), "phase_set": PHASE_SET_VERSION,
                "fmax": self.params.phase_fmax_ev_per_angstrom,
                "steps": self.params.phase_max_steps}

    def provenance(self) -> dict[str, Any]:
        """Method and code version, stored with every value."""
        return {"oracle": "chgnet", "method": "CHGNet", "chgnet_version": chgnet_version(),
                "phase_set": PHASE_SET_VERSION, "fmax": self.params.fmax_ev_per_angstrom}

    @staticmethod
    def structure(candidate: Candidate) -> Structure:
        """The candidate's periodic structure.

        Raises:
            ValueError: the candidate has no periodic geometry.
        """
        geometry = candidate.geometry
        if geometry is None or geometry.lattice_angstrom is None:
            raise ValueError(f"candidate {candidate.id} has no periodic geometry; the CHGNet "
                             "oracle needs a crystal (the perovskites domain attaches one)")
        return Structure(Lattice(geometry.lattice_angstrom), list(geometry.symbols),
                         list(geometry.positions_angstrom), coords_are_cartesian=True)

    def request_key(self, candidate: Candidate) -> str:
        """SHA-256 of the species, fractional coordinates (1e-5), lattice (1e-4 Angstrom),
        relaxation settings, phase set and CHGNet version."""
        s = self.structure(candidate)
        data = {"species": [site.specie.symbol for site in s],
                "frac": [[f"{v:.5f}" for v in xyz] for xyz in np.mod(s.frac_coords, 1.0)],
                "lattice": [[f"{v:.4f}" for v in row] for row in s.lattice.matrix],
                "fmax": self.params.fmax_ev_per_angstrom, "steps": self.params.max_steps,
                **self._settings()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def phase_energy(self, phase: Phase) -> OracleResult:
        """A competing phase relaxed with CHGNet, from the cache where it was done before, else
        from the phases shipped with the oracle (:mod:`oracles.chgnet_phase_table`)."""
        key = phase.key(self._settings())
        if key in self._phases:
            return self._phases[key]
        cached = self.cache.oracle_result(key) if self.cache is not None else None
        if cached is None:  # relaxed once by the project and shipped (same key, same settings)
            from oracles.chgnet_phase_table import shipped_phases

            cached = shipped_phases().get(key)
        if cached is not None:
            self._phases[key] = cached
            return cached
        start = time.perf_counter()
        try:
            final, energy, n_steps = relax(phase.structure,
                                           fmax=self.params.phase_fmax_ev_per_angstrom,
                                           steps=self.params.phase_max_steps,
                                           relax_cell=phase.relax_cell)
            result = OracleResult(
                key, "chgnet-phase", "chgnet", EvaluationStatus.OK, "",
                {"energy_ev_per_atom": energy}, {"energy_ev_per_atom": "eV/atom"},
                {"phase": phase.name, "formula": final.composition.formula, "steps": n_steps,
                 "wall_s": time.perf_counter() - start},
                {"oracle": "chgnet", "chgnet_version": chgnet_version()})
        except Exception as exc:  # a phase that CHGNet cannot relax is left out of the hull
            result = OracleResult(key, "chgnet-phase", "chgnet", EvaluationStatus.FAILED,
                                  f"{type(exc).__name__}: {exc}", {}, {},
                                  {"phase": phase.name}, {"oracle": "chgnet"})
        if self.cache is not None:
            self.cache.save_oracle_result(result)
        self._phases[key] = result
        return result

    def _failed(self, key: str, reason: str, **details: Any) -> OracleResult:
        return OracleResult(key, "chgnet", self.fidelity, EvaluationStatus.FAILED, reason, {},
                            dict(PROPERTIES), details, self.provenance())

    def hull(self, structure: Structure, energy_ev_per_atom: float
             ) -> tuple[float, float, list[tuple[Phase, OracleResult]]]:
        """Places a structure of known energy on the hull of its competing phases.

        Args:
            structure: the (relaxed) structure.
            energy_ev_per_atom: its CHGNet energy, eV/atom.

        Returns:
            The formation energy and the decomposition energy (eV/atom; negative: below the
            hull of the other phases) and each competing phase with its result.

        Raises:
            ValueError: an element has no relaxed phase, or pymatgen finds no decomposition.
        """
        from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

        elements = sorted({site.specie.symbol for site in structure})
        phase_results = [(p, self.phase_energy(p)) for p in competing_phases(elements)]
        entries = [PDEntry(p.structure.composition, float(r.values["energy_ev_per_atom"])
                           * p.structure.composition.num_atoms, name=p.name)
                   for p, r in phase_results if r.ok]
        missing = [el for el in elements
                   if not any(e.composition.is_element and e.composition.elements[0].symbol == el
                              for e in entries)]
        if missing:
            raise ValueError(f"no relaxed element phase for {', '.join(missing)}: the "
                             "formation and decomposition energies need one")
        design = PDEntry(structure.composition, energy_ev_per_atom * len(structure),
                         name="design")
        diagram = PhaseDiagram([*entries, design])
        _, separation = diagram.get_decomp_and_phase_separation_energy(design)
        if separation is None:
            raise ValueError("pymatgen found no decomposition of the design")
        return (float(diagram.get_form_energy_per_atom(design)), float(separation),
                phase_results)

    def static_stability(self, structure: Structure) -> dict[str, float]:
        """Energy, formation and decomposition energy (eV/atom) at the given geometry, without
        relaxation: for structures already relaxed by DFT (the perov-5 labels).

        Raises:
            ValueError: as :meth:`hull`, or a non-finite energy.
        """
        with _MODEL_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            energy = float(_optimizer().calculator.model.predict_structure(structure)["e"])
        if not np.isfinite(energy):
            raise ValueError(f"CHGNet gave a non-finite energy ({energy})")
        formation, decomposition, _ = self.hull(structure, energy)
        return {"energy_ev_per_atom": energy, "formation_energy_ev_per_atom": formation,
                "decomposition_energy_ev_per_atom": decomposition}

    def _relax_and_place(self, structure: Structure
                         ) -> tuple[Structure, int, dict[str, float],
                                    list[tuple[Phase, OracleResult]]]:
        """Relaxes a structure with the oracle's settings and places it on the hull.

        Returns:
            The relaxed structure, the steps taken, its energy, formation and decomposition
            energy and distance above the hull (eV/atom) and each competing phase's result.

        Raises:
            ValueError: the relaxation fails, as :meth:`hull`, or a non-finite energy.
        """
        try:
            final, energy, n_steps = relax(structure, fmax=self.params.fmax_ev_per_angstrom,
                                           steps=self.params.max_steps)
        except Exception as exc:
            raise ValueError(f"CHGNet relaxation failed: {type(exc).__name__}: {exc}") from exc
        if not np.isfinite(energy):
            raise ValueError(f"CHGNet gave a non-finite energy ({energy})")
        formation, decomposition, phase_results = self.hull(final, energy)
        values = {"energy_ev_per_atom": energy, "formation_energy_ev_per_atom": formation,
                  "decomposition_energy_ev_per_atom": decomposition,
                  "e_above_hull_ev_per_atom": max(0.0, decomposition)}
        return final, n_steps, values, phase_results

    def relaxed_stability(self, structure: Structure) -> dict[str, float]:
        """The values (eV/atom) that :meth:`run` gives a candidate of this structure, plus
        ``steps`` (relaxation steps taken).

        Raises:
            ValueError: as :meth:`_relax_and_place`.
        """
        _, n_steps, values, _ = self._relax_and_place(structure)
        return {**values, "steps": float(n_steps)}

    def run(self, candidate: Candidate) -> OracleResult:
        """Relaxes the candidate and places it on the hull; a failure is a failed result."""
        from pymatgen.io.cif import CifWriter

        try:
            structure = self.structure(candidate)
            key = self.request_key(candidate)
        except ValueError as exc:
            return self._failed(f"unprepared:{candidate.id}", str(exc))
        start = time.perf_counter()
        try:
            final, n_steps, values, phase_results = self._relax_and_place(structure)
        except ValueError as exc:
            return self._failed(key, str(exc))
        wall = time.perf_counter() - start
        converged = n_steps < self.params.max_steps
        details = {"relaxed_cif": str(CifWriter(final)), "steps": n_steps, "converged": converged,
                   "phases": {p.name: r.values.get("energy_ev_per_atom") for p, r in phase_results},
                   "phases_failed": [p.name for p, r in phase_results if not r.ok],
                   "volume_change": final.volume / structure.volume - 1.0, "wall_s": wall}
        return OracleResult(key, "chgnet", self.fidelity, EvaluationStatus.OK, "", values,
                            dict(PROPERTIES), details, {**self.provenance(), "wall_s": wall,
                                                        "steps": n_steps})

    def __call__(self, candidates: Sequence[Candidate]) -> list[Evaluation]:
        """Evaluates each candidate in turn; one evaluation per property each."""
        return [e for c in candidates for e in self.run(c).evaluations(c.id)]
