"""The review page's API and pages: tables, decisions, exports, uploads, plots and safety."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flows.review.app import UPLOAD_LIMIT_BYTES, create_app
from flows.review.data import csv_cell
from pipeline.store import Store
from tests.flows.review_fixtures import review_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s, _ = review_store(tmp_path_factory.mktemp("review"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(store: Store) -> TestClient:
    return TestClient(create_app(store.url))


def _evaluated(client: TestClient) -> list[dict]:
    table = client.get("/api/campaigns/rev/candidates",
                       params={"filter": "status=evaluated", "per_page": 500}).json()
    return table["rows"]


def test_campaign_list_and_pages(client: TestClient) -> None:
    campaigns = client.get("/api/campaigns").json()
    assert [c["name"] for c in campaigns] == ["rev"]
    assert campaigns[0]["objective"] == "gap_ev in [12.0, 14.0]"
    assert campaigns[0]["oracle_results"] == 3
    page = client.get("/")
    assert page.status_code == 200 and 'href="/campaigns/rev"' in page.text
    campaign = client.get("/campaigns/rev")
    assert campaign.status_code == 200 and "gap_ev in [12.0, 14.0]" in campaign.text
    assert client.get("/campaigns/nope").status_code == 404
    assert client.get("/api/campaigns/nope").json()["detail"] == "no campaign 'nope'"
    overview = client.get("/api/campaigns/rev").json()
    assert overview["fidelities"] == ["dft-fast", "lab"] and overview["rounds"][0]["round"] == 0
    assert client.get("/docs").status_code == 200  # the API's own description
    assert client.get("/static/review.js").status_code == 200


def test_table_sorts_filters_searches_and_pages(client: TestClient) -> None:
    url = "/api/campaigns/rev/candidates"
    everything = client.get(url, params={"per_page": 500}).json()
    assert everything["total"] == len(everything["rows"]) > 5
    assert [r["rank"] for r in everything["rows"]] == sorted(r["rank"] for r in everything["rows"])
    by_gap = client.get(url, params={"sort": "gap_ev", "desc": True, "filter": "status=evaluated"})
    gaps = [r["gap_ev"] for r in by_gap.json()["rows"]]
    assert len(gaps) == 3 and gaps == sorted(gaps, reverse=True)
    low = client.get(url, params={"filter": ["status=evaluated", "gap_ev<20"]}).json()
    assert all(r["gap_ev"] < 20 for r in low["rows"]) and low["total"] < 3
    carbonyl = client.get(url, params={"search": "C=O", "per_page": 500}).json()
    assert carbonyl["total"] >= 1 and all("O" in r["design"] for r in carbonyl["rows"])
    page2 = client.get(url, params={"per_page": 2, "page": 2}).json()
    assert page2["page"] == 2 and len(page2["rows"]) == 2
    assert page2["rows"][0]["rank"] == everything["rows"][2]["rank"]
    for params, message in (({"search": "C(("}, "SMARTS 'C((' does not parse"),
                            ({"filter": "gap_ev<<1"}, "'<1' is not a number"),
                            ({"filter": "bogus=1"}, "unknown column 'bogus'"),
                            ({"filter": "gap_ev<high"}, "'high' is not a number"),
                            ({"sort": "nothing"}, "cannot sort by 'nothing'"),
                            ({"per_page": 100000}, "per_page must be 1 to 500")):
        bad = client.get(url, params=params)
        assert bad.status_code == 400 and message in bad.json()["detail"], (params, bad.json())


def test_candidate_detail_and_orbital_picture(client: TestClient) -> None:
    row = _evaluated(client)[0]
    detail = client.get(f"/api/campaigns/rev/candidates/{row['id']}").json()
    assert detail["has_orbitals"] and detail["filters"].startswith("passed sanitizable")
    gap = [e for e in detail["evaluations"] if e["property"] == "gap_ev"]
    assert gap[0]["fidelity"] == "dft-fast" and gap[0]["level"] == "fast (hf/sto-3g)"
    svg = client.get(f"/api/campaigns/rev/candidates/{row['id']}/depiction.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    # two panels (HOMO, LUMO) with legends and the atoms' percentages written beside them
    assert "<svg" in svg.text and "width='600px'" in svg.text
    assert "class='legend" in svg.text and "class='note" in svg.text
    page = client.get(f"/campaigns/rev/candidates/{row['id']}")
    assert page.status_code == 200 and "HOMO (blue) and LUMO (red)" in page.text
    assert client.get("/api/campaigns/rev/candidates/none").status_code == 404


def test_decisions_are_stored_escaped_and_exported(client: TestClient, store: Store) -> None:
    rows = _evaluated(client)
    first, second = rows[0]["id"], rows[1]["id"]
    url = f"/api/campaigns/rev/candidates/{first}/decisions"
    comment = '<script>alert("x")</script> =HYPERLINK("http://evil")'
    ok = client.post(url, json={"decision": "approve", "reviewer": "Ana <b>", "comment": comment})
    assert ok.status_code == 200 and ok.json()["decision"] == "approve"
    assert client.post(f"/api/campaigns/rev/candidates/{second}/decisions",
                       json={"decision": "reject", "reviewer": "ben"}).status_code == 200
    bad = client.post(url, json={"decision": "veto", "reviewer": "ana"})
    assert bad.status_code == 400 and "expected one of approve, reject, flag" in bad.json()["detail"]
    assert client.post("/api/campaigns/rev/candidates/none/decisions",
                       json={"decision": "flag", "reviewer": "a"}).status_code == 404
    page = client.get(f"/campaigns/rev/candidates/{first}").text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "Ana &lt;b&gt;" in page
    table = client.get("/api/campaigns/rev/candidates", params={"filter": "decision=reject"})
    assert [r["id"] for r in table.json()["rows"]] == [second]
    exported = client.get("/api/campaigns/rev/export", params={"which": "approved"})
    assert exported.headers["content-disposition"] == 'attachment; filename="rev-approved.csv"'
    records = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["candidate_id"] for r in records] == [first]
    sdf = client.get("/api/campaigns/rev/export", params={"which": "selected", "format": "sdf"})
    assert sdf.status_code == 200 and sdf.text.count("$$$$") == 3
    assert re.search(rf"<candidate_id>[^\n]*\n{first}\n", sdf.text)
    wrong = client.get("/api/campaigns/rev/export", params={"format": "cif"})
    assert wrong.status_code == 400 and "expected csv or sdf" in wrong.json()["detail"]


def test_csv_cells_cannot_be_read_as_formulas() -> None:
    assert csv_cell('=HYPERLINK("x")') == "'=HYPERLINK(\"x\")"
    assert csv_cell("+cmd") == "'+cmd" and csv_cell("@SUM(1)") == "'@SUM(1)"
    assert csv_cell("-7.25") == "-7.25" and csv_cell(-7.25) == -7.25
    assert csv_cell("CCO") == "CCO" and csv_cell(None) is None


def test_upload_is_all_or_nothing_and_idempotent(client: TestClient, store: Store) -> None:
    rows = _evaluated(client)
    url = "/api/campaigns/rev/lab-results"
    before = len(store.evaluations("rev"))
    bad = f"id,gap_ev\n{rows[0]['id']},13.1\n{rows[1]['id']},thirteen\n"
    response = client.post(url, files={"file": ("plate1.csv", bad, "text/csv")})
    assert response.status_code == 400
    assert "plate1.csv: line 3: column 'gap_ev': 'thirteen' is not a finite number" in \
        response.json()["detail"]
    assert len(store.evaluations("rev")) == before  # nothing imported
    good = f"id,gap_ev [meV],note\n{rows[0]['id']},13100,plate 1\n"
    first = client.post(url, files={"file": ("plate1.csv", good, "text/csv")})
    assert first.status_code == 200 and first.json() == {"imported": 1, "designs": 1,
                                                         "fidelity": "lab"}
    again = client.post(url, files={"file": ("plate1.csv", good, "text/csv")})
    assert again.json()["imported"] == 0  # the same file twice changes nothing
    lab = [e.evaluation for e in store.evaluations("rev") if e.evaluation.fidelity == "lab"]
    assert [(e.value, e.provenance["file_unit"]) for e in lab] == [(pytest.approx(13.1), "meV")]
    table = client.get("/api/campaigns/rev/candidates", params={"filter": f"id={rows[0]['id']}"})
    assert table.json()["rows"][0]["gap_ev_fidelity"] == "lab"
    big = client.post(url, files={"file": ("big.csv", "x" * (UPLOAD_LIMIT_BYTES + 10),
                                           "text/csv")})
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    huge = client.post(url, files={"file": ("huge.csv", "x" * (UPLOAD_LIMIT_BYTES + 100_000),
                                            "text/csv")})
    assert huge.status_code == 413  # refused from its length, before it is parsed
    fidelity = client.post(url, params={"fidelity": "pilot"},
                           files={"file": ("p.csv", good, "text/csv")})
    assert fidelity.status_code == 400 and "'pilot' is not listed" in fidelity.json()["detail"]
    binary = client.post(url, files={"file": ("x.csv", b"\xff\xfe\x00", "text/csv")})
    assert binary.status_code == 400 and "not a UTF-8 text" in binary.json()["detail"]


def test_plots_are_png(client: TestClient) -> None:
    for kind in ("best", "distribution", "parity"):
        response = client.get(f"/api/campaigns/rev/plots/{kind}.png",
                              params={"property": "homo_ev"})
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG"), kind
    assert client.get("/api/campaigns/rev/plots/pareto.png").status_code == 400  # one objective
    assert client.get("/api/campaigns/rev/plots/best.png",
                      params={"property": "mu"}).status_code == 400


def test_a_token_guards_every_page_and_the_api(store: Store) -> None:
    guarded = TestClient(create_app(store.url, token="s3cret"))
    assert guarded.get("/api/campaigns").status_code == 401
    assert guarded.get("/").status_code == 401
    assert guarded.post("/api/campaigns/rev/candidates/x/decisions",
                        json={"decision": "flag", "reviewer": "a"}).status_code == 401
    assert guarded.get("/api/campaigns", headers={"X-Invdes-Token": "s3cret"}).status_code == 200
    assert guarded.get("/api/campaigns",
                       headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert guarded.get("/login", params={"token": "wrong"}).status_code == 401
    login = guarded.get("/login", params={"token": "s3cret"}, follow_redirects=False)
    assert login.status_code == 303 and "samesite=strict" in login.headers["set-cookie"].lower()
    assert guarded.get("/api/campaigns").status_code == 200  # the cookie now carries it
    assert guarded.get("/static/review.css").status_code == 200


def test_the_command_refuses_another_address_without_a_token(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.delenv("INVDES_REVIEW_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["review", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "give a token with --token" in result.output


def test_a_perovskite_campaign_on_the_page(tmp_path: Path) -> None:
    from materials.domain import structure_candidate
    from materials.structures import structure_from_text
    from pipeline.config import load_config
    from pipeline.store import CandidateRecord
    from pipeline.types import CandidateStatus

    config = load_config(Path(__file__).resolve().parents[2] / "conf" / "demo_perovskites.yaml")
    store = Store(f"sqlite:///{tmp_path / 'campaigns.db'}")
    store.open_campaign(config.name, config.domain, config.model_dump(mode="json"),
                        config.identity(), config.rounds)
    cells = [structure_candidate(structure_from_text(f), f"r0-{k}", origin="substitution")
             for k, f in enumerate(["CsSnI3", "Cs2AgBiBr6", "CsGeBr3"])]
    store.add_round_candidates(config.name, 0, [CandidateRecord(c, CandidateStatus.POOL)
                                                for c in cells])
    client = TestClient(create_app(store.url))
    base = f"/api/campaigns/{config.name}"
    table = client.get(base + "/candidates").json()
    assert table["total"] == 3 and {r["design"] for r in table["rows"]} == {c.key for c in cells}
    found = client.get(base + "/candidates", params={"search": "Bi Br"}).json()
    assert [r["id"] for r in found["rows"]] == ["r0-1"]
    assert client.get(base + "/candidates", params={"search": "C(=O"}).status_code == 400
    picture = client.get(base + "/candidates/r0-1/depiction.svg")
    assert picture.status_code == 200 and ">Cs2AgBiBr6</text>" in picture.text
    assert client.post(base + "/candidates/r0-1/decisions",
                       json={"decision": "approve", "reviewer": "li"}).status_code == 200
    cif = client.get(base + "/export", params={"which": "approved", "format": "cif"})
    assert cif.status_code == 200 and "data_r0-1" in cif.text and "_cell_length_a" in cif.text
    page = client.get(f"/campaigns/{config.name}/candidates/r0-1")
    assert page.status_code == 200 and "_cell_length_a" in page.text  # the CIF, escaped text
    store.close()
