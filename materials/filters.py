"""Validity filters for perovskite candidates: formability, elements, geometry.

Each is stateless and gives every rejected candidate its reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymatgen.core import Structure

from materials.domain import candidate_structure
from materials.formability import Formability, FormabilityError, assess, p_perovskite
from materials.structures import assign_sites
from pipeline.registry import FILTERS
from pipeline.types import Candidate, FilterResult

ELEMENT_LISTS: dict[str, frozenset[str]] = {
    "toxic": frozenset({"Pb", "Cd", "Hg", "Tl", "As", "Be"}),
    "scarce": frozenset({"Ru", "Rh", "Pd", "Os", "Ir", "Pt", "Au", "Re", "Te"}),
    "radioactive": frozenset({"Tc", "Pm", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",
                              "Np", "Pu"}),
}
"""Named deny lists. ``toxic``: heavy metals and metalloids whose compounds are acutely toxic or
restricted (RoHS: Pb, Cd, Hg; and Tl, As, Be). ``scarce``: the platinum-group metals, gold,
rhenium and tellurium, the least abundant elements in the Earth's crust (below 0.01 ppm, Te
about 0.001). ``radioactive``: no stable isotope."""


def _verdicts(reasons: Sequence[str]) -> FilterResult:
    """One verdict per candidate: passed where its reason is empty."""
    return FilterResult(tuple(not r for r in reasons), tuple(reasons))


def _structure_or_reason(candidate: Candidate) -> tuple[Structure | None, str]:
    try:
        return candidate_structure(candidate), ""
    except ValueError as exc:
        return None, f"no structure: {exc}"


def candidate_formability(structure: Structure) -> Formability:
    """Formability of a structure from its site assignment.

    Raises:
        FormabilityError: the sites are not ABX3 or A2BB'X6 with one element on A and X, or the
            composition cannot be assessed; the message says why.
    """
    try:
        sites = assign_sites(structure)
    except ValueError as exc:
        raise FormabilityError(str(exc)) from None
    a = re.fullmatch(r"([A-Z][a-z]?)\d*", sites.a)
    x = re.fullmatch(r"([A-Z][a-z]?)\d*", sites.x)
    b = re.findall(r"([A-Z][a-z]?)(\d*)", sites.b)
    if a is None or x is None or not 1 <= len(b) <= 2 or (len(b) == 2 and b[0][1] != b[1][1]):
        raise FormabilityError(f"{sites}: formability is assessed for ABX3 and A2BB'X6 with one "
                               "element on A and one on X")
    return _assess(a.group(1), b[0][0], x.group(1), b[1][0] if len(b) == 2 else None)


@lru_cache(maxsize=4096)
def _assess(a: str, b: str, x: str, b2: str | None) -> Formability:
    return assess(a, b, x, b2)


@FILTERS.register("perovskite_formability")
class PerovskiteFormabilityFilter:
    """Charge balance with oxidation states the tool chooses, and Bartel's tau as a calibrated
    probability of forming a perovskite (:func:`materials.formability.p_perovskite`) at least
    ``min_probability``; optionally Goldschmidt t and the octahedral factor in ranges."""

    class Params(BaseModel):
        """Settings.

        Attributes:
            min_probability: lowest p_perovskite that passes (tau < 4.18 is p > 0.5; a lower
                bound keeps borderline compositions such as CsPbI3, tau 4.30, for the oracle to
                judge).
            t_range: Goldschmidt t must lie in [low, high]; None: not checked.
            min_octahedral_factor: rB / rX at least this (0.41: an octahedron holds together);
                None: not checked.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        min_probability: float = Field(default=0.3, ge=0.0, le=1.0)
        t_range: tuple[float, float] | None = None
        min_octahedral_factor: float | None = Field(default=None, ge=0.0, le=2.0)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()

    def __repr__(self) -> str:
        return f"PerovskiteFormabilityFilter({self.params!r})"

    def reason(self, candidate: Candidate) -> str:
        """Why a candidate fails (empty when it passes)."""
        structure, why = _structure_or_reason(candidate)
        if structure is None:
            return why
        try:
            f = candidate_formability(structure)
        except FormabilityError as exc:
            return str(exc)
        reasons = []
        p = p_perovskite(f.tau)
        if not p >= self.params.min_probability:
            tau = "undefined (rA <= rB)" if math.isnan(f.tau) else f"{f.tau:.2f}"
            reasons.append(f"p_perovskite {p:.2f} < {self.params.min_probability} (tau {tau})")
        if self.params.t_range is not None:
            low, high = self.params.t_range
            if not low <= f.t <= high:
                reasons.append(f"Goldschmidt t {f.t:.3f} outside [{low}, {high}]")
        if (self.params.min_octahedral_factor is not None
                and f.octahedral_factor < self.params.min_octahedral_factor):
            reasons.append(f"octahedral factor {f.octahedral_factor:.3f} < "
                           f"{self.params.min_octahedral_factor}")
        return "; ".join(reasons)

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""
        return _verdicts([self.reason(c) for c in candidates])


