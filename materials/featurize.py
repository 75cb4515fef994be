"""Site fingerprints of perovskites for the campaign surrogates.

A perovskite is described per site (A, B, X) by which elements sit there (occupancy fractions
over the elements 1..94) and by the occupancy-weighted element properties (electronegativity,
row, group, atomic radius, each scaled to about [0, 1]), plus the volume per atom and whether
the crystal is not cubic (tilted). All entries are non-negative, so the Tanimoto kernel of the engine's
GPs applies: CsPbI3 and CsSnI3 (two sites in common) are closer than CsPbI3 and KSnBr3.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from pymatgen.core import Structure
from pymatgen.core.periodic_table import Element

from materials.domain import candidate_structure
from materials.structures import assign_sites
from pipeline.registry import FEATURIZERS
from pipeline.types import Candidate

MAX_Z = 94

N_PROPERTIES = 4


def _element_properties(symbol: str) -> npt.NDArray[np.float64]:
    el = Element(symbol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chi = float(el.X) if np.isfinite(float(el.X)) else 0.0
    radius = float(el.atomic_radius) if el.atomic_radius is not None else 1.5
    return np.array([chi / 4.0, el.row / 7.0, el.group / 18.0, radius / 3.0])


def _cubic(structure: Structure) -> bool:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return SpacegroupAnalyzer(structure, symprec=0.1).get_crystal_system() == "cubic"
    except Exception:  # spglib gives up on badly distorted cells
        return False


def _parse(site: str) -> dict[str, float]:
    import re

    counts = {el: float(n or 1) for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", site)}
    total = sum(counts.values())
    return {el: n / total for el, n in counts.items()}


@FEATURIZERS.register("perovskite_sites")
class PerovskiteSiteFingerprint:
    """Per-site element occupancies and element properties, volume per atom and distortion."""

    class Params(BaseModel):
        """No settings yet; the model keeps ``extra="forbid"`` so a typo is an error."""

        model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()

    def __repr__(self) -> str:
        return "PerovskiteSiteFingerprint()"

    @property
    def n_features(self) -> int:
        """Length of a fingerprint."""
        return 3 * (MAX_Z + N_PROPERTIES) + 2

    def __call__(self, candidates: Sequence[Candidate]) -> npt.NDArray[np.float64]:
        """Fingerprints, shape (n_candidates, n_features).

        Raises:
            ValueError: a candidate without a perovskite structure (filters remove those).
        """
        out = np.zeros((len(candidates), self.n_features))
        for i, cand in enumerate(candidates):
            try:
                out[i] = site_fingerprint(candidate_structure(cand))
            except ValueError as exc:
                raise ValueError(f"candidate {cand.id}: cannot featurise: {exc}") from None
        return out


def site_fingerprint(structure: Structure, geometry: bool = True
                     ) -> npt.NDArray[np.float64]:
    """The fingerprint of one perovskite cell (:class:`PerovskiteSiteFingerprint`), shape
    (3 * (94 + 4) + 2,).

    Raises:
        ValueError: the cell's sites cannot be told apart as A, B and X.
    """
    width = MAX_Z + N_PROPERTIES
    out = np.zeros(3 * width + 2)
    sites = assign_sites(structure)
    for k, site in enumerate((sites.a, sites.b, sites.x)):
        block = out[k * width : (k + 1) * width]
        for el, share in _parse(site).items():
            block[Element(el).Z - 1] += share
            block[MAX_Z:] += share * _element_properties(el)
    if not geometry:  # the site entries alone, without the symmetry analysis
        return out[:-2]
    out[-2] = structure.volume / len(structure) / 50.0
    out[-1] = float(not _cubic(structure))
    return out
