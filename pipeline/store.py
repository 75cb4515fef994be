"""The campaign store: every candidate, rejection, prediction, oracle result and round.

SQLAlchemy Core on SQLite by default (WAL journal, so a process killed mid-write loses nothing
committed); any SQLAlchemy URL (PostgreSQL) works. Each stage of a round commits its results in
one transaction together with the round's stage marker, so a campaign killed at any point resumes
from the last committed stage; oracle results are committed one request at a time as they arrive.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKeyConstraint,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection

from pipeline.decisions import DecisionsMixin
from pipeline.lease import LeaseMixin
from pipeline.records import (
    ROUND_STAGES,
    CampaignRecord,
    CandidateRecord,
    EvaluationRecord,
    OracleCallRecord,
    RoundRecord,
    campaign_record,
    candidate_record,
    evaluation_record,
    geometry_to_json,
    round_record,
)
from pipeline.schema import StoreError, metadata, utc_now
from pipeline.types import (
    CandidateStatus,
    Evaluation,
    EvaluationStatus,
    Geometry,
    OracleResult,
    Prediction,
)

campaigns_table = Table(
    "campaigns",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("domain", String(32), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("identity_hash", String(64), nullable=False),
    Column("identity_json", Text, nullable=False),
    Column("rounds_target", Integer, nullable=False),
    Column("mlflow_run_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

rounds_table = Table(
    "rounds",
    metadata,
    Column("campaign", String(64), primary_key=True),
    Column("round_index", Integer, primary_key=True),
    Column("stage", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("metrics_json", Text),
    Column("mlflow_run_id", String(64)),
    ForeignKeyConstraint(["campaign"], ["campaigns.name"]),
)

candidates_table = Table(
    "candidates",
    metadata,
    Column("campaign", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("round_index", Integer, nullable=False, index=True),
    Column("key", Text, nullable=False, index=True),
    Column("representation", Text, nullable=False),
    Column("origin", String(128), nullable=False),
    Column("parents_json", Text, nullable=False),
    Column("geometry_json", Text),
    Column("status", String(16), nullable=False, index=True),
    Column("filter_name", String(64)),
    Column("reason", Text),
    Column("predictions_json", Text),
    Column("acquisition_value", Float),
    Column("selected_rank", Integer),
    ForeignKeyConstraint(["campaign"], ["campaigns.name"]),
)

evaluations_table = Table(
    "evaluations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign", String(64), nullable=False, index=True),
    Column("candidate_id", String(64), nullable=False),
    Column("property", String(64), nullable=False),
    Column("value", Float),
    Column("unit", String(32), nullable=False),
    Column("fidelity", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("provenance_json", Text, nullable=False),
    Column("request_key", String(64), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("campaign", "candidate_id", "property", "fidelity"),
    ForeignKeyConstraint(["campaign", "candidate_id"], ["candidates.campaign", "candidates.id"]),
)

selected_fidelities_table = Table(
    "selected_fidelities",
    metadata,
    Column("campaign", String(64), primary_key=True),
    Column("candidate_id", String(64), primary_key=True),
    Column("fidelity", String(64), nullable=False),
    ForeignKeyConstraint(["campaign", "candidate_id"], ["candidates.campaign", "candidates.id"]),
)
"""The fidelity each pick is to be measured at, when the campaign runs several (written with the
selection, so a resumed round runs the same calculations)."""

oracle_results_table = Table(
    "oracle_results",
    metadata,
    Column("request_key", String(64), primary_key=True),
    Column("oracle", String(64), nullable=False),
    Column("fidelity", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("values_json", Text, nullable=False),
    Column("units_json", Text, nullable=False),
    Column("details_json", Text, nullable=False),
    Column("provenance_json", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""The content-addressed cache of oracle answers, shared by all campaigns of a store."""

oracle_calls_table = Table(
    "oracle_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign", String(64), nullable=False, index=True),
    Column("candidate_id", String(64), nullable=False),
    Column("request_key", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),
)



