"""Perovskite structures: prototypes, site assignment, canonical keys, CIF and geometry.

A design is a pymatgen ``Structure``: the cubic 5-atom ABX3 cell, a tilted supercell of it, or
the 10-atom primitive cell of a rock-salt-ordered double perovskite A2BB'X6. Its text form is a
CIF (P1, what :func:`to_cif` writes); a person may also name a design by its formula
(``CsPbI3``, ``Cs2AgBiBr6``), which becomes the cubic (or rock-salt) prototype.

The canonical key of a design is its reduced formula, its site assignment and its space group
(found with a tolerance of 0.1 Angstrom): ``CsPbI3 A:Cs B:Pb X:I3 Pm-3m``. Two cells of the same
crystal written differently (rotated, translated, sites reordered, a supercell) share the key;
the cubic and an orthorhombic tilted CsPbI3 do not.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition, Element, Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from materials.formability import ANION_STATES, Formability, FormabilityError, assess
from pipeline.types import Geometry


@dataclass(frozen=True, slots=True)
class Sites:
    """Which elements sit on the A, B and X sites of a perovskite.

    Attributes:
        a: A-site element(s) with counts per formula unit, as a formula (``Cs``, ``Cs2``).
        b: B-site element(s), as a formula (``Pb``, ``AgBi``).
        x: X-site element(s), as a formula (``I3``, ``O2N``).
    """

    a: str
    b: str
    x: str

    def __str__(self) -> str:
        return f"A:{self.a} B:{self.b} X:{self.x}"


def assign_sites(structure: Structure) -> Sites:
    """The site assignment of a perovskite cell, from its geometry.

    X: the most electronegative three fifths of the sites. B: the cations
    whose six nearest anions are closest on average (octahedral: six anions at
    about a/2), as many as there
    are formula units; A: the other cations (twelve anions at about a/sqrt 2).

    Raises:
        ValueError: not five sites per formula unit, or an element on both cation and anion
            sites.
    """
    species = [site.specie.symbol for site in structure]
    formula = structure.composition.reduced_formula
    if len(species) % 5:
        raise ValueError(f"{formula} is not a perovskite ABX3 or A2BB'X6: {len(species)} sites "
                         "in the cell, not a multiple of 5")
    # the X sites are the most electronegative three fifths of the sites (Te sits on B in
    # BTeN3; N is the anion there)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chi = {el: float(Element(el).X) for el in set(species)}
    order = sorted(range(len(species)), key=lambda i: (-chi[species[i]], species[i]))
    anions = sorted(order[: 3 * len(species) // 5])
    cations = sorted(order[3 * len(species) // 5 :])
    if {species[i] for i in anions} & {species[i] for i in cations}:
        raise ValueError(f"{formula}: one element would sit on both a cation and an anion site")
    anion_set = set(anions)
    nearest6 = {}
    for i in cations:
        found = sorted(n.nn_distance for n in structure.get_neighbors(structure[i], 6.0)
                       if n.index in anion_set)
        nearest6[i] = float(np.mean(found[:6])) if len(found) >= 6 else math.inf
    n_b = len(cations) // 2
    b_sites = sorted(cations, key=lambda i: (nearest6[i], species[i]))[:n_b]
    a_sites = [i for i in cations if i not in b_sites]
    a, b, x = _site_formulas([species[i] for i in a_sites], [species[i] for i in b_sites],
                             [species[i] for i in anions])
    return Sites(a=a, b=b, x=x)


def _site_formulas(*sites: list[str]) -> list[str]:
    """Each site's elements as a formula, the counts divided by their common divisor over all
    sites (so a supercell writes as its primitive cell: A:Cs B:Pb X:I3, A:Cs2 B:AgBi X:Br6)."""
    counted = [{el: symbols.count(el) for el in sorted(set(symbols))} for symbols in sites]
    g = math.gcd(*(n for counts in counted for n in counts.values()))
    return ["".join(f"{el}{n // g if n // g != 1 else ''}" for el, n in counts.items())
            for counts in counted]


def space_group(structure: Structure, symprec: float = 0.1) -> str:
    """Hermann-Mauguin symbol of the structure's space group (``Pm-3m``), found with a
    tolerance of ``symprec`` Angstrom; ``P1`` where spglib finds none."""
    try:
        return str(SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_symbol())
    except Exception:  # spglib gives up on badly distorted cells
        return "P1"


def design_key(structure: Structure) -> str:
    """Canonical identity of a perovskite design: reduced formula, sites and space group
    (``CsPbI3 A:Cs B:Pb X:I3 Pm-3m``). A cell that is not a perovskite keys by its reduced
    formula and space group only."""
    formula = structure.composition.reduced_formula
    try:
        sites = f" {assign_sites(structure)}"
    except ValueError:
        sites = ""
    return f"{formula}{sites} {space_group(structure)}"


def lattice_guess_angstrom(formability: Formability) -> float:
    """Cubic ABX3 lattice parameter from the radii: the larger of 2 (rB + rX) (B-X-B chain)
    and sqrt 2 (rA + rX) (A-X contact), Angstrom."""
    return max(2 * (formability.r_b + formability.r_x),
               math.sqrt(2) * (formability.r_a + formability.r_x))


def cubic_perovskite(a: str, b: str, x: str, lattice_angstrom: float | None = None) -> Structure:
    """The cubic 5-atom ABX3 cell (Pm-3m): A at the corner, B at the body centre, X on the
    face centres.

    Args:
        a, b, x: the site elements.
        lattice_angstrom: cubic lattice parameter; default from the ionic radii
            (:func:`lattice_guess_angstrom`).

    Raises:
        FormabilityError: the composition cannot be assessed (for the default lattice).
    """
    if lattice_angstrom is None:
        lattice_angstrom = lattice_guess_angstrom(assess(a, b, x))
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return Structure(Lattice.cubic(lattice_angstrom), [a, b, x, x, x], frac)


def double_perovskite(a: str, b: str, b2: str, x: str,
                      lattice_angstrom: float | None = None) -> Structure:
    """The 10-atom primitive cell (Fm-3m) of the rock-salt-ordered double perovskite A2BB'X6.

    Args:
        a, b, b2, x: the site elements.
        lattice_angstrom: the parameter of the underlying cubic ABX3 cell (half the
            conventional double-perovskite cell); default from the ionic radii.

    Raises:
        FormabilityError: the composition cannot be assessed (for the default lattice).
    """
    if lattice_angstrom is None:
        lattice_angstrom = lattice_guess_angstrom(assess(a, b, x, b2))
    cell = cubic_perovskite(a, b, x, lattice_angstrom)
    cell.make_supercell([2, 2, 2])
    for i, site in enumerate(cell):
        if site.specie.symbol == b:
            parity = round(float(np.sum(np.floor(site.frac_coords * 2 + 1e-6)))) % 2
            if parity:
                cell.replace(i, b2)
    primitive = cell.get_primitive_structure(tolerance=0.05)
    return primitive.get_sorted_structure()


def tilted_supercell(structure: Structure, rattle_angstrom: float = 0.05,
                     seed: int = 0) -> Structure:
    """A sqrt2 x sqrt2 x 2 supercell (20 atoms for ABX3) with its atoms displaced at random by up
    to ``rattle_angstrom``, so that a relaxation can find octahedral tilts (a-a-c+ and the like)
    that the 5-atom cubic cell cannot hold."""
    cell = structure.copy()
    cell.make_supercell([[1, 1, 0], [-1, 1, 0], [0, 0, 2]])
    rng = np.random.default_rng(seed)
    for i in range(len(cell)):
        step = rng.normal(size=3)
        step *= rattle_angstrom * rng.random() / max(float(np.linalg.norm(step)), 1e-9)
        cell.translate_sites([i], step, frac_coords=False, to_unit_cell=True)
    return cell


def parse_formula(text: str) -> Structure:
    """The prototype cell of a perovskite named by its formula (``CsPbI3``, ``Cs2AgBiBr6``).

    The anion is the element of :data:`materials.formability.ANION_STATES` with the most atoms;
    of the cations, the tool tries each as A and keeps the assignment it can assess with the
    larger ion on A (then the lower tau).

    Raises:
        ValueError: not an ABX3 or A2BB'X6 formula, or no assignment that can be assessed (the
            reasons are given).
    """
    try:
        comp = Composition(text.strip())
    except Exception as exc:
        raise ValueError(f"{text!r} is not a formula ({exc})") from None
    counts = {str(el): round(n) for el, n in comp.get_el_amt_dict().items()}
    anions = [el for el in counts if el in ANION_STATES]
    if not anions:
        raise ValueError(f"{text!r}: a perovskite formula has one anion of {', '.join(ANION_STATES)}")
    # Te in BaTeO3 is a cation: the anion is the one with the most atoms (then the most
    # electronegative)
    x = max(anions, key=lambda el: (counts[el], Element(el).X))
    cations = [el for el in counts if el != x]
    n_x = counts[x]
    options: list[tuple[tuple[bool, float], str, str, str | None]] = []
    reasons = []
    if len(cations) == 2 and n_x == 3 * counts[cations[0]] == 3 * counts[cations[1]]:
        for a, b in ((cations[0], cations[1]), (cations[1], cations[0])):
            try:
                f = assess(a, b, x)
            except FormabilityError as exc:
                reasons.append(str(exc))
                continue
            options.append(((f.r_a <= f.r_b, f.tau if math.isfinite(f.tau) else math.inf),
                            a, b, None))
    elif len(cations) == 3 and n_x == 6 * min(counts[c] for c in cations):
        unit = min(counts[c] for c in cations)
        for a in cations:
            if counts[a] != 2 * unit:
                continue
            b_first, b_second = sorted(c for c in cations if c != a)
            try:
                f = assess(a, b_first, x, b_second)
            except FormabilityError as exc:
                reasons.append(str(exc))
                continue
            options.append(((f.r_a <= f.r_b, f.tau if math.isfinite(f.tau) else math.inf),
                            a, b_first, b_second))
    else:
        raise ValueError(f"{text!r} is not ABX3 or A2BB'X6")
    if not options:
        raise ValueError(f"{text!r}: {'; '.join(reasons) or 'no site assignment'}")
    _, a, b, b2 = min(options, key=lambda o: o[0])
    return double_perovskite(a, b, b2, x) if b2 else cubic_perovskite(a, b, x)


def structure_from_text(text: str) -> Structure:
    """A structure from a CIF or from a perovskite formula (see :func:`parse_formula`).

    Raises:
        ValueError: neither a readable CIF nor a perovskite formula; the message says why.
    """
    if "_cell_length_a" in text or text.lstrip().startswith("data_"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return Structure.from_str(text, fmt="cif")
        except Exception as exc:
            raise ValueError(f"not a readable CIF: {exc}") from None
    return parse_formula(text)


def to_cif(structure: Structure) -> str:
    """The structure as a P1 CIF (what the store keeps and exports)."""
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(structure))


def to_geometry(structure: Structure) -> Geometry:
    """The engine's periodic :class:`pipeline.types.Geometry` of a structure."""
    return Geometry(
        symbols=tuple(site.specie.symbol for site in structure),
        positions_angstrom=tuple((float(x), float(y), float(z)) for x, y, z in structure.cart_coords),
        lattice_angstrom=tuple((float(x), float(y), float(z)) for x, y, z in structure.lattice.matrix))


def from_geometry(geometry: Geometry) -> Structure:
    """The structure of a periodic geometry.

    Raises:
        ValueError: the geometry has no lattice.
    """
    if geometry.lattice_angstrom is None:
        raise ValueError("a molecule's geometry has no lattice; a crystal structure needs one")
    return Structure(Lattice(geometry.lattice_angstrom), list(geometry.symbols),
                     list(geometry.positions_angstrom), coords_are_cartesian=True)
