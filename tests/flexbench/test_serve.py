"""`flexbench serve`: the file checker as a web page, run as a real server on loopback.

The server is started as a user would start it (`flexbench serve --port N`), with its
upload directory pointed at a test directory, so every test can check that nothing from
an upload is left on disk once the answer has come back.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from test_validate import _write_xlsx_bomb

from flexbench.serve.checker import Busy, Checker, Limits, Unchecked
from transforms.publications import MAX_DOWNLOAD_BYTES, SUMMARY_COLUMNS

REPO = Path(__file__).resolve().parents[2]
WORKED_EXAMPLE = REPO / "docs" / "templates" / "worked-example-summary.csv"
HEADER = ",".join(SUMMARY_COLUMNS)
# The worked example's first row with pending 9 instead of 6: 70+25+15+4+9 = 123, not 120.
SUM_ERROR = (
    f"{HEADER}\nRXX,2024-04-01,2024-06-30,All staff groups,"
    "120,70,25,15,4,9,18,5,2,100,2,4,3,1,1,0,0,1,3\n"
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`flexbench serve` in a subprocess, its uploads under ``uploads``."""

    def __init__(self, uploads: Path, **env: str) -> None:
        self.uploads = uploads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "FLEXBENCH_SERVE_TMP": str(uploads),
            "GX_ANALYTICS_ENABLED": "false",
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from flexbench.cli import main; sys.exit(main())",
             "serve", "--port", str(self.port), "--quiet"],
            cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server stopped: {self.proc.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("the server did not become ready within 180 s")

    def tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def memory(self) -> tuple[int, int]:
        """(sum of RSS, sum of PSS) of the server's process tree, in bytes."""
        rss = pss = 0
        for p in self.tree():
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += info.pss
        return rss, pss

    def post(self, name: str, data: bytes, org: str | None = None, json: bool = True, **kw):
        headers = {"accept": "application/json" if json else "text/html"}
        return httpx.post(
            f"{self.url}/",
            files={"file": (name, data)},
            data={"org": org} if org else {},
            headers=headers,
            timeout=kw.pop("timeout", 90),
            **kw,
        )

    def assert_nothing_kept(self) -> None:
        left = list(self.uploads.rglob("*"))
        assert left == [], f"files from an upload were left on disk: {left}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for p in reversed(self.tree()):
                    p.kill()
                self.proc.wait(timeout=10)


@contextmanager
def running_server(uploads: Path, **env: str):
    server = Server(uploads, **env)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def memory_sampler(server: Server):
    """Sample the server tree's memory every 20 ms; yields a dict with the peaks."""
    peaks = {"rss": 0, "pss": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rss, pss = server.memory()
            peaks["rss"] = max(peaks["rss"], rss)
            peaks["pss"] = max(peaks["pss"], pss)
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    uploads = tmp_path_factory.mktemp("uploads")
    with running_server(uploads, FLEXBENCH_SERVE_UPLOAD_SECONDS="4") as s:
        yield s


# --- a hostile corpus ---------------------------------------------------------------------


def _xlsx(rows: list[list]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def hostile_corpus(folder: Path) -> dict[str, bytes]:
    """Files a hostile or careless uploader might send, each a different kind of trouble."""
    good_xlsx = _xlsx([list(SUMMARY_COLUMNS), ["RXX", "2024-04-01", "2024-06-30", "Nurses"]])
    bomb = folder / "bomb.xlsx"
    _write_xlsx_bomb(bomb, 1024**3)
    # A zip whose directory says the sheet is small while it inflates to 120 MiB.
    liar = io.BytesIO()
    with zipfile.ZipFile(liar, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"<row>" + b"A" * (120 * 1024 * 1024))
    lying = bytearray(liar.getvalue())
    big = (120 * 1024 * 1024 + 5).to_bytes(4, "little")
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # declare 4 KiB in both headers
        at = 0
        while (at := lying.find(sig, at)) != -1:
            field = at + (22 if sig == b"PK\x03\x04" else 24)
            if lying[field : field + 4] == big:
                lying[field : field + 4] = (4096).to_bytes(4, "little")
            at += 4
    huge_numbers = f"{HEADER}\n" + "".join(
        f"RXX,2024-04-01,2024-06-30,Nurses,{'9' * 4000},1e308,-1e400,NaN,inf,0x10,"
        + ",".join(["99999999999999999999999"] * 13)
        + "\n"
        for _ in range(50)
    )
    return {
        "corrupt-zip.xlsx": good_xlsx[: len(good_xlsx) // 2],
        "broken-workbook-xml.xlsx": _broken_part(good_xlsx, "xl/workbook.xml", b"<workbook><"),
        "broken-sheet-xml.xlsx": _broken_part(good_xlsx, "xl/worksheets/", b"<row><c>unclosed"),
        "huge-numbers.csv": huge_numbers.encode(),
        "binary-junk.csv": os.urandom(256 * 1024),
        "nul-bytes.csv": b"\x00" * 100_000,
        "personal-data.csv": (
            b"org_code,request_id,received_date,decision_date,outcome,escalated,staff_group,"
            b"employee_name,date_of_birth\n"
            b"RXX,1,2024-04-02,2024-05-01,approved_in_full,no,Nurses,Jane Doe,1980-01-01\n"
        ),
        "zip-bomb.xlsx": bomb.read_bytes(),
        "lying-zip.xlsx": bytes(lying),
        "huge-line.csv": (HEADER + "\n" + "A" * (15 * 1024 * 1024) + "\n").encode(),
        "many-columns.csv": (",".join(f"c{i}" for i in range(50_000)) + "\n").encode(),
        "html-page.csv": b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        "markup.csv": f"{HEADER}\n<script>x</script>,2024-04-01,<b>x</b>\n".encode(),
        "quotes.csv": (HEADER + "\n" + '"' * 500_000 + "\n").encode(),
        "empty.csv": b"",
        "pdf.csv": b"%PDF-1.7\n" + os.urandom(4096),
        "utf16.csv": HEADER.encode("utf-16"),
        "deep-nesting.xlsx": _broken_part(good_xlsx, "xl/worksheets/", b"<a>" * 100_000),
        "many-rows.csv": (HEADER + "\n" + "RXX,2024-04-01\n" * 250_000).encode(),
        "plain-zip.xlsx": _plain_zip(),
    }


def _broken_part(xlsx: bytes, prefix: str, body: bytes) -> bytes:
    """The workbook with the parts named ``prefix...`` replaced by broken XML."""
    src = zipfile.ZipFile(io.BytesIO(xlsx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.startswith(prefix):
                data = b'<?xml version="1.0"?>' + body
            dst.writestr(item, data)
    return out.getvalue()


def _plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("notes.txt", "hello")
    return out.getvalue()


# --- the page and its headers -------------------------------------------------------------


def test_form_page_has_the_security_headers_and_no_script(server):
    r = httpx.get(f"{server.url}/", timeout=30)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp  # no script may run at all
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text.lower() and "http://" not in r.text and "https://" not in r.text
    assert 'enctype="multipart/form-data"' in r.text and 'name="org"' in r.text
    assert "nothing you upload is kept" in r.text.lower()
    # The standard and its templates are served from the project's docs.
    standard = httpx.get(f"{server.url}/standard", timeout=30)
    assert standard.status_code == 200 and 'id="the-rules"' in standard.text
    template = httpx.get(f"{server.url}/templates/flex-summary-template.csv", timeout=30)
    assert template.text.startswith("org_code,period_start")
    assert "attachment" in template.headers["content-disposition"]
    assert httpx.get(f"{server.url}/templates/..%2Fflex-data-standard.md").status_code == 404


def test_the_worked_example_is_accepted(server):
    r = server.post("worked-example-summary.csv", WORKED_EXAMPLE.read_bytes())
    server.assert_nothing_kept()
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "accepted" and body["accepted"] is True
    assert body["rows"] == 3 and body["form"] == "summary" and body["failures"] == []
    assert body["kept"] is False
    page = server.post("worked-example-summary.csv", WORKED_EXAMPLE.read_bytes(), json=False)
    server.assert_nothing_kept()
    assert "File accepted" in page.text and page.headers["cache-control"] == "no-store"


def test_a_sum_error_names_the_rule_the_row_and_the_numbers(server):
    r = server.post("sum-error.csv", SUM_ERROR, org="RXX")
    server.assert_nothing_kept()
    body = r.json()
    assert body["status"] == "rejected" and body["org"] == "RXX"
    [failure] = body["failures"]
    assert failure["rule"] == "outcomes-sum" and failure["rows"] == [2]
    assert failure["example_rows"] == [
        {"row": 2, "approved_in_full": "70", "approved_with_changes": "25", "declined": "15",
         "withdrawn": "4", "pending": "9", "requests_received": "120"}
    ]  # fmt: skip
    assert "requests_received" in failure["advice"]
    page = server.post("sum-error.csv", SUM_ERROR, json=False).text
    server.assert_nothing_kept()
    summary = page.split('class="error-summary"')[1].split("</div>")[0]
    assert 'href="#problem-1"' in summary and "outcomes-sum" in summary and "row 2" in summary
    problem = page.split('id="problem-1"')[1]
    for value in ("70", "25", "15", "4", "9", "120"):
        assert f"<td>{value}</td>" in problem
    assert "What to do" in problem and "Your file has been deleted" in page


def test_an_xlsx_report_names_the_sheet_read(server):
    rows = [line.split(",") for line in WORKED_EXAMPLE.read_text().splitlines()]
    r = server.post("example.xlsx", _xlsx(rows))
    server.assert_nothing_kept()
    assert r.json()["status"] == "accepted" and r.json()["sheet"] == "Sheet"


def test_everything_from_the_file_is_escaped(server):
    evil = "<script>alert(1)</script>"
    data = f"{HEADER}\n{evil},2024-04-01,2024-06-30,<img src=x onerror=alert(2)>,1\n".encode()
    page = server.post(f'{evil}".csv', data, json=False).text
    server.assert_nothing_kept()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower() and "<img" not in page.lower()


def test_the_ods_code_is_checked_and_an_empty_form_is_explained(server):
    r = server.post("x.csv", WORKED_EXAMPLE.read_bytes(), org="<b>", json=False)
    assert r.status_code == 400 and 'href="#org"' in r.text and 'id="org"' in r.text
    empty = httpx.post(f"{server.url}/", files={"file": ("", b"")}, timeout=30)
    assert empty.status_code == 400 and 'href="#file"' in empty.text
    server.assert_nothing_kept()


# --- limits -------------------------------------------------------------------------------


def test_a_file_past_the_size_limit_is_refused_while_it_is_read(server):
    sent = 0

    def body():  # chunked, no Content-Length: the server must count as it reads
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
        for _ in range(200):  # 200 MiB offered
            sent += 1024 * 1024
            yield b"x" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    started = time.monotonic()
    try:
        r = httpx.post(
            f"{server.url}/", content=body(), timeout=60,
            headers={"content-type": "multipart/form-data; boundary=b",
                     "accept": "application/json"},
        )  # fmt: skip
        assert r.status_code == 413 and r.json()["failures"][0]["rule"] == "too-large"
    except httpx.HTTPError:
        pass  # the server may close the connection as soon as it has answered
    assert sent < 100 * 1024 * 1024, f"the client was let send {sent:,} bytes"
    assert time.monotonic() - started < 30
    server.assert_nothing_kept()
    # A declared length past the limit is refused before any of the body is read.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 1073741824\r\n\r\n"
        )
        assert s.recv(4096).startswith(b"HTTP/1.1 413")
    server.assert_nothing_kept()
    assert server.post("ok.csv", WORKED_EXAMPLE.read_bytes()).json()["accepted"]


def test_a_slow_upload_is_cut_off_at_the_time_limit(server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.csv"\r\n\r\nabc'
        )
        answer = s.recv(4096)  # then nothing more is sent
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - started < 15  # FLEXBENCH_SERVE_UPLOAD_SECONDS=4 here
    server.assert_nothing_kept()


def test_a_1_gib_xlsx_bomb_is_refused_in_seconds_with_bounded_memory(server, tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    _write_xlsx_bomb(bomb, 1024**3)
    with memory_sampler(server) as peaks:
        started = time.monotonic()
        r = server.post("bomb.xlsx", bomb.read_bytes())
        elapsed = time.monotonic() - started
    server.assert_nothing_kept()
    body = r.json()
    assert body["status"] == "rejected"
    assert body["failures"][0]["rule"] == "too-large-inflated"
    assert elapsed < 10, elapsed
    print(f"bomb: {elapsed:.2f} s, tree RSS peak {peaks['rss'] / 2**20:.0f} MiB, "
          f"PSS peak {peaks['pss'] / 2**20:.0f} MiB")  # fmt: skip
    # The server's whole process tree, shared pages counted in every process that maps them
    # (RSS) and counted once (PSS): the bomb is refused from the zip's directory, in the
    # server's own process, so no checking worker is started for it.
    assert peaks["rss"] < 500 * 2**20
    assert peaks["pss"] < 500 * 2**20


def test_the_servers_refusal_of_a_bomb_is_the_checks_own(server, tmp_path):
    """The upload page refuses a zip bomb before any worker sees it, with the rule and the
    words of ``flexbench validate``'s own check of the same file."""
    from flexbench.validate import check_file

    bomb = tmp_path / "bomb.xlsx"
    _write_xlsx_bomb(bomb, 1024**3)
    body = server.post("bomb.xlsx", bomb.read_bytes()).json()
    own = check_file(bomb).report()
    assert own["failures"][0]["rule"] == "too-large-inflated"
    assert [(f["rule"], f["column"], f["description"]) for f in body["failures"]] == [
        (f["rule"], f["column"], f["description"]) for f in own["failures"]
    ]
    server.assert_nothing_kept()


@pytest.mark.slow
def test_twenty_hostile_uploads_at_once_all_get_an_answer(server, tmp_path):
    corpus = hostile_corpus(tmp_path)
    assert len(corpus) >= 20
    assert all(len(data) <= MAX_DOWNLOAD_BYTES for data in corpus.values())
    names = list(corpus)[:20]

    def send(name):
        started = time.monotonic()
        r = server.post(name, corpus[name], timeout=180)
        return name, r.status_code, r.json(), time.monotonic() - started

    with memory_sampler(server) as peaks:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(send, names))
        elapsed = time.monotonic() - started
    server.assert_nothing_kept()
    for name, status, body, _ in answers:
        assert status in (200, 422), (name, status, body)
        assert body["accepted"] is False, name  # none of them is a publication
        assert body["status"] in ("rejected", "unchecked"), name
    by_name = {name: body for name, _, body, _ in answers}
    assert by_name["zip-bomb.xlsx"]["failures"][0]["rule"] == "too-large-inflated"
    assert by_name["personal-data.csv"]["failures"][0]["rule"] == "personal-data"
    print(
        f"20 hostile uploads: {elapsed:.1f} s, slowest {max(a[3] for a in answers):.1f} s, "
        f"tree RSS peak {peaks['rss'] / 2**20:.0f} MiB, PSS peak {peaks['pss'] / 2**20:.0f} MiB"
    )
    assert elapsed < 170
    # The service still answers, and answers a good file correctly.
    assert server.post("ok.csv", WORKED_EXAMPLE.read_bytes()).json()["accepted"] is True
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.assert_nothing_kept()


def test_it_listens_on_loopback_only(server):
    listening = [
        c.laddr.ip
        for p in server.tree()
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and set(listening) == {"127.0.0.1"}
    from flexbench.cli import _parser

    assert _parser().parse_args(["serve"]).host == "127.0.0.1"


# --- the checker's worker processes -------------------------------------------------------


def crash_job() -> dict:
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def slow_job(seconds: float) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}


def greedy_job() -> dict:
    hog = bytearray(4 * 1024**3)  # past the memory limit
    return {"size": len(hog)}


def pid_job() -> dict:
    return {"pid": os.getpid()}


def _checker(monkeypatch, **kw) -> Checker:
    # The children import the jobs from this module: the forkserver imports it once first
    # (it finds modules on PYTHONPATH only, not on the sys.path pytest made).
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, str(REPO)]))
    return Checker(warm_modules=["test_serve"], **kw)


def test_a_check_that_crashes_or_runs_out_of_memory_or_time_is_reported_not_fatal(monkeypatch):
    import asyncio

    async def scenario():
        checker = _checker(monkeypatch, workers=1)
        await asyncio.to_thread(checker.warm_up)
        checker.limits = Limits(seconds=20, memory_bytes=256 * 2**20)
        checker.job = crash_job
        with pytest.raises(Unchecked, match="stopped before it finished"):
            await checker.run()
        checker.job = greedy_job
        with pytest.raises(Unchecked, match="more memory"):
            await checker.run()
        checker.job = slow_job
        checker.limits = Limits(seconds=2)
        started = time.monotonic()
        with pytest.raises(Unchecked, match="longer than is allowed"):
            await checker.run(30)
        assert time.monotonic() - started < 10
        checker.job = pid_job
        checker.limits = Limits(seconds=20)
        started = time.monotonic()
        first, second = await checker.run(), await checker.run()
        assert first["pid"] != second["pid"]  # a fresh process for each check
        assert first["pid"] != os.getpid()
        print(f"two checks after a killed one: {time.monotonic() - started:.2f} s")
        assert time.monotonic() - started < 10
        assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() in (
            psutil.STATUS_ZOMBIE,
            psutil.STATUS_DEAD,
        )

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_checks_past_the_queue_are_refused_as_busy(monkeypatch):
    import asyncio

    async def scenario():
        checker = _checker(monkeypatch, workers=1, queue=1, limits=Limits(seconds=20))
        checker.job = slow_job
        first = asyncio.create_task(checker.run(2))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(checker.run(0))  # waits its turn
        await asyncio.sleep(0.2)
        with pytest.raises(Busy):
            await checker.run(0)  # one more than the queue holds
        assert await first == {"slept": 2} and await second == {"slept": 0}

    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.mark.slow
def test_uploads_past_the_bound_are_answered_busy_and_the_service_recovers(tmp_path):
    uploads = tmp_path / "uploads"
    with running_server(
        uploads, FLEXBENCH_SERVE_WORKERS="1", FLEXBENCH_SERVE_QUEUE="0",
        FLEXBENCH_SERVE_UPLOAD_SECONDS="4",
    ) as server:  # fmt: skip
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
            slow.sendall(  # holds the only place, sending nothing more
                b"POST / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 9999\r\n\r\n"
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.csv"\r\n\r\n'
            )
            time.sleep(0.5)
            busy = server.post("ok.csv", WORKED_EXAMPLE.read_bytes())
            assert busy.status_code == 429 and busy.headers["retry-after"] == "60"
            assert busy.json()["problems"][0]["rule"] == "busy"
            assert slow.recv(4096).startswith(b"HTTP/1.1 408")
        server.assert_nothing_kept()
        assert server.post("ok.csv", WORKED_EXAMPLE.read_bytes()).json()["accepted"] is True
        server.assert_nothing_kept()


def test_the_compose_validator_service_is_healthchecked_and_published_on_loopback():
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    service = compose["services"]["validator"]
    assert service["command"][:3] == ["python", "-m", "flexbench.serve"]
    assert service["healthcheck"]["test"][0] == "CMD"
    assert service["healthcheck"]["test"][-1].endswith(":8001/healthz")
    assert service["ports"] and all(p.startswith("127.0.0.1:") for p in service["ports"])
    assert any(t.startswith(service["environment"]["FLEXBENCH_SERVE_TMP"] + ":")
               for t in service["tmpfs"])  # fmt: skip
