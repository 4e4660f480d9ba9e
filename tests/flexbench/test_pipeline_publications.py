"""Publications ingestion end to end: loopback HTTP → landing zone → validation → warehouse.

The trusts' files are served by a real (threaded) loopback HTTP server, so the real fetch code
runs: retries on 5xx, read timeouts, conditional GET. The pipeline functions the DAG calls are
called directly (no Airflow): registry → batches → fetch_batch → validate_batch → load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

# tests/warehouse (a folder of tests) would shadow the real `warehouse` package: put the
# project root first (as tests/flexbench/test_pipeline_pledge.py does).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
if "warehouse" in sys.modules and getattr(sys.modules["warehouse"], "__file__", None) is None:
    del sys.modules["warehouse"]

import warehouse  # noqa: E402
from flexbench import settings as settings_mod  # noqa: E402
from flexbench.pipeline import publications, reference  # noqa: E402

TODAY = date(2025, 1, 15)
Q1 = ("2024-04-01", "2024-06-30")
Q2 = ("2024-07-01", "2024-09-30")
HEADER = (
    "org_code,period_start,period_end,staff_group,requests_received,approved_in_full,"
    "approved_with_changes,declined,withdrawn,pending,escalated,appeals,appeals_upheld,"
    "decided_within_2_months,declined_costs,declined_demand,declined_reorganise,"
    "declined_recruit,declined_quality,declined_performance,declined_insufficient_work,"
    "declined_structural_changes,declined_other"
)
READ_TIMEOUT = 0.2  # seconds; the slow trust's server answers after SLOW_ANSWER
SLOW_ANSWER = 0.8


def publication(org: str, quarters: dict[tuple[str, str], tuple[int, int, int]]) -> bytes:
    """A valid summary-form CSV: per quarter (received, approved in full, declined); the rest
    of the requests are pending, every decline is on the costs ground."""
    lines = [HEADER]
    for (start, end), (received, approved, declined) in quarters.items():
        pending = received - approved - declined
        decided = approved + declined
        lines.append(
            f"{org},{start},{end},All staff groups,{received},{approved},0,{declined},0,"
            f"{pending},0,0,0,{decided},{declined},0,0,0,0,0,0,0,0"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


VERSION_1 = {Q1: (40, 30, 5), Q2: (50, 35, 10)}
VERSION_2 = {Q1: (42, 31, 6), Q2: (55, 40, 12)}  # corrected history for the same quarters


@pytest.fixture(autouse=True)
def short_fetch_limits(monkeypatch):
    # Short timeout and backoff so failures are fast; the retry count stays the default's shape.
    monkeypatch.setenv("FLEXBENCH_FETCH_TIMEOUT", str(READ_TIMEOUT))
    monkeypatch.setenv("FLEXBENCH_FETCH_RETRIES", "2")
    monkeypatch.setenv("FLEXBENCH_FETCH_BACKOFF", "0.01")
    monkeypatch.delenv("FLEXBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("FLEXBENCH_ALLOW_LOCAL_URLS", raising=False)


def make_settings(tmp_path: Path, urls: dict[str, str]):
    lines = ["allow_local_urls: true", "publications:"]
    lines += [f"  - {{org_code: {org}, url: '{url}'}}" for org, url in urls.items()]
    sources = tmp_path / "sources.yml"
    sources.write_text("\n".join(lines) + "\n")
    return settings_mod.load(sources=sources, warehouse=tmp_path / "data" / "flexbench.duckdb")


def run(settings, run_id: str) -> dict:
    """One run of the publications DAG's tasks, in order."""
    outcomes = []
    for batch in publications.batches(publications.registry(settings)):
        fetched = publications.fetch_batch(settings, batch)
        outcomes += publications.validate_batch(settings, fetched, TODAY)
    return publications.load(settings, outcomes, run_id, TODAY)


