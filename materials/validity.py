"""Validity of generated crystals, with CDVAE's definitions (Xie et al., ICLR 2022), so that
numbers compare with the published ones.

* Compositional validity (SMACT): a composition is valid when some choice of the elements'
  oxidation states (SMACT's 2014 list, the one CDVAE's SMACT 2 used) is charge neutral with the
  composition's ratios and passes the Pauling electronegativity test (cations less
  electronegative than anions); one-element compositions and all-metal alloys count as valid.
* Structural validity: no two sites closer than 0.5 Angstrom (periodic images included) and a
  cell volume above 0.1 cubic Angstrom.
"""

from __future__ import annotations

import itertools
from collections import Counter
from functools import lru_cache

import numpy as np
from pymatgen.core import Structure

MIN_DISTANCE_ANGSTROM = 0.5
MIN_VOLUME_ANGSTROM3 = 0.1


@lru_cache(maxsize=65536)
def _smact_valid(elements: tuple[str, ...], counts: tuple[int, ...]) -> bool:
    import smact
    from smact.screening import pauling_test

    if len(elements) == 1:
        return True
    if all(el in smact.metals for el in elements):
        return True
    data = [smact.Element(el) for el in elements]
    states = [list(e.oxidation_states_smact14 or []) for e in data]
    electronegativities = [e.pauling_eneg for e in data]
    threshold = max(counts)
    for combo in itertools.product(*states):
        if not smact.neutral_ratios(combo, stoichs=[(c,) for c in counts], threshold=threshold):
            continue
        try:
            if pauling_test(combo, electronegativities):
                return True
        except TypeError:  # no electronegativity for an element: counted as passing, as CDVAE
            return True
    return False


def composition_valid(species: list[str]) -> bool:
    """CDVAE's SMACT validity of the composition of ``species`` (one symbol per site)."""
    counter = Counter(species)
    elements = tuple(sorted(counter))
    counts = np.array([counter[e] for e in elements])
    counts = counts // np.gcd.reduce(counts)
    return _smact_valid(elements, tuple(int(c) for c in counts))


def structure_problem(structure: Structure) -> str:
    """Why a cell is not structurally valid, or "" when it is (CDVAE's test)."""
    if not np.isfinite(structure.volume) or structure.volume < MIN_VOLUME_ANGSTROM3:
        return f"cell volume {structure.volume:.3g} A^3 below {MIN_VOLUME_ANGSTROM3}"
    if len(structure) > 1:
        d = structure.distance_matrix + np.eye(len(structure)) * 1e6
        closest = float(d.min())
        if closest < MIN_DISTANCE_ANGSTROM:
            i, j = np.unravel_index(int(d.argmin()), d.shape)
            return (f"sites {i} ({structure[i].specie}) and {j} ({structure[j].specie}) "
                    f"{closest:.2f} A apart, below {MIN_DISTANCE_ANGSTROM}")
    return ""
