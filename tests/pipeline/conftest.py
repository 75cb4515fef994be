"""Fixtures shared by the engine's tests."""

from __future__ import annotations

import pytest

from pipeline.store import CandidateRecord, Store
from pipeline.types import Candidate, CandidateStatus


@pytest.fixture
def store(store_url: str) -> Store:
    """Campaign ``c``: CCO and CC=O in round 0's pool, CCO again in round 1 (rejected as seen)."""
    s = Store(store_url)
    s.open_campaign("c", "molecules", {"name": "c"}, {"name": "c"}, 2)
    s.add_round_candidates("c", 0, [
        CandidateRecord(Candidate("r0-1", "CCO", "CCO", 0, "ga"), CandidateStatus.POOL),
        CandidateRecord(Candidate("r0-2", "CC=O", "CC=O", 0, "ga"), CandidateStatus.POOL),
    ])
    # round 1 proposes CCO again: stored, rejected as already seen
    s.add_round_candidates("c", 1, [
        CandidateRecord(Candidate("r1-1", "CCO", "CCO", 1, "ga"), CandidateStatus.REJECTED,
                        "not_seen_before", "seen in an earlier round"),
    ])
    return s
