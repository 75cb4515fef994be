"""Competing phases for the convex hull of a design: elements and binary compounds built from
a stated set of prototypes.

For the elements of a design, the phases are:

* each element: metals and metalloids as fcc, bcc and hcp crystals; H, N, O, F,
  Cl, Br, I as diatomic molecules in a 10 Angstrom box (their standard states are molecular);
  S, Se, Te as the trigonal chain crystal (the Se/Te structure);
* each binary of two elements of the design, one a cation and one the design's anion, for each
  positive oxidation state of the cation (pymatgen's common states and every state Shannon
  tabulates a radius for), in the prototypes of its stoichiometry:
  AX: rock salt, CsCl, zinc blende; AX2: fluorite, rutile, CdI2 layers; A2X: anti-fluorite;
  AX3: ReO3, BiF3 (D0_3); A2X3: corundum; AX4, AX5, AX6: the molecule (tetrahedron, trigonal
  bipyramid, octahedron) in a 12 Angstrom box, as TiCl4, SbCl5 and WF6 are molecular; other
  stoichiometries (A3X2, A2X5, ...) are left out, so a design that decomposes only into them
  looks more stable than it is.

The phases start from volumes scaled so that the shortest cation-anion distance is the sum of
Shannon radii (1.5 Angstrom where none is tabulated), are relaxed with CHGNet (cell and
positions; molecules in their box, positions only), and the lowest energy per composition
enters the phase diagram. Ternary compounds other than the design itself (Cs3Bi2I9, Cs2SnI6, ...)
are not in the set: the hull is the decomposition into elements and binaries.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd

import numpy as np
from pymatgen.core import Element, Lattice, Structure

MOLECULAR = frozenset({"H", "N", "O", "F", "Cl", "Br", "I"})
CHAIN = frozenset({"S", "Se", "Te"})
ANION_STATES = {"F": -1, "Cl": -1, "Br": -1, "I": -1, "O": -2, "S": -2, "Se": -2, "Te": -2,
                "N": -3}
BOND_ANGSTROM = {"H": 0.74, "N": 1.10, "O": 1.21, "F": 1.42, "Cl": 1.99, "Br": 2.28, "I": 2.67}
PHASE_SET_VERSION = "elements+binaries-2"
_T = 1 / math.sqrt(3)
MOLECULE_SHAPES: dict[int, list[tuple[float, float, float]]] = {
    4: [(_T, _T, _T), (_T, -_T, -_T), (-_T, _T, -_T), (-_T, -_T, _T)],  # tetrahedron (TiCl4)
    5: [(0, 0, 1), (0, 0, -1), (1, 0, 0), (-0.5, math.sqrt(3) / 2, 0),
        (-0.5, -math.sqrt(3) / 2, 0)],  # trigonal bipyramid (NbCl5, SbCl5)
    6: [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)],  # octahedron (WF6)
}
"""Unit bond vectors of the molecular binaries AX4, AX5 and AX6."""
"""Changes when the set of prototypes changes (part of every request key)."""


@dataclass(frozen=True)
class Phase:
    """One competing phase before relaxation.

    Attributes:
        name: formula and prototype (``CsI:rocksalt``).
        structure: the starting cell.
        relax_cell: whether the cell relaxes (False for a molecule in a box).
    """

    name: str
    structure: Structure
    relax_cell: bool = True

    def key(self, settings: dict[str, object]) -> str:
        """Content hash of the phase's relaxation request."""
        data = {"phase": self.name, "species": [s.specie.symbol for s in self.structure],
                "frac": np.round(self.structure.frac_coords, 5).tolist(),
                "lattice": np.round(self.structure.lattice.matrix, 4).tolist(),
                "relax_cell": self.relax_cell, **settings}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _cell(lattice: Lattice, species: list[str], frac: Sequence[Sequence[float]]) -> Structure:
    return Structure(lattice, species, np.asarray(frac, dtype=float))


def _shannon(symbol: str, state: int) -> float:
    table = Element(symbol).data.get("Shannon radii", {}).get(str(state), {})
    radii = [float(next(iter(spins.values()))["ionic_radius"]) for spins in table.values()]
    return float(np.median(radii)) if radii else 1.5


def _scaled(structure: Structure, cation: str, n_cation: int, anion: str) -> Structure:
    """The structure scaled so the shortest cation-anion distance is rC + rX."""
    target = _shannon(cation, n_cation) + _shannon(anion, ANION_STATES[anion])
    dist = structure.distance_matrix
    species = [s.specie.symbol for s in structure]
    pairs = [dist[i, j] for i in range(len(species)) for j in range(len(species))
             if species[i] == cation and species[j] == anion]
    scale = target / min(pairs)
    scaled = structure.copy()
    scaled.scale_lattice(structure.volume * scale**3)
    return scaled


