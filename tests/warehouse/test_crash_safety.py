"""A process killed in the middle of a load or a mart build leaves the warehouse as it was.

Loads and benchmark builds are one transaction each (docs/pipeline.md). Here the real pipeline
functions run in a subprocess that pauses *inside* its transaction, after it has already
written (a marker file says what it sees from inside); the test then SIGKILLs it, checks every
table of the warehouse is exactly as before (a checksum of each table's rows and columns),
and that the next run completes. Bounded in time: each subprocess gets at most
``PAUSE_TIMEOUT_S`` to reach its pause and is killed there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

import warehouse
from flexbench import demo, settings
from flexbench.pipeline import benchmark, pledge, publications, reference

AS_OF = date(2026, 10, 31)
EARLIER_AS_OF = date(2026, 3, 31)  # a different window: a build that would change the marts
PAUSE_TIMEOUT_S = 120

# Runs one pipeline step and stops inside its transaction, after it has written: a marker
# file records what the transaction sees; then it sleeps until the test kills it.
KILLED_STEP = textwrap.dedent(
    """
    import json, sys, time
    from datetime import date
    from pathlib import Path

    import warehouse
    from flexbench import settings
    from flexbench.pipeline import benchmark, publications

    mode, conf, marker, arg = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    s = settings.load(conf=conf)

    def pause(con, seen_sql):
        seen = [list(map(str, row)) for row in con.execute(seen_sql).fetchall()]
        marker.write_text(json.dumps(seen))
        time.sleep(600)  # SIGKILLed here, inside the open transaction
        sys.exit("was not killed")

    if mode == "build":
        # benchmark.build replaces every staging, intermediate and mart table in one
        # transaction; stop it after `arg` models have been replaced.
        stop_after = int(arg)
        real_render = warehouse.render
        calls = []
        real_connect = warehouse.connect
        cons = []

        def connect(*a, **k):
            cons.append(real_connect(*a, **k))
            return cons[-1]

        def render(sql, params=None):
            calls.append(1)
            if len(calls) == stop_after + 1:
                pause(cons[-1], "select as_of, window_end from intermediate.int_benchmark_window")
            return real_render(sql, params)

        warehouse.connect = connect
        warehouse.render = render
        benchmark.build(s, date.fromisoformat(conf["as_of"]))
    else:
        # publications.load: audit rows, raw rows, then staging.publications rebuilt as the
        # transaction's last statement; stop right after it.
        real_named = warehouse.build_layers_named

        def named(con, tables, params=None):
            real_named(con, tables, params)
            pause(con, "select count(*) from raw.publication_rows")

        warehouse.build_layers_named = named
        outcomes = json.loads(Path(arg).read_text())
        publications.load(s, outcomes, "killed-run", date.fromisoformat(conf["as_of"]))
    sys.exit("reached the end without pausing")
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def checksums(path: Path) -> dict[str, tuple]:
    """Every user table of the warehouse: its columns and types, row count and a checksum of
    its rows (order-independent)."""
    con = warehouse.connect(path, read_only=True)
    try:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where not internal order by all"
        ).fetchall()
        out = {}
        for schema, name in tables:
            columns = con.execute(
                "select column_name, data_type from duckdb_columns() "
                "where schema_name = ? and table_name = ? order by column_index",
                [schema, name],
            ).fetchall()
            count, digest = con.execute(
                "select count(*), md5(coalesce(string_agg(r, chr(10) order by r), '')) "
                f"from (select cast(t as varchar) as r from {schema}.{name} t)"
            ).fetchone()
            out[f"{schema}.{name}"] = (tuple(columns), count, digest)
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A warehouse with reference data, pledge sign-ups, half the trusts' publications and a
    benchmark built; the other half's validated publications held back for a later load."""
    root = tmp_path_factory.mktemp("crash")
    port = _free_port()
    made = demo.generate(root / "served", f"http://127.0.0.1:{port}", n_trusts=20)
    (root / "sources.yml").write_text(yaml.safe_dump(made["sources"], sort_keys=False))
    s = settings.load(sources=root / "sources.yml", warehouse=root / "data" / "base.duckdb")
    with demo.serve(root / "served", port):
        reference.load(s, reference.fetch(s))
        pledge.load(s, pledge.fetch(s))
        outcomes = []
        for batch in publications.batches(publications.registry(s)):
            outcomes += publications.validate_batch(s, publications.fetch_batch(s, batch), AS_OF)
    accepted = [o for o in outcomes if o["status"] == "accepted"]
    held_back = accepted[: len(accepted) // 2]
    publications.load(s, [o for o in outcomes if o not in held_back], "first-run", AS_OF)
    benchmark.build(s, AS_OF)
    held_path = root / "held_back.json"
    held_path.write_text(json.dumps(held_back, default=str))
    # Every file's outcome, for the run after a crash (see the audit-truth test).
    (root / "all_outcomes.json").write_text(json.dumps(outcomes, default=str))
    return s, held_path


@pytest.fixture
def copy(loaded, tmp_path):
    """A private copy of the loaded warehouse, and the settings pointing at it."""
    s, held_path = loaded
    path = tmp_path / "flexbench.duckdb"
    shutil.copy(s.warehouse_path, path)
    return settings.load(conf={**s.as_conf(), "warehouse": str(path)}), held_path


def kill_inside_transaction(s, mode: str, as_of: date, arg: str, tmp_path: Path) -> list:
    """Run the step in a subprocess, wait until it pauses inside its transaction, SIGKILL it.

    Returns what the transaction saw just before the kill."""
    marker = tmp_path / "paused.json"
    log = tmp_path / "killed-step.log"
    conf = {**s.as_conf(), "as_of": as_of.isoformat()}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_STEP, mode, json.dumps(conf), str(marker), arg],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
        )
    try:
        deadline = time.monotonic() + PAUSE_TIMEOUT_S
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"step exited ({proc.returncode}) before pausing:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"step did not pause within {PAUSE_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.1)
        time.sleep(0.2)  # the marker is written; the process is asleep in the transaction
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return json.loads(marker.read_text())


