"""Results files are checked row by row against the campaign before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.imports import ResultsFileError, read_results, store_results
from pipeline.store import Store
from pipeline.types import CandidateStatus

PROPS = {"gap_ev": "eV", "homo_ev": "eV"}


def _canonical(text: str) -> str | None:
    return {"OCC": "CCO", "CCO": "CCO", "CC=O": "CC=O", "O=CC": "CC=O"}.get(text)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.csv"
    path.write_text(text)
    return path


def test_rows_resolve_to_the_first_record_of_a_design_and_are_stored(store, tmp_path) -> None:
    path = _write(tmp_path, "smiles,gap_ev,homo_ev,note\nOCC,7.5,,batch 3\nO=CC,6.0,-7.1,\n")
    rows = read_results(path, store, "c", PROPS, "lab", _canonical)
    assert [(r.line, r.candidate_id, r.values) for r in rows] == [
        (2, "r0-1", {"gap_ev": 7.5}), (3, "r0-2", {"gap_ev": 6.0, "homo_ev": -7.1})]
    assert store_results(store, "c", rows, PROPS, "lab", str(path)) == 3
    lab = {(e.evaluation.candidate_id, e.evaluation.property): e.evaluation
           for e in store.evaluations("c")}
    assert lab[("r0-1", "gap_ev")].fidelity == "lab"
    assert lab[("r0-1", "gap_ev")].provenance["note"] == "batch 3"
    by_id = {r.candidate.id: r.status for r in store.candidates("c")}
    assert by_id["r0-1"] is CandidateStatus.EVALUATED
    assert by_id["r1-1"] is CandidateStatus.REJECTED


@pytest.mark.parametrize("text, message", [
    ("smiles,gap_ev\nXX,1.0\n", "line 2: smiles 'XX' cannot be parsed"),
    ("smiles,gap_ev\nOCC,1.0\nCCO,2.0\n", "line 3: smiles 'CCO' already given on line 2"),
    ("smiles,gap_ev\nOCC,\n", "line 2: no property value given"),
    ("smiles,gap_ev\nOCC,inf\n", "line 2: column 'gap_ev': 'inf' is not a finite number"),
    ("id,gap_ev\nr9-9,1.0\n", "line 2: id 'r9-9' is not a design of campaign 'c'"),
    ("id,smiles,gap_ev\nr0-1,CCO,1\n", "needs exactly one identifier column"),
    ("smiles,note\nOCC,x\n", "no property column"),
    ("smiles,gap_ev\n", "no data rows"),
])
def test_bad_files_name_the_problem_and_write_nothing(store, tmp_path, text, message) -> None:
    before = len(store.evaluations("c"))
    with pytest.raises(ResultsFileError, match=message):
        read_results(_write(tmp_path, text), store, "c", PROPS, "lab", _canonical)
    assert len(store.evaluations("c")) == before


def test_units_in_headers_are_converted_and_bad_units_named(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path, "smiles,gap_ev [meV],homo_ev (Hartree)\nOCC,7500,-0.25\n")
    rows = read_results(path, store, "c", PROPS, "lab", _canonical)
    assert rows[0].values["gap_ev"] == pytest.approx(7.5)
    assert rows[0].values["homo_ev"] == pytest.approx(-0.25 * 27.211386245988)
    assert rows[0].units == {"gap_ev": "meV", "homo_ev": "Hartree"}
    store_results(store, "c", rows, PROPS, "lab", str(path))
    again = read_results(path, store, "c", PROPS, "lab", _canonical)  # the same file again
    assert again[0].values == {} and again[0].unchanged == 2
    assert store_results(store, "c", again, PROPS, "lab", str(path)) == 0
    for header, message in (("gap_ev [nm]", "unit 'nm' cannot be converted to 'eV'"),
                            ("gap_ev [meV],gap_ev", "property 'gap_ev' has more than one")):
        bad = _write(tmp_path, f"smiles,{header}\nCCO,1{',1' * header.count(',')}\n")
        with pytest.raises(ResultsFileError, match=message):
            read_results(bad, store, "c", PROPS, "lab", _canonical)


def test_unit_conversion_factors() -> None:
    from pipeline.units import conversion_factor

    assert conversion_factor("meV", "eV") == pytest.approx(1e-3)
    assert conversion_factor("eV", "Hartree") == pytest.approx(1 / 27.211386245988)
    assert conversion_factor("%", "fraction") == pytest.approx(0.01)
    with pytest.raises(ValueError, match="use one of eV, meV"):
        conversion_factor("Debye", "eV")
