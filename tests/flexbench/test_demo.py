"""The loopback server of `flexbench demo` and `flexbench bench` (flexbench/demo.py).

It stands in for trusts' web servers, so it speaks HTTP/1.1 with keep-alive as they do: a
refresh of many files from one host reuses its connections instead of opening one per file.
"""

from __future__ import annotations

import http.client
import time

from flexbench import demo
from flexbench.fetch import FetchPolicy, fetch_to_landing


def test_the_server_keeps_a_connection_open_for_many_requests(tmp_path):
    for i in range(3):
        (tmp_path / f"f{i}.csv").write_text(f"a,b\n{i},{i}\n")
    port = demo._free_port(0)
    with demo.serve(tmp_path, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        bodies, socks = [], set()
        for i in range(3):
            conn.request("GET", f"/f{i}.csv")
            resp = conn.getresponse()
            assert resp.version == 11
            bodies.append(resp.read())
            socks.add(id(conn.sock))
        # A conditional GET answered 304 leaves the connection usable too.
        conn.request(
            "GET", "/f0.csv", headers={"If-Modified-Since": resp.getheader("Last-Modified")}
        )
        not_modified = conn.getresponse()
        assert not_modified.status == 304 and not_modified.read() == b""
        conn.request("GET", "/f1.csv")
        assert conn.getresponse().read() == b"a,b\n1,1\n"
        socks.add(id(conn.sock))
        started = time.perf_counter()
    # Leaving the block does not wait for the client's idle connection.
    assert time.perf_counter() - started < 3
    conn.close()
    assert bodies == [f"a,b\n{i},{i}\n".encode() for i in range(3)]
    assert len(socks) == 1


def test_a_refresh_of_many_files_reuses_its_connections(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    for i in range(40):
        (served / f"f{i}.csv").write_text(f"a,b\n{i},{i}\n")
    connections = []
    original = demo._Server.process_request

    def counted(self, request, address):
        connections.append(address)
        return original(self, request, address)

    monkeypatch.setattr(demo._Server, "process_request", counted)
    policy = FetchPolicy(allow_local=True, retries=1, backoff=0.01)
    port = demo._free_port(0)
    with demo.serve(served, port):
        for round_ in ("first", "refresh"):
            results = [
                fetch_to_landing(
                    "t", f"http://127.0.0.1:{port}/f{i}.csv", tmp_path / "landing", policy
                )
                for i in range(40)
            ]
            expected = "fetched" if round_ == "first" else "unchanged"
            assert {r.status for r in results} == {expected}, round_
    # 80 requests one after another on the session's kept-alive connection, not 80 connections.
    assert 1 <= len(connections) <= 2


def test_answers_on_a_kept_alive_connection_do_not_wait_for_delayed_acks(tmp_path):
    # The headers and the body of an answer are two writes. Without TCP_NODELAY the body
    # waits for the client's delayed ACK of the headers: about 30-40 ms a request, which
    # made a one-connection fetch of 581 files take 16.5 s instead of 0.9 s.
    (tmp_path / "f.csv").write_text("a,b\n1,2\n" * 50)
    port = demo._free_port(0)
    with demo.serve(tmp_path, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        took = []
        for _ in range(50):
            started = time.perf_counter()
            conn.request("GET", "/f.csv")
            assert conn.getresponse().read().startswith(b"a,b\n")
            took.append(time.perf_counter() - started)
        conn.close()
    # The median request: about 1 ms here, 40 ms with the delayed ACK (a busy machine
    # slows some requests, not most of them).
    median = sorted(took)[len(took) // 2]
    assert median < 0.015, f"median request {median * 1000:.1f} ms"
