"""Orbital-invariant atom features from an SCF solution.

Definitions (all per atom A, with Löwdin-orthogonalised atomic orbitals):

* **Löwdin projection.** With S the AO overlap matrix and C a set of MO coefficients, the
  orthogonalised coefficients are C' = S^(1/2) C. The share of an orbital's density |psi|^2 on
  atom A is p_A = sum over AOs mu on A of C'_mu^2. For a normalised orbital the shares sum to 1.
  Because S^(1/2) transforms like the AOs, p_A does not change when the molecule is rotated or
  translated (complete shells), does not depend on the orbital's sign, and follows the atom when
  atoms are reordered.
* **Degenerate sets.** The HOMO "orbital" is the set of occupied orbitals whose energies lie within
  ``degeneracy_tol_hartree`` of the highest one (the LUMO likewise among virtuals). The density of
  the set is the average of its members' densities, (1/g) sum_i |psi_i|^2, which is unchanged by
  any unitary mixing inside the set, so the arbitrary choice the eigensolver makes among
  degenerate orbitals does not show. ``homo_density`` and ``lumo_density`` are its atom shares.
* **Löwdin charges.** q_A = Z_A - sum_{mu on A} (S^(1/2) P S^(1/2))_mu,mu with P the total density
  matrix (Z_A: nuclear charge, minus core electrons replaced by an ECP).
* **Condensed Fukui functions.** f+_A (where an added electron goes: nucleophilic attack) and
  f-_A (where a removed electron comes from: electrophilic attack). ``finite_difference``:
  f+_A = N_A(N+1) - N_A(N) and f-_A = N_A(N) - N_A(N-1) from Löwdin atom populations of the anion
  and cation at the same geometry (Yang and Mortier, 1986). ``frontier``: the frozen-orbital
  approximation f+ = LUMO density, f- = HOMO density (Fukui). Both sum to 1 over the atoms.
* **Dual descriptor.** Delta f_A = f+_A - f-_A (Morell, Grand and Toro-Labbé, 2005); sums to 0.

Orbital-location descriptors (what campaigns, the property model and the generator steer by):

* **Heavy-atom shares.** p_H(i), p_L(i): the HOMO (LUMO) share of heavy atom i plus the shares of
  the hydrogens bonded to it (each hydrogen goes to its nearest heavy atom), so that they sum to 1
  over the heavy atoms.
* ``homo_share_E``, ``lumo_share_E`` for E in C, N, O, F: sum of p over the heavy atoms of
  element E.
* ``homo_pr``, ``lumo_pr``: participation ratio 1 / sum_i p(i)^2, the number of heavy atoms the
  orbital spreads over (1 on one atom, n spread evenly over n).
* ``frontier_overlap``: sum_i sqrt(p_H(i) p_L(i)), the Bhattacharyya coefficient of the two
  distributions: 1 when HOMO and LUMO sit on the same atoms in the same proportions, 0 when they
  share none.

The arithmetic from shares to descriptors is :func:`pipeline.orbital_shares.orbital_descriptors`
(re-exported here), so that the property model and the generator compute them as the oracle
does. All of them inherit the invariances of the Löwdin shares (rotation, translation, atom order,
orbital sign, mixing inside a degenerate set).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pipeline.orbital_shares import (
    DESCRIPTORS,
    SHARE_ELEMENTS,
    heavy_atom_shares,
    orbital_descriptors,
)

__all__ = ["ATOM_FEATURES", "DESCRIPTORS", "GLOBAL_FEATURES", "SHARE_ELEMENTS", "atom_shares",
           "degenerate_set", "feature_arrays", "frontier_densities", "heavy_atom_shares",
           "lowdin_transform", "molecule_descriptors", "orbital_descriptors"]

ATOM_FEATURES = ("homo_density", "lumo_density", "fukui_plus", "fukui_minus", "dual_descriptor",
                 "charge")
"""Order of the per-atom feature columns, shape (n_atoms, 6)."""

GLOBAL_FEATURES = ("homo_ev", "lumo_ev", "gap_ev", "dipole_debye", "homo_degeneracy",
                   "lumo_degeneracy")
"""Order of the global feature vector, shape (6,)."""

Array = npt.NDArray[np.float64]


def lowdin_transform(overlap: Array) -> Array:
    """S^(1/2) of the AO overlap matrix (real symmetric, or complex Hermitian at a k-point),
    shape (n_ao, n_ao)."""
    eigval, eigvec = np.linalg.eigh(overlap)
    return (eigvec * np.sqrt(eigval)) @ eigvec.conj().T


def atom_shares(s_half: Array, density: Array, ao_slices: Array) -> Array:
    """Löwdin atom populations of a density matrix.

    Args:
        s_half: S^(1/2), shape (n_ao, n_ao).
        density: AO density matrix, shape (n_ao, n_ao).
        ao_slices: (n_atoms, 2) first and past-last AO index of each atom.

    Returns:
        Electrons on each atom, shape (n_atoms,).
    """
    diag = np.einsum("ij,jk,ki->i", s_half, density, s_half)
    return np.array([diag[a:b].sum() for a, b in ao_slices])


def degenerate_set(
    energies: Array, index: int, candidates: npt.NDArray[np.intp], tol: float
) -> npt.NDArray[np.intp]:
    """Indices in ``candidates`` whose energy lies within ``tol`` of ``energies[index]``."""
    return candidates[np.abs(energies[candidates] - energies[index]) <= tol]


def frontier_densities(
    overlap: Array, mo_coeff: Array, mo_energy: Array, mo_occ: Array, ao_slices: Array,
    degeneracy_tol_hartree: float = 1e-3,
) -> tuple[Array, Array, int, int]:
    """HOMO and LUMO atom shares, averaged over their degenerate sets (closed shell).

    Args:
        overlap: S, shape (n_ao, n_ao).
        mo_coeff: MO coefficients, shape (n_ao, n_mo).
        mo_energy: orbital energies in Hartree, shape (n_mo,).
        mo_occ: occupations, shape (n_mo,).
        ao_slices: (n_atoms, 2) AO ranges per atom.
        degeneracy_tol_hartree: orbitals this close in energy form one set.

    Returns:
        homo_density (n_atoms,), lumo_density (n_atoms,), size of the HOMO set, of the LUMO set.
    """
    s_half = lowdin_transform(overlap)
    occupied = np.flatnonzero(mo_occ > 0)
    virtual = np.flatnonzero(mo_occ == 0)
    homo = occupied[np.argmax(mo_energy[occupied])]
    lumo = virtual[np.argmin(mo_energy[virtual])]
    out = []
    sizes = []
    for index, pool in ((homo, occupied), (lumo, virtual)):
        members = degenerate_set(mo_energy, index, pool, degeneracy_tol_hartree)
        c = mo_coeff[:, members]
        density = c @ c.T / len(members)
        out.append(atom_shares(s_half, density, ao_slices))
        sizes.append(len(members))
    return out[0], out[1], sizes[0], sizes[1]


def feature_arrays(
    values: dict[str, float], details: dict[str, object]
) -> tuple[Array, Array]:
    """The feature vectors generators and surrogates consume, from a PySCF oracle result.

    Args:
        values: the result's scalar values (``homo_ev``, ``lumo_ev``, ``gap_ev``,
            ``dipole_debye``).
        details: the result's details (``atoms``, ``homo_degeneracy``, ``lumo_degeneracy``).

    Returns:
        The global vector, shape (6,), in :data:`GLOBAL_FEATURES` order (eV, eV, eV, Debye,
        count, count), and the per-atom matrix, shape (n_atoms, 6), in :data:`ATOM_FEATURES`
        order (shares of one electron, and elementary charges for ``charge``), rows in the
        order of the input atoms; NaN where a value is unknown (finite-difference Fukui whose
        ion calculation failed).
    """
    merged = {**values, **details}
    global_vector = np.array([float(merged[k]) for k in GLOBAL_FEATURES])  # type: ignore[arg-type]
    atoms = details["atoms"]
    assert isinstance(atoms, list)
    per_atom = np.array([[np.nan if atom[k] is None else float(atom[k]) for k in ATOM_FEATURES]
                         for atom in atoms])
    return global_vector, per_atom.reshape(len(atoms), len(ATOM_FEATURES))


def molecule_descriptors(symbols: list[str], positions_angstrom: Array, homo_density: Array,
                         lumo_density: Array) -> tuple[npt.NDArray[np.intp], Array, Array,
                                                       dict[str, float]]:
    """Heavy-atom shares and descriptors from all-atom HOMO and LUMO shares.

    Returns:
        Heavy-atom indices (n_heavy,), p_H (n_heavy,), p_L (n_heavy,) and the descriptors.
    """
    both = np.stack([np.asarray(homo_density, float), np.asarray(lumo_density, float)], axis=1)
    heavy, folded = heavy_atom_shares(symbols, np.asarray(positions_angstrom, float), both)
    heavy_symbols = [symbols[i] for i in heavy]
    return heavy, folded[:, 0], folded[:, 1], orbital_descriptors(heavy_symbols, folded[:, 0],
                                                                   folded[:, 1])
