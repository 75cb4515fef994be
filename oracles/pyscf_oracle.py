"""PySCF oracle: SCF energies, frontier orbitals and dipole of a 3D molecule.

``PySCFOracle(params)(candidates)``: the recipe (method, basis, limits) goes in the constructor,
the molecules in the call. Each calculation runs in a child process
(:mod:`oracles.pyscf_worker`) with a wall-time limit and a fixed number of BLAS/OpenMP threads,
so parallel calculations do not oversubscribe the cores and a hung calculation is killed without
killing the campaign. A failure is an evaluation with status ``failed`` and its reason.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pyscf
from pydantic import BaseModel, ConfigDict, Field

from pipeline.registry import ORACLES
from pipeline.types import Candidate, Evaluation, EvaluationStatus, Geometry

PROPERTIES = {
    "energy_hartree": "Hartree",
    "homo_ev": "eV",
    "lumo_ev": "eV",
    "gap_ev": "eV",
    "dipole_debye": "Debye",
}
"""What the oracle returns, with units."""

COORD_DECIMALS = 5
"""Coordinates are rounded to 1e-5 Angstrom in the request key."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Asks Linux to kill the worker when the campaign process dies (kill -9 included)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@ORACLES.register("pyscf")
class PySCFOracle:
    """Kohn-Sham DFT or Hartree-Fock with PySCF on a candidate's 3D geometry.

    Returns ``energy_hartree``, ``homo_ev``, ``lumo_ev``, ``gap_ev`` and ``dipole_debye``.
    Candidates must carry a geometry (the domain's preparer attaches one).
    """

    class Params(BaseModel):
        """Level of theory and limits.

        Attributes:
            method: ``hf`` or a PySCF exchange-correlation functional (``b3lyp``, ``pbe0``).
            basis: a PySCF basis name (``sto-3g``, ``def2-svp``, ``6-31g(2df,p)``).
            fidelity: name stored with every result (``dft-fast``, ``dft-standard``).
            density_fitting: use density fitting (faster, approximate Coulomb/exchange).
            max_scf_cycles: SCF iterations per attempt.
            conv_tol: SCF energy convergence threshold, Hartree.
            escalate: on non-convergence, retry with damping and level shift, then Newton.
            timeout_s: wall-time limit of one calculation, seconds.
            max_memory_mb: PySCF memory budget of one calculation, MB.
            threads: BLAS/OpenMP threads of one calculation.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        method: str = Field(default="b3lyp", min_length=1)
        basis: str = Field(default="sto-3g", min_length=1)
        fidelity: str = Field(default="dft-fast", min_length=1)
        density_fitting: bool = False
        max_scf_cycles: int = Field(default=100, ge=1, le=10_000)
        conv_tol: float = Field(default=1e-9, gt=0, le=1e-3)
        escalate: bool = True
        timeout_s: float = Field(default=600.0, gt=0, le=7 * 24 * 3600)
        max_memory_mb: int = Field(default=2000, ge=100, le=1_000_000)
        threads: int = Field(default=1, ge=1, le=256)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()

    def __repr__(self) -> str:
        p = self.params
        return f"PySCFOracle(method={p.method!r}, basis={p.basis!r}, fidelity={p.fidelity!r})"

    def properties(self) -> dict[str, str]:
        """Property names with units."""
        return dict(PROPERTIES)

    @property
    def fidelity(self) -> str:
        """The fidelity name of this oracle's results."""
        return self.params.fidelity

    def _geometry(self, candidate: Candidate) -> Geometry:
        if candidate.geometry is None:
            raise ValueError(f"candidate {candidate.id} has no 3D geometry; the PySCF oracle "
                             "needs one (the molecules domain embeds one from the SMILES)")
        return candidate.geometry

    def request_key(self, candidate: Candidate) -> str:
        """SHA-256 of elements, coordinates (rounded to 1e-5 Angstrom), charge, spin, level and
        PySCF version: the same request always gets the same key."""
        geometry = self._geometry(candidate)
        p = self.params
        payload = {
            "symbols": list(geometry.symbols),
            "positions": [[f"{v:.{COORD_DECIMALS}f}" for v in xyz]
                          for xyz in geometry.positions_angstrom],
            "charge": geometry.charge,
            "multiplicity": geometry.multiplicity,
            "method": p.method.lower(),
            "basis": p.basis.lower(),
            "density_fitting": p.density_fitting,
            "conv_tol": p.conv_tol,
            "pyscf": pyscf.__version__,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def __call__(self, candidates: Sequence[Candidate]) -> list[Evaluation]:
        """Evaluates each candidate in turn; see :meth:`evaluate`."""
        return [e for c in candidates for e in self.evaluate(c)]

    def evaluate(self, candidate: Candidate) -> list[Evaluation]:
        """One calculation in a child process; one evaluation per property.

        Never raises for a chemistry or resource problem: non-convergence, a PySCF error, a crash
        or the time limit give evaluations with status ``failed`` and the reason.
        """
        p = self.params
        provenance: dict[str, Any] = {
            "oracle": "pyscf", "method": p.method, "basis": p.basis,
            "density_fitting": p.density_fitting, "pyscf_version": pyscf.__version__,
        }
        try:
            geometry = self._geometry(candidate)
        except ValueError as exc:
            return self._failed(candidate, str(exc), provenance)
        provenance["request_key"] = self.request_key(candidate)
        request = {
            "symbols": list(geometry.symbols),
            "positions_angstrom": [list(x) for x in geometry.positions_angstrom],
            "charge": geometry.charge,
            "multiplicity": geometry.multiplicity,
            "method": p.method,
            "basis": p.basis,
            "density_fitting": p.density_fitting,
            "max_scf_cycles": p.max_scf_cycles,
            "conv_tol": p.conv_tol,
            "escalate": p.escalate,
            "max_memory_mb": p.max_memory_mb,
        }
        threads = str(p.threads)
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                   MKL_NUM_THREADS=threads, PYSCF_MAX_MEMORY=str(p.max_memory_mb))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "oracles.pyscf_worker"], input=json.dumps(request),
                capture_output=True, text=True, timeout=p.timeout_s, env=env,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except subprocess.TimeoutExpired:
            return self._failed(candidate, f"timeout: no result within {p.timeout_s:g} s",
                                provenance)
        if proc.returncode != 0 or not proc.stdout.strip():
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            return self._failed(
                candidate, f"PySCF worker exited with code {proc.returncode}: "
                           f"{' | '.join(tail) or 'no output'}", provenance,
            )
        result = json.loads(proc.stdout)
        provenance.update({k: result[k] for k in ("remedy", "n_ao", "wall_s") if k in result})
        if result["status"] != "ok":
            return self._failed(candidate, result["reason"], provenance)
        return [
            Evaluation(candidate.id, prop, float(result[prop]), unit, p.fidelity,
                       provenance=provenance)
            for prop, unit in PROPERTIES.items()
        ]

    def _failed(self, candidate: Candidate, reason: str,
                provenance: dict[str, Any]) -> list[Evaluation]:
        return [
            Evaluation(candidate.id, prop, math.nan, unit, self.params.fidelity,
                       EvaluationStatus.FAILED, reason, provenance)
            for prop, unit in PROPERTIES.items()
        ]