def query(settings, sql: str, params=None):
    con = warehouse.connect(settings.warehouse_path, read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def staged(settings, org: str) -> dict[str, tuple[int, int, int]]:
    """staging.publications for one trust: period_start -> (received, approved, declined)."""
    df = query(
        settings,
        "select strftime(period_start, '%Y-%m-%d') as q, requests_received, approved_in_full, "
        "declined from staging.publications where org_code = ? order by q",
        [org],
    )
    return {r.q: (r.requests_received, r.approved_in_full, r.declined) for r in df.itertuples()}


def audit_of(settings, run_id: str) -> dict[str, tuple[str, str | None]]:
    df = query(
        settings,
        "select org_code, status, reasons from audit.publication_files where run_id = ?",
        [run_id],
    )
    return {r.org_code: (r.status, r.reasons) for r in df.itertuples()}


def raw_count(settings) -> int:
    return int(query(settings, "select count(*) as n from raw.publication_rows")["n"][0])


def as_quarters(version: dict) -> dict[str, tuple[int, int, int]]:
    return {start: counts for (start, _), counts in version.items()}


def serve_with_etag(server: HTTPServer, path: str, body: bytes, etag: str) -> None:
    """A file served the way a CMS does: ETag and Last-Modified, 304 on a matching request."""

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(
            body,
            content_type="text/csv",
            headers={"ETag": etag, "Last-Modified": "Wed, 01 Jan 2025 09:00:00 GMT"},
        )

    server.expect_request(path).respond_with_handler(handler)


def slow(request: Request) -> Response:
    time.sleep(SLOW_ANSWER)
    return Response(publication("RDD", VERSION_1), content_type="text/csv")


HTML_ERROR = b"<!DOCTYPE html><html><body><h1>Sorry, this page is unavailable</h1></body></html>"


@pytest.fixture
def nation(server, tmp_path):
    """Seven trusts, each publishing in its own way (or failing to)."""
    serve = server.expect_request
    serve("/a.csv").respond_with_data(publication("RAA", VERSION_1), content_type="text/csv")
    # B's server fails once, then answers: the retry gets the file.
    server.expect_oneshot_request("/b.csv").respond_with_data("busy", status=500)
    serve("/b.csv").respond_with_data(publication("RBB", VERSION_1), content_type="text/csv")
    serve("/c.csv").respond_with_data("internal error", status=500)  # always fails
    serve("/d.csv").respond_with_handler(slow)  # slower than the read timeout
    serve("/e.csv").respond_with_data(HTML_ERROR, content_type="text/html")  # a soft error page
    serve_with_etag(server, "/f.csv", publication("RFF", VERSION_1), '"f-v1"')
    # G's file is data but its outcomes do not add up to the requests received.
    broken = publication("RGG", {Q1: (40, 30, 5)}).replace(b",40,30,", b",41,30,")
    serve("/g.csv").respond_with_data(broken, content_type="text/csv")
    urls = {
        org: server.url_for(f"/{org[1].lower()}.csv")
        for org in ("RAA", "RBB", "RCC", "RDD", "REE", "RFF", "RGG")
    }
    return make_settings(tmp_path, urls)


#: What a first run makes of each trust of ``nation``.
NATION_STATUSES = {
    "RAA": "accepted",
    "RBB": "accepted",
    "RCC": "fetch_failed",
    "RDD": "fetch_failed",
    "REE": "rejected",
    "RFF": "accepted",
    "RGG": "rejected",
}


def requests_for(server: HTTPServer, path: str) -> list[int]:
    """HTTP statuses the server answered for ``path``, in order."""
    return [resp.status_code for req, resp in server.log if req.path == path]


def test_first_run_loads_accepted_files_and_audits_every_other_with_its_reason(server, nation):
    counts = run(nation, "run-1")

    assert counts == {"accepted": 3, "rejected": 2, "fetch_failed": 2}
    audit = audit_of(nation, "run-1")
    assert {org: status for org, (status, _) in audit.items()} == NATION_STATUSES
    assert "HTTP 500" in audit["RCC"][1]
    assert "timed out" in audit["RDD"][1]
    assert "web page" in audit["REE"][1]
    assert "requests_received" in audit["RGG"][1]
    # B's first answer was a 500; the retry got the file.
    assert requests_for(server, "/b.csv") == [500, 200]
    # C was retried (the first try plus two retries) before giving up.
    assert requests_for(server, "/c.csv") == [500, 500, 500]
    # The accepted data is there, once.
    for org in ("RAA", "RBB", "RFF"):
        assert staged(nation, org) == as_quarters(VERSION_1)
    assert raw_count(nation) == 6
    assert staged(nation, "RGG") == {}
    # A rejected file gets a validation report a trust can read.
    reports = query(
        nation, "select report_path from audit.publication_files where org_code = 'REE'"
    )
    assert Path(reports["report_path"][0]).exists()


def test_a_trust_claiming_more_requests_than_its_headcount_allows_is_rejected(server, tmp_path):
    # RAA has 20 staff (NHS Workforce Statistics, as the reference load leaves it): 250 requests
    # in a quarter is more than ten per head. RBB's headcount is not known: only the absolute
    # bound on a count holds for it.
    big = {Q1: (250, 200, 10)}
    server.expect_request("/a.csv").respond_with_data(publication("RAA", big))
    server.expect_request("/b.csv").respond_with_data(publication("RBB", big))
    settings = make_settings(
        tmp_path, {"RAA": server.url_for("/a.csv"), "RBB": server.url_for("/b.csv")}
    )
    path = reference.headcounts_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"periods": ["202608 to 202609"], "headcounts": {"RAA": 20}}))

    run(settings, "run-1")

    audit = audit_of(settings, "run-1")
    assert audit["RAA"][0] == "rejected"
    assert "headcount" in audit["RAA"][1] and "requests_received" in audit["RAA"][1]
    assert audit["RBB"][0] == "accepted"
    assert staged(settings, "RAA") == {} and staged(settings, "RBB") == as_quarters(big)


