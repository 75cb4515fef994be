"""One PySCF calculation in its own process: JSON request on stdin, JSON result on stdout.

Running each calculation in a child process lets the parent enforce a wall-time limit (the child
is killed, the campaign goes on), cap threads and memory, and survive a crash inside PySCF.

Request keys: ``symbols``, ``positions_angstrom``, ``charge``, ``multiplicity``, ``method``,
``basis``, ``density_fitting``, ``cartesian``, ``grid_level``, ``max_scf_cycles``, ``conv_tol``,
``escalate``, ``max_memory_mb``, ``optimize_geometry``, ``optimize_level`` (method, basis,
density_fitting, cartesian, grid_level and conv_tol of the optimisation, or null for the same
level), ``fukui``, ``degeneracy_tol_hartree``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from oracles.orbital_features import atom_shares, frontier_densities, lowdin_transform

HARTREE_TO_EV = 27.211386245988  # CODATA 2018


class SCFNotConverged(RuntimeError):
    """The SCF did not converge with any remedy."""


def _build_mol(request: dict[str, Any], charge: int, multiplicity: int,
               positions: list[list[float]] | None = None) -> Any:
    from pyscf import gto

    return gto.M(
        atom=list(zip(request["symbols"], positions or request["positions_angstrom"], strict=True)),
        unit="Angstrom",
        basis=request["basis"],
        charge=charge,
        spin=multiplicity - 1,
        cart=request.get("cartesian", False),
        verbose=0,
        max_memory=request["max_memory_mb"],
    )


def _build_scf(mol: Any, request: dict[str, Any]) -> Any:
    from pyscf import dft, scf

    method = request["method"].lower()
    restricted = mol.spin == 0
    if method in ("hf", "rhf", "uhf"):
        mf = scf.RHF(mol) if restricted else scf.UHF(mol)
    else:
        mf = dft.RKS(mol, xc=method) if restricted else dft.UKS(mol, xc=method)
        mf.grids.level = request.get("grid_level", 3)
    if request.get("density_fitting"):
        mf = mf.density_fit(auxbasis="def2-universal-jkfit")
    mf.max_cycle = request["max_scf_cycles"]
    mf.conv_tol = request["conv_tol"]
    mf.max_memory = request["max_memory_mb"]
    return mf


def _converge(mf: Any, request: dict[str, Any], what: str) -> tuple[Any, str]:
    """Runs the SCF with escalating remedies, each started from the previous density.

    Remedies in order: plain DIIS; damping 0.5 with a 0.3 Hartree level shift; the second-order
    (Newton) solver. Returns the converged SCF object and the remedy that worked.

    Raises:
        SCFNotConverged: no remedy converged.
    """
    mf.kernel()
    remedy = "none"
    if not mf.converged and request["escalate"]:
        mf.damp, mf.level_shift, remedy = 0.5, 0.3, "damping+level_shift"
        mf.kernel(dm0=mf.make_rdm1())
        if not mf.converged:
            dm = mf.make_rdm1()
            mf.damp, mf.level_shift = 0.0, 0.0
            newton = mf.newton()
            newton.kernel(dm0=dm)
            mf, remedy = newton, "newton"
    if not mf.converged:
        raise SCFNotConverged(
            f"{what} SCF did not converge after {request['max_scf_cycles']} cycles "
            f"(remedies tried: {remedy if request['escalate'] else 'none, escalation off'})"
        )
    return mf, remedy


def _spin_orbitals(mf: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MO coefficients (n_ao, n_mo), energies (n_mo,), occupations (n_mo,) of both spins."""
    coeff, energy, occ = np.asarray(mf.mo_coeff), np.asarray(mf.mo_energy), np.asarray(mf.mo_occ)
    if coeff.ndim == 3:  # unrestricted: stack alpha and beta spin orbitals
        return np.hstack(list(coeff)), np.concatenate(list(energy)), np.concatenate(list(occ))
    return coeff, energy, occ


def _total_density(mf: Any) -> np.ndarray:
    dm = np.asarray(mf.make_rdm1())
    return dm.sum(axis=0) if dm.ndim == 3 else dm


def _ao_slices(mol: Any) -> np.ndarray:
    return np.asarray(mol.aoslice_by_atom())[:, 2:4]


def _populations(mf: Any, s_half: np.ndarray, slices: np.ndarray) -> np.ndarray:
    return atom_shares(s_half, _total_density(mf), slices)


class GeometryNotConverged(RuntimeError):
    """The geometry optimisation ran out of steps."""


def _optimize(mf: Any, request: dict[str, Any]) -> list[list[float]]:
    from pyscf.geomopt.geometric_solver import kernel

    steps = request.get("max_opt_steps", 100)
    converged, mol_eq = kernel(mf, maxsteps=steps)
    if not converged:
        raise GeometryNotConverged(f"geometry optimisation did not converge in {steps} steps")
    return (np.asarray(mol_eq.atom_coords(unit="Angstrom"))).tolist()


