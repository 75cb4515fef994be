"""Perovskites on the review page: a cell picture, formula search, CIF export."""

from __future__ import annotations

import pytest
from pymatgen.io.cif import CifParser

from materials.depict import CrystalPresenter
from materials.domain import structure_candidate
from materials.structures import structure_from_text
from pipeline.types import Candidate


@pytest.fixture(scope="module")
def cells() -> list[Candidate]:
    return [structure_candidate(structure_from_text(f), f"r0-{k}")
            for k, f in enumerate(["CsPbI3", "Cs2AgBiBr6", "SrTiO3"])]


def test_the_cell_picture_names_its_sites_and_escapes_text(cells: list[Candidate]) -> None:
    svg = CrystalPresenter().depict(cells[1])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert ">Cs2AgBiBr6</text>" in svg and ">Bi</text>" in svg and ">Br</text>" in svg
    assert svg.count("<line") == 12  # the cell's edges
    broken = CrystalPresenter().depict(Candidate("x", "<b>bad</b>", "<b>bad</b>", 0, "t"))
    assert "no picture" in broken and "<b>" not in broken


def test_formula_and_element_search(cells: list[Candidate]) -> None:
    presenter = CrystalPresenter()
    assert presenter.search("Cs2AgBiBr6", cells) == [False, True, False]
    assert presenter.search("TiSrO3", cells) == [False, False, True]  # any order of the formula
    assert presenter.search("Cs", cells) == [True, True, False]
    assert presenter.search("Bi, Br", cells) == [False, True, False]
    with pytest.raises(ValueError, match="neither a formula"):
        presenter.search("C(=O", cells)
    with pytest.raises(ValueError, match="unknown element"):
        presenter.search("Xx Yy", cells)


def test_cif_export_keeps_ids_and_parses(cells: list[Candidate]) -> None:
    text = CrystalPresenter().export(cells[:2], [{"band_gap_ev": 1.3}, {}])
    assert "data_r0-0" in text and "# candidate_id r0-1" in text and "# band_gap_ev 1.3" in text
    structures = CifParser.from_str(text).parse_structures(primitive=False)
    assert [s.composition.reduced_formula for s in structures] == ["CsPbI3", "Cs2AgBiBr6"]
