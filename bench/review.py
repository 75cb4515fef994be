"""Benchmark of the review page: start-up, a campaign of 20,000 candidates, and answers while a
campaign runs on the same store.

Usage:
    .venv/bin/python bench/review.py --pool ../shared/data/qm9/train_pool.csv.gz \
        --json bench/results/review.json

* start-up: seconds from launching ``invdes review`` to its first answer (median of 3);
* a campaign of ``--n`` candidates (the pool's first SMILES, 20 rounds): seconds for one page
  of the ranked table, sorted by another column, a SMARTS search (first, and again with the
  molecules parsed), one candidate page and its picture;
* responsiveness: the tiny HF/STO-3G campaign of the tests runs in another process on the same
  store while the page is asked for its campaigns and table every 0.25 s; the answers' latency
  (median and largest) and any error.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INVDES = str(Path(sys.executable).with_name("invdes"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 60.0) -> tuple[int, float]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()
        return response.status, time.perf_counter() - start


def serve(store_url: str) -> tuple[subprocess.Popen[bytes], str, float]:
    """Starts ``invdes review`` and waits for its first answer."""
    port = _port()
    start = time.perf_counter()
    process = subprocess.Popen([INVDES, "review", "--store", store_url, "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            _get(base + "/api/campaigns", timeout=2)
            return process, base, time.perf_counter() - start
        except OSError:
            if time.perf_counter() - start > 60:
                process.kill()
                raise RuntimeError("invdes review did not answer within 60 s") from None
            time.sleep(0.02)


def big_store(folder: Path, pool: Path, n: int) -> str:
    """A store with one molecule campaign of ``n`` pool candidates over 20 rounds."""
    sys.path.insert(0, str(REPO))
    import chem  # noqa: F401  (registers the domain)
    import oracles  # noqa: F401
    from pipeline.engine import CampaignEngine
    from pipeline.store import CandidateRecord, Store
    from pipeline.types import Candidate, CandidateStatus
    from tests.flows.review_fixtures import review_config

    with gzip.open(pool, "rt") as handle:
        smiles = [r["smiles"] for r in itertools.islice(csv.DictReader(handle), n)]
    url = f"sqlite:///{folder / 'campaigns.db'}"
    store = Store(url)
    CampaignEngine(review_config("big"), store).open()
    for r in range(20):
        store.add_round_candidates("big", r, [
            CandidateRecord(Candidate(f"r{r}-{i}", s, s, r, "ga"), CandidateStatus.POOL)
            for i, s in enumerate(smiles) if i % 20 == r])
    store.close()
    return url


def main() -> None:
    """Runs the three measurements and writes JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    report: dict[str, Any] = {"n_candidates": args.n, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = big_store(folder, args.pool, args.n)
        starts = []
        for _ in range(3):
            process, base, seconds = serve(url)
            starts.append(seconds)
            process.terminate()
            process.wait()
        report["startup_seconds_median"] = statistics.median(starts)
        process, base, _ = serve(url)
        try:
            api = f"{base}/api/campaigns/big"
            timings = {}
            for name, path in (("table_page", "/candidates?per_page=50"),
                               ("table_sorted_by_design", "/candidates?sort=design&desc=true"),
                               ("search_smarts_first", "/candidates?search=C%3DO"),
                               ("search_smarts_again", "/candidates?search=C%3DO"),
                               ("candidate", "/candidates/r3-3"),
                               ("picture", "/candidates/r3-3/depiction.svg")):
                status, seconds = _get(api + path)
                assert status == 200, (name, status)
                timings[name] = seconds
            status, seconds = _get(f"{base}/campaigns/big")
            timings["campaign_page_html"] = seconds
            report["seconds_at_n"] = timings
        finally:
            process.terminate()
            process.wait()
        # responsiveness while a campaign writes to the same store
        small = folder / "small"
        small.mkdir()
        small_url = f"sqlite:///{small / 'campaigns.db'}"
        code = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
                "import chem, oracles\n"
                "from pathlib import Path\n"
                "from pipeline.store import Store\n"
                "from tests.flows.review_fixtures import review_config, run_rounds\n"
                f"store = Store({small_url!r})\n"
                "run_rounds(store, review_config('running').model_copy(update={'rounds': 4}), 4)\n")
        runner = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
        process, base, _ = serve(small_url)
        latencies, errors = [], []
        try:
            while runner.poll() is None:
                for path in ("/api/campaigns", "/api/campaigns/running/candidates"):
                    try:
                        status, seconds = _get(base + path, timeout=30)
                        latencies.append(seconds)
                        if status != 200:
                            errors.append(f"{path}: {status}")
                    except OSError as exc:
                        if "404" not in str(exc):  # before the campaign exists
                            errors.append(f"{path}: {exc}")
                time.sleep(0.25)
        finally:
            process.terminate()
            process.wait()
        report["while_a_campaign_runs"] = {
            "requests": len(latencies), "errors": errors[:10], "n_errors": len(errors),
            "latency_median_s": statistics.median(latencies) if latencies else None,
            "latency_max_s": max(latencies) if latencies else None,
            "campaign_exit_code": runner.returncode,
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
