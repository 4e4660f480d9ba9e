"""The file checker in a real headless Chromium, with axe-core for accessibility.

The upload is made as a person makes it: the file is set on the form's file input through
the DevTools protocol (DOM.setFileInputFiles) and the form is submitted. axe-core is
injected through the DevTools protocol too (the app itself has no script at all, and its
CSP allows none).

Skipped when Chromium is not installed (`make browser`) or axe-core is not in
var/axe (`make axe`; AXE_CORE_JS names another copy of axe.min.js).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_serve import SUM_ERROR, WORKED_EXAMPLE, memory_sampler, running_server
from test_site_browser import CHROMIUM, Browser
from test_validate import _write_xlsx_bomb

REPO = Path(__file__).resolve().parents[2]
AXE_JS = Path(
    os.environ.get("AXE_CORE_JS", REPO / "var" / "axe" / "node_modules" / "axe-core" / "axe.min.js")
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (make browser, or apt-get install)"
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("uploads")) as s:
        yield s


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def upload(browser: Browser, base: str, path: Path, org: str = "") -> list[str]:
    """Open the form, choose ``path`` in its file input, submit; the URLs requested."""
    requested = browser.open(f"{base}/")
    root = browser.send("DOM.getDocument")["root"]["nodeId"]
    node = browser.send("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    browser.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node)
    if org:
        browser.js(f"document.querySelector('#org').value = {json.dumps(org)}")
    browser.events.clear()
    browser.js("document.querySelector('form button[type=submit]').click()")
    browser.wait_for("Page.loadEventFired", timeout=90)
    browser.send("Runtime.evaluate", expression="1")
    return requested + [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]


def axe_problems(browser: Browser) -> list[dict]:
    """Serious and critical axe-core violations on the page shown."""
    if not AXE_JS.is_file():
        pytest.skip(f"axe-core is not installed at {AXE_JS} (make axe)")
    if browser.js("typeof axe") == "undefined":
        browser.send("Runtime.evaluate", expression=AXE_JS.read_text(encoding="utf-8"))
    result = browser.send(
        "Runtime.evaluate",
        expression="axe.run(document, {resultTypes: ['violations']})"
        ".then(r => JSON.stringify(r.violations))",
        awaitPromise=True,
        returnByValue=True,
    )
    violations = json.loads(result["result"]["value"])
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def test_the_worked_example_is_accepted_in_the_browser(server, browser, tmp_path):
    requested = upload(browser, server.url, WORKED_EXAMPLE)
    server.assert_nothing_kept()
    assert all(u.startswith(server.url + "/") for u in requested), requested
    assert browser.js("document.querySelector('h1').textContent").strip() == "File accepted"
    text = browser.js("document.body.innerText")
    assert "worked-example-summary.csv" in text and "Your file has been deleted" in text
    # The stylesheet is allowed by the CSP and applied.
    assert browser.js("getComputedStyle(document.body).fontFamily").startswith("Arial")
    assert axe_problems(browser) == []
    browser.screenshot(tmp_path / "accepted.png")


def test_a_sum_error_shows_the_rule_the_row_and_the_numbers(server, browser, tmp_path):
    path = tmp_path / "sum-error.csv"
    path.write_bytes(SUM_ERROR)
    upload(browser, server.url, path, org="RXX")
    server.assert_nothing_kept()
    summary = browser.js("document.querySelector('.error-summary').innerText")
    assert "There is a problem" in summary and "outcomes-sum" in summary and "row 2" in summary
    target = browser.js("document.querySelector('.error-summary a').getAttribute('href')")
    assert target == "#problem-1" and browser.js("!!document.querySelector('#problem-1')")
    cells = browser.js(
        "[...document.querySelectorAll('#problem-1 table tbody tr')].map("
        "r => [...r.children].map(c => c.textContent))"
    )
    assert cells == [["2", "70", "25", "15", "4", "9", "120"]]
    heads = browser.js("[...document.querySelectorAll('#problem-1 th[scope=col]')]"
                       ".map(c => c.textContent)")  # fmt: skip
    assert heads[-1] == "requests_received" and "pending" in heads
    problem = browser.js("document.querySelector('#problem-1').innerText")
    assert "What to do" in problem
    assert axe_problems(browser) == []
    browser.screenshot(tmp_path / "rejected.png")


def test_the_upload_page_and_its_error_state_have_no_serious_axe_violations(server, browser):
    browser.open(f"{server.url}/")
    assert axe_problems(browser) == []
    browser.events.clear()
    browser.js("document.querySelector('form button[type=submit]').click()")  # no file chosen
    browser.wait_for("Page.loadEventFired", timeout=60)
    link = browser.js("document.querySelector('.error-summary a').getAttribute('href')")
    assert link == "#file"
    error = browser.js("document.querySelector('#file-error').innerText")
    assert "Select a CSV or XLSX file" in error
    assert axe_problems(browser) == []
    browser.open(f"{server.url}/standard")
    assert axe_problems(browser) == []


def test_a_1_gib_xlsx_bomb_is_refused_in_seconds_in_the_browser(server, browser, tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    _write_xlsx_bomb(bomb, 1024**3)
    with memory_sampler(server) as peaks:
        started = time.monotonic()
        upload(browser, server.url, bomb)
        elapsed = time.monotonic() - started
    server.assert_nothing_kept()
    assert "too-large-inflated" in browser.js("document.querySelector('.error-summary').innerText")
    rss, pss = peaks["rss"] / 2**20, peaks["pss"] / 2**20
    print(f"browser bomb: {elapsed:.2f} s (form, upload, check), peaks RSS {rss:.0f} MiB, "
          f"PSS {pss:.0f} MiB")  # fmt: skip
    assert elapsed < 15
    assert peaks["pss"] < 500 * 2**20
