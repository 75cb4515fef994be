"""PySCF oracle: energies, frontier orbitals, dipole and orbital-invariant atom features.

``PySCFOracle(params)(candidates)``: the recipe (level of theory, limits) goes in the constructor,
the molecules in the call. Each calculation runs in a child process
(:mod:`oracles.pyscf_worker`) with a wall-time limit, an optional memory limit and a fixed number
of BLAS/OpenMP threads, so parallel calculations do not oversubscribe the cores and a hung
calculation is killed without killing the campaign. A failure is a result with status ``failed``
and its reason, never an exception.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from typing import Any, Literal, Self

import pyscf
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oracles.levels import LEVELS, Level
from oracles.orbital_features import DESCRIPTORS, molecule_descriptors
from oracles.worker_process import run_worker
from pipeline.registry import ORACLES
from pipeline.types import Candidate, Evaluation, EvaluationStatus, Geometry, OracleResult

SCF_PROPERTIES = {
    "energy_hartree": "Hartree",
    "homo_ev": "eV",
    "lumo_ev": "eV",
    "gap_ev": "eV",
    "dipole_debye": "Debye",
}
"""Scalar properties of the SCF solution, with units."""

PROPERTIES = {**SCF_PROPERTIES, **DESCRIPTORS}
"""Scalar properties the oracle returns, with units: the SCF's and the orbital-location
descriptors of :mod:`oracles.orbital_features` (molecules with at least one heavy atom)."""

def _version(package: str) -> str:
    """Installed version of a distribution, or ``missing``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


COORD_DECIMALS = 5
"""Coordinates are rounded to 1e-5 Angstrom in the request key."""


