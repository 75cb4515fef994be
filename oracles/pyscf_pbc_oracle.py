"""Periodic DFT oracle (``pyscf.pbc``): band gap and band-edge site shares of a crystal.

``PySCFPBCOracle(params)(candidates)``: Kohn-Sham DFT (PBE) with GTH pseudopotentials and
MOLOPT basis sets on a Monkhorst-Pack k-mesh, at the candidate's geometry (a relaxed cell from a
cheaper fidelity, such as CHGNet, where the campaign has one). Each calculation runs in a child
process (:mod:`oracles.pyscf_pbc_worker`) with a wall-time limit, an optional memory limit and a
fixed thread count; non-convergence is met with escalating SCF remedies; a failure is a result
with its reason, never an exception; the engine caches results by their content key.

Values: ``band_gap_ev`` (fundamental, on the k-mesh; 0 for a metal), ``direct_gap_ev``,
``vbm_ev``, ``cbm_ev``, ``energy_ev_per_atom``. Details: ``vbm_site_shares`` and
``cbm_site_shares``, the share of the valence-band-maximum and conduction-band-minimum
densities on each site (in site order; the crystal counterpart of the molecular HOMO and LUMO
shares, see the worker's docstring), and the k-points where the edges lie.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyscf
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oracles.worker_process import run_worker
from pipeline.registry import ORACLES
from pipeline.types import Candidate, Evaluation, EvaluationStatus, Geometry, OracleResult

PROPERTIES = {
    "band_gap_ev": "eV",
    "direct_gap_ev": "eV",
    "vbm_ev": "eV",
    "cbm_ev": "eV",
    "energy_ev_per_atom": "eV/atom",
}
"""Scalar properties the oracle returns, with units."""


class PBCLevel(BaseModel):
    """A periodic level of theory.

    Attributes:
        xc: exchange-correlation functional.
        basis: GTH basis set.
        pseudo: GTH pseudopotential.
        kmesh: Monkhorst-Pack mesh (Gamma-centred, PySCF ``make_kpts``).
        smearing_hartree: Fermi-Dirac smearing width (0: integer occupations).
        density_fitting: ``gdf`` (Gaussian density fitting; the practical choice with
            semicore pseudopotentials, whose plane-wave meshes are huge) or ``fftdf``.
        ke_cutoff_hartree: plane-wave cutoff of the density (None: PySCF's choice).
        description: what it is good for and what it costs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    xc: str = "pbe"
    basis: str = "gth-dzvp-molopt-sr"
    pseudo: str = "gth-pbe"
    kmesh: tuple[int, int, int] = (2, 2, 2)
    smearing_hartree: float = Field(default=0.0, ge=0.0, le=0.1)
    density_fitting: str = Field(default="gdf", pattern="^(gdf|fftdf)$")
    ke_cutoff_hartree: float | None = Field(default=None, gt=0)
    description: str = ""


PBC_LEVELS: dict[str, PBCLevel] = {
    "pbe-szv-gamma": PBCLevel(
        basis="gth-szv-molopt-sr", kmesh=(1, 1, 1),
        description="PBE/GTH-SZV-MOLOPT-SR at the Gamma point only: seconds to a minute for a "
                    "5-atom cell; for tests and trends"),
    "pbe-szv": PBCLevel(
        basis="gth-szv-molopt-sr", kmesh=(2, 2, 2),
        description="PBE/GTH-SZV-MOLOPT-SR on a 2x2x2 mesh"),
    "pbe-dzvp": PBCLevel(
        basis="gth-dzvp-molopt-sr", kmesh=(2, 2, 2), smearing_hartree=0.0,
        description="PBE/GTH-DZVP-MOLOPT-SR on a 2x2x2 mesh: the production level; minutes for "
                    "a 5-atom cell on 2 cores"),
}
"""Named periodic levels; costs measured by ``bench/perovskite.py``."""


def _relaxed(geometry: Geometry) -> Geometry:
    """The geometry relaxed with CHGNet (cell and positions)."""
    from pymatgen.core import Lattice, Structure

    from oracles.chgnet_oracle import relax

    structure = Structure(Lattice(np.asarray(geometry.lattice_angstrom)), list(geometry.symbols),
                          list(geometry.positions_angstrom), coords_are_cartesian=True)
    final, _, _ = relax(structure, fmax=0.05, steps=500)
    return Geometry(tuple(s.specie.symbol for s in final),
                    tuple((float(x), float(y), float(z)) for x, y, z in final.cart_coords),
                    lattice_angstrom=tuple((float(x), float(y), float(z))
                                           for x, y, z in final.lattice.matrix))


@ORACLES.register("pyscf_pbc")
class PySCFPBCOracle:
    """Periodic Kohn-Sham DFT with PySCF on a crystal (see the module docstring)."""

    class Params(BaseModel):
        """Level of theory and limits.

        Attributes:
            level: a named level of :data:`PBC_LEVELS`.
            kmesh: overrides the level's k-mesh.
            fidelity: name stored with every result; default ``pbc-<level>``.
            degeneracy_tol_ev: states this close to a band edge form its degenerate set.
            max_scf_cycles: SCF iterations per attempt.
            conv_tol: SCF energy convergence threshold, Hartree.
            escalate: on non-convergence, retry with damping and level shift, then a larger
                DIIS space.
            timeout_s: wall-time limit of one calculation, seconds.
            max_memory_mb: PySCF's memory budget, MB.
            memory_limit_mb: hard address-space limit of the worker process, MB.
            threads: BLAS/OpenMP threads of one calculation.
            relax_with_chgnet: relax cell and positions with CHGNet first (seconds) and
                compute at the relaxed geometry, stored with the result; a prototype cell
                straight from a generator is otherwise computed as it is.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        level: str = "pbe-dzvp"
        kmesh: tuple[int, int, int] | None = None
        fidelity: str | None = Field(default=None, min_length=1)
        degeneracy_tol_ev: float = Field(default=0.05, ge=0.0, le=1.0)
        max_scf_cycles: int = Field(default=60, ge=1, le=10_000)
        conv_tol: float = Field(default=1e-7, gt=0, le=1e-4)
        escalate: bool = True
        timeout_s: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
        max_memory_mb: int = Field(default=4000, ge=100, le=1_000_000)
        memory_limit_mb: int | None = Field(default=None, ge=1000, le=10_000_000)
        threads: int = Field(default=2, ge=1, le=256)
        relax_with_chgnet: bool = False

        @model_validator(mode="after")
        def _check(self) -> PySCFPBCOracle.Params:
            if self.level not in PBC_LEVELS:
                raise ValueError(f"unknown level {self.level!r}; known: {', '.join(PBC_LEVELS)}")
            if self.kmesh is not None and min(self.kmesh) < 1:
                raise ValueError(f"kmesh {self.kmesh}: every entry at least 1")
            if self.memory_limit_mb is not None and self.memory_limit_mb < self.max_memory_mb + 1000:
                raise ValueError(f"memory_limit_mb={self.memory_limit_mb} leaves no room above "
                                 f"max_memory_mb ({self.max_memory_mb}) plus about 1000 MB")
            return self

        def resolved(self) -> PBCLevel:
            """The level after overrides."""
            base = PBC_LEVELS[self.level]
            return base.model_copy(update={"kmesh": self.kmesh}) if self.kmesh else base

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self.level = self.params.resolved()

    def __repr__(self) -> str:
        lv = self.level
        return (f"PySCFPBCOracle(xc={lv.xc!r}, basis={lv.basis!r}, kmesh={lv.kmesh}, "
                f"fidelity={self.fidelity!r})")

    @property
    def fidelity(self) -> str:
        """The fidelity name of this oracle's results."""
        return self.params.fidelity or f"pbc-{self.params.level}"

    def properties(self) -> dict[str, str]:
        """Property names with units."""
        return dict(PROPERTIES)

    def _geometry(self, candidate: Candidate) -> Geometry:
        geometry = candidate.geometry
        if geometry is None or geometry.lattice_angstrom is None:
            raise ValueError(f"candidate {candidate.id} has no periodic geometry; the pyscf_pbc "
                             "oracle needs a crystal")
        return geometry

    @staticmethod
    def canonical_cell(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        """The cell in a fixed orientation: lattice rebuilt from its lengths and angles
        (pymatgen's convention: c along z), fractional coordinates wrapped into [0, 1).

        PySCF's numerical integration is not exactly invariant under rotating the whole crystal
        (a rotated NaCl cell moved its gap by 0.02 eV); calculating every cell in one
        orientation makes the results exactly invariant under rotation.

        Returns:
            Lattice (3, 3) and Cartesian positions (n_atoms, 3), Angstrom.
        """
        from pymatgen.core import Lattice

        lattice = np.asarray(geometry.lattice_angstrom, dtype=float)
        frac = np.asarray(geometry.positions_angstrom) @ np.linalg.inv(lattice)
        frac = np.mod(np.round(frac, 10), 1.0)
        canonical = Lattice.from_parameters(*Lattice(lattice).parameters).matrix
        return canonical, frac @ canonical

    def _request(self, geometry: Geometry) -> dict[str, Any]:
        p, lv = self.params, self.level
        lattice, positions = self.canonical_cell(geometry)
        return {
            "symbols": list(geometry.symbols),
            "positions_angstrom": positions.tolist(),
            "lattice_angstrom": lattice.tolist(),
            "xc": lv.xc, "basis": lv.basis, "pseudo": lv.pseudo, "kmesh": list(lv.kmesh),
            "smearing_hartree": lv.smearing_hartree, "density_fitting": lv.density_fitting,
            "ke_cutoff_hartree": lv.ke_cutoff_hartree, "max_scf_cycles": p.max_scf_cycles,
            "conv_tol": p.conv_tol, "escalate": p.escalate, "max_memory_mb": p.max_memory_mb,
            "degeneracy_tol_ev": p.degeneracy_tol_ev,
        }

    def request_key(self, candidate: Candidate) -> str:
        """SHA-256 of the species, fractional coordinates (1e-5), lattice in the canonical
        orientation (1e-4 Angstrom), level and PySCF version."""
        geometry = self._geometry(candidate)
        request = self._request(geometry)
        lattice = np.asarray(request["lattice_angstrom"])
        frac = np.mod(np.asarray(request["positions_angstrom"]) @ np.linalg.inv(lattice), 1.0)
        request["positions_angstrom"] = [[f"{v:.5f}" for v in row] for row in frac]
        request["lattice_angstrom"] = [[f"{v:.4f}" for v in row] for row in lattice]
        for limit in ("max_scf_cycles", "escalate", "max_memory_mb"):
            request.pop(limit)
        request["pyscf"] = pyscf.__version__
        if self.params.relax_with_chgnet:
            from oracles.chgnet_oracle import chgnet_version

            request["relax_with_chgnet"] = chgnet_version()
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        """Level of theory and code version, stored with every value."""
        lv = self.level
        return {"oracle": "pyscf_pbc", "level": self.params.level, "xc": lv.xc,
                "basis": lv.basis, "pseudo": lv.pseudo, "kmesh": list(lv.kmesh),
                "smearing_hartree": lv.smearing_hartree, "pyscf_version": pyscf.__version__}

    def _failed(self, key: str, reason: str, **details: Any) -> OracleResult:
        return OracleResult(key, "pyscf_pbc", self.fidelity, EvaluationStatus.FAILED, reason, {},
                            dict(PROPERTIES), details, self.provenance())

    def run(self, candidate: Candidate) -> OracleResult:
        """One calculation in a child process; a failure is a failed result with its reason."""
        p = self.params
        try:
            geometry = self._geometry(candidate)
            key = self.request_key(candidate)
        except ValueError as exc:
            return self._failed(f"unprepared:{candidate.id}", str(exc))
        if p.relax_with_chgnet:
            try:
                geometry = _relaxed(geometry)
            except Exception as exc:
                return self._failed(key, f"CHGNet pre-relaxation failed: {exc}")
        result = run_worker("oracles.pyscf_pbc_worker", self._request(geometry),
                            timeout_s=p.timeout_s, threads=p.threads,
                            max_memory_mb=p.max_memory_mb, memory_limit_mb=p.memory_limit_mb,
                            what="periodic PySCF")
        if isinstance(result, str):
            return self._failed(key, result)
        if result["status"] != "ok":
            return self._failed(key, result["reason"], wall_s=result.get("wall_s"))
        details = {k: result[k] for k in (
            "vbm_site_shares", "cbm_site_shares", "vbm_kpoints", "cbm_kpoints", "vbm_states",
            "cbm_states", "metallic", "n_kpoints", "n_ao", "remedy", "versions", "wall_s")}
        details["sites"] = list(geometry.symbols)
        if p.relax_with_chgnet:
            details["relaxed_lattice_angstrom"] = [list(v) for v in geometry.lattice_angstrom or ()]
            details["relaxed_positions_angstrom"] = [list(x) for x in geometry.positions_angstrom]
        provenance = {**self.provenance(), "remedy": result["remedy"], "wall_s": result["wall_s"]}
        return OracleResult(key, "pyscf_pbc", self.fidelity, EvaluationStatus.OK, "",
                            {prop: float(result[prop]) for prop in PROPERTIES},
                            dict(PROPERTIES), details, provenance)

    def __call__(self, candidates: Sequence[Candidate]) -> list[Evaluation]:
        """Evaluates each candidate in turn; one evaluation per property each."""
        return [e for c in candidates for e in self.run(c).evaluations(c.id)]