def test_a_second_run_with_nothing_changed_adds_nothing_and_marks_files_unchanged(server, nation):
    run(nation, "run-1")
    raw_before = query(nation, "select * from raw.publication_rows order by all")
    staging_before = query(nation, "select * from staging.publications order by all")

    counts = run(nation, "run-2")

    assert counts == {"unchanged": 5, "fetch_failed": 2}
    audit = audit_of(nation, "run-2")
    for org in ("RAA", "RBB", "REE", "RFF", "RGG"):
        assert audit[org][0] == "unchanged", org
    assert query(nation, "select * from raw.publication_rows order by all").equals(raw_before)
    assert query(nation, "select * from staging.publications order by all").equals(staging_before)
    # F serves an ETag: the second fetch was a conditional GET answered 304 Not Modified.
    assert requests_for(server, "/f.csv") == [200, 304]


def test_a_corrected_republication_replaces_the_older_version_and_both_are_kept(server, nation):
    run(nation, "run-1")
    server.clear()
    # Run 2: A republishes corrected history for the same quarters; B's server is down.
    server.expect_request("/a.csv").respond_with_data(publication("RAA", VERSION_2))
    server.expect_request("/b.csv").respond_with_data("down", status=500)

    run(nation, "run-2")

    assert staged(nation, "RAA") == as_quarters(VERSION_2)
    # B's earlier accepted data is kept although this run could not fetch its file.
    assert audit_of(nation, "run-2")["RBB"][0] == "fetch_failed"
    assert staged(nation, "RBB") == as_quarters(VERSION_1)
    # Every version stays: in raw, in the audit and in the landing zone.
    versions = query(
        nation,
        "select distinct file_sha256 from raw.publication_rows where org_code = 'RAA'",
    )["file_sha256"]
    assert len(versions) == 2
    audited = query(
        nation,
        "select sha256 from audit.publication_files where org_code = 'RAA' and status = 'accepted'",
    )["sha256"]
    assert set(audited) == set(versions)
    landed = {p.name.split(".")[0] for p in (nation.landing_dir / "publications").glob("*.csv")}
    assert set(versions) <= landed
    for sha in versions:
        assert (nation.landing_dir / "publications" / f"{sha}.provenance.jsonl").exists()

    # Run 3: A's server fails; its corrected data stays.
    server.clear()
    server.expect_request("/a.csv").respond_with_data("down", status=503)
    run(nation, "run-3")
    assert staged(nation, "RAA") == as_quarters(VERSION_2)


def test_a_trust_going_back_to_its_earlier_file_makes_that_file_current_again(server, tmp_path):
    # The newest publication wins, even when it is content the trust published before.
    settings = make_settings(tmp_path, {"RAA": server.url_for("/a.csv")})
    for number, version in enumerate((VERSION_1, VERSION_2), start=1):
        server.clear()
        server.expect_request("/a.csv").respond_with_data(publication("RAA", version))
        run(settings, f"run-{number}")
    server.clear()
    server.expect_request("/a.csv").respond_with_data(publication("RAA", VERSION_1))

    run(settings, "run-3")

    assert audit_of(settings, "run-3")["RAA"][0] == "accepted"
    assert staged(settings, "RAA") == as_quarters(VERSION_1)


def test_rerunning_the_same_load_changes_nothing(server, tmp_path):
    server.expect_request("/a.csv").respond_with_data(publication("RAA", VERSION_1))
    settings = make_settings(tmp_path, {"RAA": server.url_for("/a.csv")})
    fetched = publications.fetch_batch(settings, publications.registry(settings))
    outcomes = publications.validate_batch(settings, fetched, TODAY)

    publications.load(settings, outcomes, "run-1", TODAY)
    tables = {
        t: query(settings, f"select * from {t} order by all")
        for t in ("raw.publication_rows", "audit.publication_files", "staging.publications")
    }
    # The load task is retried with the same outcomes (as Airflow does after a failure).
    publications.load(settings, outcomes, "run-1", TODAY)

    for table, before in tables.items():
        assert query(settings, f"select * from {table} order by all").equals(before), table


def test_a_file_fetched_but_never_loaded_is_validated_and_loaded_by_the_next_run(server, tmp_path):
    # Run 1 fetched the file, then crashed before its load: the fetch state says "seen".
    server.expect_request("/a.csv").respond_with_data(publication("RAA", VERSION_1))
    settings = make_settings(tmp_path, {"RAA": server.url_for("/a.csv")})
    publications.fetch_batch(settings, publications.registry(settings))

    counts = run(settings, "run-2")

    assert counts == {"accepted": 1}
    assert staged(settings, "RAA") == as_quarters(VERSION_1)


def fetch_all(settings) -> list[dict]:
    fetched = []
    for batch in publications.batches(publications.registry(settings)):
        fetched += publications.fetch_batch(settings, batch)
    return fetched


def verdicts(outcomes: list[dict]) -> dict[str, tuple]:
    return {
        o["org_code"]: (o["status"], o.get("form"), o.get("rows"), o.get("reasons"))
        for o in outcomes
    }


