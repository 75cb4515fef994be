"""One periodic PySCF calculation (``pyscf.pbc``) in its own process: JSON request on stdin,
JSON result on stdout.

Request keys: ``symbols``, ``positions_angstrom``, ``lattice_angstrom``, ``xc``, ``basis``,
``pseudo``, ``kmesh`` (three integers), ``smearing_hartree`` (Fermi-Dirac width, 0 for none),
``density_fitting`` (``gdf`` or ``fftdf``), ``ke_cutoff_hartree`` (null: PySCF's choice),
``max_scf_cycles``, ``conv_tol``, ``escalate``, ``max_memory_mb``, ``degeneracy_tol_ev``.

Result: the band gap (fundamental: the lowest conduction band anywhere minus the highest valence
band anywhere, on the k-mesh, 0 for a metal), the band edges, the direct gap, and the
orbital-invariant crystal features: the share of the valence-band-maximum (VBM) and
conduction-band-minimum (CBM) densities on each site. A share is the Löwdin population of the
edge states on the site's atomic orbitals: at each k-point, S(k)^(1/2) C(k) projects a Bloch
state on orthogonalised atomic orbitals, the squared moduli are summed over the site's
orbitals, averaged over the bands within ``degeneracy_tol_ev`` of the edge (any unitary mixing
inside a degenerate set leaves the average unchanged) and over the k-points where the edge lies.
Rotating the crystal, moving its origin, choosing other periodic images for the sites or
reordering them leaves the shares of each site unchanged.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from oracles.orbital_features import lowdin_transform
from oracles.pyscf_worker import SCFNotConverged, serve

HARTREE_TO_EV = 27.211386245988  # CODATA 2018


def _build(request: dict[str, Any]) -> tuple[Any, Any]:
    from pyscf.pbc import dft, gto

    cell = gto.Cell()
    cell.atom = list(zip(request["symbols"], request["positions_angstrom"], strict=True))
    cell.a = np.asarray(request["lattice_angstrom"])
    cell.unit = "Angstrom"
    cell.basis = request["basis"]
    cell.pseudo = request["pseudo"]
    cell.verbose = 0
    cell.max_memory = request["max_memory_mb"]
    if request.get("ke_cutoff_hartree"):
        cell.ke_cutoff = request["ke_cutoff_hartree"]
    cell.build()
    kpts = cell.make_kpts(request["kmesh"])
    mf = dft.KRKS(cell, kpts)
    mf.xc = request["xc"]
    if request.get("density_fitting", "gdf") == "gdf":
        mf = mf.density_fit()
    if request.get("smearing_hartree"):
        from pyscf.pbc.scf.addons import smearing_

        mf = smearing_(mf, sigma=request["smearing_hartree"], method="fermi")
    mf.max_cycle = request["max_scf_cycles"]
    mf.conv_tol = request["conv_tol"]
    mf.max_memory = request["max_memory_mb"]
    return cell, mf


def _converge(mf: Any, request: dict[str, Any]) -> tuple[Any, str]:
    """The SCF with escalating remedies (damping and level shift, then more cycles with a
    larger DIIS space), each from the previous density."""
    mf.kernel()
    remedy = "none"
    if not mf.converged and request["escalate"]:
        mf.damp, mf.level_shift, remedy = 0.5, 0.2, "damping+level_shift"
        mf.kernel(dm0=mf.make_rdm1())
        if not mf.converged:
            mf.damp, mf.level_shift, mf.diis_space = 0.3, 0.0, 16
            mf.max_cycle = 2 * request["max_scf_cycles"]
            mf.kernel(dm0=mf.make_rdm1())
            remedy = "damping+diis16"
    if not mf.converged:
        raise SCFNotConverged(f"periodic SCF did not converge after {request['max_scf_cycles']} "
                              f"cycles (remedies tried: {remedy if request['escalate'] else 'none'})")
    return mf, remedy


def edge_shares(cell: Any, kpts: np.ndarray, mo_energy: list[np.ndarray],
                mo_coeff: list[np.ndarray], band_index: int, edge: str, tol_hartree: float
                ) -> tuple[np.ndarray, list[int], int]:
    """Site shares of a band edge.

    Args:
        cell: the PySCF cell.
        kpts: (n_k, 3) k-points, 1/Bohr.
        mo_energy: per k-point, band energies (n_bands,) Hartree.
        mo_coeff: per k-point, Bloch coefficients (n_ao, n_bands).
        band_index: the highest occupied band (``edge='vbm'``) or the lowest empty one
            (``'cbm'``) of a closed-shell cell.
        edge: ``vbm`` or ``cbm``.
        tol_hartree: states this close to the edge form its degenerate set.

    Returns:
        Shares (n_sites,) summing to 1, the indices of the k-points where the edge lies, and the
        number of states averaged.
    """
    ao_slices = cell.aoslice_by_atom()[:, 2:4]
    overlaps = cell.pbc_intor("int1e_ovlp", hermi=1, kpts=kpts)
    energies = np.array([e[band_index] for e in mo_energy])
    level = energies.max() if edge == "vbm" else energies.min()
    shares = np.zeros(cell.natm)
    used_k, n_states = [], 0
    for k, (eps, coeff) in enumerate(zip(mo_energy, mo_coeff, strict=True)):
        if edge == "vbm":
            bands = [b for b in range(band_index + 1) if eps[b] >= level - tol_hartree]
        else:
            bands = [b for b in range(band_index, len(eps)) if eps[b] <= level + tol_hartree]
        if not bands:
            continue
        used_k.append(k)
        s_half = lowdin_transform(np.asarray(overlaps[k]))
        projected = s_half @ np.asarray(coeff)[:, bands]
        weight = np.abs(projected) ** 2
        for a, (start, stop) in enumerate(ao_slices):
            shares[a] += weight[start:stop].sum()
        n_states += len(bands)
    return shares / shares.sum(), used_k, n_states


def run(request: dict[str, Any]) -> dict[str, Any]:
    """The calculation; raises on failure (the caller turns that into a failed result)."""
    import pyscf

    start = time.perf_counter()
    cell, mf = _build(request)
    mf, remedy = _converge(mf, request)
    nelec = cell.nelectron
    if nelec % 2:
        raise ValueError(f"{nelec} electrons per cell: the closed-shell band edges need an even "
                         "number")
    homo = nelec // 2 - 1
    mo_energy = [np.asarray(e) for e in mf.mo_energy]
    mo_coeff = [np.asarray(c) for c in mf.mo_coeff]
    vbm = max(float(e[homo]) for e in mo_energy)
    cbm = min(float(e[homo + 1]) for e in mo_energy)
    direct = min(float(e[homo + 1] - e[homo]) for e in mo_energy)
    tol = request["degeneracy_tol_ev"] / HARTREE_TO_EV
    kpts = np.asarray(mf.kpts)
    vbm_shares, vbm_k, vbm_n = edge_shares(cell, kpts, mo_energy, mo_coeff, homo, "vbm", tol)
    cbm_shares, cbm_k, cbm_n = edge_shares(cell, kpts, mo_energy, mo_coeff, homo + 1, "cbm", tol)
    gap = max(0.0, (cbm - vbm) * HARTREE_TO_EV)
    return {
        "status": "ok",
        "energy_ev_per_atom": float(mf.e_tot) * HARTREE_TO_EV / cell.natm,
        "band_gap_ev": gap,
        "direct_gap_ev": max(0.0, direct * HARTREE_TO_EV),
        "vbm_ev": vbm * HARTREE_TO_EV,
        "cbm_ev": cbm * HARTREE_TO_EV,
        "metallic": bool(cbm <= vbm),
        "vbm_site_shares": vbm_shares.tolist(),
        "cbm_site_shares": cbm_shares.tolist(),
        "vbm_kpoints": vbm_k, "cbm_kpoints": cbm_k,
        "vbm_states": vbm_n, "cbm_states": cbm_n,
        "n_kpoints": len(kpts), "n_ao": int(cell.nao), "remedy": remedy,
        "versions": {"pyscf": pyscf.__version__},
        "wall_s": time.perf_counter() - start,
    }


def main() -> int:
    """Reads the request from stdin, writes the result to stdout."""
    return serve(run, (SCFNotConverged,))


if __name__ == "__main__":
    sys.exit(main())
