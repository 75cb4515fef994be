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