def test_validating_on_every_core_gives_each_file_the_verdict_one_process_gives(server, nation):
    fetched = fetch_all(nation)
    with publications.ValidationPool(1) as one:
        alone = one.validate(nation, fetched, TODAY)
    # One file is enough to put the second worker to work here, so both take a share.
    with publications.ValidationPool(2, files_per_worker=1) as pool:
        shared = pool.validate(nation, fetched, TODAY)
        assert pool.active == 2

    assert verdicts(shared) == verdicts(alone)
    assert {o["org_code"]: o["status"] for o in shared} == NATION_STATUSES
    assert publications.load(nation, shared, "run-pool", TODAY) == {
        "accepted": 3,
        "rejected": 2,
        "fetch_failed": 2,
    }
    assert staged(nation, "RAA") == as_quarters(VERSION_1)


def _validate_all_at_once(pool, nation):
    return pool.validate(nation, fetch_all(nation), TODAY)


def _validate_while_fetching(pool, nation):
    for batch in publications.batches(publications.registry(nation), size=2):
        pool.add(nation, publications.fetch_batch(nation, batch), TODAY)
    return pool.outcomes(nation, TODAY)


@pytest.mark.parametrize("validate", [_validate_all_at_once, _validate_while_fetching])
def test_a_validation_worker_that_dies_loses_no_file(monkeypatch, server, nation, validate):
    parent = os.getpid()
    real = publications._verdicts

    def dies_in_a_worker(todo, today, headcounts=None):
        if os.getpid() != parent:
            os._exit(3)  # the worker process is killed mid-batch
        return real(todo, today, headcounts)

    # Patched before the pool forks its workers, so they inherit it; the calling process
    # validates normally.
    monkeypatch.setattr(publications, "_verdicts", dies_in_a_worker)
    with publications.ValidationPool(2, files_per_worker=1) as pool:
        outcomes = validate(pool, nation)

    assert {o["org_code"]: o["status"] for o in outcomes} == NATION_STATUSES
    assert publications.load(nation, outcomes, "run-broken-pool", TODAY) == {
        "accepted": 3,
        "rejected": 2,
        "fetch_failed": 2,
    }
    assert staged(nation, "RFF") == as_quarters(VERSION_1)


