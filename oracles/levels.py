"""Named levels of theory for the PySCF oracle.

A level is a method (``hf`` or a PySCF/libxc exchange-correlation functional, dispersion included
in the name as ``-d3bj``), a basis set, and whether density fitting is used. Costs are measured
by ``bench/oracle.py`` on this project's reference machine (2 CPU cores) for QM9-sized molecules
(9 heavy atoms); see the README.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Level(BaseModel):
    """A level of theory.

    Attributes:
        method: ``hf`` or an exchange-correlation functional (``b3lyp``, ``pbe0``, ``wb97x-d3bj``).
        basis: a PySCF basis name.
        density_fitting: approximate the two-electron integrals with an auxiliary basis
            (def2-universal-jkfit); much faster, orbital energies change by well under 1 meV.
        cartesian: Cartesian (6d, 10f) instead of spherical Gaussian functions.
        grid_level: PySCF DFT integration grid level, 0 (coarse) to 9; 3 is PySCF's default.
        conv_tol: SCF energy convergence threshold, Hartree.
        description: what it is good for and what it costs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str = Field(min_length=1)
    basis: str = Field(min_length=1)
    density_fitting: bool = False
    cartesian: bool = False
    grid_level: int = Field(default=3, ge=0, le=9)
    conv_tol: float = Field(default=1e-9, gt=0, le=1e-5)
    description: str = ""


LEVELS: dict[str, Level] = {
    "fast": Level(
        method="hf", basis="sto-3g",
        description="HF/STO-3G: about a second per molecule; trends only, gaps far too large",
    ),
    "cheap-dft": Level(
        method="b3lyp", basis="sto-3g",
        description="B3LYP/STO-3G: a few seconds per molecule; the demo campaign's level",
    ),
    "standard": Level(
        method="b3lyp", basis="def2-svp", density_fitting=True, grid_level=1, conv_tol=1e-8,
        description="B3LYP/def2-SVP with density fitting, grid level 1 and 1e-8 Hartree SCF "
                    "convergence: about 2.2 times faster than a plain PySCF run (no density "
                    "fitting, default grid), HOMO-LUMO gaps within 1 meV of it",
    ),
    "accurate": Level(
        method="wb97x-d3bj", basis="def2-tzvp", density_fitting=True,
        description="range-separated hybrid wB97X with D3(BJ) dispersion, def2-TZVP, density "
                    "fitting: about 30 s per QM9 molecule",
    ),
    "qm9": Level(
        method="b3lyp", basis="6-31g(2df,p)", density_fitting=True,
        description="B3LYP/6-31G(2df,p), the level of the QM9 data set (spherical functions "
                    "reproduce its orbital energies; Cartesian ones do not), with density "
                    "fitting: about 20 s per QM9 molecule",
    ),
}


def resolve_level(name: str) -> Level:
    """The named level.

    Raises:
        KeyError: unknown name; the message lists the known ones.
    """
    try:
        return LEVELS[name]
    except KeyError:
        raise KeyError(f"unknown level {name!r}; known: {', '.join(LEVELS)}") from None
