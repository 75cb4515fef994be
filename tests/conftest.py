"""Shared fixtures: a temporary invdes home and a tiny campaign config."""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import chem  # noqa: F401  (registers the molecules domain)
import materials  # noqa: F401  (registers the perovskites domain)
import oracles  # noqa: F401  (registers the oracles)

TINY_CAMPAIGN: dict[str, Any] = {
    "name": "tiny",
    "domain": "molecules",
    "seed": 3,
    "rounds": 2,
    "objective": {"property": "gap_ev", "goal": "window", "low": 12.0, "high": 14.0},
    "predict_properties": ["homo_ev"],
    "generators": [{"name": "graph_ga", "n_proposals": 40,
                    "params": {"population_size": 10, "max_heavy_atoms": 5}}],
    "filters": [
        {"name": "sanitizable"},
        {"name": "single_fragment"},
        {"name": "elements", "params": {"allowed": ["C", "N", "O", "F"]}},
        {"name": "heavy_atoms", "params": {"min": 2, "max": 4}},
        {"name": "neutral"},
    ],
    "featurizer": {"name": "morgan", "params": {"radius": 2, "n_bits": 512}},
    "surrogate": {"name": "tanimoto_gp"},
    "acquisition": {"name": "qlognei", "batch_size": 3, "min_labels": 3,
                    "params": {"mc_samples": 64}},
    "oracle": {"name": "pyscf", "max_parallel": 2,
               "params": {"level": "fast", "timeout_s": 120}},
}
"""A 2-round campaign on tiny molecules at HF/STO-3G (about a second per calculation)."""


def tiny_campaign(**changes: Any) -> dict[str, Any]:
    """A deep copy of :data:`TINY_CAMPAIGN` with top-level keys replaced."""
    data = copy.deepcopy(TINY_CAMPAIGN)
    data.update(changes)
    return data


def query_sqlite(db: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` read from the SQLite file ``db`` without writing to it, as another
    process (a running campaign) fills it; empty while the file or its tables do not exist."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        con.close()


def write_yaml(path: Path, data: Any) -> Path:
    """Writes ``data`` as YAML and returns the path."""
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, not yet created, invdes home."""
    root = tmp_path / "home"
    monkeypatch.setenv("INVDES_HOME", str(root))
    return root


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (started here, or ``INVDES_TEST_POSTGRES_URL``)."""
    from tests.services import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store's SQLAlchemy URL: SQLite in ``tmp_path``, and a fresh database on the
    session's PostgreSQL server (the same tests run on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'campaigns.db'}"
    from tests.services import fresh_database

    server = request.getfixturevalue("postgres_url")
    return fresh_database(server, f"t{abs(hash(request.node.nodeid)) % 10**12}")
