"""Shared fixtures: a temporary invdes home and a tiny campaign config."""

from __future__ import annotations

import copy
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
