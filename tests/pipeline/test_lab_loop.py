"""The lab loop: results imported between rounds steer the next round's surrogate, and each round
says how many it used and how well they had been predicted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.engine import CampaignEngine
from pipeline.store import Store


def test_lab_results_between_rounds_are_used_and_their_predictions_scored(tmp_path: Path) -> None:
    from pipeline.imports import read_results, store_results
    from tests.flows.review_fixtures import review_config, run_rounds

    store = Store(f"sqlite:///{tmp_path / 'campaigns.db'}")
    config = review_config("loop").model_copy(update={"rounds": 3})
    engine = run_rounds(store, config, 2)
    round1 = [r for r in store.candidates("loop", round_index=1)
              if r.selected_rank is not None and "gap_ev" in r.predictions]
    assert len(round1) >= 2
    lab = tmp_path / "lab.csv"
    lab.write_text("id,gap_ev\n" + "".join(f"{r.candidate.id},{13.0 + k}\n"
                                             for k, r in enumerate(round1[:2])))
    props = engine.components.oracle.properties()
    rows = read_results(lab, store, "loop", props, "lab", lambda t: t)
    assert store_results(store, "loop", rows, props, "lab", str(lab)) == 2
    before = store.rounds("loop")[1].metrics
    assert before["lab_results_used"] == 0 and "surrogate_rows_lab" not in before
    # the third round: its surrogate learns from the lab values too
    engine = CampaignEngine(config, store)
    engine.generate(2)
    engine.select(2)
    for request in engine.oracle_requests(2):
        engine.store_oracle_result(request, engine.oracles[request.fidelity].run(request.candidate))
    engine.finish_oracle(2)
    metrics = engine.record(2)
    assert metrics["lab_results_used"] == 2
    assert metrics["surrogate_rows_lab"] == 2 and metrics["surrogate_rows_dft-fast"] >= 6
    expected = np.mean([abs(13.0 + k - r.predictions["gap_ev"].mean)
                        for k, r in enumerate(round1[:2])])
    assert metrics["lab_prediction_mae_gap_ev"] == pytest.approx(expected)
    assert 0.0 <= metrics["lab_prediction_coverage90_gap_ev"] <= 1.0
    assert metrics["lab_prediction_n_gap_ev"] == 2
    store.close()