def test_a_benchmark_build_killed_half_way_leaves_the_previous_benchmark(copy, tmp_path):
    s, _ = copy
    before = checksums(s.warehouse_path)
    # Stop after every staging and intermediate model and the first mart were replaced.
    done = sum(len(warehouse.model_files(layer)) for layer in ("staging", "intermediate")) + 1
    assert len(warehouse.model_files("marts")) > 1

    seen = kill_inside_transaction(s, "build", EARLIER_AS_OF, str(done), tmp_path)

    # Inside the transaction, the models had been rebuilt for the earlier window …
    assert seen[0][0] == EARLIER_AS_OF.isoformat()
    # … and after the kill, every table is exactly as before the build started.
    assert checksums(s.warehouse_path) == before

    # The next build completes, for the window it was asked for.
    result = benchmark.build(s, EARLIER_AS_OF)

    con = warehouse.connect(s.warehouse_path, read_only=True)
    try:
        as_of = con.execute("select distinct as_of from marts.trust_benchmark").fetchall()
    finally:
        con.close()
    assert [str(a) for (a,) in as_of] == [EARLIER_AS_OF.isoformat()]
    assert date.fromisoformat(result["window_end"]) <= EARLIER_AS_OF
    assert result["trusts_with_data"] > 0


def test_a_publications_load_killed_before_commit_leaves_the_warehouse_unchanged(copy, tmp_path):
    s, held_path = copy
    before = checksums(s.warehouse_path)

    seen = kill_inside_transaction(s, "load", AS_OF, str(held_path), tmp_path)

    # Inside the transaction the held-back files' rows were already in raw …
    written = int(seen[0][0])
    assert written > before["raw.publication_rows"][1]
    # … and after the kill nothing of that load is left.
    assert checksums(s.warehouse_path) == before

    # The next load completes and adds exactly the rows the killed one had written, once.
    held_back = json.loads(held_path.read_text())
    counts = publications.load(s, held_back, "next-run", AS_OF)
    benchmark.build(s, AS_OF)

    assert counts == {"accepted": len(held_back)}
    after = checksums(s.warehouse_path)
    assert after["raw.publication_rows"][1] == written
    assert after["staging.publications"][1] > before["staging.publications"][1]
    assert after["marts.trust_benchmark"] != before["marts.trust_benchmark"]


def test_after_a_killed_load_publication_status_gives_each_files_real_verdict(copy, tmp_path):
    from flexbench.fetch import now_utc

    s, held_path = copy
    kill_inside_transaction(s, "load", AS_OF, str(held_path), tmp_path)

    # The next run fetches every trust again. The killed run's fetches were recorded in the
    # landing zone, so the fetch reports every file unchanged; the held-back files' content
    # was never processed by the warehouse.
    everything = json.loads((held_path.parent / "all_outcomes.json").read_text())
    held = {o["url"] for o in json.loads(held_path.read_text())}
    fetched_at = now_utc()
    next_run = [
        {**o, "fetched_at": fetched_at}
        if o["status"] == "fetch_failed"
        else {**o, "status": "unchanged", "reasons": None, "fetched_at": fetched_at}
        for o in everything
    ]
    publications.load(s, next_run, "next-run", AS_OF)
    benchmark.build(s, AS_OF)

    con = warehouse.connect(s.warehouse_path, read_only=True)
    try:
        status = con.execute(
            "select org_code, last_fetch_status, last_fetch_unchanged, last_attempt_status "
            "from marts.publication_status where last_attempt_at is not null"
        ).df()
    finally:
        con.close()
    verdict = {o["org_code"]: o["status"] for o in everything}
    unchanged = {
        o["org_code"]: o["status"] != "fetch_failed" and o["url"] not in held for o in everything
    }
    got = status.set_index("org_code")
    assert set(got.index) == set(verdict)
    # The real verdict on each trust's content: never "unchanged".
    assert got["last_fetch_status"].to_dict() == verdict
    assert got["last_attempt_status"].to_dict() == verdict
    assert {"accepted", "rejected"} <= set(verdict.values())
    # "Unchanged" is said apart: the content was processed before (not the held-back files,
    # which the killed load never committed and this run validated).
    assert got["last_fetch_unchanged"].to_dict() == unchanged
    assert any(unchanged.values()) and not all(unchanged.values())
