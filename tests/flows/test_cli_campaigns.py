"""The campaign commands as a new user meets them: filter a list, read a running round, narrow
terminals, start-up without the heavy libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.common import fitted_table
from pipeline.config import parse_config
from pipeline.engine import CampaignEngine
from pipeline.home import Home
from pipeline.store import Store
from tests.conftest import tiny_campaign

REPO = Path(__file__).resolve().parents[2]
IMPLAUSIBLE = ["O=C1CCC1OF", "OC#CC1=NC=CCO1", "NC#CC1=NC=CCO1", "C#CF", "c1c2nnc(c#1)OCC2",
               "O=C1CC#CC1", "Cc1nn2nc1C2", "OC1C2=CN1NN2"]


def test_filter_checks_a_list_against_the_campaign_filters(tmp_path: Path) -> None:
    smiles = tmp_path / "picks.smi"
    smiles.write_text("# from a chemist\n" + "\n".join(["c1ccncc1", *IMPLAUSIBLE, "C[Si]C"])
                      + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["filter", str(REPO / "conf" / "demo_molecules.yaml"),
                                 "--smiles-file", str(smiles), "--json"])
    assert result.exit_code == 1, result.output  # some fail
    rows = json.loads(result.stdout)
    assert [r["line"] for r in rows] == list(range(2, 12))
    assert rows[0] == {"line": 2, "smiles": "c1ccncc1", "passed": True, "reasons": []}
    for row in rows[1:9]:
        assert not row["passed"], row
        assert "plausible" in [x["filter"] for x in row["reasons"]], row
    by_smiles = {r["smiles"]: r for r in rows}
    assert "hypohalite" in by_smiles["O=C1CCC1OF"]["reasons"][0]["reason"]
    no_3d = [x for x in by_smiles["O=C1CC#CC1"]["reasons"] if x["filter"] == "embeddable"]
    assert no_3d and "no 3D embedding" in no_3d[0]["reason"]  # every reason, not the first
    silicon = {x["filter"] for x in by_smiles["C[Si]C"]["reasons"]}
    assert "elements" in silicon
    table = runner.invoke(app, ["filter", str(REPO / "conf" / "demo_molecules.yaml"),
                                "--smiles-file", str(smiles)])
    assert table.exit_code == 1 and "1 of 10 pass" in table.stdout
    good = tmp_path / "good.smi"
    good.write_text("CCO\nc1ccccc1\n")
    ok = runner.invoke(app, ["filter", str(REPO / "conf" / "demo_molecules.yaml"),
                             "--smiles-file", str(good)])
    assert ok.exit_code == 0 and "2 of 2 pass" in ok.stdout
    missing = runner.invoke(app, ["filter", str(REPO / "conf" / "demo_molecules.yaml"),
                                  "--smiles-file", str(tmp_path / "none.smi")])
    assert missing.exit_code == 2 and "none.smi: file not found" in missing.output


def test_status_shows_a_running_round_and_top_zero_is_refused(home: Path) -> None:
    config = parse_config(tiny_campaign(name="midway"))
    store = Store(Home(home).ensure().store_url)
    engine = CampaignEngine(config, store)
    engine.open()
    engine.generate(0)
    engine.select(0)  # picked, the oracle not run yet: as if it were running
    runner = CliRunner()
    status = runner.invoke(app, ["status", "midway"])
    assert status.exit_code == 0, status.output
    assert "0/3 running" in status.stdout
    top = runner.invoke(app, ["run", "whatever.yaml", "--top", "0"])
    assert top.exit_code == 2 and "--top" in top.output
    # a drifted surrogate is flagged in the table and below it
    store.record_round("midway", 0, {"surrogate_mae_gap_ev": 1.5, "surrogate_sigma_gap_ev": 0.5,
                                     "surrogate_zrms_gap_ev": 3.0, "surrogate_drift_gap_ev": 1.0})
    drifted = runner.invoke(app, ["status", "midway"])
    assert drifted.exit_code == 0 and "DRIFT" in drifted.stdout
    assert "drifted far beyond its predicted uncertainty in round(s) 0" in " ".join(
        drifted.stdout.split())
    store.close()


def test_the_round_line_warns_of_drift() -> None:
    from flows.campaign import _round_line

    class Engine:  # what the round line reads of the engine
        objective = parse_config(tiny_campaign()).objective

    calm = _round_line(2, {"surrogate_mae_gap_ev": 0.3, "surrogate_sigma_gap_ev": 0.4,
                           "surrogate_drift_gap_ev": 0.0}, Engine())  # type: ignore[arg-type]
    assert "surrogate MAE 0.300 (predicted sigma 0.400)" in calm and "warning" not in calm
    drift = _round_line(2, {"surrogate_mae_gap_ev": 1.5, "surrogate_sigma_gap_ev": 0.5,
                            "surrogate_zrms_gap_ev": 3.0, "surrogate_drift_gap_ev": 1.0},
                        Engine())  # type: ignore[arg-type]
    assert "are 3.0 times its predicted uncertainty" in drift


def test_printed_commands_work_in_a_new_shell(tmp_path: Path, monkeypatch) -> None:
    from flows.cli.campaigns import invdes_command

    program = tmp_path / ".venv" / "bin" / "invdes"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(program), "run"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # not activated: not on the PATH
    assert invdes_command() == ".venv/bin/invdes"
    monkeypatch.setenv("PATH", f"{program.parent}:/usr/bin:/bin")  # activated
    program.chmod(0o755)
    assert invdes_command() == "invdes"


def test_narrow_tables_keep_ids_and_smiles_whole() -> None:
    smiles = "O=C1N(C)C(=O)c2c1cc(F)c(C#N)c2OC"
    rows = [[str(i), f"round-12-generator-0-{i:05d}", smiles, "evaluated", "5.12 ± 0.31", "5.071",
             "yes"] for i in range(3)]
    columns = [("rank", 0), ("id", 0), ("smiles", 0), ("status", 2), ("predicted", 1),
               ("oracle", 0), ("hit", 0)]
    console = Console(width=90, record=True)
    console.print(fitted_table("narrow", columns, rows, console))
    text = console.export_text()
    assert all(line.rstrip() == line.rstrip()[:90] for line in text.splitlines())
    assert text.count(smiles) == 3 and text.count("round-12-generator-0-0000") == 3
    assert "left out to fit 90 characters: status" in " ".join(text.split())
    wide = Console(width=200, record=True)
    wide.print(fitted_table("wide", columns, rows, wide))
    wide_text = wide.export_text()
    assert "left out" not in wide_text and "evaluated" in wide_text


def test_the_command_line_starts_without_torch_rdkit_or_prefect() -> None:
    code = ("import sys, flows.cli; from flows.cli.campaigns import status; "
            "heavy = [m for m in ('torch', 'rdkit', 'prefect', 'mlflow', 'pyscf', 'botorch') "
            "if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_on_an_80_column_terminal_does_not_cut_paths() -> None:
    code = ("import sys; sys.argv = ['invdes', 'train', 'surrogate', '--help']; "
            "from flows.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "chem/data/property_model.pt" in result.stdout  # one piece, not cut mid-path
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