def _now() -> datetime:
    return utc_now()


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def config_hash(identity: Mapping[str, Any]) -> str:
    """SHA-256 of a config's identity, stable across key order."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class Store(DecisionsMixin, LeaseMixin):
    """Persistent record of campaigns.

    Args:
        url: SQLAlchemy URL, for example ``sqlite:////abs/path/campaigns.db``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def __repr__(self) -> str:
        return f"Store(url={self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Releases the connections."""
        self.engine.dispose()

    # campaigns ----------------------------------------------------------------------------------

    def open_campaign(
        self, name: str, domain: str, config: Mapping[str, Any], identity: Mapping[str, Any],
        rounds_target: int,
    ) -> CampaignRecord:
        """Creates the campaign, or reopens it when the config's identity is unchanged.

        Raises:
            StoreError: a campaign of this name exists with a different config.
        """
        digest = config_hash(identity)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(campaigns_table).where(campaigns_table.c.name == name)
            ).mappings().first()
            if row is None:
                now = _now()
                conn.execute(
                    campaigns_table.insert().values(
                        name=name, domain=domain, config_json=json.dumps(dict(config)),
                        identity_hash=digest, identity_json=json.dumps(dict(identity)),
                        rounds_target=rounds_target,
                        created_at=now, updated_at=now,
                    )
                )
            elif row["identity_hash"] != digest:
                stored = json.loads(row["identity_json"])
                changed = sorted(
                    k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k)
                )
                raise StoreError(
                    f"campaign {name!r} already exists in {self!r} with a different config "
                    f"(changed: {', '.join(changed) or 'details'}); only rounds, description, "
                    "store, tracking, fidelities and the oracle's parallelism and limits may "
                    "change between runs: give the campaign a new name"
                )
            else:
                conn.execute(
                    update(campaigns_table).where(campaigns_table.c.name == name).values(
                        rounds_target=rounds_target, config_json=json.dumps(dict(config)),
                        updated_at=_now(),
                    )
                )
        record = self.campaign(name)
        assert record is not None
        return record

    def campaign(self, name: str) -> CampaignRecord | None:
        """The campaign called ``name``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(campaigns_table).where(campaigns_table.c.name == name)
            ).mappings().first()
        return None if row is None else campaign_record(row)

    def campaigns(self) -> list[CampaignRecord]:
        """All campaigns, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(campaigns_table).order_by(campaigns_table.c.created_at)
            ).mappings().all()
        return [campaign_record(r) for r in rows]

    def set_campaign_run_id(self, name: str, run_id: str) -> None:
        """Remembers the campaign's parent MLflow run."""
        with self.engine.begin() as conn:
            conn.execute(
                update(campaigns_table).where(campaigns_table.c.name == name).values(
                    mlflow_run_id=run_id
                )
            )

    # rounds -------------------------------------------------------------------------------------

    def rounds(self, campaign: str) -> list[RoundRecord]:
        """Rounds of a campaign, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rounds_table).where(rounds_table.c.campaign == campaign)
                .order_by(rounds_table.c.round_index)
            ).mappings().all()
        return [round_record(r) for r in rows]

    def round(self, campaign: str, round_index: int) -> RoundRecord | None:
        """One round, or None when it has not started."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(rounds_table).where(
                    (rounds_table.c.campaign == campaign)
                    & (rounds_table.c.round_index == round_index)
                )
            ).mappings().first()
        return None if row is None else round_record(row)

    def _set_stage(self, conn: Connection, campaign: str, round_index: int, stage: str,
                   **values: Any) -> None:
        if stage not in ROUND_STAGES:
            raise ValueError(f"unknown round stage {stage!r}; known: {', '.join(ROUND_STAGES)}")
        exists = conn.execute(
            select(rounds_table.c.stage).where(
                (rounds_table.c.campaign == campaign) & (rounds_table.c.round_index == round_index)
            )
        ).first()
        if exists is None:
            conn.execute(rounds_table.insert().values(
                campaign=campaign, round_index=round_index, stage=stage, started_at=_now(),
                **values,
            ))
        else:
            conn.execute(
                update(rounds_table).where(
                    (rounds_table.c.campaign == campaign)
                    & (rounds_table.c.round_index == round_index)
                ).values(stage=stage, **values)
            )

    def set_round_stage(self, campaign: str, round_index: int, stage: str) -> None:
        """Marks a round as having reached ``stage``."""
        with self.engine.begin() as conn:
            self._set_stage(conn, campaign, round_index, stage)

    def record_round(self, campaign: str, round_index: int, metrics: Mapping[str, float]) -> None:
        """Stores the round's metrics and marks it ``recorded``."""
        clean = {k: _finite_or_none(v) for k, v in metrics.items()}
        with self.engine.begin() as conn:
            self._set_stage(conn, campaign, round_index, "recorded",
                            metrics_json=json.dumps(clean), finished_at=_now())

    def set_round_logged(self, campaign: str, round_index: int, run_id: str) -> None:
        """Marks the round as logged to MLflow under ``run_id``."""
        with self.engine.begin() as conn:
            self._set_stage(conn, campaign, round_index, "logged", mlflow_run_id=run_id)

    # candidates ---------------------------------------------------------------------------------

    def add_round_candidates(
        self, campaign: str, round_index: int, records: Sequence[CandidateRecord]
    ) -> None:
        """Stores a round's proposals with their filter verdicts and marks it ``generated``.

        One transaction: either all proposals of the round are stored, or none.
        """
        with self.engine.begin() as conn:
            if records:
                conn.execute(candidates_table.insert(), [
                    {
                        "campaign": campaign,
                        "id": r.candidate.id,
                        "round_index": r.candidate.round_index,
                        "key": r.candidate.key,
                        "representation": r.candidate.representation,
                        "origin": r.candidate.origin,
                        "parents_json": json.dumps(list(r.candidate.parents)),
                        "geometry_json": geometry_to_json(r.candidate.geometry),
                        "status": r.status.value,
                        "filter_name": r.filter_name,
                        "reason": r.reason,
                    }
                    for r in records
                ])
            self._set_stage(conn, campaign, round_index, "generated")

    def select_candidates(
        self,
        campaign: str,
        round_index: int,
        predictions: Mapping[str, Mapping[str, Prediction]],
        acquisition_values: Mapping[str, float],
        selected_ids: Sequence[str],
        fidelities: Mapping[str, str] | None = None,
    ) -> None:
        """Stores the surrogate's predictions on the pool and the acquisition's batch.

        Args:
            campaign: campaign name.
            round_index: the round.
            predictions: candidate id -> property -> prediction, for the pool.
            acquisition_values: candidate id -> acquisition value, where computed.
            selected_ids: the batch, in the order it was picked.
            fidelities: candidate id -> fidelity to measure it at (campaigns that run several).
        """
        with self.engine.begin() as conn:
            for cid, preds in predictions.items():
                conn.execute(
                    update(candidates_table).where(
                        (candidates_table.c.campaign == campaign) & (candidates_table.c.id == cid)
                    ).values(predictions_json=json.dumps(
                        {p: [_finite_or_none(v.mean), _finite_or_none(v.std)]
                         for p, v in preds.items()}
                    ))
                )
            for cid, value in acquisition_values.items():
                conn.execute(
                    update(candidates_table).where(
                        (candidates_table.c.campaign == campaign) & (candidates_table.c.id == cid)
                    ).values(acquisition_value=_finite_or_none(value))
                )
            for rank, cid in enumerate(selected_ids):
                result = conn.execute(
                    update(candidates_table).where(
                        (candidates_table.c.campaign == campaign)
                        & (candidates_table.c.id == cid)
                        & (candidates_table.c.status == CandidateStatus.POOL.value)
                    ).values(status=CandidateStatus.SELECTED.value, selected_rank=rank)
                )
                if result.rowcount != 1:
                    raise StoreError(f"candidate {cid!r} of {campaign!r} is not in the pool")
            if fidelities:
                conn.execute(selected_fidelities_table.insert(), [
                    {"campaign": campaign, "candidate_id": cid, "fidelity": fidelity}
                    for cid, fidelity in fidelities.items()
                ])
            self._set_stage(conn, campaign, round_index, "selected")

    def selected_fidelities(self, campaign: str) -> dict[str, str]:
        """Candidate id -> the fidelity it was picked to be measured at (where one was chosen)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(selected_fidelities_table).where(
                selected_fidelities_table.c.campaign == campaign)).mappings().all()
        return {row["candidate_id"]: row["fidelity"] for row in rows}

    def candidates(
        self,
        campaign: str,
        *,
        round_index: int | None = None,
        statuses: Iterable[CandidateStatus] | None = None,
        ids: Iterable[str] | None = None,
    ) -> list[CandidateRecord]:
        """Candidates of a campaign, in id order, optionally of one round, some statuses or some
        ids."""
        query = select(candidates_table).where(candidates_table.c.campaign == campaign)
        if ids is not None:
            query = query.where(candidates_table.c.id.in_(list(ids)))
        if round_index is not None:
            query = query.where(candidates_table.c.round_index == round_index)
        if statuses is not None:
            query = query.where(candidates_table.c.status.in_([s.value for s in statuses]))
        with self.engine.connect() as conn:
            rows = conn.execute(
                query.order_by(candidates_table.c.round_index, candidates_table.c.selected_rank,
                               candidates_table.c.id)
            ).mappings().all()
        return [candidate_record(r) for r in rows]

    def seen_keys(self, campaign: str) -> set[str]:
        """Keys of every candidate the campaign has stored, rejected ones included."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(candidates_table.c.key).where(candidates_table.c.campaign == campaign)
            ).scalars().all()
        return set(rows)

    # oracle results -----------------------------------------------------------------------------

    def start_oracle_call(self, campaign: str, candidate_id: str, request_key: str) -> int:
        """Writes the audit row of an oracle calculation being launched; returns its id."""
        with self.engine.begin() as conn:
            result = conn.execute(oracle_calls_table.insert().values(
                campaign=campaign, candidate_id=candidate_id, request_key=request_key,
                started_at=_now(), status="running",
            ))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def mark_interrupted_calls(self, campaign: str) -> int:
        """Marks calculations left ``running`` by a killed process as ``interrupted``.

        Call it only when no other process runs this campaign. Returns how many were marked.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                update(oracle_calls_table).where(
                    (oracle_calls_table.c.campaign == campaign)
                    & (oracle_calls_table.c.status == "running")
                ).values(status="interrupted")
            )
            return int(result.rowcount)

    def add_evaluations(
        self, campaign: str, evaluations: Sequence[Evaluation], request_key: str,
        call_id: int | None = None,
    ) -> None:
        """Stores an oracle request's results and updates its candidate's status, atomically.

        Args:
            campaign: campaign name.
            evaluations: the results of one request (one per property), all of one candidate.
            request_key: content hash of the request.
            call_id: the audit row to close, from :meth:`start_oracle_call`.
        """
        with self.engine.begin() as conn:
            self._add_evaluations(conn, campaign, evaluations, request_key, call_id)

    def add_evaluation_batches(
        self, campaign: str, batches: Sequence[tuple[Sequence[Evaluation], str]]
    ) -> None:
        """Stores several candidates' results (each with its request key) in one transaction:
        all of them or, on any error, none."""
        with self.engine.begin() as conn:
            for evaluations, request_key in batches:
                self._add_evaluations(conn, campaign, evaluations, request_key, None)

    def _add_evaluations(
        self, conn: Connection, campaign: str, evaluations: Sequence[Evaluation],
        request_key: str, call_id: int | None,
    ) -> None:
        if not evaluations:
            return
        cids = {e.candidate_id for e in evaluations}
        if len(cids) != 1:
            raise ValueError(f"add_evaluations takes one candidate's results, got {sorted(cids)}")
        (cid,) = cids
        ok = any(e.ok for e in evaluations)
        now = _now()
        conn.execute(evaluations_table.insert(), [
            {
                "campaign": campaign,
                "candidate_id": e.candidate_id,
                "property": e.property,
                "value": _finite_or_none(e.value),
                "unit": e.unit,
                "fidelity": e.fidelity,
                "status": e.status.value,
                "reason": e.reason,
                "provenance_json": json.dumps(dict(e.provenance), default=str),
                "request_key": request_key,
                "created_at": now,
            }
            for e in evaluations
        ])
        conn.execute(
            update(candidates_table).where(
                (candidates_table.c.campaign == campaign) & (candidates_table.c.id == cid)
            ).values(
                status=(CandidateStatus.EVALUATED if ok else CandidateStatus.FAILED).value
            )
        )
        if call_id is not None:
            conn.execute(
                update(oracle_calls_table).where(oracle_calls_table.c.id == call_id).values(
                    finished_at=now, status="ok" if ok else "failed"
                )
            )

    def set_geometry(self, campaign: str, candidate_id: str, geometry: Geometry) -> None:
        """Stores the 3D structure an oracle request was made with."""
        with self.engine.begin() as conn:
            conn.execute(
                update(candidates_table).where(
                    (candidates_table.c.campaign == campaign)
                    & (candidates_table.c.id == candidate_id)
                ).values(geometry_json=geometry_to_json(geometry))
            )

    def oracle_result(self, request_key: str) -> OracleResult | None:
        """The stored successful answer to an identical request, from any campaign, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(oracle_results_table).where(
                    (oracle_results_table.c.request_key == request_key)
                    & (oracle_results_table.c.status == EvaluationStatus.OK.value)
                )
            ).mappings().first()
        return None if row is None else _oracle_result(row)

    def oracle_results_of(self, oracle: str) -> list[OracleResult]:
        """Every stored successful answer of one oracle (e.g. ``chgnet-phase``), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(oracle_results_table).where(
                    (oracle_results_table.c.oracle == oracle)
                    & (oracle_results_table.c.status == EvaluationStatus.OK.value)
                ).order_by(oracle_results_table.c.created_at)
            ).mappings().all()
        return [_oracle_result(row) for row in rows]

    def save_oracle_result(self, result: OracleResult, conn: Connection | None = None) -> None:
        """Caches an answer by its request key; a success replaces an earlier failure, never
        the other way round."""
        if conn is None:
            with self.engine.begin() as own:
                self.save_oracle_result(result, own)
            return
        existing = conn.execute(
            select(oracle_results_table.c.status).where(
                oracle_results_table.c.request_key == result.request_key)
        ).scalar_one_or_none()
        if existing == EvaluationStatus.OK.value:
            return
        if existing is not None:
            conn.execute(oracle_results_table.delete().where(
                oracle_results_table.c.request_key == result.request_key))
        conn.execute(oracle_results_table.insert().values(
            request_key=result.request_key, oracle=result.oracle, fidelity=result.fidelity,
            status=result.status.value, reason=result.reason,
            values_json=json.dumps(dict(result.values)), units_json=json.dumps(dict(result.units)),
            details_json=json.dumps(dict(result.details), default=str),
            provenance_json=json.dumps(dict(result.provenance), default=str), created_at=_now(),
        ))

    def add_oracle_result(
        self, campaign: str, candidate_id: str, result: OracleResult, call_id: int | None = None,
        **extra_provenance: Any,
    ) -> None:
        """Stores an oracle answer for a candidate: the cache row, one evaluation per property,
        the candidate's new status and the closed audit row, in one transaction."""
        with self.engine.begin() as conn:
            self.save_oracle_result(result, conn)
            self._add_evaluations(
                conn, campaign, result.evaluations(candidate_id, **extra_provenance),
                result.request_key, call_id,
            )

    def evaluations(
        self, campaign: str, *, candidate_ids: Iterable[str] | None = None
    ) -> list[EvaluationRecord]:
        """Oracle results of a campaign, in the order they were stored."""
        query = select(evaluations_table).where(evaluations_table.c.campaign == campaign)
        if candidate_ids is not None:
            query = query.where(evaluations_table.c.candidate_id.in_(list(candidate_ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(evaluations_table.c.id)).mappings().all()
        return [evaluation_record(r) for r in rows]

    def oracle_calls(self, campaign: str) -> list[OracleCallRecord]:
        """Every oracle calculation launched for the campaign, in launch order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(oracle_calls_table).where(oracle_calls_table.c.campaign == campaign)
                .order_by(oracle_calls_table.c.id)
            ).mappings().all()
        return [
            OracleCallRecord(
                id=r["id"], candidate_id=r["candidate_id"], request_key=r["request_key"],
                started_at=r["started_at"], finished_at=r["finished_at"], status=r["status"],
            )
            for r in rows
        ]

    def count_evaluated(self, campaign: str) -> int:
        """Number of candidates with an oracle result (ok or failed)."""
        with self.engine.connect() as conn:
            return int(conn.execute(
                select(func.count(func.distinct(evaluations_table.c.candidate_id))).where(
                    evaluations_table.c.campaign == campaign
                )
            ).scalar_one())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


__all__ = [
    "ROUND_STAGES",
    "CampaignRecord",
    "CandidateRecord",
    "EvaluationRecord",
    "OracleCallRecord",
    "RoundRecord",
    "Store",
    "StoreError",
    "config_hash",
    "oracle_results_table",
]


def _oracle_result(row: Any) -> OracleResult:
    """An oracle result from its ``oracle_results`` row (a mapping)."""
    return OracleResult(
        request_key=row["request_key"], oracle=row["oracle"], fidelity=row["fidelity"],
        status=EvaluationStatus(row["status"]), reason=row["reason"],
        values=json.loads(row["values_json"]), units=json.loads(row["units_json"]),
        details=json.loads(row["details_json"]),
        provenance=json.loads(row["provenance_json"]),
    )
