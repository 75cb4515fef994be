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

import heapq
import itertools
from collections import Counter
from collections.abc import Sequence
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


def charge_neutral_species(probs: np.ndarray, vocabulary: Sequence[str], top_k: int = 3,
                           max_tries: int = 256) -> list[int] | None:
    """The most probable species assignment whose composition is SMACT-valid: a best-first
    search over the sites' ``top_k`` most probable elements, in decreasing joint probability
    (the sum of the sites' log-probabilities), checking at most ``max_tries`` assignments.

    Args:
        probs: (n_sites, n_types) species probabilities of one cell.
        vocabulary: the element symbol of each type.
        top_k: elements considered per site.
        max_tries: assignments checked before giving up.

    Returns:
        The type index per site, or None when no checked assignment is valid.
    """
    n_sites = probs.shape[0]
    if n_sites == 0:
        return None
    k = min(top_k, probs.shape[1])
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    logp = np.log(np.clip(np.take_along_axis(probs, ranked, axis=1), 1e-12, None))
    start = (0,) * n_sites
    heap = [(-float(logp[:, 0].sum()), start)]
    seen = {start}
    for _ in range(max_tries):
        if not heap:
            break
        _, ranks = heapq.heappop(heap)
        choice = [int(ranked[i, r]) for i, r in enumerate(ranks)]
        if composition_valid([vocabulary[j] for j in choice]):
            return choice
        for i in range(n_sites):
            if ranks[i] + 1 < k:
                nxt = (*ranks[:i], ranks[i] + 1, *ranks[i + 1:])
                if nxt not in seen:
                    seen.add(nxt)
                    score = float(sum(logp[j, r] for j, r in enumerate(nxt)))
                    heapq.heappush(heap, (-score, nxt))
    return None


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
