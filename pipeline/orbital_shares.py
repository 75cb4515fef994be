"""Descriptors of where two orbitals (HOMO and LUMO) sit, from their shares over sites.

The definitions are documented in :mod:`oracles.orbital_features`, whose oracle produces the
shares; the arithmetic lives here, in the engine, so that every package (the oracle, the
molecule property model and generator) computes the descriptors from shares the same way.
A site is an atom with a chemical element; nothing here knows more chemistry than that.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SHARE_ELEMENTS = ("C", "N", "O", "F")
"""Elements with a ``homo_share_E`` / ``lumo_share_E`` descriptor."""

DESCRIPTORS: dict[str, str] = {
    **{f"{o}_share_{e}": "fraction" for o in ("homo", "lumo") for e in SHARE_ELEMENTS},
    "homo_pr": "atoms",
    "lumo_pr": "atoms",
    "frontier_overlap": "fraction",
}
"""Orbital-location descriptors with units, in their fixed order."""

Array = npt.NDArray[np.float64]


def orbital_descriptors(heavy_symbols: list[str], p_homo: Array, p_lumo: Array
                        ) -> dict[str, float]:
    """The descriptors of :data:`DESCRIPTORS` from heavy-atom shares.

    Args:
        heavy_symbols: element of each heavy atom, length n_heavy.
        p_homo: HOMO shares, shape (n_heavy,), summing to 1.
        p_lumo: LUMO shares, shape (n_heavy,), summing to 1.

    Returns:
        Descriptor name to value (fractions of one electron; ``*_pr`` in atoms).
    """
    p_h = np.asarray(p_homo, dtype=float)
    p_l = np.asarray(p_lumo, dtype=float)
    elements = np.array(heavy_symbols)
    out: dict[str, float] = {}
    for orbital, p in (("homo", p_h), ("lumo", p_l)):
        for element in SHARE_ELEMENTS:
            out[f"{orbital}_share_{element}"] = float(p[elements == element].sum())
    out["homo_pr"] = float(1.0 / np.sum(p_h**2))
    out["lumo_pr"] = float(1.0 / np.sum(p_l**2))
    out["frontier_overlap"] = float(np.sum(np.sqrt(np.clip(p_h * p_l, 0.0, None))))
    return {k: out[k] for k in DESCRIPTORS}


def heavy_atom_shares(symbols: list[str], positions_angstrom: Array, shares: Array
                      ) -> tuple[npt.NDArray[np.intp], Array]:
    """Folds each hydrogen's share into its nearest heavy atom.

    Args:
        symbols: element symbols, length n_atoms.
        positions_angstrom: coordinates, shape (n_atoms, 3), Angstrom.
        shares: per-atom shares of one orbital (set), shape (n_atoms,) or (n_atoms, k).

    Returns:
        The indices of the heavy atoms, shape (n_heavy,), and their shares with the hydrogens'
        added, shape (n_heavy,) or (n_heavy, k), clipped at 0 and normalised to sum 1.

    Raises:
        ValueError: no heavy atom, or lengths that differ.
    """
    positions = np.asarray(positions_angstrom, dtype=float)
    values = np.asarray(shares, dtype=float)
    if not len(symbols) == len(positions) == len(values):
        raise ValueError(f"{len(symbols)} symbols, {len(positions)} positions and "
                         f"{len(values)} shares")
    heavy = np.array([i for i, s in enumerate(symbols) if s != "H"], dtype=np.intp)
    if len(heavy) == 0:
        raise ValueError("no heavy atom: orbital-location descriptors need one")
    folded = values[heavy].copy()
    for i, symbol in enumerate(symbols):
        if symbol == "H":
            nearest = int(np.argmin(np.linalg.norm(positions[heavy] - positions[i], axis=1)))
            folded[nearest] += values[i]
    folded = np.clip(folded, 0.0, None)
    return heavy, folded / folded.sum(axis=0, keepdims=True)
