"""A tiny perovskite campaign end to end: enumeration, filters, site fingerprints, a GP, CHGNet
as the oracle, the store, MLflow and the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import select

from pipeline.config import parse_config
from pipeline.home import Home
from pipeline.store import Store, oracle_results_table
from pipeline.types import CandidateStatus


def tiny_perovskite_campaign() -> dict:
    return {
        "name": "tiny-perovskites", "domain": "perovskites", "seed": 3, "rounds": 2,
        "objective": {"property": "decomposition_energy_ev_per_atom", "goal": "minimize",
                      "threshold": 0.0},
        "generators": [{"name": "perovskite_enumeration", "n_proposals": 4, "params": {
            "a_elements": ["Cs", "Rb", "Li"], "b_elements": ["Sn", "Ca", "Sr"],
            "x_elements": ["Cl", "Br"]}}],
        "filters": [
            {"name": "crystal_elements", "params": {"denied_lists": ["toxic"]}},
            {"name": "perovskite_formability", "params": {"min_probability": 0.3}},
            {"name": "crystal_geometry"},
        ],
        "featurizer": {"name": "perovskite_sites"},
        "surrogate": {"name": "tanimoto_gp"},
        "acquisition": {"name": "qlognei", "batch_size": 1, "initial_batch": "maxmin",
                        "min_labels": 2},
        "oracle": {"name": "chgnet", "params": {"max_steps": 150, "phase_max_steps": 100}},
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("perovskites") / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("INVDES_HOME", str(root))
    from flows.campaign import run_campaign

    with prefect_test_harness(server_startup_timeout=120):
        run_campaign(parse_config(tiny_perovskite_campaign()), quiet=True)
    yield root
    mp.undo()


def test_the_campaign_measures_charge_balanced_perovskites(finished: Path) -> None:
    store = Store(Home(finished).store_url)
    records = store.candidates("tiny-perovskites")
    evaluated = [r for r in records if r.status is CandidateStatus.EVALUATED]
    assert len(evaluated) == 2 and {r.candidate.round_index for r in evaluated} == {0, 1}
    rejected = [r for r in records if r.status is CandidateStatus.REJECTED]
    # Li is far too small for the A site, Rb too small for RbSrCl3 (p_perovskite below 0.3)
    unformable = [r for r in rejected if r.filter_name == "perovskite_formability"]
    assert unformable and all(r.reason.startswith("p_perovskite 0.") for r in unformable)
    assert all(r.filter_name in ("perovskite_formability", "not_seen_before") for r in rejected)
    assert all(r.candidate.key.startswith("Cs") for r in evaluated)
    values = {r.evaluation.property: r.evaluation.value
              for r in store.evaluations("tiny-perovskites")
              if r.evaluation.candidate_id == evaluated[0].candidate.id}
    assert values["e_above_hull_ev_per_atom"] == max(0.0,
                                                     values["decomposition_energy_ev_per_atom"])
    # the competing phases are cached in the store, once each
    with store.engine.connect() as conn:
        phases = conn.execute(select(oracle_results_table.c.request_key).where(
            oracle_results_table.c.oracle == "chgnet-phase")).scalars().all()
    assert len(phases) > 10 and len(set(phases)) == len(phases)


def test_tables_and_mlflow_show_formulas_and_cifs(finished: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("INVDES_HOME", str(finished))
    shown = CliRunner().invoke(app, ["candidates", "tiny-perovskites", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)
    measured = [r for r in rows if r["status"] == "evaluated"]
    assert measured[0]["design"].startswith("Cs") and " A:Cs B:" in measured[0]["design"]
    assert measured[0]["cif"].startswith("# generated using pymatgen")
    assert measured[0]["decomposition_energy_ev_per_atom"] is not None
    table = CliRunner().invoke(app, ["candidates", "tiny-perovskites"])
    assert "A:Cs" in table.stdout and "_cell_length_a" not in table.stdout
    client = MlflowClient(tracking_uri=Home(finished).mlflow_uri)
    experiment = client.get_experiment_by_name("tiny-perovskites")
    runs = client.search_runs([experiment.experiment_id])
    nested = [r for r in runs if r.data.tags.get("invdes.round") not in ("campaign", None)]
    assert len(nested) == 2
    header = Path(client.download_artifacts(nested[0].info.run_id, "ranked_candidates.csv",
                                            str(finished))).read_text().splitlines()[0]
    assert header.startswith("rank,id,design,cif,round,status")