@ORACLES.register("pyscf")
class PySCFOracle:
    """Kohn-Sham DFT or Hartree-Fock with PySCF on a candidate's 3D geometry.

    Returns ``energy_hartree``, ``homo_ev``, ``lumo_ev``, ``gap_ev``, ``dipole_debye`` and the
    orbital-location descriptors (``frontier_overlap``, ``homo_pr``, ``lumo_share_N``, ...; see
    :mod:`oracles.orbital_features`) as values, and per-atom ``homo_density``,
    ``lumo_density``, ``fukui_plus``, ``fukui_minus``, ``dual_descriptor`` and Löwdin
    ``charge`` in the result's details. Candidates must carry a
    geometry (the domain's preparer attaches one); it is used as given unless
    ``optimize_geometry`` is set.
    """

    class Params(BaseModel):
        """Level of theory and limits: a named ``level``, or ``method`` and ``basis``.

        Attributes:
            level: a named level (``fast``, ``cheap-dft``, ``standard``, ``accurate``, ``qm9``).
            method: ``hf`` or an exchange-correlation functional; overrides the level's.
            basis: a PySCF basis name; overrides the level's.
            density_fitting: overrides the level's density fitting.
            cartesian: overrides the level's Cartesian/spherical choice.
            grid_level: overrides the level's DFT grid level (0 to 9).
            fidelity: name stored with every result; default ``dft-<level>`` or
                ``dft-<method>/<basis>``.
            optimize_geometry: optimise the geometry (geomeTRIC) before the final SCF; the
                optimised coordinates are stored with the result.
            optimize_level: named level of the optimisation (default: the calculation's own).
            fukui: ``frontier`` (HOMO/LUMO densities, no extra cost) or ``finite_difference``
                (anion and cation SCF at the same geometry, three times the cost).
            degeneracy_tol_hartree: orbitals this close to the HOMO (LUMO) form its set.
            max_scf_cycles: SCF iterations per attempt.
            conv_tol: overrides the level's SCF energy convergence threshold, Hartree.
            escalate: on non-convergence, retry with damping and level shift, then Newton.
            timeout_s: wall-time limit of one calculation, seconds.
            max_memory_mb: PySCF's memory budget of one calculation, MB.
            memory_limit_mb: hard address-space limit of the worker process, MB (none if unset).
            threads: BLAS/OpenMP threads of one calculation.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        level: str | None = None
        method: str | None = Field(default=None, min_length=1)
        basis: str | None = Field(default=None, min_length=1)
        density_fitting: bool | None = None
        cartesian: bool | None = None
        grid_level: int | None = Field(default=None, ge=0, le=9)
        fidelity: str | None = Field(default=None, min_length=1)
        optimize_geometry: bool = False
        optimize_level: str | None = None
        fukui: Literal["frontier", "finite_difference"] = "frontier"
        degeneracy_tol_hartree: float = Field(default=1e-3, ge=0.0, le=0.1)
        max_scf_cycles: int = Field(default=100, ge=1, le=10_000)
        conv_tol: float | None = Field(default=None, gt=0, le=1e-5)
        escalate: bool = True
        timeout_s: float = Field(default=600.0, gt=0, le=7 * 24 * 3600)
        max_memory_mb: int = Field(default=2000, ge=100, le=1_000_000)
        memory_limit_mb: int | None = Field(default=None, ge=500, le=10_000_000)
        threads: int = Field(default=1, ge=1, le=256)

        @model_validator(mode="after")
        def _check_level(self) -> Self:
            if self.level is not None and self.level not in LEVELS:
                raise ValueError(f"unknown level {self.level!r}; known: {', '.join(LEVELS)}")
            if self.level is None and (self.method is None or self.basis is None):
                raise ValueError("give a 'level' or both 'method' and 'basis'")
            if self.memory_limit_mb is not None and self.memory_limit_mb < self.max_memory_mb + 1000:
                raise ValueError(
                    f"memory_limit_mb={self.memory_limit_mb} leaves no room: the worker needs "
                    f"max_memory_mb ({self.max_memory_mb}) plus about 1000 MB for Python and "
                    "its libraries"
                )
            if self.optimize_level is not None and self.optimize_level not in LEVELS:
                raise ValueError(f"unknown optimize_level {self.optimize_level!r}; known: "
                                 f"{', '.join(LEVELS)}")
            return self

        def resolved(self) -> Level:
            """The level of theory after overrides."""
            base = LEVELS[self.level] if self.level else Level(method="hf", basis="sto-3g")
            changes = {k: v for k, v in {
                "method": self.method, "basis": self.basis,
                "density_fitting": self.density_fitting, "cartesian": self.cartesian,
                "grid_level": self.grid_level, "conv_tol": self.conv_tol,
            }.items() if v is not None}
            return base.model_copy(update=changes) if changes else base

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params(level="cheap-dft")
        self.level = self.params.resolved()

    def __repr__(self) -> str:
        lv = self.level
        return (f"PySCFOracle(method={lv.method!r}, basis={lv.basis!r}, "
                f"density_fitting={lv.density_fitting}, fidelity={self.fidelity!r})")

    def properties(self) -> dict[str, str]:
        """Property names with units."""
        return dict(PROPERTIES)

    @property
    def fidelity(self) -> str:
        """The fidelity name of this oracle's results."""
        if self.params.fidelity:
            return self.params.fidelity
        if self.params.level and self.level == LEVELS[self.params.level]:
            return f"dft-{self.params.level}"
        return f"dft-{self.level.method}/{self.level.basis}"

    def _geometry(self, candidate: Candidate) -> Geometry:
        if candidate.geometry is None:
            raise ValueError(f"candidate {candidate.id} has no 3D geometry; the PySCF oracle "
                             "needs one (the molecules domain embeds one from the SMILES)")
        if candidate.geometry.periodic:
            raise ValueError(f"candidate {candidate.id} is a periodic crystal; the molecular "
                             "PySCF oracle computes molecules (use the pyscf_pbc oracle)")
        return candidate.geometry

    def _request(self, geometry: Geometry) -> dict[str, Any]:
        p, lv = self.params, self.level
        return {
            "symbols": list(geometry.symbols),
            "positions_angstrom": [list(x) for x in geometry.positions_angstrom],
            "charge": geometry.charge,
            "multiplicity": geometry.multiplicity,
            "method": lv.method,
            "basis": lv.basis,
            "density_fitting": lv.density_fitting,
            "cartesian": lv.cartesian,
            "grid_level": lv.grid_level,
            "optimize_geometry": p.optimize_geometry,
            "optimize_level": (LEVELS[p.optimize_level].model_dump(exclude={"description"})
                               if p.optimize_geometry and p.optimize_level else None),
            "fukui": p.fukui,
            "degeneracy_tol_hartree": p.degeneracy_tol_hartree,
            "max_scf_cycles": p.max_scf_cycles,
            "conv_tol": lv.conv_tol,
            "escalate": p.escalate,
            "max_memory_mb": p.max_memory_mb,
        }

    def request_key(self, candidate: Candidate) -> str:
        """SHA-256 of what determines the answer: elements, coordinates rounded to 1e-5
        Angstrom, charge, spin, level of theory, feature settings and PySCF version."""
        request = self._request(self._geometry(candidate))
        request["positions_angstrom"] = [[f"{v:.{COORD_DECIMALS}f}" for v in xyz]
                                         for xyz in request["positions_angstrom"]]
        for limit in ("max_scf_cycles", "escalate", "max_memory_mb"):
            request.pop(limit)  # they decide whether an answer comes, not what it is
        request["method"] = request["method"].lower()
        request["basis"] = request["basis"].lower()
        request["pyscf"] = pyscf.__version__
        if self.params.optimize_geometry:
            request["geometric"] = _version("geometric")
        if "-d3" in self.level.method.lower() or "-d4" in self.level.method.lower():
            request["pyscf-dispersion"] = _version("pyscf-dispersion")
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        """Level of theory and code version, stored with every value."""
        lv = self.level
        return {"oracle": "pyscf", "level": self.params.level, "method": lv.method,
                "basis": lv.basis, "density_fitting": lv.density_fitting,
                "cartesian": lv.cartesian, "grid_level": lv.grid_level,
                "conv_tol": lv.conv_tol, "pyscf_version": pyscf.__version__}

    def __call__(self, candidates: Sequence[Candidate]) -> list[Evaluation]:
        """Evaluates each candidate in turn; one evaluation per property each."""
        return [e for c in candidates for e in self.run(c).evaluations(c.id)]

    def _failed(self, key: str, reason: str, **details: Any) -> OracleResult:
        return OracleResult(key, "pyscf", self.fidelity, EvaluationStatus.FAILED, reason, {},
                            dict(PROPERTIES), details, self.provenance())

    def run(self, candidate: Candidate) -> OracleResult:
        """One calculation in a child process.

        Never raises for a chemistry or resource problem: non-convergence, a PySCF error, a
        crash, the memory limit or the time limit give a failed result with the reason.
        """
        p = self.params
        try:
            geometry = self._geometry(candidate)
        except ValueError as exc:
            return self._failed(f"unprepared:{candidate.id}", str(exc))
        key = self.request_key(candidate)
        result = run_worker("oracles.pyscf_worker", self._request(geometry),
                            timeout_s=p.timeout_s, threads=p.threads,
                            max_memory_mb=p.max_memory_mb, memory_limit_mb=p.memory_limit_mb,
                            what="PySCF")
        if isinstance(result, str):
            timed_out = result.startswith("timeout")
            return self._failed(key, result, **({"wall_s": p.timeout_s} if timed_out else {}))
        if result["status"] != "ok":
            return self._failed(key, result["reason"], wall_s=result.get("wall_s"))
        details = {k: result[k] for k in ("atoms", "positions_angstrom", "homo_degeneracy",
                                          "lumo_degeneracy", "fukui_failure", "remedy", "n_ao",
                                          "versions", "wall_s")}
        provenance = {**self.provenance(), "remedy": result["remedy"],
                      "wall_s": result["wall_s"], "versions": result["versions"]}
        values = {prop: float(result[prop]) for prop in SCF_PROPERTIES}
        values.update(descriptor_values(result["atoms"], result["positions_angstrom"]))
        return OracleResult(key, "pyscf", self.fidelity, EvaluationStatus.OK, "",
                            values, dict(PROPERTIES), details, provenance)


def descriptor_values(atoms: list[dict[str, Any]], positions_angstrom: list[list[float]]
                      ) -> dict[str, float]:
    """Orbital-location descriptors of an oracle result's per-atom details (none for a molecule
    without heavy atoms)."""
    symbols = [a["symbol"] for a in atoms]
    if all(s == "H" for s in symbols):
        return {}
    _, _, _, descriptors = molecule_descriptors(
        symbols, positions_angstrom, [a["homo_density"] for a in atoms],  # type: ignore[arg-type]
        [a["lumo_density"] for a in atoms])  # type: ignore[arg-type]
    return descriptors
