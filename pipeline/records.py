"""The records the store hands out (campaigns, rounds, candidates, evaluations, oracle calls)
and their conversion from table rows: what a reader of the store sees, apart from how it is
kept (:mod:`pipeline.store`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.types import (
    Candidate,
    CandidateStatus,
    Evaluation,
    EvaluationStatus,
    Geometry,
    Prediction,
)

ROUND_STAGES = ("generated", "selected", "evaluated", "recorded", "logged")
"""Stages of a round in order; a round is complete when it is ``logged``."""


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """A campaign as stored."""

    name: str
    domain: str
    config: dict[str, Any]
    rounds_target: int
    mlflow_run_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """A round as stored."""

    campaign: str
    round_index: int
    stage: str
    started_at: datetime
    finished_at: datetime | None
    metrics: dict[str, float]
    mlflow_run_id: str | None

    @property
    def complete(self) -> bool:
        """Whether every stage of the round ran, MLflow logging included."""
        return self.stage == ROUND_STAGES[-1]


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """A candidate with where it stands."""

    candidate: Candidate
    status: CandidateStatus
    filter_name: str | None = None
    reason: str | None = None
    predictions: dict[str, Prediction] = field(default_factory=dict)
    acquisition_value: float | None = None
    selected_rank: int | None = None


@dataclass(frozen=True, slots=True)
class EvaluationRecord:
    """An evaluation as stored, with its row id and time."""

    id: int
    evaluation: Evaluation
    request_key: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OracleCallRecord:
    """One launch of an oracle calculation (the audit trail of what was computed)."""

    id: int
    candidate_id: str
    request_key: str
    started_at: datetime
    finished_at: datetime | None
    status: str


def geometry_to_json(geometry: Geometry | None) -> str | None:
    if geometry is None:
        return None
    data: dict[str, Any] = {
        "symbols": list(geometry.symbols),
        "positions_angstrom": [list(p) for p in geometry.positions_angstrom],
        "charge": geometry.charge,
        "multiplicity": geometry.multiplicity,
    }
    if geometry.lattice_angstrom is not None:
        data["lattice_angstrom"] = [list(v) for v in geometry.lattice_angstrom]
    return json.dumps(data)


def geometry_from_json(text: str | None) -> Geometry | None:
    if not text:
        return None
    data = json.loads(text)
    return Geometry(
        symbols=tuple(data["symbols"]),
        positions_angstrom=tuple(tuple(p) for p in data["positions_angstrom"]),
        charge=data["charge"],
        multiplicity=data["multiplicity"],
        lattice_angstrom=(tuple(tuple(v) for v in data["lattice_angstrom"])
                          if data.get("lattice_angstrom") is not None else None),
    )


def campaign_record(row: Any) -> CampaignRecord:
    return CampaignRecord(
        name=row["name"], domain=row["domain"], config=json.loads(row["config_json"]),
        rounds_target=row["rounds_target"], mlflow_run_id=row["mlflow_run_id"],
        created_at=row["created_at"],
    )


def round_record(row: Any) -> RoundRecord:
    metrics = json.loads(row["metrics_json"]) if row["metrics_json"] else {}
    return RoundRecord(
        campaign=row["campaign"], round_index=row["round_index"], stage=row["stage"],
        started_at=row["started_at"], finished_at=row["finished_at"],
        metrics={k: (math.nan if v is None else float(v)) for k, v in metrics.items()},
        mlflow_run_id=row["mlflow_run_id"],
    )


def candidate_record(row: Any) -> CandidateRecord:
    preds = json.loads(row["predictions_json"]) if row["predictions_json"] else {}
    return CandidateRecord(
        candidate=Candidate(
            id=row["id"], key=row["key"], representation=row["representation"],
            round_index=row["round_index"], origin=row["origin"],
            parents=tuple(json.loads(row["parents_json"])),
            geometry=geometry_from_json(row["geometry_json"]),
        ),
        status=CandidateStatus(row["status"]),
        filter_name=row["filter_name"],
        reason=row["reason"],
        predictions={
            p: Prediction(
                mean=math.nan if m is None else m, std=math.nan if s is None else s
            )
            for p, (m, s) in preds.items()
        },
        acquisition_value=row["acquisition_value"],
        selected_rank=row["selected_rank"],
    )


def evaluation_record(row: Any) -> EvaluationRecord:
    status = EvaluationStatus(row["status"])
    return EvaluationRecord(
        id=row["id"],
        evaluation=Evaluation(
            candidate_id=row["candidate_id"], property=row["property"],
            value=math.nan if row["value"] is None else row["value"], unit=row["unit"],
            fidelity=row["fidelity"], status=status, reason=row["reason"],
            provenance=json.loads(row["provenance_json"]),
        ),
        request_key=row["request_key"],
        created_at=row["created_at"],
    )