@FILTERS.register("crystal_elements")
class CrystalElementsFilter:
    """Every element of the structure is allowed (when ``allowed`` is given) and none is denied,
    by name or by a named list of :data:`ELEMENT_LISTS` (``toxic``, ``scarce``,
    ``radioactive``)."""

    class Params(BaseModel):
        """Settings.

        Attributes:
            allowed: the only elements allowed; None: any element not denied.
            denied: elements that may not occur (``[Pb]``).
            denied_lists: named lists of denied elements.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        allowed: list[str] | None = None
        denied: list[str] = Field(default_factory=list)
        denied_lists: list[str] = Field(default_factory=list)

        @field_validator("denied_lists")
        @classmethod
        def _known(cls, value: list[str]) -> list[str]:
            unknown = [v for v in value if v not in ELEMENT_LISTS]
            if unknown:
                raise ValueError(f"unknown element list(s) {unknown}; known: "
                                 f"{', '.join(ELEMENT_LISTS)}")
            return value

        @model_validator(mode="after")
        def _symbols(self) -> CrystalElementsFilter.Params:
            from pymatgen.core.periodic_table import Element

            for symbol in [*(self.allowed or []), *self.denied]:
                if not Element.is_valid_symbol(symbol):
                    raise ValueError(f"{symbol!r} is not an element symbol")
            return self

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self.denied: dict[str, str] = {el: "denied" for el in self.params.denied}
        for name in self.params.denied_lists:
            for el in sorted(ELEMENT_LISTS[name]):
                self.denied.setdefault(el, f"on the {name} list")

    def __repr__(self) -> str:
        return f"CrystalElementsFilter({self.params!r})"

    def reason(self, candidate: Candidate) -> str:
        """Why a candidate fails (empty when it passes)."""
        structure, why = _structure_or_reason(candidate)
        if structure is None:
            return why
        elements = sorted({site.specie.symbol for site in structure})
        reasons = [f"{el} {self.denied[el]}" for el in elements if el in self.denied]
        if self.params.allowed is not None:
            others = [el for el in elements if el not in self.params.allowed]
            if others:
                reasons.append(f"element(s) {', '.join(others)} not allowed (allowed: "
                               f"{', '.join(self.params.allowed)})")
        return "; ".join(reasons)

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""
        return _verdicts([self.reason(c) for c in candidates])


@FILTERS.register("crystal_geometry")
class CrystalGeometryFilter:
    """Geometry sanity: no two atoms (periodic images included) closer than
    ``min_distance_angstrom``, a volume per atom in a sane range, and (``require_sites``) a
    cell that reads as a perovskite: five sites per formula unit with every element on one
    kind of site (:func:`materials.structures.assign_sites`), which the site fingerprints
    need; generated cells can fail it."""

    class Params(BaseModel):
        """Settings.

        Attributes:
            min_distance_angstrom: smallest interatomic distance allowed, Angstrom.
            volume_per_atom_range: [low, high] cubic Angstrom per atom.
            require_sites: the A, B and X sites must be assignable.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        min_distance_angstrom: float = Field(default=1.0, gt=0.0, le=5.0)
        volume_per_atom_range: tuple[float, float] = (5.0, 100.0)
        require_sites: bool = True

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()

    def __repr__(self) -> str:
        return f"CrystalGeometryFilter({self.params!r})"

    def reason(self, candidate: Candidate) -> str:
        """Why a candidate fails (empty when it passes)."""
        structure, why = _structure_or_reason(candidate)
        if structure is None:
            return why
        reasons = []
        distances = structure.distance_matrix
        if len(structure) > 1:
            np.fill_diagonal(distances, np.inf)
            i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
            closest = float(distances[i, j])
            pair = f"{structure[int(i)].specie}-{structure[int(j)].specie}"
        else:
            closest, pair = math.inf, ""
        shortest = float(min(structure.lattice.abc))  # an atom and its own periodic image
        if shortest < closest:
            closest, pair = shortest, f"{structure[0].specie}-image"
        if closest < self.params.min_distance_angstrom:
            reasons.append(f"atoms {pair} {closest:.2f} Angstrom apart (< "
                           f"{self.params.min_distance_angstrom})")
        per_atom = structure.volume / len(structure)
        low, high = self.params.volume_per_atom_range
        if not low <= per_atom <= high:
            reasons.append(f"volume {per_atom:.1f} A^3 per atom outside [{low}, {high}]")
        if self.params.require_sites:
            from materials.structures import assign_sites

            try:
                assign_sites(structure)
            except ValueError as exc:
                reasons.append(f"no perovskite sites: {exc}")
        return "; ".join(reasons)

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""
        return _verdicts([self.reason(c) for c in candidates])


