"""Will an ABX3 composition form a perovskite? Oxidation states, Shannon radii and the
tolerance factors (Goldschmidt t, the octahedral factor and Bartel's tau).

The caller names the sites (A, B, X); the tool chooses the oxidation states and the radii:

* X takes its one usual state (halides -1; O, S, Se, Te -2; N -3);
* alkali metals and silver are +1 and alkaline-earth metals +2 (they take no other state in
  ionic solids); every other cation may take any positive state for which Shannon (1976)
  tabulates a radius;
* of the charge-balanced pairs (nA + nB = -3 nX), the one whose states are both among
  pymatgen's common oxidation states wins; then the one with rA > rB (the A site holds the
  larger ion); then the one with the smaller |nA - nB| (the least polar assignment);
* radii are Shannon's ionic radii, A at coordination XII, B and X at VI; where Shannon
  gives none at that coordination, the nearest one tabulated (A: the highest below XII), and
  for ions with two spin states the high-spin radius.

Then t = (rA + rX) / (sqrt(2) (rB + rX)), the octahedral factor mu = rB / rX, and
tau = rX / rB - nA (nA - (rA / rB) / ln(rA / rB)) (Bartel et al., Sci. Adv. 5, eaav0693, 2019):
a perovskite when tau < 4.18.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from pymatgen.core.periodic_table import Element

TAU_THRESHOLD = 4.18
"""Bartel's tau below which a composition is classified a perovskite."""
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
            nearest coordination tabulated).
        cn_a, cn_b: the coordinations whose radii were used.
        t: Goldschmidt tolerance factor.
        octahedral_factor: rB / rX.
        tau: Bartel's tolerance factor (NaN when rA equals rB).
        charge_balanced: always True for a result (an unbalanced one raises).
        perovskite: tau < :data:`TAU_THRESHOLD`.
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


def assess(a: str, b: str, x: str) -> Formability:
    """Oxidation states, radii and tolerance factors of ABX3.

    Args:
        a: element on the A site (12-fold coordinated).
        b: element on the B site (octahedral).
        x: the anion.

    Raises:
        FormabilityError: an unknown element, an anion not in :data:`ANION_STATES`, a cation
            without Shannon radii, or no charge-balanced assignment; the message says which.
    """
    for site, symbol in (("A", a), ("B", b), ("X", x)):
        _element(symbol, site)
    if x not in ANION_STATES:
        raise FormabilityError(f"X: {x!r} is not an anion this tool knows (known: "
                               f"{', '.join(ANION_STATES)})")
    n_x = ANION_STATES[x]
    if a == b:
        raise FormabilityError(f"A and B are both {a}")
    options = []
    for n_a in cation_states(a):
        for n_b in cation_states(b):
            if n_a + n_b + 3 * n_x != 0:
                continue
            ra, rb = shannon_radius(a, n_a, 12), shannon_radius(b, n_b, 6)
            if ra is None or rb is None:
                continue
            common = (n_a in Element(a).common_oxidation_states
                      or a in FIXED_CATION_STATES) + (
                n_b in Element(b).common_oxidation_states or b in FIXED_CATION_STATES)
            options.append(((-common, ra[0] <= rb[0], abs(n_a - n_b)), n_a, n_b, ra, rb))
    if not options:
        raise FormabilityError(
            f"{a}{b}{x}3 cannot be charge balanced: {a} takes {cation_states(a) or 'no'} and "
            f"{b} {cation_states(b) or 'no'} positive states with Shannon radii, {x} is {n_x}")
    _key, n_a, n_b, (r_a, cn_a), (r_b, cn_b) = min(options, key=lambda o: o[0])
    x_radius = shannon_radius(x, n_x, 6)
    if x_radius is None:
        raise FormabilityError(f"X: Shannon lists no radius for {x}{n_x}")
    r_x = x_radius[0]
    t = (r_a + r_x) / (math.sqrt(2) * (r_b + r_x))
    ratio = r_a / r_b
    # tau assumes the larger cation on A: with rA <= rB its logarithm changes sign and it
    # means nothing (it would call SnMnO3 a perovskite at tau = -174)
    tau = r_x / r_b - n_a * (n_a - ratio / math.log(ratio)) if ratio > 1 else math.nan
    return Formability(a, b, x, n_a, n_b, n_x, r_a, r_b, r_x, cn_a, cn_b, t, r_b / r_x, tau,
                       True, bool(tau < TAU_THRESHOLD))
