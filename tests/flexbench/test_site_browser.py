"""The site in a real headless Chromium (docs/analysts.md, "The site").

The site is served on loopback; Chromium is driven through the DevTools protocol, which
reports every request the page makes, so the test can prove that nothing leaves the machine.
It checks that the funnel plots and the trust card render, that a trust name with markup
shows as text (and its script never runs), that the peer-group filter and the sortable
table work, and saves screenshots under the test's tmp dir.

Skipped when Chromium is not installed (``make`` installs it: see the README).
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_site import MARKUP_NAME, MARKUP_TRUST, tiny_site_once

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)


class _RecordingHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        self.server.requested.append(self.path)


@contextmanager
def serve(root: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_RecordingHandler, directory=str(root)))
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requested
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    """A headless Chromium page driven over the DevTools protocol (one websocket)."""

    def __init__(self, profile: Path):
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-component-update",
             "--disable-sync", "--disable-default-apps", "--mute-audio",
             f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--window-size=1280,1800", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        port = self._devtools_port()
        page = next(
            t for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
            if t["type"] == "page"
        )  # fmt: skip
        from websockets.sync.client import connect

        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.send("Network.enable")
        self.send("Page.enable")

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "DevTools listening on ws://" in line:
                return int(line.split("ws://127.0.0.1:")[1].split("/")[0])
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError("Chromium did not start its DevTools endpoint")

    def send(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv(timeout=timeout))
            if msg.get("method") == method:
                return msg
            self.events.append(msg)
        raise TimeoutError(method)

    def open(self, url: str) -> list[str]:
        """Load a page; return every URL it requested."""
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        time.sleep(0.3)  # let late requests (if any) be reported
        self.send("Runtime.evaluate", expression="1")  # drain pending events
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def built_site(shared_build) -> Path:
    return tiny_site_once(shared_build)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def test_national_page_renders_funnels_table_and_filter_offline(built_site, browser, tmp_path):
    with serve(built_site) as (base, served):
        requested = browser.open(f"{base}/index.html")
        # Nothing but the loopback server was asked for anything.
        assert requested, "the browser reported no request at all"
        assert all(u.startswith(base + "/") for u in requested), requested
        assert {"/index.html", "/assets/site.css", "/assets/site.js"} <= set(served)

        funnel_points = browser.js("document.querySelectorAll('svg.funnel circle.pt').length")
        assert funnel_points > 20
        box = browser.js(
            "(() => { const r = document.querySelector('#funnel-approval')"
            ".getBoundingClientRect(); return [r.width, r.height]; })()"
        )
        assert box[0] > 300 and box[1] > 150  # the plot has a real size on screen
        rows = browser.js("document.querySelectorAll('#trust-table tbody tr').length")
        assert rows > 15

        # The peer-group filter narrows the table and dims the other trusts' points.
        shown = browser.js("""(() => {
            const s = document.querySelector('#peer-filter');
            s.value = s.options[1].value; s.dispatchEvent(new Event('change'));
            const visible = [...document.querySelectorAll('#trust-table tbody tr')]
                .filter(r => !r.hidden);
            return {peer: s.value, rows: visible.length,
                    others: visible.filter(r => r.dataset.peer !== s.value).length,
                    dimmed: document.querySelectorAll('svg.funnel circle.dim').length};
        })()""")
        assert 0 < shown["rows"] < rows and shown["others"] == 0 and shown["dimmed"] > 0
        browser.js("(() => { const s = document.querySelector('#peer-filter'); s.value = '';"
                   "s.dispatchEvent(new Event('change')); })()")  # fmt: skip

        # Sorting by approval rate (descending on the second click) puts the highest first.
        order = browser.js("""(() => {
            const th = [...document.querySelectorAll('#trust-table th')]
                .find(h => h.textContent.trim() === 'Approval rate');
            th.querySelector('button').click(); th.querySelector('button').click();
            const i = [...th.parentNode.children].indexOf(th);
            return [...document.querySelectorAll('#trust-table tbody tr')]
                .map(r => r.children[i].dataset.value).filter(v => v !== '').map(Number);
        })()""")
        assert len(order) > 10 and order == sorted(order, reverse=True)

        shot = browser.screenshot(tmp_path / "national.png")
        assert shot.stat().st_size > 20_000


def test_trust_page_card_renders_and_markup_in_a_name_is_text(built_site, browser, tmp_path):
    with serve(built_site) as (base, _served):
        requested = browser.open(f"{base}/trusts/{MARKUP_TRUST}.html")
        assert all(u.startswith(base + "/") for u in requested), requested
        assert browser.js("document.querySelector('h1').textContent").startswith(MARKUP_NAME)
        assert browser.js("typeof window.__pwned") == "undefined"  # the script never ran
        assert browser.js("document.querySelectorAll('h1 script, h1 b').length") == 0
        card = browser.js("document.querySelector('#card').innerText")
        assert "Approval rate" in card and "%" in card and "95% interval" in card
        assert browser.js("document.querySelectorAll('svg.funnel circle.highlight').length") == 1
        assert browser.js("document.querySelectorAll('svg.trend circle').length") >= 4
        browser.screenshot(tmp_path / "trust.png")


def test_each_trust_page_has_a_trend_chart_per_measure_it_shows(built_site, browser):
    # Every rate of the card and uptake has its chart (and no chart is of a measure the page
    # does not show), with a text alternative, a table, titled axes, its intervals, and a gap
    # (no line) where a quarter is withheld or missing.
    pages = sorted((built_site / "trusts").glob("*.html"))
    assert len(pages) >= 5
    charted_any = withheld_any = 0
    infos = {}
    with serve(built_site) as (base, _served):
        for page in pages:
            browser.open(f"{base}/trusts/{page.name}")
            info = browser.js("""(() => {
                // the card's rates in its order, then uptake
                const shown = [...document.querySelectorAll('#card tr[data-measure]'),
                               ...document.querySelectorAll('#card p[data-measure]')]
                    .map(e => e.dataset.measure);
                const trends = [...document.querySelectorAll('#measure-trends .measure-trend')]
                    .map(d => {
                        const svg = d.querySelector('svg.trend');
                        const rect = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
                        return {
                            measure: d.dataset.measure,
                            svgs: d.querySelectorAll('svg.trend').length,
                            name: svg ? svg.querySelector('title').textContent : '',
                            desc: svg ? svg.querySelector('desc').textContent : '',
                            axes: svg ? [...svg.querySelectorAll('.axis-title')]
                                .map(t => t.textContent) : [],
                            ticks: svg ? svg.querySelectorAll('text.tick').length : 0,
                            points: svg ? svg.querySelectorAll('circle.pt').length : 0,
                            cis: svg ? svg.querySelectorAll('line.ci').length : 0,
                            gaps: svg ? svg.querySelectorAll('text.gap').length : 0,
                            rows: d.querySelectorAll('table.trend-table tbody tr').length,
                            width: rect.width, height: rect.height,
                        };
                    });
                return {shown, trends,
                        charts: document.querySelectorAll('#measure-trends svg.trend').length,
                        all: document.querySelectorAll('svg.trend').length};
            })()""")
            infos[page.name] = info
    # The measures a card shows (a trust with data in the window): its rates in order, uptake.
    every = next(i["shown"] for i in infos.values() if i["shown"])
    assert len(every) == 8 and every[-1] == "requests_per_100_staff"
    for name, info in infos.items():
        shown, trends = info["shown"], info["trends"]
        if not trends:
            assert not info["all"], name
            continue
        charted_any += 1
        # one chart per measure shown, in the card's order (uptake last), and no other; a
        # trust with quarters but no window data (no card) has the chart of every measure
        assert [t["measure"] for t in trends] == (shown or every), name
        assert info["charts"] == info["all"] == len(trends), name
        for t in trends:
            assert t["svgs"] == 1 and t["name"] and t["desc"], (name, t["measure"])
            assert t["axes"][0] == "Quarter" and len(t["axes"]) == 2
            assert t["ticks"] >= 4 and t["width"] > 400 and t["height"] > 150
            assert t["rows"] == t["points"] + t["gaps"]  # every quarter in the table
            assert t["cis"] == t["points"]  # each published quarter with its interval
            withheld_any += t["gaps"] > 0
    assert charted_any >= 3
    assert withheld_any  # some chart shows a gap


def test_site_works_from_the_file_system(built_site, browser):
    requested = browser.open((built_site / "index.html").as_uri())
    assert all(u.startswith("file://") for u in requested), requested
    assert browser.js("getComputedStyle(document.body).fontFamily").startswith("Arial")
    href = browser.js("document.querySelector('#trust-table tbody a').href")
    assert href.startswith("file://")
    browser.open(href)
    assert browser.js("document.querySelector('.as-of').textContent").startswith("Data as of")


def _axe_problems(browser: Browser) -> list[dict]:
    from test_serve_browser import axe_problems

    return axe_problems(browser)


@pytest.mark.parametrize(
    "page",
    [
        "index.html",
        f"trusts/{MARKUP_TRUST}.html",
        "indicators/approval-rate.html",
        "indicators/index.html",
        "methodology.html",
    ],
)
def test_axe_finds_no_serious_or_critical_violation(built_site, browser, page):
    with serve(built_site) as (base, _served):
        browser.open(f"{base}/{page}")
        assert _axe_problems(browser) == []


def test_trust_page_download_holds_the_numbers_shown(built_site, browser):
    import csv

    with serve(built_site) as (base, _served):
        browser.open(f"{base}/trusts/{MARKUP_TRUST}.html")
        href = browser.js("document.querySelector('a[data-download=\"card.csv\"]').href")
        shown = browser.js(
            "[...document.querySelectorAll('#card table.measures tbody tr')]"
            ".map(r => [r.querySelector('th').innerText.trim(), "
            "r.querySelector('td.rate').innerText.trim()])"
        )
        charts = browser.js("document.querySelectorAll('#measure-trends svg.trend').length")
        with urllib.request.urlopen(href) as response:
            card = next(csv.DictReader(response.read().decode("utf-8").splitlines()))
    values = dict(shown)
    for label, column in (("Approval rate", "approval_rate"), ("Decline rate", "decline_rate")):
        if values[label].endswith("%"):
            shown_value = float(values[label].rstrip("%")) / 100
            assert shown_value == pytest.approx(float(card[column]), abs=1e-9)
        else:  # withheld or too few on the page: nothing in the download either
            assert values[label].startswith("[c]") or "too few" in values[label].lower()
            assert card[column] in ("", "[c]"), (label, card[column])
    assert charts == len(values) + 1  # each rate of the card, and uptake


def _an_icb_page(built_site) -> str:
    """The page of an ICB with the most trusts (one with data in the window)."""
    pages = sorted((built_site / "areas").glob("icb-*.html"))
    return max(pages, key=lambda p: p.read_text(encoding="utf-8").count('href="../trusts/')).name


def test_axe_finds_no_serious_or_critical_violation_on_an_icb_page(built_site, browser):
    with serve(built_site) as (base, _served):
        browser.open(f"{base}/areas/{_an_icb_page(built_site)}")
        assert _axe_problems(browser) == []


def test_icb_page_download_holds_the_numbers_shown(built_site, browser):
    import csv

    with serve(built_site) as (base, _served):
        browser.open(f"{base}/areas/{_an_icb_page(built_site)}")
        href = browser.js("document.querySelector('a[data-download=\"area.csv\"]').href")
        shown = browser.js(
            '[...document.querySelectorAll(\'section[aria-labelledby="area-totals-heading"] '
            "tbody tr')].map(r => [r.querySelector('th').innerText.trim(), "
            "r.querySelector('td').innerText.trim()])"
        )
        name = browser.js("document.querySelector('h1').innerText.trim()")
        with urllib.request.urlopen(href) as response:
            area = next(csv.DictReader(response.read().decode("utf-8").splitlines()))
    assert name == area["area_name"] and area["area_code"] not in name  # a name, not a code
    values = dict(shown)
    for label, column in (
        ("Requests received", "requests_received"),
        ("Decided", "decided"),
        ("Approved", "approved"),
        ("Declined", "declined"),
    ):
        if values[label] == "[c]":
            assert area[column] == "[c]", label
        elif values[label] == "–":  # no trust of the area has data
            assert area[column] == "", label
        else:
            assert float(values[label].replace(",", "")) == float(area[column]), label
    rate = values["Approval rate"].split()[0]
    if rate.endswith("%"):
        assert float(rate.rstrip("%")) / 100 == pytest.approx(float(area["approval_rate"]))
