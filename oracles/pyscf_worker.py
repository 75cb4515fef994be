"""One PySCF calculation in its own process: JSON request on stdin, JSON result on stdout.

Running each calculation in a child process lets the parent enforce a wall-time limit (the child
is killed, the campaign goes on), cap threads and memory, and survive a crash inside PySCF.

Request keys: ``symbols``, ``positions_angstrom``, ``charge``, ``multiplicity``, ``method``,
``basis``, ``density_fitting``, ``max_scf_cycles``, ``conv_tol``, ``escalate``, ``max_memory_mb``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

HARTREE_TO_EV = 27.211386245988  # CODATA 2018, as pyscf.data.nist.HARTREE2EV


def _build_scf(request: dict[str, Any]) -> Any:
    from pyscf import dft, gto, scf

    mol = gto.M(
        atom=list(zip(request["symbols"], request["positions_angstrom"], strict=True)),
        unit="Angstrom",
        basis=request["basis"],
        charge=request["charge"],
        spin=request["multiplicity"] - 1,
        verbose=0,
        max_memory=request["max_memory_mb"],
    )
    method = request["method"].lower()
    restricted = request["multiplicity"] == 1
    if method in ("hf", "rhf", "uhf"):
        mf = scf.RHF(mol) if restricted else scf.UHF(mol)
    else:
        mf = dft.RKS(mol) if restricted else dft.UKS(mol)
        mf.xc = method
    if request.get("density_fitting"):
        mf = mf.density_fit()
    mf.max_cycle = request["max_scf_cycles"]
    mf.conv_tol = request["conv_tol"]
    mf.max_memory = request["max_memory_mb"]
    return mol, mf


def _frontier(mf: Any) -> tuple[float, float]:
    """HOMO and LUMO energies in Hartree (over both spins for open shells)."""
    energies = np.atleast_2d(np.asarray(mf.mo_energy))
    occupations = np.atleast_2d(np.asarray(mf.mo_occ))
    occupied = energies[occupations > 0]
    virtual = energies[occupations == 0]
    if occupied.size == 0 or virtual.size == 0:
        raise RuntimeError("no occupied or no virtual orbital: basis too small for a gap")
    return float(occupied.max()), float(virtual.min())


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Runs the SCF with escalating remedies and returns energies, frontier orbitals and dipole.

    Remedies, in order, each started from the previous density: plain DIIS; damping 0.5 with a
    0.3 Hartree level shift; the second-order (Newton) solver.
    """
    import pyscf

    start = time.perf_counter()
    _mol, mf = _build_scf(request)
    mf.kernel()
    remedy = "none"
    if not mf.converged and request["escalate"]:
        dm = mf.make_rdm1()
        mf.damp, mf.level_shift, remedy = 0.5, 0.3, "damping+level_shift"
        mf.kernel(dm0=dm)
        if not mf.converged:
            dm = mf.make_rdm1()
            mf.damp, mf.level_shift = 0.0, 0.0
            newton = mf.newton()
            newton.kernel(dm0=dm)
            mf, remedy = newton, "newton"
    base = {
        "pyscf_version": pyscf.__version__,
        "remedy": remedy,
        "n_ao": int(mf.mol.nao),
        "wall_s": time.perf_counter() - start,
    }
    if not mf.converged:
        return {"status": "failed",
                "reason": f"SCF did not converge after {request['max_scf_cycles']} cycles "
                          f"(remedies tried: {remedy})", **base}
    homo_ha, lumo_ha = _frontier(mf)
    dipole = np.asarray(mf.dip_moment(unit="Debye", verbose=0))
    base["wall_s"] = time.perf_counter() - start
    return {
        "status": "ok",
        "reason": "",
        "energy_hartree": float(mf.e_tot),
        "homo_ev": homo_ha * HARTREE_TO_EV,
        "lumo_ev": lumo_ha * HARTREE_TO_EV,
        "gap_ev": (lumo_ha - homo_ha) * HARTREE_TO_EV,
        "dipole_debye": float(np.linalg.norm(dipole)),
        **base,
    }


def main() -> int:
    """Reads the request from stdin, writes the result to stdout."""
    request = json.loads(sys.stdin.read())
    try:
        result = run(request)
    except Exception as exc:  # any PySCF failure becomes a failed result with its reason
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