def run(request: dict[str, Any]) -> dict[str, Any]:
    """The whole calculation: optional geometry optimisation, SCF, frontier orbitals, dipole,
    Löwdin charges, orbital-invariant atom features and condensed Fukui functions.

    See :mod:`oracles.orbital_features` for the definitions.
    """
    import pyscf

    start = time.perf_counter()
    versions = {"pyscf": pyscf.__version__}
    charge, multiplicity = request["charge"], request["multiplicity"]
    mol = _build_mol(request, charge, multiplicity)
    positions = request["positions_angstrom"]
    if request.get("optimize_geometry"):
        import geometric

        versions["geometric"] = geometric.__version__
        # the optimisation may run at another (cheaper) level than the final calculation
        opt_request = {**request, **(request.get("optimize_level") or {})}
        opt_mol = _build_mol(opt_request, charge, multiplicity)
        positions = _optimize(_build_scf(opt_mol, opt_request), opt_request)
        mol = _build_mol(request, charge, multiplicity, positions)
    mf, remedy = _converge(_build_scf(mol, request), request, "ground-state")
    coeff, energy, occ = _spin_orbitals(mf)
    overlap = mol.intor_symmetric("int1e_ovlp")
    slices = _ao_slices(mol)
    s_half = lowdin_transform(overlap)
    tol = request["degeneracy_tol_hartree"]
    homo_density, lumo_density, g_homo, g_lumo = frontier_densities(
        overlap, coeff, energy, occ, slices, tol
    )
    homo_ha = float(energy[occ > 0].max())
    lumo_ha = float(energy[occ == 0].min())
    population = _populations(mf, s_half, slices)
    charges = np.asarray(mol.atom_charges(), dtype=float) - population
    fukui_failure = ""
    if request["fukui"] == "finite_difference":
        ions = {}
        try:
            for name, delta in (("anion", -1), ("cation", +1)):
                ion = _build_mol(request, charge + delta,
                                 2 if multiplicity == 1 else multiplicity - 1, positions)
                ion_mf, _ = _converge(_build_scf(ion, request), request, name)
                ions[name] = _populations(ion_mf, s_half, slices)
            fukui_plus = ions["anion"] - population
            fukui_minus = population - ions["cation"]
        except SCFNotConverged as exc:  # keep the neutral's results; Fukui values are unknown
            fukui_failure = str(exc)
            fukui_plus = fukui_minus = np.full(len(population), np.nan)
    else:
        fukui_plus, fukui_minus = lumo_density, homo_density
    dipole = np.asarray(mf.dip_moment(unit="Debye", verbose=0))
    def number(value: float) -> float | None:  # JSON has no NaN: unknown is null
        return None if not np.isfinite(value) else float(value)

    atoms = [
        {
            "symbol": symbol,
            "homo_density": float(homo_density[i]),
            "lumo_density": float(lumo_density[i]),
            "fukui_plus": number(fukui_plus[i]),
            "fukui_minus": number(fukui_minus[i]),
            "dual_descriptor": number(fukui_plus[i] - fukui_minus[i]),
            "charge": float(charges[i]),
        }
        for i, symbol in enumerate(request["symbols"])
    ]
    return {
        "status": "ok",
        "reason": "",
        "energy_hartree": float(mf.e_tot),
        "homo_ev": homo_ha * HARTREE_TO_EV,
        "lumo_ev": lumo_ha * HARTREE_TO_EV,
        "gap_ev": (lumo_ha - homo_ha) * HARTREE_TO_EV,
        "dipole_debye": float(np.linalg.norm(dipole)),
        "homo_degeneracy": g_homo,
        "lumo_degeneracy": g_lumo,
        "atoms": atoms,
        "fukui_failure": fukui_failure,
        "positions_angstrom": [list(map(float, p)) for p in positions],
        "remedy": remedy,
        "n_ao": int(mol.nao),
        "versions": versions,
        "wall_s": time.perf_counter() - start,
    }


def limit_self() -> None:
    """Dies with the campaign process (Linux) and applies the memory limit from the parent."""
    parent = os.environ.get("INVDES_PARENT_PID")
    if sys.platform == "linux" and parent:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != int(parent):  # the parent died before the signal was armed
            sys.exit(1)
    limit_mb = os.environ.get("INVDES_MEMORY_LIMIT_MB")
    if limit_mb:
        limit = int(limit_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def serve(run_request: Callable[[dict[str, Any]], dict[str, Any]],
          expected: tuple[type[Exception], ...]) -> int:
    """A worker's main: reads the request from stdin, writes the result to stdout.

    Args:
        run_request: the calculation; raises on failure.
        expected: failures whose message is the whole reason (non-convergence); any other
            exception is reported with its type.
    """
    limit_self()
    request = json.loads(sys.stdin.read())
    start = time.perf_counter()
    try:
        result = run_request(request)
    except expected as exc:
        result = {"status": "failed", "reason": str(exc)}
    except MemoryError:
        result = {"status": "failed", "reason": "out of memory (memory limit reached)"}
    except Exception as exc:  # any PySCF failure becomes a failed result with its reason
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    result.setdefault("wall_s", time.perf_counter() - start)
    sys.stdout.write(json.dumps(result))
    return 0


def main() -> int:
    """Reads the request from stdin, writes the result to stdout."""
    return serve(run, (SCFNotConverged, GeometryNotConverged))


if __name__ == "__main__":
    sys.exit(main())
