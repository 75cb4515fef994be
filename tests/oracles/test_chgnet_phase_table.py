"""Competing phases shipped with the CHGNet oracle are used, under the oracle's own keys."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from oracles.chgnet_phase_table import read_phase_table, shipped_phases, write_phase_table
from pipeline.types import EvaluationStatus, OracleResult


def _phase(key: str, energy: float, status: EvaluationStatus = EvaluationStatus.OK
           ) -> OracleResult:
    return OracleResult(key, "chgnet-phase", "chgnet", status, "", {"energy_ev_per_atom": energy},
                        {"energy_ev_per_atom": "eV/atom"}, {"phase": "X", "steps": 3},
                        {"oracle": "chgnet"})


def test_table_round_trip_merges_and_keeps_successes_only(tmp_path: Path) -> None:
    path = tmp_path / "phases.jsonl.gz"
    assert write_phase_table([_phase("b", -1.0), _phase("a", -2.0)], path) == 2
    first = path.read_bytes()
    failed = _phase("c", float("nan"), EvaluationStatus.FAILED)
    assert write_phase_table([failed, _phase("a", -2.0)], path) == 2
    assert path.read_bytes() == first  # deterministic, failures left out
    table = read_phase_table(path)
    assert sorted(table) == ["a", "b"] and table["a"].values["energy_ev_per_atom"] == -2.0
    assert read_phase_table(tmp_path / "missing.jsonl.gz") == {}
    with gzip.open(path, "at") as handle:
        handle.write('{"request_key": "d"}\n')
    with pytest.raises(ValueError, match=r"phases\.jsonl\.gz, line 3: not a stored phase"):
        read_phase_table(path)


def test_oracle_takes_a_shipped_phase_instead_of_relaxing_it(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    import oracles.chgnet_oracle as module
    from oracles.chgnet_oracle import CHGNetOracle
    from oracles.competing_phases import competing_phases

    oracle = CHGNetOracle()
    shipped = shipped_phases()
    phase = next(p for p in competing_phases(["Sr", "Ti", "O"])
                 if p.key(oracle._settings()) in shipped)

    def no_relaxation(*args: object, **kwargs: object) -> None:
        raise AssertionError("a shipped phase was relaxed again")

    monkeypatch.setattr(module, "relax", no_relaxation)
    result = oracle.phase_energy(phase)
    assert result.ok and result.details["phase"] == phase.name
    assert result.values == shipped[phase.key(oracle._settings())].values
