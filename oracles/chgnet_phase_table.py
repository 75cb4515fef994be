"""Competing phases relaxed once and shipped with the CHGNet oracle.

The CHGNet oracle places a cell on the hull of its competing phases (elements, binaries and
ternaries of :mod:`oracles.competing_phases`), each relaxed by CHGNet the first time a chemical
system is met: 20-60 s a phase on one core, minutes for a new system. The phases of the systems
the project has met (the perov-5 pool's labels, the benchmarks) ship in
``oracles/data/chgnet_phases.jsonl.gz``, one stored oracle result a line, under the same
content key the oracle computes (structure, relaxation settings, phase set version and CHGNet
version), so a result made with other settings or another CHGNet is never taken for this one.

``python -m oracles.chgnet_phase_table --store URL [--out FILE]`` writes the table from a store
that holds relaxed phases (merging what the table already holds).
"""

from __future__ import annotations

import argparse
import gzip
import json
from functools import cache
from pathlib import Path

from pipeline.types import EvaluationStatus, OracleResult

SHIPPED = Path(__file__).resolve().parent / "data" / "chgnet_phases.jsonl.gz"
PHASE_ORACLE = "chgnet-phase"


def _to_json(result: OracleResult) -> str:
    return json.dumps({"request_key": result.request_key, "oracle": result.oracle,
                       "fidelity": result.fidelity, "status": result.status.value,
                       "reason": result.reason, "values": dict(result.values),
                       "units": dict(result.units), "details": dict(result.details),
                       "provenance": dict(result.provenance)}, sort_keys=True, default=str)


def read_phase_table(path: Path) -> dict[str, OracleResult]:
    """The results of a phase table, by request key (none if the file does not exist).

    Raises:
        ValueError: a line is not a stored phase result (file and line named).
    """
    if not path.is_file():
        return {}
    out: dict[str, OracleResult] = {}
    with gzip.open(path, "rt") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                row = json.loads(line)
                result = OracleResult(
                    request_key=row["request_key"], oracle=row["oracle"],
                    fidelity=row["fidelity"], status=EvaluationStatus(row["status"]),
                    reason=row["reason"], values=row["values"], units=row["units"],
                    details=row["details"], provenance=row["provenance"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}, line {number}: not a stored phase result "
                                 f"({type(exc).__name__}: {exc})") from None
            out[result.request_key] = result
    return out


@cache
def shipped_phases() -> dict[str, OracleResult]:
    """The shipped table, read once per process."""
    return read_phase_table(SHIPPED)


def write_phase_table(results: list[OracleResult], path: Path) -> int:
    """Writes the successful phase results of ``results`` and of the table already at
    ``path``, sorted by key (deterministic bytes); returns how many there are."""
    merged = read_phase_table(path)
    merged.update({r.request_key: r for r in results
                   if r.oracle == PHASE_ORACLE and r.status is EvaluationStatus.OK})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.GzipFile(tmp, "wb", mtime=0) as handle:
        for key in sorted(merged):
            handle.write((_to_json(merged[key]) + "\n").encode())
    tmp.replace(path)
    return len(merged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="SQLAlchemy URL of a store")
    parser.add_argument("--out", type=Path, default=SHIPPED)
    args = parser.parse_args()
    from pipeline.store import Store

    n = write_phase_table(Store(args.store).oracle_results_of(PHASE_ORACLE), args.out)
    print(f"{args.out}: {n} phases")


if __name__ == "__main__":
    main()
