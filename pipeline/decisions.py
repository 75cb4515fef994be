"""Reviewers' decisions on candidates (approve, reject, flag), kept in the store: append-only,
so that concurrent decisions are all kept and a candidate's latest decision is the one that
holds. The engine never proposes or selects a design whose latest decision is a rejection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, DateTime, ForeignKeyConstraint, Integer, String, Table, Text, select

from pipeline.schema import StoreError, metadata, utc_now

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

decisions_table = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign", String(64), nullable=False, index=True),
    Column("candidate_id", String(64), nullable=False),
    Column("key", Text, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reviewer", String(128), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["campaign", "candidate_id"], ["candidates.campaign", "candidates.id"]),
)
"""One row per decision."""

DECISIONS = ("approve", "reject", "flag")
"""What a reviewer can decide about a candidate."""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A reviewer's decision on a candidate (``approve``, ``reject`` or ``flag``)."""

    id: int
    candidate_id: str
    key: str
    decision: str
    reviewer: str
    comment: str
    created_at: datetime


def _candidates() -> Table:
    """The store's candidates table (defined in :mod:`pipeline.store`)."""
    return metadata.tables["candidates"]


class DecisionsMixin:
    """The store's decision methods (:class:`pipeline.store.Store` has them)."""

    engine: Engine

    def add_decision(self, campaign: str, candidate_id: str, decision: str, reviewer: str,
                     comment: str = "") -> DecisionRecord:
        """Stores a reviewer's decision on a candidate (every decision is kept, with its time).

        Raises:
            StoreError: unknown campaign or candidate, a decision other than approve, reject or
                flag, or an empty reviewer name.
        """
        if decision not in DECISIONS:
            raise StoreError(f"decision {decision!r}: expected one of {', '.join(DECISIONS)}")
        if not reviewer.strip():
            raise StoreError("a decision needs the reviewer's name")
        now = utc_now()
        with self.engine.begin() as conn:
            key = conn.execute(select(_candidates().c.key).where(
                _candidates().c.campaign == campaign,
                _candidates().c.id == candidate_id)).scalar()
            if key is None:
                raise StoreError(f"campaign {campaign!r} has no candidate {candidate_id!r}")
            row_id = conn.execute(decisions_table.insert().values(
                campaign=campaign, candidate_id=candidate_id, key=key, decision=decision,
                reviewer=reviewer.strip(), comment=comment, created_at=now)).inserted_primary_key
        assert row_id is not None
        return DecisionRecord(int(row_id[0]), candidate_id, key, decision, reviewer.strip(),
                              comment, now)

    def decisions(self, campaign: str, candidate_id: str | None = None
                  ) -> list[DecisionRecord]:
        """Decisions in the order they were made (of one candidate, or of all)."""
        query = select(decisions_table).where(decisions_table.c.campaign == campaign)
        if candidate_id is not None:
            query = query.where(decisions_table.c.candidate_id == candidate_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(decisions_table.c.id)).mappings().all()
        return [DecisionRecord(r["id"], r["candidate_id"], r["key"], r["decision"],
                               r["reviewer"], r["comment"], r["created_at"]) for r in rows]

    def current_decisions(self, campaign: str) -> dict[str, DecisionRecord]:
        """The decision that holds for each design key (its latest one)."""
        return {d.key: d for d in self.decisions(campaign)}
