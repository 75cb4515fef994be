"""`invdes perovskite screen` on a literal CSV, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app


def test_screen_gives_states_radii_factors_and_a_verdict_per_row(tmp_path: Path) -> None:
    table = tmp_path / "abx3.csv"
    table.write_text("A,B,X\nSr,Ti,O\nCs,Pb,Br\nK,Na,Cl\nNa,N,O\nCs,Pb,Zz\nBa,Mg,O\n")
    result = CliRunner().invoke(app, ["perovskite", "screen", str(table), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["line"] for r in rows] == [2, 3, 4, 5, 6, 7]
    srtio3 = rows[0]
    assert srtio3["oxidation_states"] == {"Sr": 2, "Ti": 4, "O": -2}
    assert (srtio3["rA"], srtio3["rB"], srtio3["rX"]) == (1.44, 0.605, 1.4)
    assert srtio3["verdict"] == "perovskite" and srtio3["charge_balanced"]
    assert srtio3["p_perovskite"] == pytest.approx(0.88, abs=0.01)  # tau 3.80
    assert {"t", "octahedral_factor", "tau"} <= set(srtio3)
    assert rows[1]["verdict"] == "perovskite"
    assert rows[2]["verdict"] is None and "cannot be charge balanced" in rows[2]["reason"]
    assert rows[3]["verdict"] == "not perovskite" and rows[3]["reason"] == "tau >= 4.18"
    assert rows[4]["verdict"] is None and "'Zz' is not an element symbol" in rows[4]["reason"]
    double = tmp_path / "double.csv"
    double.write_text("A,B,B2,X\nCs,Ag,Bi,Br\nSr,Ti,,O\n")
    both = json.loads(CliRunner().invoke(app, ["perovskite", "screen", str(double), "--json"])
                      .stdout)
    assert both[0]["oxidation_states"] == {"Cs": 1, "Ag": 1, "Bi": 3, "Br": -1}
    assert both[0]["rB"] == pytest.approx((1.15 + 1.03) / 2)  # the B site's mean radius
    assert both[0]["verdict"] == "perovskite" and both[1]["verdict"] == "perovskite"
    shown = CliRunner().invoke(app, ["perovskite", "screen", str(table)])
    assert shown.exit_code == 0 and "SrTiO3" in shown.stdout and "cannot assess" in shown.stdout


def test_screen_names_a_missing_file_or_column(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["perovskite", "screen", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "none.csv: file not found" in missing.output
    bad = tmp_path / "bad.csv"
    bad.write_text("A,B,anion\nSr,Ti,O\n")
    result = CliRunner().invoke(app, ["perovskite", "screen", str(bad)])
    assert result.exit_code == 2 and "bad.csv: missing column(s) X" in result.output


def test_predict_reads_a_cif_column_and_says_why_a_row_has_no_prediction(tmp_path: Path) -> None:
    import csv

    from materials.structures import cubic_perovskite, to_cif

    table = tmp_path / "cells.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["formula", "cif"])
        writer.writerow(["SrTiO3", to_cif(cubic_perovskite("Sr", "Ti", "O", 3.905))])
        writer.writerow(["broken", "data_x\n_cell_length_a 3\n"])
        writer.writerow(["KTaO3", to_cif(cubic_perovskite("K", "Ta", "O", 3.99))])
        writer.writerow(["TiSrO3", to_cif(cubic_perovskite("Ti", "Sr", "O", 3.905))])
    result = CliRunner().invoke(app, ["predict", "--cif-file", str(table), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = report["predictions"]
    assert [r["row"] for r in rows] == [2, 3, 4, 5]
    assert rows[0]["formula"] == "SrTiO3" and rows[0]["status"] == "ok"
    # Sr on the small B site and Ti on the A site costs energy (perov-5's heat of formation)
    swapped = rows[3]["formation_energy_ev_per_atom_mean"]
    assert swapped > rows[0]["formation_energy_ev_per_atom_mean"] + 0.1
    assert rows[0]["formation_energy_ev_per_atom_std"] > 0
    assert 0.0 <= rows[0]["p_nonmetal"] <= 1.0
    assert rows[1]["status"] == "failed" and "not a readable CIF" in rows[1]["reason"]
    assert "mae_formation_energy_ev_per_atom" in report["held_out_error"]
    shown = CliRunner().invoke(app, ["predict", "--cif-file", str(table)])
    assert shown.exit_code == 0 and "KTaO3" in shown.stdout and "no prediction" in shown.stdout
    neither = CliRunner().invoke(app, ["predict"])
    assert neither.exit_code == 2 and "--smiles-file" in neither.output
    missing = tmp_path / "nocif.csv"
    missing.write_text("formula\nSrTiO3\n")
    bad = CliRunner().invoke(app, ["predict", "--cif-file", str(missing)])
    assert bad.exit_code == 2 and "no 'cif' column" in bad.output
