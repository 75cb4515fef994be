"""A tiny campaign whose designs come from the shipped crystal generator: de novo cells through
the perovskite filters to CHGNet, steered by the campaign's targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from materials.generators import DEFAULT_CRYSTAL_GENERATOR
from pipeline.config import parse_config
from pipeline.home import Home
from pipeline.store import Store
from pipeline.types import CandidateStatus


def tiny_generator_campaign() -> dict:
    return {
        "name": "tiny-crystal-flow", "domain": "perovskites", "seed": 2, "rounds": 1,
        "objective": {"property": "decomposition_energy_ev_per_atom", "goal": "minimize",
                      "threshold": 0.0},
        "generators": [{"name": "crystal_flow", "n_proposals": 12,
                        "params": {"steps": 30, "atoms": 5,
                                   "conditions": ["formation_energy_ev_per_atom<=0.2"]}}],
        # the generator's cells are mostly mixed-anion (as the pool: ABO2N, ABO2F, ...), which
        # perovskite_formability does not assess
        "filters": [{"name": "crystal_geometry"}],
        "featurizer": {"name": "perovskite_sites"},
        "surrogate": {"name": "tanimoto_gp"},
        "acquisition": {"name": "qlognei", "batch_size": 1, "initial_batch": "maxmin",
                        "min_labels": 2},
        "oracle": {"name": "chgnet", "params": {"max_steps": 100, "phase_max_steps": 60}},
    }


@pytest.mark.skipif(not DEFAULT_CRYSTAL_GENERATOR.is_file(),
                    reason="no shipped crystal generator (materials/data/crystal_generator.pt)")
def test_generated_perovskites_reach_the_oracle(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVDES_HOME", str(tmp_path / "home"))
    from flows.campaign import run_campaign

    with prefect_test_harness(server_startup_timeout=120):
        run_campaign(parse_config(tiny_generator_campaign()), quiet=True)
    store = Store(Home(tmp_path / "home").store_url)
    records = store.candidates("tiny-crystal-flow")
    assert len(records) == 12 and all(r.candidate.origin == "crystal_flow" for r in records)
    assert all(r.candidate.geometry is not None and r.candidate.geometry.periodic
               for r in records)
    evaluated = [r for r in records if r.status is CandidateStatus.EVALUATED]
    assert len(evaluated) == 1
    rejected = [r for r in records if r.status is CandidateStatus.REJECTED]
    assert all(r.reason for r in rejected)
    values = {e.evaluation.property for e in store.evaluations("tiny-crystal-flow")}
    assert "decomposition_energy_ev_per_atom" in values