def test_files_fetched_batch_by_batch_are_validated_while_the_fetch_goes_on(server, nation):
    batches = publications.batches(publications.registry(nation), size=3)
    staged_dir = nation.data_dir / "staged" / publications.SOURCE
    with publications.ValidationPool(2, files_per_worker=1) as pool:
        fetched = publications.fetch_batch(nation, batches[0])
        pool.add(nation, fetched, TODAY)
        # The first batch's accepted files are staged by a worker before the rest is fetched.
        deadline = time.monotonic() + 120
        while not list(staged_dir.glob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(staged_dir.glob("*.parquet")), "nothing validated while fetching"
        for batch in batches[1:]:
            got = publications.fetch_batch(nation, batch)
            fetched += got
            pool.add(nation, got, TODAY)
        streamed = pool.outcomes(nation, TODAY)
    with publications.ValidationPool(1) as one:
        alone = one.validate(nation, fetched, TODAY)  # the same files, in one process

    assert verdicts(streamed) == verdicts(alone)
    assert sorted(o["url"] for o in streamed) == sorted(o["url"] for o in alone)
    assert publications.load(nation, streamed, "run-streamed", TODAY) == {
        "accepted": 3,
        "rejected": 2,
        "fetch_failed": 2,
    }
    assert staged(nation, "RAA") == as_quarters(VERSION_1)


def test_a_refresh_where_little_changed_is_validated_in_one_group_after_the_fetch(server, nation):
    # Fewer new files than a worker's share in every batch: nothing goes out until the fetch
    # ends, then one group (one GX run per form), not one per registry batch.
    with publications.ValidationPool(2, files_per_worker=100) as pool:
        for batch in publications.batches(publications.registry(nation), size=2):
            pool.add(nation, publications.fetch_batch(nation, batch), TODAY)
        outcomes = pool.outcomes(nation, TODAY)
        assert pool.groups_validated == 1
        assert pool.active == 1  # the second worker never imported GX

    assert {o["org_code"]: o["status"] for o in outcomes} == NATION_STATUSES


def test_where_no_worker_can_be_forked_the_files_are_validated_in_one_process(
    server, nation, tmp_path
):
    # A daemonic process (a Celery pool's) may not have children: the pool validates every
    # file in its own process, with the verdicts one process gives.
    import multiprocessing

    fetched = fetch_all(nation)
    with publications.ValidationPool(1) as one:
        alone = one.validate(nation, fetched, TODAY)
    out = tmp_path / "daemon.json"

    def validate_in_a_daemon():
        with publications.ValidationPool(2, files_per_worker=1) as pool:
            shared = pool.validate(nation, fetched, TODAY)
            out.write_text(json.dumps([pool.workers, verdicts(shared)]))

    worker = multiprocessing.get_context("fork").Process(target=validate_in_a_daemon, daemon=True)
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0
    workers, shared = json.loads(out.read_text())
    assert workers == 1
    assert {k: tuple(v) for k, v in shared.items()} == verdicts(alone)


@pytest.mark.parametrize(
    ("files", "workers", "sizes"),
    [
        (0, 2, []),
        (1, 2, [1]),
        (96, 2, [96]),  # a refresh where 5% changed: one worker, one GX import
        (199, 2, [199]),
        (200, 2, [100, 100]),
        (401, 2, [134, 134, 133]),
        (1926, 2, [193] * 6 + [192] * 4),
        (10, 1, [10]),
    ],
)
def test_files_to_validate_are_shared_evenly_in_groups_no_larger_than_a_batch(
    files, workers, sizes
):
    pool = publications.ValidationPool(1)
    pool.workers = workers  # only the grouping is under test: no processes are started
    todo = [{"url": f"http://x/{i}.csv"} for i in range(files)]

    groups = pool.groups(todo)

    assert [len(g) for g in groups] == sizes
    assert [item for g in groups for item in g] == todo  # every file once, in order
    assert all(len(g) <= publications.BATCH_SIZE for g in groups)


def test_groups_are_also_bounded_by_the_bytes_of_their_files(monkeypatch):
    # A group's memory follows its rows: a few big request logs make a group of their own
    # size, not BATCH_SIZE files' worth.
    monkeypatch.setattr(publications, "GROUP_BYTES", 1000)
    pool = publications.ValidationPool(1)
    pool.workers = 2
    todo = [{"url": f"http://x/{i}.csv", "size": 400} for i in range(10)]
    todo[7]["size"] = 5000  # bigger than a group: a group of its own

    groups = pool.groups(todo)

    assert [item for g in groups for item in g] == todo
    assert all(len(g) == 1 or sum(i["size"] for i in g) <= 1000 for g in groups)
    assert [todo[7]] in groups
    assert [len(g) for g in groups] == [2, 2, 2, 1, 1, 1, 1]
    # Within the bound, the groups are as few and as even as before.
    small = [{"url": f"http://x/{i}.csv", "size": 2} for i in range(401)]
    assert [len(g) for g in pool.groups(small)] == [134, 134, 133]


def test_breakdowns_of_a_group_are_each_files_own_counts_by_the_documented_aggregation():
    # The pipeline counts a group's files in one DuckDB pass; each file's rows must be the
    # ones transforms.publications.aggregate_request_breakdown gives that file alone, typed
    # alike, however the files are written.
    import pandas as pd

    from transforms.publications import (
        aggregate_request_breakdown,
        coerce_request_level,
        period_of,
        read_publication,
    )

    def log(rows: list[str], header: str = REQUEST_HEADER) -> pd.DataFrame:
        return read_publication("\n".join([header, *rows]).encode(), "x.csv").frame

    hostile = [  # odd case and spacing, blanks, "Not stated", a request of a quarter not over
        " rab ,A1,2024-04-03,2024-04-20,AGREED,no,none,,nurses and health visitors,"
        "Part time,band 5,  FEMALE ,25-34, not stated ,",
        "RAB,A2,2024-04-09,2024-05-01,Declined,yes,none,costs,Central functions,,,"
        "Not Stated,,Black: African,Disabled",
        "RAB,A3,2024-05-10,,pending,no,none,,CENTRAL FUNCTIONS ,flexitime,Band 9,m,"
        "Unknown band,White: Irish,no",
        "RAB,A4,2025-01-05,,pending,no,none,,Central functions,part_time,Band 4,Female,"
        "55-64,White,No",
    ]
    broad = {"RRL": "RJ1", "White: Irish": "White", "Black: African": "Black or Black British",
             "Indian": "Asian or Asian British"}  # fmt: skip
    broad_only = []
    for row in REQUESTS:
        for written, instead in broad.items():
            row = row.replace(written, instead)
        broad_only.append(row)
    files = {
        "key-RRL": log(REQUESTS),
        "key-RAB": log(hostile),
        # Without the sex and ethnic group columns, beside files with them.
        "key-RHB": log([r.replace("RRL", "RHB") for r in REQUESTS]).drop(
            columns=["sex", "ethnic_group"]
        ),
        "key-RJ1": log(broad_only),  # broad ethnic groups only: no detailed ones
        "key-RXX": log([hostile[-1].replace("RAB", "RXX")]),  # only a quarter not yet over
    }

    counted = publications.breakdowns(files, TODAY)

    assert set(counted) == set(files) - {"key-RXX"}  # nothing to stage for it yet
    for key, raw in files.items():
        if key not in counted:
            continue
        typed = coerce_request_level(raw)
        _, end = period_of(typed["received_date"])
        typed = typed[(typed["received_date"].notna() & (end <= pd.Timestamp(TODAY))).to_numpy()]
        pd.testing.assert_frame_equal(counted[key], aggregate_request_breakdown(typed), obj=key)
    rab = counted["key-RAB"].set_index(["dimension", "group_value"])
    assert rab["requests_received"].groupby("dimension").sum().eq(3).all()  # A4 not yet
    assert rab.loc[("sex", "Female"), "requests_received"] == 1
    assert rab.loc[("sex", "Not stated"), "requests_received"] == 1
    assert rab.loc[("staff_group", "Central functions"), "declined"] == 1
    assert rab.loc[("ethnic_group", "Not stated"), "requests_received"] == 1
    # A file without a dimension's column has no rows for it (not "Not stated" rows, which a
    # group with other files would have given it): its counts never depend on its company.
    rhb = counted["key-RHB"]
    assert not {"sex", "ethnic_group", "ethnic_group_detailed"} & set(rhb["dimension"])
    assert {"disability", "age_band", "pay_band"} <= set(rhb["dimension"])
    alone = publications.breakdowns({"key-RHB": files["key-RHB"]}, TODAY)["key-RHB"]
    pd.testing.assert_frame_equal(rhb, alone)
    assert "ethnic_group_detailed" in set(counted["key-RRL"]["dimension"])
    assert "ethnic_group_detailed" not in set(counted["key-RJ1"]["dimension"])
    assert "ethnic_group" in set(counted["key-RJ1"]["dimension"])
    # A quarter is over on its last day: counted then, not a day later.
    last_day = publications.breakdowns({"k": files["key-RRL"]}, date(2024, 9, 30))["k"]
    assert last_day["period_end"].max() == pd.Timestamp("2024-09-30")


_SECOND_WORKER = """
import sys
from flexbench.pipeline import publications as p

def gx_imported():
    return "great_expectations" in sys.modules

with p.ValidationPool(2) as pool:
    second = pool._executors[1]
    pool.expect(p.FILES_PER_WORKER)
    print(pool.active, second.submit(gx_imported).result(timeout=60))
    pool.expect(2 * p.FILES_PER_WORKER)
    print(pool.active, all(w.result(timeout=120) for w in pool._warming),
          second.submit(gx_imported).result(timeout=60))
"""


def test_a_second_worker_imports_gx_only_when_there_is_enough_to_validate():
    # A fresh interpreter: workers forked from this test process would inherit its GX.
    done = subprocess.run(
        [sys.executable, "-c", _SECOND_WORKER],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert done.returncode == 0, done.stderr
    # Enough files for one worker: the second is idle and has not imported GX.
    # Enough for two: it is put to work and imports GX.
    assert done.stdout.split("\n")[:2] == ["1 False", "2 True True"]


def test_the_number_of_validation_workers_can_be_set_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.setenv("FLEXBENCH_VALIDATE_WORKERS", "3")
    assert publications.validation_workers() == 3
    monkeypatch.setenv("FLEXBENCH_VALIDATE_WORKERS", "many")
    with pytest.raises(ValueError, match="FLEXBENCH_VALIDATE_WORKERS must be a whole number"):
        publications.validation_workers()
    monkeypatch.delenv("FLEXBENCH_VALIDATE_WORKERS")
    assert publications.validation_workers() == (os.cpu_count() or 1)


# --- equity: the dimensions of request-level files, and the breakdown form ------------------

REQUEST_HEADER = (
    "org_code,request_id,received_date,decision_date,outcome,escalated,appeal,decline_reason,"
    "staff_group,flex_type,band,sex,age_band,ethnic_group,disability"
)
REQUESTS = [  # received in Q1 (Apr-Jun 2024) but the last, in Q2
    "RRL,R1,2024-04-03,2024-04-20,approved_in_full,no,none,,Nurses & health visitors,"
    "part_time,Band 5,Female,25-34,White: Irish,No",
    "RRL,R2,2024-04-09,2024-05-01,declined,yes,none,costs,Nurses & health visitors,"
    "compressed_hours,Band 6,Female,35-44,Black: African,Yes",
    "RRL,R3,2024-05-10,2024-05-30,approved_with_changes,yes,none,,Central functions,"
    "remote_or_hybrid,4,M,45-54,Indian,No",
    "RRL,R4,2024-06-02,,pending,no,none,,Central functions,part_time,Band 4,Male,55-64,,",
    "RRL,R5,2024-07-15,2024-07-30,declined,yes,none,demand,Central functions,part_time,"
    "Band 4,Female,25 to 34,White,No",
]


def breakdown_of(settings, org: str) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    df = query(
        settings,
        "select strftime(period_start, '%Y-%m-%d') as q, dimension, group_value, "
        "requests_received, approved_in_full + approved_with_changes as approved, declined "
        "from staging.publication_breakdowns where org_code = ?",
        [org],
    )
    return {
        (r.q, r.dimension, r.group_value): (r.requests_received, r.approved, r.declined)
        for r in df.itertuples()
    }


def test_a_request_level_file_keeps_its_equity_dimensions(server, tmp_path):
    body = "\n".join([REQUEST_HEADER, *REQUESTS]) + "\n"
    server.expect_request("/rrl.csv").respond_with_data(body, content_type="text/csv")
    settings = make_settings(tmp_path, {"RRL": server.url_for("/rrl.csv")})
    assert run(settings, "run-1") == {"accepted": 1}
    got = breakdown_of(settings, "RRL")
    q1, q2 = "2024-04-01", "2024-07-01"
    # Each request counted once in each dimension, in the quarter it was received.
    assert got[(q1, "sex", "Female")] == (2, 1, 1)
    assert got[(q1, "sex", "Male")] == (2, 1, 0)  # "M" read as Male; R4 still pending
    assert got[(q2, "sex", "Female")] == (1, 0, 1)
    assert got[(q1, "disability", "Disabled")] == (1, 0, 1)
    assert got[(q1, "disability", "Not stated")] == (1, 0, 0)  # a blank cell
    assert got[(q1, "pay_band", "Band 4")] == (2, 1, 0)  # "4" read as Band 4
    assert got[(q2, "age_band", "25-34")] == (1, 0, 1)  # "25 to 34"
    # Broad groups always; the detailed 2021 Census groups as the file gives them.
    assert got[(q1, "ethnic_group", "Asian or Asian British")] == (1, 1, 0)
    assert got[(q1, "ethnic_group_detailed", "Black: African")] == (1, 0, 1)
    assert got[(q2, "ethnic_group_detailed", "White (not detailed)")] == (1, 0, 1)
    assert got[(q1, "flex_type", "part_time")] == (2, 1, 0)
    assert got[(q1, "staff_group", "Central functions")] == (2, 1, 0)
    # Every dimension's groups add up to the quarter's total of the summary form.
    totals = query(
        settings,
        "select strftime(period_start, '%Y-%m-%d') as q, requests_received "
        "from staging.publications where org_code = 'RRL' and staff_group = 'All staff groups'",
    ).set_index("q")["requests_received"]
    assert totals.to_dict() == {q1: 4, q2: 1}
    for dimension in ("sex", "ethnic_group", "disability", "age_band", "pay_band",
                      "staff_group", "flex_type"):  # fmt: skip
        for q in (q1, q2):
            n = sum(v[0] for (qq, d, _), v in got.items() if qq == q and d == dimension)
            assert n == totals[q], (dimension, q)


BREAKDOWN_HEADER = (
    "org_code,period_start,period_end,dimension,group_value,requests_received,"
    "approved_in_full,approved_with_changes,declined,withdrawn,pending"
)


def test_a_breakdown_file_beside_a_summary_is_loaded_and_a_bad_one_rejected(server, tmp_path):
    good = "\n".join([
        BREAKDOWN_HEADER,
        f"RAA,{Q1[0]},{Q1[1]},sex,Female,30,24,0,4,0,2",
        f"RAA,{Q1[0]},{Q1[1]},sex,Male,10,6,0,1,0,3",
        f"RAA,{Q1[0]},{Q1[1]},Ethnicity,Black or Black British,12,8,0,3,0,1",
    ]) + "\n"  # fmt: skip
    bad = good.replace("RAA", "RBB").replace(",30,24,", ",31,24,")
    serve = server.expect_request
    serve("/a.csv").respond_with_data(publication("RAA", VERSION_1), content_type="text/csv")
    serve("/a-by-group.csv").respond_with_data(good, content_type="text/csv")
    serve("/b.csv").respond_with_data(publication("RBB", VERSION_1), content_type="text/csv")
    serve("/b-by-group.csv").respond_with_data(bad, content_type="text/csv")
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "allow_local_urls: true\npublications:\n"
        + "".join(
            f"  - {{org_code: {o}, url: '{server.url_for(f'/{o[1].lower()}.csv')}', "
            f"breakdown_url: '{server.url_for(f'/{o[1].lower()}-by-group.csv')}'}}\n"
            for o in ("RAA", "RBB")
        )
    )
    settings = settings_mod.load(sources=sources, warehouse=tmp_path / "data" / "w.duckdb")
    assert run(settings, "run-1") == {"accepted": 3, "rejected": 1}
    audit = query(settings, "select url, status, form, reasons from audit.publication_files")
    by_url = {r.url.rsplit("/", 1)[1]: r for r in audit.itertuples()}
    assert by_url["a-by-group.csv"].form == "breakdown"
    assert by_url["b-by-group.csv"].status == "rejected"
    assert "outcomes-sum" in by_url["b-by-group.csv"].reasons
    # The summary files are loaded as ever; the breakdown beside the good one too.
    assert staged(settings, "RAA") == as_quarters(VERSION_1)
    assert staged(settings, "RBB") == as_quarters(VERSION_1)
    assert breakdown_of(settings, "RAA") == {
        (Q1[0], "sex", "Female"): (30, 24, 4),
        (Q1[0], "sex", "Male"): (10, 6, 1),
        (Q1[0], "ethnic_group", "Black or Black British"): (12, 8, 3),
    }
    assert breakdown_of(settings, "RBB") == {}
    # A second run with nothing changed adds nothing.
    assert run(settings, "run-2") == {"unchanged": 4}
    assert len(breakdown_of(settings, "RAA")) == 3


# --- a registry that says what changed (updated_at) ------------------------------------------


def registry_settings(tmp_path: Path, rows: list[tuple[str, str, str]]):
    """Settings whose publications come from a registry CSV with an updated_at column."""
    registry = tmp_path / "registry.csv"
    registry.write_text("org_code,url,updated_at\n" + "".join(f"{o},{u},{t}\n" for o, u, t in rows))
    sources = tmp_path / "sources.yml"
    sources.write_text(f"allow_local_urls: true\npublications:\n  - registry_csv: {registry}\n")
    return settings_mod.load(sources=sources, warehouse=tmp_path / "data" / "flexbench.duckdb")


def test_a_file_the_registry_says_has_not_changed_since_its_fetch_is_not_asked_about(
    server, tmp_path
):
    for org in ("RAA", "RBB", "RCC", "RDD"):
        server.expect_request(f"/{org}.csv").respond_with_data(publication(org, VERSION_1))
    url = {org: server.url_for(f"/{org}.csv") for org in ("RAA", "RBB", "RCC", "RDD")}
    long_ago = "2024-12-01T09:00:00Z"
    rows = [(org, url[org], long_ago) for org in url]
    settings = registry_settings(tmp_path, rows)
    # A first run asks about every file (none was fetched before, whatever updated_at says).
    assert run(settings, "run-1") == {"accepted": 4}
    assert len(server.log) == 4

    # Nothing changed: the registry's times are older than the fetches, so nothing is asked,
    # and every file is recorded unchanged with no HTTP status (no request was sent).
    server.clear_log()
    assert run(settings, "run-2") == {"unchanged": 4}
    assert server.log == []
    audit = query(
        settings,
        "select org_code, http_status from audit.publication_files where run_id = 'run-2'",
    )
    assert audit["http_status"].isna().all() and len(audit) == 4

    # RBB republishes and the registry says so; RCC's time is unreadable, RDD's has no
    # offset (read as UTC: still before its fetch). Only RBB and RCC are asked about.
    server.clear()
    for org in ("RAA", "RCC", "RDD"):
        server.expect_request(f"/{org}.csv").respond_with_data(publication(org, VERSION_1))
    server.expect_request("/RBB.csv").respond_with_data(publication("RBB", VERSION_2))
    later = datetime.now(UTC).isoformat()
    settings = registry_settings(
        tmp_path,
        [
            ("RAA", url["RAA"], long_ago),
            ("RBB", url["RBB"], later),
            ("RCC", url["RCC"], "last Tuesday"),
            ("RDD", url["RDD"], "2024-12-01 09:00"),
        ],
    )
    assert run(settings, "run-3") == {"accepted": 1, "unchanged": 3}
    assert sorted(req.path for req, _ in server.log) == ["/RBB.csv", "/RCC.csv"]
    assert staged(settings, "RBB") == as_quarters(VERSION_2)
    assert staged(settings, "RAA") == as_quarters(VERSION_1)


def test_a_registry_time_is_trusted_only_while_the_landed_copy_is_there(server, tmp_path):
    server.expect_request("/RAA.csv").respond_with_data(publication("RAA", VERSION_1))
    settings = registry_settings(
        tmp_path, [("RAA", server.url_for("/RAA.csv"), "2024-12-01T09:00:00+00:00")]
    )
    run(settings, "run-1")
    for landed in (settings.landing_dir / publications.SOURCE).glob("*.csv"):
        landed.unlink()
    server.clear_log()

    fetched = publications.fetch_batch(settings, publications.registry(settings))

    assert [f["status"] for f in fetched] == ["fetched"]
    assert len(server.log) == 1


def test_a_date_alone_counts_as_the_end_of_that_day():
    # Never earlier than the change it stands for: a date is read as the next midnight UTC.
    read = publications.parse_updated_at
    assert read("2025-01-14") == datetime(2025, 1, 15, tzinfo=UTC)
    assert read("2025-01-14T10:00:00+01:00") == datetime(2025, 1, 14, 9, tzinfo=UTC)
    assert read("2025-01-14T10:00:00") == datetime(2025, 1, 14, 10, tzinfo=UTC)
    assert read("2025-01-14T10:00:00Z") == datetime(2025, 1, 14, 10, tzinfo=UTC)
    for unreadable in ("", "  ", "soon", "2025-13-01", None):
        assert read(unreadable) is None


def test_a_staged_batch_is_each_files_rows_tagged_with_its_key_whatever_their_columns(tmp_path):
    from types import SimpleNamespace

    import pandas as pd

    settings = SimpleNamespace(data_dir=tmp_path)
    a = pd.DataFrame({"org_code": ["RJ1", None], "n": [1, 2]})
    b = pd.DataFrame({"org_code": ["RRL"], "n": [3]})
    wider = pd.DataFrame({"org_code": ["RBB"], "extra": ["x"], "n": [4]})
    for accepted in (
        {"k2": b, "k1": a},
        {"k1": a, "k2": a.iloc[:0], "k3": b},
        {"k1": a, "k2": wider},
    ):
        paths = publications._stage(settings, accepted)
        # The file the batch's rows make when each file's rows are tagged before they are
        # put together (its key after its own columns), byte for byte.
        tagged = [accepted[k].assign(**{publications.STAGED_KEY: k}) for k in sorted(accepted)]
        expected = tmp_path / "expected.parquet"
        publications._write_parquet(pd.concat(tagged, ignore_index=True), expected)
        assert set(paths) == set(accepted) and len(set(paths.values())) == 1
        assert Path(paths["k1"]).read_bytes() == expected.read_bytes()