@FILTERS.register("crystal_predicted")
class CrystalPredictedFilter:
    """The crystal property model's prediction of a property lies in a window with probability
    at least ``min_probability`` (its predictive distribution taken as a Gaussian with the
    calibrated mean and standard deviation), for example a band gap near 1.4 eV before any
    oracle is asked."""

    class Params(BaseModel):
        """Settings.

        Attributes:
            property: ``band_gap_ev`` or ``formation_energy_ev_per_atom``.
            min: lower end of the window (None: open).
            max: upper end of the window (None: open).
            min_probability: the least probability of the window that passes.
            weights: crystal-model checkpoint; default: the shipped one.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        property: str
        min: float | None = None
        max: float | None = None
        min_probability: float = Field(default=0.1, ge=0.0, le=1.0)
        weights: str | None = None

        @model_validator(mode="after")
        def _window(self) -> CrystalPredictedFilter.Params:
            from materials.crystal_model import PROPERTIES

            if self.property not in PROPERTIES:
                raise ValueError(f"property {self.property!r}: the crystal model predicts "
                                 f"{', '.join(PROPERTIES)}")
            if self.min is None and self.max is None:
                raise ValueError("give min, max or both")
            if self.min is not None and self.max is not None and self.min >= self.max:
                raise ValueError(f"min {self.min} must be below max {self.max}")
            return self

    def __init__(self, params: Params) -> None:
        from materials.crystal_model import PROPERTIES
        from materials.prior import load_crystal_model

        self.params = params
        self.model = load_crystal_model(params.weights)
        self.column = PROPERTIES.index(params.property)

    def __repr__(self) -> str:
        return f"CrystalPredictedFilter({self.params!r})"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""
        from scipy.stats import norm

        from materials.prior import predict_structures

        p = self.params
        structures: list[Structure | None] = []
        problems = []
        for c in candidates:
            structure, why = _structure_or_reason(c)
            structures.append(structure)
            problems.append(why)
        mean, std, _, reasons = predict_structures(self.model, structures)
        out = []
        low = -np.inf if p.min is None else p.min
        high = np.inf if p.max is None else p.max
        window = f"[{'-inf' if p.min is None else p.min}, {'inf' if p.max is None else p.max}]"
        for k in range(len(candidates)):
            if problems[k] or reasons[k]:
                out.append(problems[k] or f"no prediction: {reasons[k]}")
                continue
            m, s = mean[k, self.column], max(std[k, self.column], 1e-9)
            prob = float(norm.cdf(high, m, s) - norm.cdf(low, m, s))
            out.append("" if prob >= p.min_probability else
                       f"P({p.property} in {window}) = {prob:.2f} < {p.min_probability} "
                       f"(predicted {m:.2f} ± {s:.2f})")
        return _verdicts(out)
