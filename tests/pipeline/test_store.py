from __future__ import annotations

import math

import pytest
from sqlalchemy.exc import IntegrityError

from pipeline.store import CandidateRecord, Store, StoreError
from pipeline.types import (
    Candidate,
    CandidateStatus,
    Evaluation,
    EvaluationStatus,
    Geometry,
    OracleResult,
    Prediction,
)

IDENTITY = {"name": "c", "seed": 1}


@pytest.fixture
def store(store_url: str) -> Store:
    s = Store(store_url)
    s.open_campaign("c", "molecules", {**IDENTITY, "rounds": 2}, IDENTITY, 2)
    return s


def _cand(cid: str, smiles: str) -> Candidate:
    return Candidate(cid, smiles, smiles, 0, "seed", parents=("CC",))


def test_reopening_with_another_config_is_refused(store: Store) -> None:
    store.open_campaign("c", "molecules", {**IDENTITY, "rounds": 5}, IDENTITY, 5)
    assert store.campaign("c").rounds_target == 5  # type: ignore[union-attr]
    with pytest.raises(StoreError, match=r"different config \(changed: seed\)"):
        store.open_campaign("c", "molecules", {"name": "c", "seed": 2}, {"name": "c", "seed": 2}, 2)


def test_round_trip_of_candidates_predictions_and_evaluations(store: Store) -> None:
    water = Geometry(("O", "H", "H"), ((0, 0, 0), (0, 0.76, 0.59), (0, -0.76, 0.59)))
    store.add_round_candidates("c", 0, [
        CandidateRecord(_cand("r0-1", "CCO"), CandidateStatus.POOL),
        CandidateRecord(_cand("r0-2", "CC.O"), CandidateStatus.REJECTED, "single_fragment",
                        "2 disconnected fragments"),
        CandidateRecord(_cand("r0-3", "O"), CandidateStatus.POOL),
    ])
    assert store.round("c", 0).stage == "generated"  # type: ignore[union-attr]
    store.select_candidates("c", 0, {"r0-1": {"gap_ev": Prediction(7.0, 0.5)}}, {"r0-1": -1.5},
                            ["r0-1", "r0-3"])
    with pytest.raises(StoreError, match="not in the pool"):
        store.select_candidates("c", 0, {}, {}, ["r0-2"])
    store.set_geometry("c", "r0-3", water)
    call = store.start_oracle_call("c", "r0-1", "key1")
    store.add_evaluations("c", [Evaluation("r0-1", "gap_ev", 6.5, "eV", "dft-fast",
                                           provenance={"method": "hf"})], "key1", call)
    store.add_evaluations("c", [Evaluation("r0-3", "gap_ev", math.nan, "eV", "dft-fast",
                                           EvaluationStatus.FAILED, "timeout")], "key3")
    by_id = {r.candidate.id: r for r in store.candidates("c")}
    assert by_id["r0-1"].status is CandidateStatus.EVALUATED
    assert by_id["r0-1"].predictions == {"gap_ev": Prediction(7.0, 0.5)}
    assert by_id["r0-1"].acquisition_value == -1.5 and by_id["r0-1"].selected_rank == 0
    assert by_id["r0-2"].reason == "2 disconnected fragments"
    assert by_id["r0-3"].status is CandidateStatus.FAILED
    assert by_id["r0-3"].candidate.geometry == water
    evals = store.evaluations("c")
    assert evals[0].evaluation.value == 6.5 and evals[0].evaluation.provenance["method"] == "hf"
    assert math.isnan(evals[1].evaluation.value) and evals[1].evaluation.reason == "timeout"
    assert [c.status for c in store.oracle_calls("c")] == ["ok"]
    answer = OracleResult("key9", "pyscf", "dft-fast", EvaluationStatus.OK, "",
                          {"lumo_ev": 9.5}, {"lumo_ev": "eV"}, {"atoms": [{"symbol": "O"}]})
    failure = OracleResult("key9", "pyscf", "dft-fast", EvaluationStatus.FAILED, "timeout",
                           {}, {"lumo_ev": "eV"})
    store.save_oracle_result(failure)
    assert store.oracle_result("key9") is None  # failures are never reused
    store.add_oracle_result("c", "r0-3", answer, cached=True)
    store.save_oracle_result(failure)  # a later failure does not replace a success
    assert store.oracle_result("key9") == answer
    last = store.evaluations("c", candidate_ids=["r0-3"])[-1].evaluation
    assert last.value == 9.5 and last.provenance["cached"] is True
    assert store.seen_keys("c") == {"CCO", "CC.O", "O"}


def test_a_failed_transaction_stores_nothing(store: Store) -> None:
    dup = [CandidateRecord(_cand("r0-1", "CCO"), CandidateStatus.POOL)] * 2
    with pytest.raises(IntegrityError, match=r"(?i)unique"):  # SQLite and PostgreSQL alike
        store.add_round_candidates("c", 0, dup)
    assert store.candidates("c") == [] and store.round("c", 0) is None


def test_a_crystal_geometry_keeps_its_lattice(store: Store) -> None:
    cell = Geometry(("Sr", "Ti", "O", "O", "O"),
                    ((0, 0, 0), (1.95, 1.95, 1.95), (1.95, 1.95, 0), (1.95, 0, 1.95),
                     (0, 1.95, 1.95)),
                    lattice_angstrom=((3.9, 0, 0), (0, 3.9, 0), (0, 0, 3.9)))
    store.add_round_candidates("c", 0, [CandidateRecord(
        Candidate("r0-9", "SrTiO3 A:Sr B:Ti X:O3 Pm-3m", "cif text", 0, "seed", geometry=cell),
        CandidateStatus.POOL)])
    back = {r.candidate.id: r for r in store.candidates("c")}["r0-9"].candidate.geometry
    assert back == cell and back is not None and back.periodic
    assert "Lattice=\"3.90000000 0.00000000" in back.to_xyz()
    with pytest.raises(ValueError, match="spans no volume"):
        Geometry(("Na",), ((0, 0, 0),), lattice_angstrom=((1, 0, 0), (2, 0, 0), (0, 0, 1)))
