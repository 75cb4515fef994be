"""Units that results files may state in their headers, and conversion between them."""

from __future__ import annotations

HARTREE_EV = 27.211386245988
"""CODATA 2018."""

FAMILIES: tuple[dict[str, float], ...] = (
    {"eV": 1.0, "meV": 1e-3, "Hartree": HARTREE_EV, "hartree": HARTREE_EV, "Ha": HARTREE_EV,
     "Eh": HARTREE_EV, "Ry": HARTREE_EV / 2, "kcal/mol": 0.0433641043, "kJ/mol": 0.0103642688},
    {"eV/atom": 1.0, "meV/atom": 1e-3},
    {"fraction": 1.0, "%": 0.01},
    {"Debye": 1.0, "D": 1.0},
    {"atoms": 1.0},
)
"""Each family: unit -> factor to the family's first unit."""


def conversion_factor(from_unit: str, to_unit: str) -> float:
    """The factor that turns a value in ``from_unit`` into ``to_unit``.

    Raises:
        ValueError: a unit not known, or units of different kinds (naming both and the units
            that would do).
    """
    if from_unit == to_unit:
        return 1.0
    for family in FAMILIES:
        if to_unit in family:
            if from_unit not in family:
                raise ValueError(f"unit {from_unit!r} cannot be converted to {to_unit!r}; "
                                 f"use one of {', '.join(family)}")
            return family[from_unit] / family[to_unit]
    raise ValueError(f"unit {from_unit!r} cannot be converted to {to_unit!r}")
