"""The review page in headless Chromium: open a campaign, sort, filter, approve and reject,
export, upload a bad and a good lab file, and reload.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); elsewhere the
tests skip, saying so, unless ``INVDES_REQUIRE_BROWSER`` is set (CI sets it, so a missing
browser fails there).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.store import Store
from tests.flows.review_fixtures import review_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

if not (CHROMIUM and DRIVER):
    if os.environ.get("INVDES_REQUIRE_BROWSER"):
        raise RuntimeError("INVDES_REQUIRE_BROWSER is set but chromium or chromedriver is missing "
                           "(apt-get install chromium chromium-driver)")
    pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver; "
                ".ci/run does)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    import uvicorn

    from flows.review.app import create_app

    store, _ = review_store(tmp_path_factory.mktemp("browser"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store.url), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.1)
    assert server.started, "the review server did not start"
    yield f"http://127.0.0.1:{port}", store
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1600"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _wait(condition: Any, timeout: float = 15.0) -> Any:
    """The condition's first true value; the table is redrawn after each request, so an
    element read while it is replaced is simply read again."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = condition()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page did not get there in time")


def _rows(browser: Any) -> list[Any]:
    return browser.find_elements("css selector", "#candidate-body tr")


def _column(browser: Any, name: str) -> list[str]:
    heads = [th.get_attribute("data-column") for th in
             browser.find_elements("css selector", "#candidate-head th")]
    k = heads.index(name)
    return [tr.find_elements("css selector", "td")[k].text for tr in _rows(browser)]


def test_review_in_a_browser(served: tuple[str, Store], browser: Any, tmp_path: Path) -> None:
    base, store = served
    browser.get(base + "/")
    browser.find_element("link text", "rev").click()
    _wait(lambda: len(_rows(browser)) > 5)
    assert "gap_ev in [12.0, 14.0]" in browser.find_element("css selector", ".target").text
    # the reviewer's name, kept by the browser
    name = browser.find_element("id", "reviewer")
    name.send_keys("Ana")
    browser.execute_script("document.getElementById('reviewer').dispatchEvent(new Event('change'))")

    # sort by the measured gap, high to low (a second click reverses)
    gap_header = browser.find_element("css selector", "#candidate-head th[data-column='gap_ev']")
    gap_header.click()
    _wait(lambda: "sorted" in browser.find_element(
        "css selector", "#candidate-head th[data-column='gap_ev']").get_attribute("class"))
    browser.find_element("css selector", "#candidate-head th[data-column='gap_ev']").click()
    _wait(lambda: "desc" in browser.find_element(
        "css selector", "#candidate-head th[data-column='gap_ev']").get_attribute("class"))
    values = _wait(lambda: [float(v.split()[0]) for v in _column(browser, "gap_ev") if v != "-"])
    assert len(values) == 3 and values == sorted(values, reverse=True)

    # filter to the evaluated ones; a bad filter shows its error
    filters = browser.find_element("id", "filters")
    filters.send_keys("gap_ev<high")
    browser.find_element("id", "apply").click()
    _wait(lambda: "not a number" in browser.find_element("id", "query-error").text)
    filters.clear()
    filters.send_keys("status=evaluated")
    browser.find_element("id", "apply").click()
    _wait(lambda: len(_rows(browser)) == 3 and not browser.find_element("id", "query-error").text)
    ids = _wait(lambda: [tr.get_attribute("data-id") for tr in _rows(browser)])

    # approve the first, reject the second with a comment holding HTML
    _wait(lambda: _rows(browser)[0].find_element(
        "css selector", "button[data-decision='approve']").click() or True)
    _wait(lambda: "approve (Ana)" in _rows(browser)[0].text)
    _wait(lambda: _rows(browser)[1].find_element(
        "css selector", "button[data-decision='reject']").click() or True)
    alert = _wait(lambda: _alert(browser))
    alert.send_keys("<b>unstable</b>")
    alert.accept()
    _wait(lambda: "reject (Ana)" in " ".join(tr.text for tr in _rows(browser)))
    decisions = {d.candidate_id: d for d in store.decisions("rev")}
    assert decisions[ids[0]].decision == "approve" and decisions[ids[1]].comment == "<b>unstable</b>"

    # export: the approved candidates, as CSV and SDF, with their ids
    csv_text = browser.execute_async_script(
        "const done = arguments[0]; fetch(document.getElementById('export-approved-csv').href)"
        ".then(r => r.text()).then(done)")
    assert csv_text.splitlines()[0].startswith("candidate_id,") and ids[0] in csv_text
    sdf_text = browser.execute_async_script(
        "const done = arguments[0]; fetch(document.getElementById('export-approved-structures')"
        ".href).then(r => r.text()).then(done)")
    assert sdf_text.count("$$$$") == 1 and ids[0] in sdf_text

    # a lab file with an error: nothing imported, the error shown
    before = len(store.evaluations("rev"))
    bad = tmp_path / "plate.csv"
    bad.write_text(f"id,gap_ev\n{ids[0]},13.2\n{ids[2]},thirteen\n")
    browser.find_element("id", "upload-file").send_keys(str(bad))
    browser.find_element("id", "upload-button").click()
    result = browser.find_element("id", "upload-result")
    _wait(lambda: "nothing imported" in result.text)
    assert "line 3: column 'gap_ev': 'thirteen' is not a finite number" in result.text
    assert len(store.evaluations("rev")) == before
    # a good one: the results shown in the table, at the lab fidelity
    good = tmp_path / "plate_ok.csv"
    good.write_text(f"id,gap_ev,note\n{ids[0]},13.2,plate 7\n")
    upload = browser.find_element("id", "upload-file")
    upload.clear()
    upload.send_keys(str(good))
    browser.find_element("id", "upload-button").click()
    _wait(lambda: "imported 1 lab result(s) for 1 design(s)" in result.text)
    _wait(lambda: any("13.2 (lab)" in tr.text for tr in _rows(browser)))

    # after a reload the decisions, the lab value and the query are still there
    browser.refresh()
    _wait(lambda: len(_rows(browser)) == 3)
    assert browser.find_element("id", "filters").get_attribute("value") == "status=evaluated"
    text = _wait(lambda: " ".join(tr.text for tr in _rows(browser)))
    assert "approve (Ana)" in text and "reject (Ana)" in text and "13.2 (lab)" in text

    # the candidate page shows the decision's comment as text, not HTML
    browser.get(f"{base}/campaigns/rev/candidates/{ids[1]}")
    history = browser.find_element("id", "decision-history").text
    assert "<b>unstable</b>" in history
    assert not browser.find_elements("css selector", "#decision-history b:not(:first-child)")


def _alert(browser: Any) -> Any:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return browser.switch_to.alert
    except NoAlertPresentException:
        return None
