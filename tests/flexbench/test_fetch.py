"""Fetch safety and the landing zone (flexbench/fetch.py).

URLs come from outside (the pledge feed supplies them), so the fetch refuses what it must not
touch before connecting: only https (http/file where local use is on), no private, link-local
or reserved addresses, a size cap, a timeout, and every redirect hop checked again. Literal IP
addresses are used for the forbidden hosts: ``check_url`` refuses them without sending anything.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from werkzeug import Request, Response

from flexbench.fetch import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    FetchError,
    FetchPolicy,
    UnsafeURLError,
    check_url,
    fetch_to_landing,
    get_bytes,
)

LOCAL = FetchPolicy(allow_local=True, retries=1, backoff=0.01)
PUBLIC_ONLY = FetchPolicy(allow_local=False, retries=1, backoff=0.01)


@pytest.fixture(autouse=True)
def no_env_limits(monkeypatch):
    for name in ("TIMEOUT", "RETRIES", "BACKOFF", "MAX_BYTES", "MAX_SECONDS"):
        monkeypatch.delenv(f"FLEXBENCH_FETCH_{name}", raising=False)


# --- which URLs may be fetched --------------------------------------------------------------

REFUSED = [
    # (url, policy, words the refusal must contain)
    ("http://example.org/flex.csv", PUBLIC_ONLY, "only https"),
    ("ftp://example.org/flex.csv", LOCAL, "only https"),
    ("file:///etc/passwd", PUBLIC_ONLY, "file:// URLs are allowed only for local use"),
    ("https://127.0.0.1/flex.csv", PUBLIC_ONLY, "loopback"),
    ("https://[::1]/flex.csv", PUBLIC_ONLY, "loopback"),
    ("https://10.20.30.40/flex.csv", PUBLIC_ONLY, "non-public address (10.20.30.40)"),
    ("https://192.168.1.10/flex.csv", PUBLIC_ONLY, "non-public"),
    ("https://169.254.169.254/latest/meta-data/", PUBLIC_ONLY, "non-public"),
    ("https://[fe80::1]/flex.csv", PUBLIC_ONLY, "non-public"),
    ("https://0.0.0.0/flex.csv", PUBLIC_ONLY, "non-public"),
    # local use opens loopback, never the rest of the private network
    ("http://10.20.30.40/flex.csv", LOCAL, "non-public"),
    ("http://169.254.169.254/latest/meta-data/", LOCAL, "non-public"),
    ("https:///flex.csv", LOCAL, "no host"),
]


@pytest.mark.parametrize(("url", "policy", "words"), REFUSED)
def test_unsafe_urls_are_refused_before_connecting(url, policy, words):
    with pytest.raises(UnsafeURLError, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_url(url, policy)


ALLOWED = [
    ("https://93.184.216.34/flex.csv", PUBLIC_ONLY),  # a public address
    ("http://127.0.0.1:8765/flex.csv", LOCAL),
    ("file:///tmp/flex.csv", LOCAL),
]


@pytest.mark.parametrize(("url", "policy"), ALLOWED)
def test_safe_urls_pass_the_check(url, policy):
    check_url(url, policy)  # raises when refused


def test_a_redirect_to_a_forbidden_address_is_refused(server):
    server.expect_request("/flex.csv").respond_with_response(
        Response(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    )
    with pytest.raises(UnsafeURLError, match="non-public"):
        get_bytes(server.url_for("/flex.csv"), LOCAL)


def test_a_redirect_to_a_local_file_is_refused_even_for_local_use(server):
    server.expect_request("/flex.csv").respond_with_response(
        Response(status=302, headers={"Location": "file:///etc/passwd"})
    )
    with pytest.raises(UnsafeURLError, match="not a web address"):
        get_bytes(server.url_for("/flex.csv"), LOCAL)


def test_a_redirect_to_an_allowed_address_is_followed(server):
    server.expect_request("/old.csv").respond_with_response(
        Response(status=301, headers={"Location": "/new.csv"})
    )
    server.expect_request("/new.csv").respond_with_data(b"org_code\nRJ1\n")

    status, _, body = get_bytes(server.url_for("/old.csv"), LOCAL)

    assert (status, body) == (200, b"org_code\nRJ1\n")


def test_a_refused_redirect_is_a_failed_fetch_with_the_reason(server, tmp_path):
    server.expect_request("/flex.csv").respond_with_response(
        Response(status=302, headers={"Location": "http://10.0.0.7/flex.csv"})
    )
    result = fetch_to_landing("publications", server.url_for("/flex.csv"), tmp_path, LOCAL)

    assert result.status == "failed"
    assert "10.0.0.7" in result.error
    assert not (tmp_path / "publications").exists()  # nothing landed


# --- the tricky-URL table: refused before any socket opens -----------------------------------


@pytest.fixture
def connects(monkeypatch):
    """Every address a socket of this process connects to, in order."""
    import _socket
    import socket

    seen: list[tuple] = []

    def connect(sock, address):
        seen.append(tuple(address)[:2])
        return _socket.socket.connect(sock, address)

    def connect_ex(sock, address):
        seen.append(tuple(address)[:2])
        return _socket.socket.connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return seen


#: Names the fake resolver knows (no real DNS in these tests); a list is one answer per call.
RESOLVER = {
    "trust.example": ["127.0.0.1"],
    "inside.example": ["10.1.2.3"],
    "cgnat.example": ["100.64.7.7"],
    "mixed.example": ["93.184.216.34", "10.1.2.3"],
    "v6inside.example": ["fd00::1"],
    "mapped.example": ["::ffff:169.254.169.254"],
    "scoped.example": ["fe80::1%eth0"],
    "metadata.example": ["169.254.169.254"],
}


@pytest.fixture
def resolver(monkeypatch):
    """Replace the system resolver; ``answers`` may be changed by a test (DNS rebinding)."""
    import socket

    answers = {name: list(addrs) for name, addrs in RESOLVER.items()}
    asked: list[str] = []

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        found = answers[host]
        if callable(found):
            found = found()
        out = []
        for addr in found:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            sockaddr = (addr, port or 0, 0, 0) if fam == socket.AF_INET6 else (addr, port or 0)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, asked


TRICKY = [
    # (url, policy, words the refusal must contain). Each case: one way of reaching inside.
    # Backslashes: some parsers read the host after "\@", the HTTP client reads it before.
    ("https://10.0.0.1\\@example.org/x.csv", PUBLIC_ONLY, "backslash"),
    ("https://127.0.0.1\\@example.org/x.csv", PUBLIC_ONLY, "backslash"),
    ("https://169.254.169.254\\@example.org/x.csv", PUBLIC_ONLY, "backslash"),
    ("https://example.org\\.10.0.0.1/x.csv", PUBLIC_ONLY, "backslash"),
    ("http://10.0.0.1\\@127.0.0.1/x.csv", LOCAL, "backslash"),
    # userinfo: the host is what follows the last "@"; a reader may stop at the first
    ("https://user@example.org/x.csv", PUBLIC_ONLY, "user@host"),
    ("https://example.org@10.0.0.1/x.csv", PUBLIC_ONLY, "user@host"),
    ("https://example.org:443@10.0.0.1/x.csv", PUBLIC_ONLY, "user@host"),
    ("https://127.0.0.1%2f@example.org/x.csv", PUBLIC_ONLY, "user@host"),
    # ports and brackets: refusals, not ValueError
    ("https://example.org:99999/x.csv", PUBLIC_ONLY, "is not a port number"),
    ("https://example.org:0/x.csv", PUBLIC_ONLY, "is not a port number"),
    ("https://example.org:https/x.csv", PUBLIC_ONLY, "is not a port number"),
    ("https://example.org:/x.csv", PUBLIC_ONLY, "is not a port number"),
    ("https://example.org:+443/x.csv", PUBLIC_ONLY, "is not a port number"),
    ("https://example.org:４４３/x.csv", PUBLIC_ONLY, "is not a port number"),
    ("https://[example.org]/x.csv", PUBLIC_ONLY, "malformed"),
    ("https://[::1/x.csv", PUBLIC_ONLY, "malformed"),
    ("https://exa[mple.org]/x.csv", PUBLIC_ONLY, "malformed"),
    # IPv4 written otherwise than as a dotted quad: the C resolver reads all as 127.0.0.1
    ("https://2130706433/x.csv", PUBLIC_ONLY, "not a plain IPv4 address"),
    ("http://2130706433/x.csv", LOCAL, "not a plain IPv4 address"),
    ("https://0x7f.1/x.csv", PUBLIC_ONLY, "not a plain IPv4 address"),
    ("https://0x7f000001/x.csv", PUBLIC_ONLY, "not a plain IPv4 address"),
    ("https://0177.0.0.1/x.csv", PUBLIC_ONLY, "not a plain IPv4 address"),
    ("https://127.1/x.csv", PUBLIC_ONLY, "not a plain IPv4 address"),
    ("https://10.0.0.1./x.csv", PUBLIC_ONLY, "not a plain IPv4 address"),
    ("https://017700000001/x.csv", PUBLIC_ONLY, "not a plain IPv4 address"),
    # percent-encodings and look-alike characters in the host
    ("https://%31%32%37.0.0.1/x.csv", PUBLIC_ONLY, "plain ASCII"),
    ("https://127%2e0%2e0%2e1/x.csv", PUBLIC_ONLY, "plain ASCII"),
    ("https://１２７.０.０.１/x.csv", PUBLIC_ONLY, "plain ASCII"),
    ("https://exаmple.org/x.csv", PUBLIC_ONLY, "plain ASCII"),  # Cyrillic "а"
    ("https://example.org /x.csv", PUBLIC_ONLY, "spaces and control characters"),
    ("https://example.org\t.10.0.0.1/x.csv", PUBLIC_ONLY, "spaces and control characters"),
    ("https://inside_.example!/x.csv", PUBLIC_ONLY, "not a valid host name"),
    # IPv6 forms
    ("https://[::1]/x.csv", PUBLIC_ONLY, "loopback"),
    ("https://[0:0:0:0:0:0:0:1]/x.csv", PUBLIC_ONLY, "loopback"),
    ("https://[::ffff:127.0.0.1]/x.csv", PUBLIC_ONLY, "non-public address (::ffff:7f00:1)"),
    ("http://[::ffff:127.0.0.1]/x.csv", LOCAL, "non-public address"),
    ("https://[::ffff:7f00:1]/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://[::ffff:a9fe:a9fe]/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://[::127.0.0.1]/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://[fe80::1%25eth0]/x.csv", PUBLIC_ONLY, "zone identifiers"),
    ("https://[fe80::1]/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://[fd00::1]/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://[64:ff9b::a00:1]/x.csv", PUBLIC_ONLY, "non-public"),  # NAT64 of 10.0.0.1
    ("https://[2002:a00:1::]/x.csv", PUBLIC_ONLY, "non-public"),  # 6to4 of 10.0.0.1
    ("https://[ff02::1]/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://[::]/x.csv", PUBLIC_ONLY, "non-public"),
    # IPv4 special-purpose ranges
    ("https://100.64.0.1/x.csv", PUBLIC_ONLY, "non-public address (100.64.0.1)"),
    ("https://100.127.255.254/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://192.0.0.8/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://192.0.2.1/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://198.18.0.1/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://224.0.0.1/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://240.0.0.1/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://255.255.255.255/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://0.0.0.0/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://172.16.0.1/x.csv", PUBLIC_ONLY, "non-public"),
    ("http://100.64.0.1/x.csv", LOCAL, "non-public"),
    ("http://192.168.0.1/x.csv", LOCAL, "non-public"),
    # names that resolve inside (the fake resolver)
    ("https://localhost.example/x.csv", PUBLIC_ONLY, "cannot resolve"),
    ("https://trust.example/x.csv", PUBLIC_ONLY, "loopback"),
    ("https://inside.example/x.csv", PUBLIC_ONLY, "non-public address (10.1.2.3)"),
    ("http://inside.example/x.csv", LOCAL, "non-public address (10.1.2.3)"),
    ("https://cgnat.example/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://mixed.example/x.csv", PUBLIC_ONLY, "non-public address (10.1.2.3)"),
    ("https://v6inside.example/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://mapped.example/x.csv", PUBLIC_ONLY, "non-public"),
    ("https://scoped.example/x.csv", PUBLIC_ONLY, "non-public"),
    ("http://metadata.example/latest/meta-data/", LOCAL, "non-public"),
]


@pytest.mark.parametrize(("url", "policy", "words"), TRICKY)
def test_a_tricky_url_is_refused_before_any_socket_opens(url, policy, words, connects, resolver):
    with pytest.raises(FetchError, match=re.escape(words)) as refused:
        get_bytes(url, policy)

    assert not connects
    if words != "cannot resolve":
        assert isinstance(refused.value, UnsafeURLError)


@pytest.mark.parametrize(("url", "policy", "words"), TRICKY)
def test_a_tricky_url_is_a_failed_fetch_never_an_exception(
    url, policy, words, connects, resolver, tmp_path
):
    result = fetch_to_landing("publications", url, tmp_path, policy)

    assert result.status == "failed"
    assert words in result.error
    assert not connects


BAD_LOCATIONS = [
    "http://10.0.0.1\\@127.0.0.1:{port}/x.csv",
    "http://user@127.0.0.1:{port}/x.csv",
    "http://2130706433:{port}/x.csv",
    "http://0x7f.1:{port}/x.csv",
    "http://[::ffff:127.0.0.1]:{port}/x.csv",
    "http://inside.example:{port}/x.csv",
    "http://100.64.0.1/x.csv",
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:99999/x.csv",
    "//10.0.0.1/x.csv",
    "\\\\10.0.0.1\\x.csv",
]


@pytest.fixture
def redirecting():
    """A loopback server that answers every GET with ``302 Location: <what the test set>``,
    sent verbatim (a hostile server's header is not tidied by any framework)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"location": "/", "requests": 0}

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            self.send_response(302)
            self.send_header("Location", state["location"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield httpd.server_address[1], state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("location", BAD_LOCATIONS)
def test_a_redirect_to_a_tricky_url_is_refused_before_connecting_to_it(
    location, redirecting, connects, resolver
):
    port, state = redirecting
    state["location"] = location.format(port=port)

    with pytest.raises(UnsafeURLError, match="redirected to"):
        get_bytes(f"http://127.0.0.1:{port}/flex.csv", LOCAL)

    assert connects == [("127.0.0.1", port)]  # the trust's server, and nothing else
    assert state["requests"] == 1


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(
    server, connects, resolver
):
    server.expect_request("/flex.csv").respond_with_data(b"org_code\nRJ1\n")

    status, _, body = get_bytes(f"http://trust.example:{server.port}/flex.csv", LOCAL)

    assert (status, body) == (200, b"org_code\nRJ1\n")
    assert connects == [("127.0.0.1", server.port)]
    (request, _), *_ = server.log
    assert request.headers["Host"] == f"trust.example:{server.port}"


def test_a_name_that_changes_answer_after_the_check_is_not_followed_inside(
    server, connects, resolver
):
    # DNS rebinding: the first answer (checked) is loopback, the next points inside.
    answers, asked = resolver
    replies = iter([["127.0.0.1"]])
    answers["rebind.example"] = lambda: next(replies, ["10.9.9.9"])
    server.expect_request("/flex.csv").respond_with_data(b"secret")

    with pytest.raises(UnsafeURLError, match="non-public address \\(10.9.9.9\\)"):
        get_bytes(f"http://rebind.example:{server.port}/flex.csv", LOCAL)

    assert asked.count("rebind.example") == 2  # checked, then resolved again to connect
    assert ("10.9.9.9", server.port) not in connects
    assert not server.log


def test_the_checks_hold_on_the_connection_itself_not_only_before_it(connects, resolver):
    # A request sent past the URL check (the session used directly) still cannot open a
    # socket to a refused address: the connection checks what it connects to.
    from flexbench.fetch import _session

    session = _session(LOCAL)
    with pytest.raises(UnsafeURLError, match="non-public address \\(10.1.2.3\\)"):
        session.get("http://inside.example/x.csv", timeout=2)
    assert not connects


def test_address_rules_follow_the_special_purpose_registries():
    from flexbench.fetch import address_refusal

    public = ["93.184.216.34", "8.8.8.8", "2606:4700::1", "192.88.98.1"]
    assert [address_refusal(a, False) for a in public] == [None] * len(public)
    # local use opens loopback, nothing else
    assert address_refusal("127.0.0.1", True) is None
    assert address_refusal("::1", True) is None
    for inside in ["10.0.0.1", "100.64.0.1", "192.0.0.170", "169.254.1.1", "::ffff:8.8.8.8"]:
        assert address_refusal(inside, True) is not None


# --- size cap and timeout -------------------------------------------------------------------


_ENDLESS_SERVER = r"""
import sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

class Endless(BaseHTTPRequestHandler):
    def do_GET(self):
        # No Content-Length: the cap must be enforced while reading (64 MiB offered).
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(1024):
                self.wfile.write(chunk)
        except OSError:
            pass

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Endless)
server.timeout = 20
print(server.server_address[1], flush=True)
deadline = time.monotonic() + 20  # stops by itself
while time.monotonic() < deadline:
    server.handle_request()
"""


def test_an_endless_response_is_cut_at_the_size_cap_with_bounded_memory():
    # The server runs in its own process so tracemalloc sees only the fetching side.
    proc = subprocess.Popen(
        [sys.executable, "-c", _ENDLESS_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        policy = FetchPolicy(allow_local=True, max_bytes=1024 * 1024, retries=0)
        tracemalloc.start()
        try:
            with pytest.raises(FetchError, match="exceeds the 1048576 byte limit"):
                get_bytes(f"http://127.0.0.1:{port}/big.csv", policy)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert peak < 8 * 1024 * 1024


def test_a_declared_length_over_the_cap_is_refused_before_reading(server):
    server.expect_request("/big.csv").respond_with_data(b"y" * 300_000)
    policy = FetchPolicy(allow_local=True, max_bytes=100_000, retries=0)

    with pytest.raises(FetchError, match="300000 bytes exceeds the size limit"):
        get_bytes(server.url_for("/big.csv"), policy)


def test_a_local_file_over_the_cap_is_refused(tmp_path):
    big = tmp_path / "big.csv"
    big.write_bytes(b"z" * 5000)
    policy = FetchPolicy(allow_local=True, max_bytes=4000)

    with pytest.raises(FetchError, match="larger than the 4000 byte limit"):
        get_bytes(big.as_uri(), policy)


def test_a_server_slower_than_the_timeout_fails_in_bounded_time(server):
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response(b"late")

    server.expect_request("/slow.csv").respond_with_handler(slow)
    policy = FetchPolicy(allow_local=True, timeout=(0.5, 0.2), retries=1, backoff=0.01)

    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        get_bytes(server.url_for("/slow.csv"), policy)

    assert time.monotonic() - started < 0.9  # two attempts of 0.2 s, not the server's 1 s


def test_a_client_error_is_not_retried(server, tmp_path):
    server.expect_request("/gone.csv").respond_with_data("not found", status=404)

    result = fetch_to_landing("publications", server.url_for("/gone.csv"), tmp_path, LOCAL)

    assert result.status == "failed"
    assert result.error.endswith("HTTP 404")
    assert len(server.log) == 1


ENV_LIMITS = [
    # (variable, value, policy attribute, expected value)
    ("FLEXBENCH_FETCH_TIMEOUT", "2.5", "timeout", (2.5, 2.5)),
    ("FLEXBENCH_FETCH_TIMEOUT", "1,7", "timeout", (1.0, 7.0)),
    ("FLEXBENCH_FETCH_TIMEOUT", "60", "timeout", (DEFAULT_TIMEOUT[0], 60.0)),
    ("FLEXBENCH_FETCH_RETRIES", "0", "retries", 0),
    ("FLEXBENCH_FETCH_BACKOFF", "0.1", "backoff", 0.1),
    ("FLEXBENCH_FETCH_MAX_BYTES", "1000", "max_bytes", 1000),
    ("FLEXBENCH_FETCH_MAX_SECONDS", "12", "max_seconds", 12.0),
]


@pytest.mark.parametrize(("variable", "value", "attribute", "expected"), ENV_LIMITS)
def test_fetch_limits_can_be_set_from_the_environment(
    monkeypatch, variable, value, attribute, expected
):
    monkeypatch.setenv(variable, value)
    assert getattr(FetchPolicy(allow_local=True), attribute) == expected


def test_the_default_limits_apply_without_environment():
    policy = FetchPolicy()
    assert (policy.allow_local, policy.timeout, policy.max_bytes) == (
        False,
        DEFAULT_TIMEOUT,
        DEFAULT_MAX_BYTES,
    )


@pytest.mark.parametrize("value", ["soon", "-1", "1,2,3", "0,5"])
def test_a_bad_timeout_setting_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv("FLEXBENCH_FETCH_TIMEOUT", value)
    with pytest.raises(FetchError, match="FLEXBENCH_FETCH_TIMEOUT"):
        FetchPolicy()


# --- landing zone, provenance, unchanged detection -------------------------------------------


def provenance(landing: Path, sha: str) -> list[dict]:
    path = landing / "publications" / f"{sha}.provenance.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_fetched_file_is_landed_unchanged_under_its_sha256_with_provenance(server, tmp_path):
    body = b"org_code,period_start\r\nRJ1,2024-04-01\r\n"
    server.expect_request("/rj1.csv").respond_with_data(body, content_type="text/csv")

    result = fetch_to_landing("publications", server.url_for("/rj1.csv"), tmp_path, LOCAL)

    sha = hashlib.sha256(body).hexdigest()
    assert (result.status, result.sha256, result.size) == ("fetched", sha, len(body))
    assert Path(result.path) == tmp_path / "publications" / f"{sha}.csv"
    assert Path(result.path).read_bytes() == body  # byte for byte, CRLF kept
    (record,) = provenance(tmp_path, sha)
    assert record["url"] == server.url_for("/rj1.csv")
    assert (record["http_status"], record["sha256"], record["size"]) == (200, sha, len(body))
    assert record["fetched_at"] == result.fetched_at


def test_a_conditional_get_answered_304_is_unchanged_and_still_recorded(server, tmp_path):
    body = b"org_code\nRJ1\n"
    etag = '"v1"'

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(
            body, headers={"ETag": etag, "Last-Modified": "Wed, 01 Jan 2025 09:00:00 GMT"}
        )

    server.expect_request("/rj1.csv").respond_with_handler(handler)
    url = server.url_for("/rj1.csv")

    first = fetch_to_landing("publications", url, tmp_path, LOCAL)
    second = fetch_to_landing("publications", url, tmp_path, LOCAL)

    assert (first.status, second.status) == ("fetched", "unchanged")
    assert (second.http_status, second.sha256, second.path) == (304, first.sha256, first.path)
    sent = [req.headers.get("If-Modified-Since") for req, _ in server.log]
    assert sent == [None, "Wed, 01 Jan 2025 09:00:00 GMT"]
    assert [r["http_status"] for r in provenance(tmp_path, first.sha256)] == [200, 304]


def test_same_content_without_validators_is_unchanged_and_new_content_lands_beside_it(
    server, tmp_path
):
    url = server.url_for("/rj1.csv")
    server.expect_request("/rj1.csv").respond_with_data(b"version 1")
    first = fetch_to_landing("publications", url, tmp_path, LOCAL)
    second = fetch_to_landing("publications", url, tmp_path, LOCAL)
    server.clear()
    server.expect_request("/rj1.csv").respond_with_data(b"version 2")
    third = fetch_to_landing("publications", url, tmp_path, LOCAL)

    assert [r.status for r in (first, second, third)] == ["fetched", "unchanged", "fetched"]
    assert third.sha256 != first.sha256
    # Both versions stay in the landing zone.
    assert Path(first.path).read_bytes() == b"version 1"
    assert Path(third.path).read_bytes() == b"version 2"


def test_a_lost_landed_copy_is_fetched_again_not_reported_unchanged(server, tmp_path):
    etag = '"v1"'

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304)
        return Response(b"version 1", headers={"ETag": etag})

    server.expect_request("/rj1.csv").respond_with_handler(handler)
    url = server.url_for("/rj1.csv")
    first = fetch_to_landing("publications", url, tmp_path, LOCAL)
    Path(first.path).unlink()

    again = fetch_to_landing("publications", url, tmp_path, LOCAL)

    assert again.http_status == 200
    assert Path(again.path).read_bytes() == b"version 1"


def test_a_file_url_is_landed_for_local_use(tmp_path):
    source = tmp_path / "etr.csv"
    source.write_bytes(b'"RJ1","GUY\'S"\r\n')

    result = fetch_to_landing("ods_trusts", source.as_uri(), tmp_path / "landing", LOCAL)

    assert result.status == "fetched"
    assert Path(result.path).read_bytes() == source.read_bytes()


def test_a_long_retry_after_from_the_server_cannot_hold_the_run(server):
    # A hostile or confused server asks for an hour's wait before the retry.
    server.expect_request("/busy.csv").respond_with_data(
        "busy", status=503, headers={"Retry-After": "3600"}
    )
    policy = FetchPolicy(allow_local=True, retries=1, backoff=0.01, max_seconds=1)

    started = time.monotonic()
    status, _, _ = get_bytes(server.url_for("/busy.csv"), policy)

    assert status == 503
    assert len(server.log) == 2  # it was retried once, after at most max_seconds
    assert time.monotonic() - started < 3


def test_a_server_dripping_bytes_is_cut_off_at_the_total_read_time(server):
    def drip(request: Request) -> Response:
        def body():
            for _ in range(30):
                time.sleep(0.1)  # each piece well within the read timeout
                yield b"x"

        return Response(body(), content_type="text/csv")

    server.expect_request("/drip.csv").respond_with_handler(drip)
    policy = FetchPolicy(allow_local=True, retries=0, max_seconds=0.5)

    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 0.5 s"):
        get_bytes(server.url_for("/drip.csv"), policy)
    assert time.monotonic() - started < 2  # not the 3 s the server would take


def test_a_proxy_named_in_the_environment_carries_every_request(server, monkeypatch):
    # The session reads the proxy environment once per host (not per request): it must still
    # send the first request and every later one through the proxy.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens here: only the proxy can answer
    proxy = f"http://127.0.0.1:{server.port}"
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server.expect_request("/flex.csv").respond_with_data(b"org_code\nRJ1\n")
    policy = FetchPolicy(allow_local=True, retries=0, backoff=0.01, timeout=2.0)

    bodies = [get_bytes(f"http://127.0.0.1:{closed_port}/flex.csv", policy)[2] for _ in range(3)]

    assert bodies == [b"org_code\nRJ1\n"] * 3
    assert [req.path for req, _ in server.log] == ["/flex.csv"] * 3


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on loopback with a certificate for ``trust.example`` only, signed by a
    CA made here; records the TLS server name (SNI) and Host header of each request."""
    import datetime as dt
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("flexbench test CA"))
        .issuer_name(name("flexbench test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("trust.example"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("trust.example")]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    seen = {"sni": [], "host": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen["host"].append(self.headers.get("Host"))
            body = b"org_code\nRJ1\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda sock, server_name, ctx: seen["sni"].append(server_name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield httpd.server_address[1], ca_file, seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_https_to_a_pinned_address_still_checks_the_certificate_for_the_host_name(
    tls_server, connects, resolver, monkeypatch
):
    port, ca_file, seen = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    answers, _ = resolver
    answers["other.example"] = ["127.0.0.1"]  # same address, a name the certificate lacks

    status, _, body = get_bytes(f"https://trust.example:{port}/flex.csv", LOCAL)

    assert (status, body) == (200, b"org_code\nRJ1\n")
    assert connects == [("127.0.0.1", port)]  # connected to the checked address …
    assert seen["sni"] == ["trust.example"]  # … named the host in TLS …
    assert seen["host"] == [f"trust.example:{port}"]  # … and in the request
    with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        get_bytes(
            f"https://other.example:{port}/flex.csv", FetchPolicy(allow_local=True, retries=0)
        )
