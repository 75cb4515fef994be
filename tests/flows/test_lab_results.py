"""Lab results come back into a campaign, count most, and steer the next round."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from pipeline.config import parse_config
from pipeline.home import Home
from pipeline.ranking import rank_candidates
from pipeline.store import Store
from tests.conftest import tiny_campaign, write_yaml


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _dump(path: Path) -> list[str]:
    """Every row of every table of a SQLite database, as SQL text."""
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_lab_results_are_checked_imported_and_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    from flows.campaign import run_campaign
    from flows.cli import app

    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    data = tiny_campaign(name="withlab", rounds=1, surrogate={"name": "multifidelity_gp"},
                         fidelities=[{"name": "dft-fast", "cost": 1},
                                     {"name": "lab", "cost": 200}])
    data["acquisition"]["min_labels"] = 2
    config_file = write_yaml(tmp_path / "withlab.yaml", data)
    run_campaign(parse_config(data), quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    measured = [r for r in store.candidates("withlab") if r.status.value == "evaluated"]
    assert len(measured) >= 2, (  # on failure: what each selected candidate's oracle said
        [(r.candidate.key, r.status.value, r.reason) for r in store.candidates("withlab")
         if r.selected_rank is not None],
        [(e.evaluation.candidate_id, e.evaluation.status.value, e.evaluation.reason)
         for e in store.evaluations("withlab")])
    first, second = measured[0].candidate, measured[1].candidate
    before = len(store.evaluations("withlab"))
    snapshot = _dump(tmp_path / "home" / "campaigns.db")
    runner = CliRunner()

    bad = tmp_path / "bad.csv"
    bad.write_text(f"smiles,gap_ev,note\n{first.key},9.5,ok\n{second.key},nine,typo\n")
    result = runner.invoke(app, ["results", "import", str(config_file), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: line 3: column 'gap_ev': 'nine' is not a finite number" in result.output
    assert len(store.evaluations("withlab")) == before  # nothing written
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("smiles,gap_eV\nCCO,9.5\n")
    result = runner.invoke(app, ["results", "import", str(config_file), str(unknown)])
    assert result.exit_code == 2 and "unknown column(s) ['gap_eV']" in result.output
    result = runner.invoke(app, ["results", "import", str(config_file), str(bad),
                                 "--fidelity", "wet-lab"])
    assert result.exit_code == 2 and "fidelity 'wet-lab' is not listed" in result.output
    result = runner.invoke(app, ["results", "import", str(config_file),
                                 str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "missing.csv: file not found" in result.output
    # a config whose fidelities grew, with a bad file: the stored config stays as it was too
    grown = dict(data, fidelities=[*data["fidelities"], {"name": "pilot-plant", "cost": 900}])
    grown_file = write_yaml(tmp_path / "grown.yaml", grown)
    result = runner.invoke(app, ["results", "import", str(grown_file), str(bad)])
    assert result.exit_code == 2 and "'nine' is not a finite number" in result.output
    assert _dump(tmp_path / "home" / "campaigns.db") == snapshot  # not one byte of any row

    good = tmp_path / "lab.csv"
    good.write_text(f"smiles,gap_ev,note\n{first.key},20.5,plate 1\n{second.key},"
                    f"13.0,plate 1\n")
    result = runner.invoke(app, ["results", "import", str(config_file), str(good)])
    assert result.exit_code == 0, result.output
    lab = [e.evaluation for e in store.evaluations("withlab") if e.evaluation.fidelity == "lab"]
    assert {(e.candidate_id, e.value) for e in lab} == {(first.id, 20.5), (second.id, 13.0)}
    assert lab[0].provenance["note"] == "plate 1"
    again = runner.invoke(app, ["results", "import", str(config_file), str(good)])
    assert again.exit_code == 0 and "imported 0 lab result(s)" in again.output
    assert "2 were imported before and are unchanged" in " ".join(again.output.split())
    assert len([e for e in store.evaluations("withlab") if e.evaluation.fidelity == "lab"]) == 2
    in_mev = tmp_path / "lab_mev.csv"  # the same value in meV: converted, so unchanged
    in_mev.write_text(f"smiles,gap_ev [meV]\n{first.key},20500\n")
    result = runner.invoke(app, ["results", "import", str(config_file), str(in_mev)])
    assert result.exit_code == 0 and "imported 0" in result.output
    changed = tmp_path / "lab2.csv"  # another value for a result already imported: refused
    changed.write_text(f"smiles,gap_ev [meV]\n{first.key},20000\n")
    result = runner.invoke(app, ["results", "import", str(config_file), str(changed)])
    assert result.exit_code == 2
    assert "already has a gap_ev result at fidelity 'lab' (20.5, this file says 20)" in \
        " ".join(result.output.split())
    wrong = tmp_path / "lab3.csv"
    wrong.write_text(f"smiles,gap_ev [Debye]\n{first.key},1\n")
    result = runner.invoke(app, ["results", "import", str(config_file), str(wrong)])
    assert result.exit_code == 2 and "unit 'Debye' cannot be converted to 'eV'" in result.output

    # the lab value counts for ranking: 13.0 is inside the window [12, 14], 20.5 is not
    config = parse_config(data)
    ranked = {r.record.candidate.id: r for r in rank_candidates(store, "withlab", config)}
    assert ranked[second.id].hit and ranked[second.id].oracle["gap_ev"] == 13.0
    assert not ranked[first.id].hit

    # the next round fits the multi-fidelity surrogate on both fidelities and completes
    data["rounds"] = 2
    run_campaign(parse_config(data), quiet=True)
    rounds = store.rounds("withlab")
    assert [r.stage for r in rounds] == ["logged", "logged"]
    assert rounds[1].metrics["oracle_cost"] == rounds[1].metrics["oracle_calls"] * 1.0
    picked = [r for r in store.candidates("withlab", round_index=1) if r.predictions]
    assert picked  # predictions made by the fitted surrogate
    # the second round learnt from both lab results, and its MLflow run says so
    assert rounds[1].metrics["lab_results_used"] == 2
    assert rounds[1].metrics["surrogate_rows_lab"] == 2
    from mlflow.tracking import MlflowClient

    from pipeline.tracking import CAMPAIGN_TAG, ROUND_TAG

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("withlab")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`{CAMPAIGN_TAG}` = 'withlab' and tags.`{ROUND_TAG}` = '1'")
    assert runs and runs[0].data.metrics["lab_results_used"] == 2
    assert runs[0].data.metrics["surrogate_rows_lab"] == 2
    store.close()
