"""Will an ABX3 composition (or a rock-salt-ordered double perovskite A2BB'X6) form a
perovskite? Oxidation states, Shannon radii and the tolerance factors (Goldschmidt t, the
octahedral factor and Bartel's tau).

The caller names the sites (A, B, X); the tool chooses the oxidation states and the radii:

* X takes its one usual state (halides -1; O, S, Se, Te -2; N -3);
* alkali metals and silver are +1 and alkaline-earth metals +2 (they take no other state in
  ionic solids); every other cation may take any positive state for which Shannon (1976)
  tabulates a radius;
* of the charge-balanced assignments (nA + nB = -3 nX; for A2BB'X6 2 nA + nB + nB' = -6 nX),
  the one with the most states among pymatgen's common oxidation states wins; then the one
  with rA > rB (the A site holds the larger ion); then the one with the smaller |nA - nB|
  (the least polar assignment; for a double perovskite |nB - nB'|);
* radii are Shannon's ionic radii, A at coordination XII, B and X at VI; where Shannon
  gives none at that coordination, the nearest one tabulated (A: the highest below XII), and
  for ions with two spin states the high-spin radius.

Then t = (rA + rX) / (sqrt(2) (rB + rX)), the octahedral factor mu = rB / rX, and
tau = rX / rB - nA (nA - (rA / rB) / ln(rA / rB)) (Bartel et al., Sci. Adv. 5, eaav0693, 2019):
a perovskite when tau < 4.18. For a double perovskite rB is the mean of the two B ions'
radii, as Bartel et al. applied tau to A2BB'X6.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from itertools import product
from typing import Any

from pymatgen.core.periodic_table import Element

TAU_THRESHOLD = 4.18
"""Bartel's tau below which a composition is classified a perovskite."""
P_SLOPE = 5.35
"""Slope of p_perovskite = 1 / (1 + exp(P_SLOPE (tau - 4.18))); see :func:`p_perovskite`."""
T_RANGE = (0.825, 1.059)
"""Goldschmidt t range Bartel et al. found best separates perovskites (for comparison)."""

ANION_STATES = {"F": -1, "Cl": -1, "Br": -1, "I": -1, "O": -2, "S": -2, "Se": -2, "Te": -2,
                "N": -3}
"""The oxidation state of each anion the tool accepts on the X site."""
FIXED_CATION_STATES = {**dict.fromkeys(("H", "Li", "Na", "K", "Rb", "Cs", "Fr", "Ag"), 1),
                       **dict.fromkeys(("Be", "Mg", "Ca", "Sr", "Ba", "Ra"), 2)}
"""Cations that take one state only in ionic solids."""

EXTRA_RADII: dict[tuple[str, int], dict[int, float]] = {("Sn", 2): {6: 1.15}}
"""Ionic radii (Angstrom, by coordination) of ions Shannon (1976) does not list: Sn2+, whose
halide perovskites (CsSnI3) are common; 1.15 Angstrom is the VI radius Bartel et al. (2019)
used for it."""

_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9,
          "X": 10, "XI": 11, "XII": 12, "XIV": 14}


class FormabilityError(ValueError):
    """A composition that cannot be assessed; the message says why."""


