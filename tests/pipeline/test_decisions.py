"""Reviewers' decisions: stored with time and name, every one kept, vetoes obeyed by the engine."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.config import parse_config
from pipeline.engine import REVIEW_FILTER, CampaignEngine
from pipeline.store import Store, StoreError
from pipeline.types import Candidate, CandidateStatus
from tests.conftest import tiny_campaign


def test_decisions_are_kept_in_order_and_the_latest_holds(store: Store) -> None:
    first = store.add_decision("c", "r0-1", "flag", "ana", "check the <b>ring</b>")
    store.add_decision("c", "r0-1", "reject", "ben")
    store.add_decision("c", "r0-2", "approve", "ana")
    history = store.decisions("c", "r0-1")
    assert [(d.decision, d.reviewer) for d in history] == [("flag", "ana"), ("reject", "ben")]
    assert first.comment == "check the <b>ring</b>" and first.created_at is not None
    current = store.current_decisions("c")
    assert current["CCO"].decision == "reject" and current["CC=O"].decision == "approve"


@pytest.mark.parametrize("args, message", [
    (("c", "r0-9", "reject", "ana"), "campaign 'c' has no candidate 'r0-9'"),
    (("c", "r0-1", "veto", "ana"), "decision 'veto': expected one of approve, reject, flag"),
    (("c", "r0-1", "reject", "  "), "needs the reviewer's name"),
])
def test_bad_decisions_are_refused_and_change_nothing(store: Store, args: tuple[str, ...],
                                                      message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.add_decision(*args)
    assert store.decisions("c") == []


def test_concurrent_decisions_on_one_candidate_are_all_kept(store: Store) -> None:
    def decide(k: int) -> None:
        store.add_decision("c", "r0-1", "flag", f"reviewer-{k}", f"note {k}")

    threads = [threading.Thread(target=decide, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(d.reviewer for d in store.decisions("c")) == [f"reviewer-{k}"
                                                                 for k in range(8)]


def test_a_rejected_design_is_never_selected_or_proposed_again(tmp_path: Path) -> None:
    config = parse_config(tiny_campaign(name="veto"))
    store = Store(f"sqlite:///{tmp_path / 'campaigns.db'}")
    engine = CampaignEngine(config, store)
    engine.open()
    pool = [r for r in engine.generate(0) if r.status is CandidateStatus.POOL]
    assert len(pool) > 3
    vetoed = {r.candidate.key for r in pool}
    for record in pool:  # the chemist vetoes all but three
        if len(vetoed) > 3:
            store.add_decision("veto", record.candidate.id, "reject", "ana", "unstable")
            vetoed.discard(record.candidate.key)
    rejected = {d.key for d in store.decisions("veto")}
    picks = engine.select(0)
    assert picks and not {c.key for c in picks} & rejected
    # a generator that proposes a vetoed design again: refused, naming the reviewer
    again = engine.apply_filters([Candidate("r1-x", key, key, 1, "ga")
                                     for key in sorted(rejected)[:2]])
    assert all(r.status is CandidateStatus.REJECTED and r.filter_name == REVIEW_FILTER
               for r in again)
    assert "rejected by ana on" in str(again[0].reason) and "unstable" in str(again[0].reason)
    # a later approval lifts the veto
    lifted = sorted(rejected)[0]
    cid = next(d.candidate_id for d in store.decisions("veto") if d.key == lifted)
    store.add_decision("veto", cid, "approve", "ben")
    assert lifted not in engine.vetoed()
    store.close()
