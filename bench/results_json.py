"""Benchmark results kept as one JSON per benchmark, one entry per part, so that the parts of a
benchmark (run one at a time, each its own command) add up in one file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def merge_part(part: str, report: dict[str, Any], out: Path) -> None:
    """Writes ``report`` under ``part`` in the JSON ``out``, keeping its other parts."""
    data = json.loads(out.read_text()) if out.exists() else {}
    data[part] = report
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