def _binary_prototypes(c: str, x: str, m: int, n: int) -> list[tuple[str, Structure]]:
    """Prototype cells of C_m X_n (reduced), with unit-ish lattice (scaled later)."""
    if (m, n) == (1, 1):
        return [
            ("rocksalt", Structure.from_spacegroup("Fm-3m", Lattice.cubic(1.0), [c, x],
                                                   [[0, 0, 0], [0.5, 0.5, 0.5]])),
            ("CsCl", _cell(Lattice.cubic(1.0), [c, x], [[0, 0, 0], [0.5, 0.5, 0.5]])),
            ("zincblende", Structure.from_spacegroup("F-43m", Lattice.cubic(1.0), [c, x],
                                                     [[0, 0, 0], [0.25, 0.25, 0.25]])),
        ]
    if (m, n) == (1, 2):
        return [
            ("fluorite", Structure.from_spacegroup("Fm-3m", Lattice.cubic(1.0), [c, x],
                                                   [[0, 0, 0], [0.25, 0.25, 0.25]])),
            ("rutile", Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(1.0, 0.65),
                                                 [c, x], [[0, 0, 0], [0.305, 0.305, 0]])),
            ("CdI2", Structure.from_spacegroup("P-3m1", Lattice.hexagonal(1.0, 1.6), [c, x],
                                               [[0, 0, 0], [1 / 3, 2 / 3, 0.25]])),
        ]
    if (m, n) == (2, 1):
        return [("antifluorite", Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(1.0), [x, c], [[0, 0, 0], [0.25, 0.25, 0.25]]))]
    if (m, n) == (1, 3):
        return [
            ("ReO3", _cell(Lattice.cubic(1.0), [c, x, x, x],
                               [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])),
            ("BiF3", Structure.from_spacegroup("Fm-3m", Lattice.cubic(1.0), [c, x, x],
                                               [[0, 0, 0], [0.25, 0.25, 0.25], [0.5, 0.5, 0.5]])),
        ]
    if (m, n) == (2, 3):
        return [("corundum", Structure.from_spacegroup(
            "R-3c", Lattice.hexagonal(1.0, 2.73), [c, x], [[0, 0, 0.3523], [0.3064, 0, 0.25]]))]
    return []


def _molecule(c: str, x: str, n: int, bond_angstrom: float) -> Structure:
    """The molecule C X_n (n in 4, 5, 6) in a 12 Angstrom box."""
    centre = np.array([6.0, 6.0, 6.0])
    cart = [centre] + [centre + bond_angstrom * np.asarray(v) for v in MOLECULE_SHAPES[n]]
    return Structure(Lattice.cubic(12.0), [c] + [x] * n, np.asarray(cart),
                     coords_are_cartesian=True)


def _cation_states(symbol: str) -> list[int]:
    """Positive states of a cation: pymatgen's common ones and every one Shannon tabulates."""
    el = Element(symbol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        states = {int(s) for s in el.common_oxidation_states if s > 0}
    states |= {int(s) for s in el.data.get("Shannon radii", {}) if s.isdigit() and int(s) > 0}
    return sorted(states)


def _element_phases(el: str) -> list[Phase]:
    if el in MOLECULAR:
        d = BOND_ANGSTROM[el]
        box = _cell(Lattice.cubic(10.0), [el, el], [[0, 0, 0], [d / 10.0, 0, 0]])
        return [Phase(f"{el}2:molecule", box, relax_cell=False)]
    if el in CHAIN:
        # trigonal Se/Te: P3_121, x = 0.22; a, c scaled from the covalent radius
        radius = float(Element(el).atomic_radius or 1.2)
        cell = Structure.from_spacegroup("P3_121", Lattice.hexagonal(3.6 * radius / 1.15,
                                                                    4.5 * radius / 1.15),
                                         [el], [[0.22, 0, 1 / 3]])
        return [Phase(f"{el}:trigonal", cell)]
    radius = float(Element(el).atomic_radius or 1.5)
    d = 2 * radius  # nearest-neighbour distance, Angstrom
    return [
        Phase(f"{el}:fcc", _cell(Lattice.cubic(d * math.sqrt(2)), [el] * 4,
                                     [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])),
        Phase(f"{el}:bcc", _cell(Lattice.cubic(2 * d / math.sqrt(3)), [el] * 2,
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])),
        Phase(f"{el}:hcp", _cell(Lattice.hexagonal(d, d * 1.633), [el] * 2,
                                     [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])),
    ]


def competing_phases(elements: list[str]) -> list[Phase]:
    """The stated set of phases for a chemical system (see the module docstring).

    Args:
        elements: the design's elements.

    Returns:
        Element phases for every element, and binary phases for every cation-anion pair.
    """
    phases: list[Phase] = []
    for el in sorted(set(elements)):
        phases += _element_phases(el)
    anions = sorted(el for el in set(elements) if el in ANION_STATES)
    cations = sorted(el for el in set(elements) if el not in ANION_STATES)
    for x in anions:
        n_x = -ANION_STATES[x]
        for c in cations:
            states = _cation_states(c)
            for state in states:
                g = gcd(state, n_x)
                m, n = n_x // g, state // g
                formula = f"{c}{m if m > 1 else ''}{x}{n if n > 1 else ''}"
                for proto, cell in _binary_prototypes(c, x, m, n):
                    phases.append(Phase(f"{formula}:{proto}", _scaled(cell, c, state, x)))
                if m == 1 and n in MOLECULE_SHAPES:
                    bond = _shannon(c, state) + _shannon(x, ANION_STATES[x])
                    phases.append(Phase(f"{formula}:molecule", _molecule(c, x, n, bond),
                                        relax_cell=False))
    return phases
