"""``invdes oracle molecule``: one calculation from the command line, cached in the store."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app

WATER_XYZ = """3
water
O 0.0000 0.0000 0.1173
H 0.0000 0.7572 -0.4692
H 0.0000 -0.7572 -0.4692
"""


def test_xyz_is_used_as_given_and_the_second_run_is_cached(tmp_path: Path, home: Path) -> None:
    xyz = tmp_path / "water.xyz"
    xyz.write_text(WATER_XYZ)
    runner = CliRunner()
    first = runner.invoke(app, ["oracle", "molecule", "--xyz", str(xyz), "--level", "fast",
                                "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    for key in ("status", "method", "basis", "energy_hartree", "homo_ev", "lumo_ev", "gap_ev",
                "dipole_debye", "atoms", "wall_s"):
        assert key in report
    assert (report["status"], report["method"], report["basis"]) == ("ok", "hf", "sto-3g")
    assert report["energy_hartree"] == __import__("pytest").approx(-74.963, abs=2e-3)
    assert [a["symbol"] for a in report["atoms"]] == ["O", "H", "H"]
    for atom_key in ("homo_density", "lumo_density", "fukui_plus", "fukui_minus", "charge"):
        assert atom_key in report["atoms"][0]
    assert report["cached"] is False
    # water: one heavy atom holds both frontier orbitals, hydrogens folded into it
    assert report["descriptors"]["homo_share_O"] == __import__("pytest").approx(1.0)
    assert report["descriptors"]["frontier_overlap"] == __import__("pytest").approx(1.0)
    assert report["descriptors"]["lumo_pr"] == __import__("pytest").approx(1.0)
    assert [(a["index"], a["symbol"]) for a in report["heavy_atoms"]] == [(0, "O")]
    second = json.loads(runner.invoke(app, ["oracle", "molecule", "--xyz", str(xyz), "--level",
                                            "fast", "--json"]).stdout)
    assert second["cached"] is True and second["gap_ev"] == report["gap_ev"]
    assert second["descriptors"] == report["descriptors"]
    table = runner.invoke(app, ["oracle", "molecule", "--smiles", "O", "--method", "hf",
                                "--basis", "sto-3g"])
    assert table.exit_code == 0 and "per atom" in table.stdout


def test_bad_requests_exit_2_with_a_clear_message(tmp_path: Path, home: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["oracle", "molecule", "--smiles", "O", "--xyz", "x.xyz"])
    assert both.exit_code == 2 and "exactly one of --smiles and --xyz" in both.output
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nO 0 0 0\nH 0 zero 1\n")
    result = runner.invoke(app, ["oracle", "molecule", "--xyz", str(bad), "--level", "fast"])
    assert result.exit_code == 2
    assert "bad.xyz:4: expected 'SYMBOL X Y Z' (Angstrom)" in " ".join(result.output.split())
    unknown = tmp_path / "unknown.xyz"
    unknown.write_text("2\n\nO 0 0 0\nXx 0 0 1\n")
    result = runner.invoke(app, ["oracle", "molecule", "--xyz", str(unknown), "--level", "fast"])
    assert result.exit_code == 2
    assert "unknown.xyz:4: unknown element 'Xx'" in " ".join(result.output.split())
    level = runner.invoke(app, ["oracle", "molecule", "--smiles", "O", "--level", "best"])
    assert level.exit_code == 2 and "unknown level 'best'" in level.output
