"""A small campaign in a store, run stage by stage without Prefect, for the review tests."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import CampaignConfig, parse_config
from pipeline.engine import CampaignEngine
from pipeline.store import Store
from tests.conftest import tiny_campaign


def review_config(name: str = "rev") -> CampaignConfig:
    """The tiny campaign with a lab fidelity on top of HF/STO-3G."""
    data = tiny_campaign(name=name, rounds=2, surrogate={"name": "multifidelity_gp"},
                         fidelities=[{"name": "dft-fast", "cost": 1},
                                     {"name": "lab", "cost": 200}])
    data["acquisition"]["min_labels"] = 2
    return parse_config(data)


def run_rounds(store: Store, config: CampaignConfig, rounds: int) -> CampaignEngine:
    """Runs ``rounds`` rounds of the campaign's stages in this process."""
    engine = CampaignEngine(config, store)
    engine.open()
    for r in range(rounds):
        engine.generate(r)
        engine.select(r)
        for request in engine.oracle_requests(r):
            oracle = engine.oracles[request.fidelity]
            engine.store_oracle_result(request, oracle.run(request.candidate))
        engine.finish_oracle(r)
        engine.record(r)
    return engine


def review_store(folder: Path, rounds: int = 1) -> tuple[Store, CampaignConfig]:
    """A store under ``folder`` with the review campaign run for ``rounds`` rounds."""
    store = Store(f"sqlite:///{folder / 'campaigns.db'}")
    config = review_config()
    run_rounds(store, config, rounds)
    return store, config
