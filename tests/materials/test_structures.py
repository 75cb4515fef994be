"""Perovskite structures: prototypes, site assignment, canonical keys, CIF round trips."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from pymatgen.core.operations import SymmOp

from materials.domain import PerovskiteDomain, candidate_structure
from materials.structures import (
    assign_sites,
    cubic_perovskite,
    design_key,
    double_perovskite,
    from_geometry,
    parse_formula,
    structure_from_text,
    tilted_supercell,
    to_cif,
    to_geometry,
)


def test_prototypes_have_the_perovskite_cells() -> None:
    cell = cubic_perovskite("Sr", "Ti", "O", 3.905)
    assert len(cell) == 5 and cell.composition.reduced_formula == "SrTiO3"
    assert design_key(cell) == "SrTiO3 A:Sr B:Ti X:O3 Pm-3m"
    # Ti-O 1.95 Angstrom (a/2), Sr-O 2.76 (a/sqrt 2)
    assert cell.get_distance(1, 2) == pytest.approx(3.905 / 2)
    assert cell.get_distance(0, 2) == pytest.approx(3.905 / np.sqrt(2))
    double = double_perovskite("Cs", "Ag", "Bi", "Br")
    assert len(double) == 10
    assert design_key(double) == "Cs2AgBiBr6 A:Cs2 B:AgBi X:Br6 Fm-3m"
    # rock-salt order: every Ag has six Br and its nearest B neighbours are all Bi
    ag = next(i for i, s in enumerate(double) if s.specie.symbol == "Ag")
    near_b = sorted((n for n in double.get_neighbors(double[ag], 6.5)
                     if n.specie.symbol in ("Ag", "Bi")), key=lambda n: n.nn_distance)[:6]
    assert {n.specie.symbol for n in near_b} == {"Bi"}


def test_formulas_become_prototypes_with_the_larger_cation_on_a() -> None:
    assert design_key(parse_formula("PbCsI3")) == "CsPbI3 A:Cs B:Pb X:I3 Pm-3m"
    assert design_key(parse_formula("Cs2BiAgBr6")) == "Cs2AgBiBr6 A:Cs2 B:AgBi X:Br6 Fm-3m"
    with pytest.raises(ValueError, match="is not ABX3"):
        parse_formula("CsPbI2")
    with pytest.raises(ValueError, match="one anion"):
        parse_formula("CsPbSn")
    with pytest.raises(ValueError, match="cannot be charge balanced"):
        parse_formula("NaKI3")


def test_key_ignores_how_the_cell_is_written_but_not_the_structure() -> None:
    cell = cubic_perovskite("Cs", "Sn", "I", 6.2)
    key = design_key(cell)
    moved = cell.copy()
    moved.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0))
    moved.translate_sites(list(range(len(moved))), [0.13, 0.4, 0.71])
    shuffled = Structure.from_sites([moved[i] for i in (3, 1, 4, 0, 2)])
    supercell = cell.copy()
    supercell.make_supercell([2, 1, 1])
    assert design_key(moved) == design_key(shuffled) == design_key(supercell) == key
    # a tilted (orthorhombic) CsSnI3 is another design of the same composition
    tilted = tilted_supercell(cell, rattle_angstrom=0.0)
    for i, site in enumerate(tilted):
        if site.specie.symbol == "I" and abs(site.frac_coords[2] % 0.5) < 1e-6:
            tilted.translate_sites([i], [0.04, -0.04, 0.0])
    assert design_key(tilted).startswith("CsSnI3 A:Cs B:Sn X:I3 ")
    assert design_key(tilted) != key


def test_sites_come_from_the_geometry() -> None:
    cell = cubic_perovskite("Ba", "Zr", "S", 5.0)
    sites = assign_sites(cell)
    assert (sites.a, sites.b, sites.x) == ("Ba", "Zr", "S3")
    # an oxynitride: the three most electronegative sites are the anions
    mixed = cubic_perovskite("La", "Ti", "O", 4.0)
    mixed.replace(4, "N")
    assert str(assign_sites(mixed)) == "A:La B:Ti X:NO2"
    with pytest.raises(ValueError, match="not a multiple of 5"):
        assign_sites(Structure(cell.lattice, ["Ba", "S"], [[0, 0, 0], [0.5, 0.5, 0.5]]))


def test_cif_and_geometry_round_trips() -> None:
    cell = double_perovskite("Cs", "Na", "In", "Cl")
    back = structure_from_text(to_cif(cell))
    assert back.composition == cell.composition
    assert np.allclose(back.lattice.parameters, cell.lattice.parameters, atol=1e-5)
    assert StructureMatcher(ltol=1e-3, stol=1e-3, angle_tol=1e-2).fit(back, cell)
    assert design_key(back) == design_key(cell)
    geometry = to_geometry(cell)
    assert geometry.periodic and len(geometry.symbols) == 10
    again = from_geometry(geometry)
    assert np.allclose(again.cart_coords, cell.cart_coords)
    with pytest.raises(ValueError, match="not a readable CIF"):
        structure_from_text("data_x\n_cell_length_a 3\nloop_\n")


def test_domain_makes_candidates_from_cif_or_formula() -> None:
    domain = PerovskiteDomain()
    by_formula = domain.candidate("CsSnBr3", "c1")
    by_cif = domain.candidate(to_cif(parse_formula("CsSnBr3")), "c2")
    assert by_formula.key == by_cif.key == "CsSnBr3 A:Cs B:Sn X:Br3 Pm-3m"
    assert by_formula.representation.startswith("# generated using pymatgen")
    assert by_formula.geometry is not None and by_formula.geometry.lattice_angstrom is not None
    assert len(candidate_structure(by_formula)) == 5
    junk = domain.candidate("not a crystal", "c3")
    assert junk.key == "not a crystal" and junk.geometry is None