@dataclass(frozen=True, slots=True)
class Formability:
    """What the tool found for one ABX3 composition.

    Attributes:
        a, b, x: the elements on each site.
        n_a, n_b, n_x: the oxidation states chosen.
        r_a, r_b, r_x: Shannon ionic radii used, Angstrom (A at XII, B and X at VI, or the
            nearest coordination tabulated); for a double perovskite ``r_b`` is the B site's
            mean radius.
        cn_a, cn_b: the coordinations whose radii were used.
        t: Goldschmidt tolerance factor.
        octahedral_factor: rB / rX.
        tau: Bartel's tolerance factor (NaN when rA equals rB).
        charge_balanced: always True for a result (an unbalanced one raises).
        perovskite: tau < :data:`TAU_THRESHOLD`.
        b2: the second B element of a double perovskite A2BB'X6 (None for ABX3).
        n_b2: its oxidation state.
        r_b_ions: the radii of the B ions (one, or B and B'), Angstrom.
    """

    a: str
    b: str
    x: str
    n_a: int
    n_b: int
    n_x: int
    r_a: float
    r_b: float
    r_x: float
    cn_a: int
    cn_b: int
    t: float
    octahedral_factor: float
    tau: float
    charge_balanced: bool
    perovskite: bool
    b2: str | None = None
    n_b2: int | None = None
    r_b_ions: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain mapping (JSON-able)."""
        return asdict(self)


def _element(symbol: str, site: str) -> Element:
    if not re.fullmatch(r"[A-Z][a-z]?", symbol or ""):
        raise FormabilityError(f"{site}: {symbol!r} is not an element symbol")
    try:
        return Element(symbol)
    except ValueError:
        raise FormabilityError(f"{site}: {symbol!r} is not an element symbol") from None


def shannon_radius(symbol: str, state: int, cn: int) -> tuple[float, int] | None:
    """Shannon's ionic radius (Angstrom) of an ion at coordination ``cn``, or at the nearest
    tabulated coordination (ties: the lower one); high spin where two spin states are listed.

    Returns:
        (radius, coordination used), or None when Shannon lists no radius for the ion.
    """
    table = Element(symbol).data.get("Shannon radii", {}).get(str(state), {})
    by_cn: dict[int, float] = {}
    for roman, spins in table.items():
        if roman in _ROMAN:  # square planar and pyramidal entries are left out
            entry = spins.get("High Spin") or spins.get("") or next(iter(spins.values()))
            by_cn[_ROMAN[roman]] = float(entry["ionic_radius"])
    by_cn = by_cn or EXTRA_RADII.get((symbol, state), {})
    if not by_cn:
        return None
    used = min(by_cn, key=lambda c: (abs(c - cn), c))
    return by_cn[used], used


def cation_states(symbol: str) -> list[int]:
    """Oxidation states a cation may take here (see the module docstring)."""
    if symbol in FIXED_CATION_STATES:
        return [FIXED_CATION_STATES[symbol]]
    states = {int(s) for s in Element(symbol).data.get("Shannon radii", {})
              if s.lstrip("-").isdigit() and int(s) > 0}
    states |= {n for el, n in EXTRA_RADII if el == symbol}
    return sorted(n for n in states if shannon_radius(symbol, n, 6) is not None)


def assess(a: str, b: str, x: str, b2: str | None = None) -> Formability:
    """Oxidation states, radii and tolerance factors of ABX3, or of A2BB'X6 with ``b2``.

    Args:
        a: element on the A site (12-fold coordinated).
        b: element on the B site (octahedral).
        x: the anion.
        b2: the second B-site element of a rock-salt-ordered double perovskite.

    Raises:
        FormabilityError: an unknown element, an anion not in :data:`ANION_STATES`, a cation
            without Shannon radii, or no charge-balanced assignment; the message says which.
    """
    sites = [("A", a), ("B", b), ("X", x)] + ([("B2", b2)] if b2 else [])
    for site, symbol in sites:
        _element(symbol, site)
    if x not in ANION_STATES:
        raise FormabilityError(f"X: {x!r} is not an anion this tool knows (known: "
                               f"{', '.join(ANION_STATES)})")
    n_x = ANION_STATES[x]
    b_ions = [b, b2] if b2 else [b]
    if a in b_ions or len(set(b_ions)) < len(b_ions):
        raise FormabilityError(f"an element sits on two sites: A {a}, B {', '.join(b_ions)}")
    formula = f"{a}2{b}{b2}{x}6" if b2 else f"{a}{b}{x}3"
    options = []
    for n_a in cation_states(a):
        for n_bs in product(*(cation_states(el) for el in b_ions)):
            if len(b_ions) * n_a + sum(n_bs) + 3 * len(b_ions) * n_x != 0:
                continue
            ra = shannon_radius(a, n_a, 12)
            rbs = [shannon_radius(el, n, 6) for el, n in zip(b_ions, n_bs, strict=True)]
            if ra is None or any(r is None for r in rbs):
                continue
            radii_b = [r for r in rbs if r is not None]
            r_site = sum(r[0] for r in radii_b) / len(radii_b)
            common = sum(n in Element(el).common_oxidation_states or el in FIXED_CATION_STATES
                         for el, n in zip([a, *b_ions], [n_a, *n_bs], strict=True))
            polarity = abs(n_bs[0] - n_bs[1]) if b2 else abs(n_a - n_bs[0])
            options.append(((-common, ra[0] <= r_site, polarity), n_a, n_bs, ra, radii_b,
                            r_site))
    if not options:
        takes = "; ".join(f"{el} takes {cation_states(el) or 'no'}" for el in [a, *b_ions])
        raise FormabilityError(f"{formula} cannot be charge balanced: {takes} positive states "
                               f"with Shannon radii, {x} is {n_x}")
    _key, n_a, n_bs, (r_a, cn_a), radii_b, r_b = min(options, key=lambda o: o[0])
    x_radius = shannon_radius(x, n_x, 6)
    if x_radius is None:
        raise FormabilityError(f"X: Shannon lists no radius for {x}{n_x}")
    r_x = x_radius[0]
    t = (r_a + r_x) / (math.sqrt(2) * (r_b + r_x))
    ratio = r_a / r_b
    # tau assumes the larger cation on A: with rA <= rB its logarithm changes sign and it
    # means nothing (it would call SnMnO3 a perovskite at tau = -174)
    tau = r_x / r_b - n_a * (n_a - ratio / math.log(ratio)) if ratio > 1 else math.nan
    return Formability(a, b, x, n_a, n_bs[0], n_x, r_a, r_b, r_x, cn_a, radii_b[0][1], t,
                       r_b / r_x, tau, True, bool(tau < TAU_THRESHOLD), b2,
                       n_bs[1] if b2 else None, tuple(r[0] for r in radii_b))


def p_perovskite(tau: float) -> float:
    """Calibrated probability that a composition with Bartel's ``tau`` forms a perovskite:
    1 / (1 + exp(P_SLOPE (tau - 4.18))), one half at Bartel's threshold.

    The slope was fitted by maximum likelihood (``bench/perovskite_calibration.py``) on the 916
    assessable rock-salt double perovskites A2BB'X6 of Bartel et al.'s ICSD table
    (``bench/data/bartel2019_icsd_a2bbx6.csv``, 868 perovskites and 48 not), with tau computed by
    this tool; the midpoint is the paper's threshold. Those compounds are disjoint from the 576
    ABX3 that measure the verdict, on which nothing is fitted; on them these probabilities have
    a Brier score of 0.07 (``bench/results/perovskite_calibration.json``). NaN tau (rA <= rB:
    the larger cation would sit on B) gives 0.
    """
    if math.isnan(tau):
        return 0.0
    z = P_SLOPE * (tau - TAU_THRESHOLD)
    return 1.0 / (1.0 + math.exp(z)) if z < 700 else 0.0
