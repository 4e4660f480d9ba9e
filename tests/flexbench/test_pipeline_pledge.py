"""The pledge pipeline end to end: a real loopback feed → landing → warehouse
(docs/pledge-matching.md).

The feed is served by pytest-httpserver, so the real fetch code (safety rules, retries) runs.
The warehouse is a tiny DuckDB file with a handful of ODS trusts.
"""

from __future__ import annotations

import csv
import logging
import sys
from datetime import date
from pathlib import Path

import pytest

# tests/conftest.py puts tests/ on sys.path, where the folder tests/warehouse is found before the
# editable install's finder and imported as an empty namespace package in place of the real
# `warehouse`. Put the project root first so the real package is imported.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
if "warehouse" in sys.modules and getattr(sys.modules["warehouse"], "__file__", None) is None:
    del sys.modules["warehouse"]

import warehouse  # noqa: E402
from flexbench.pipeline import pledge  # noqa: E402
from flexbench.settings import Settings  # noqa: E402

# Personal data planted in the feed: none of it may be kept anywhere (rule P1).
SIGNATORY_NAME = "Zebedee Quartermaine"
SIGNATORY_EMAIL = "zebedee.quartermaine@westford.nhs.uk"
CONTACT_EMAIL = "hr-flex-owner@example.org"
PERSONAL = (SIGNATORY_NAME, SIGNATORY_EMAIL, CONTACT_EMAIL)

# A small ODS list: (code, name, region, open, close).
ODS = [
    ("RJ1", "GUY'S AND ST THOMAS' NHS FOUNDATION TRUST", "Y56", "1993-04-01", None),
    ("R1F", "ISLE OF WIGHT NHS TRUST", "Y59", "2012-04-01", None),
    ("RXR", "EAST LANCASHIRE HOSPITALS NHS TRUST", "Y62", "2003-04-01", None),
    ("RHU", "PORTSMOUTH HOSPITALS UNIVERSITY NHS TRUST", "Y59", "1993-04-01", None),
    # a closed trust and its successor with the same name but "Foundation"
    ("RA9", "WESTFORD HOSPITALS NHS TRUST", "Y58", "1993-04-01", "2019-03-31"),
    ("RB1", "WESTFORD HOSPITALS NHS FOUNDATION TRUST", "Y58", "2019-04-01", None),
    # closed, no successor of that name
    ("RC3", "ASHCOMBE COMMUNITY HEALTH SERVICES NHS TRUST", "Y60", "2011-04-01", "2023-03-31"),
    # a Welsh health board: not in the population
    ("7A1", "BETSI CADWALADR UNIVERSITY LOCAL HEALTH BOARD", "W15", "2009-10-01", None),
]


def signup(sid: str, **fields) -> dict:
    """A valid sign-up as the web form submits it, with the signatory's personal data."""
    record = {
        "id": sid,
        "organisation_name": "Isle of Wight NHS Trust",
        "ods_code": None,
        "signed_at": "2024-05-01T09:00:00Z",
        "signatory_name": SIGNATORY_NAME,
        "signatory_email": SIGNATORY_EMAIL,
        "signatory_role": "Chief People Officer",
        "commitments": {"lead": True, "target": True, "train": False},
        "action_plan_url": "https://www.example.nhs.uk/flex/action-plan.pdf",
        "data_url": None,
        "board_review_date": "2024-09-30",
        "managers_trained_pct": 40,
        "status": "signed",
        "updated_at": "2024-05-01T09:00:00Z",
        "notes": f"Queries to {SIGNATORY_NAME} <{CONTACT_EMAIL}>",
    }
    record.update(fields)
    return record


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return make_data_dir(tmp_path / "data")


def make_data_dir(folder: Path) -> Path:
    """The run's data directory, holding the warehouse (the default layout) and the ODS list."""
    con = warehouse.connect(folder / "flexbench.duckdb")
    try:
        warehouse.apply_schema(con)
        for code, name, region, opened, closed in ODS:
            con.execute(
                "insert into raw.ods_trusts (sha256, loaded_at, org_code, name, region_code, "
                "open_date, close_date) values ('t', '2025-07-01', ?, ?, ?, ?, ?)",
                [code, name, region, opened, closed],
            )
        warehouse.build_layers_named(con, ["staging.ods_trusts", "staging.ods_trust_names"])
    finally:
        con.close()
    return folder


def make_settings(data_dir: Path, url: str, overrides: Path | None = None) -> Settings:
    sources = {"pledge_signups": {"url": url}}
    if overrides is not None:
        sources["pledge_overrides"] = str(overrides)
    else:  # an empty overrides file: tests do not depend on the repository's file
        empty = data_dir.parent / "no_overrides.csv"
        empty.write_text("signup_id,org_code,reviewed_by,reviewed_on,note\n")
        sources["pledge_overrides"] = str(empty)
    return Settings(
        sources_path=data_dir.parent / "sources.yml",
        warehouse_path=data_dir / "flexbench.duckdb",
        data_dir=data_dir,
        allow_local_urls=True,
        sources=sources,
    )


def serve_feed(httpserver, pages: list[list[dict]], prefix: str = "/feed") -> str:
    """Serve ``pages`` as the paginated JSON feed; return the first page's URL."""
    for n, signups in enumerate(pages, start=1):
        nxt = httpserver.url_for(f"{prefix}/page-{n + 1}") if n < len(pages) else None
        httpserver.expect_request(f"{prefix}/page-{n}").respond_with_json(
            {"signups": signups, "next": nxt}
        )
    return httpserver.url_for(f"{prefix}/page-1")


def run(data_dir, url, loaded_at="2025-01-10T06:00:00Z", overrides=None):
    settings = make_settings(data_dir, url, overrides)
    fetched = pledge.fetch(settings)
    counts = pledge.load(settings, fetched, loaded_at=loaded_at)
    return fetched, counts


def query(data_dir, sql, params=None):
    con = warehouse.connect(data_dir / "flexbench.duckdb", read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def current(data_dir):
    return query(data_dir, "select * from staging.pledge_signups").set_index("signup_id")


def review(data_dir):
    return query(data_dir, "select * from audit.pledge_review").set_index("signup_id")


# ---------------------------------------------------------------------------
# Reading the feed (rule P2)
# ---------------------------------------------------------------------------


def test_every_page_is_read_and_a_repeated_entry_is_kept_once(httpserver, data_dir):
    # The live feed repeats S2 on page 2 after it was edited while being read.
    pages = [
        [signup("S1"), signup("S2", managers_trained_pct=10)],
        [
            signup("S2", managers_trained_pct=55, updated_at="2024-06-01T00:00:00Z"),
            signup("S3"),
        ],
        [signup("S4")],
    ]
    fetched, counts = run(data_dir, serve_feed(httpserver, pages))

    assert fetched["status"] == "fetched"
    assert fetched["pages"] == 3
    assert len(fetched["landed"]) == 3
    assert counts["signups"] == 4
    state = current(data_dir)
    assert sorted(state.index) == ["S1", "S2", "S3", "S4"]
    assert state.at["S2", "managers_trained_pct"] == 55  # the later edit wins


def test_a_page_that_fails_once_is_retried(httpserver, data_dir):
    url = serve_feed(httpserver, [[signup("S1")], [signup("S2")]])
    # The first request for page 2 gets a server error; the retry gets the page.
    httpserver.expect_oneshot_request("/feed/page-2").respond_with_data("busy", status=500)

    fetched, counts = run(data_dir, url)

    assert fetched["status"] == "fetched"
    assert counts["signups"] == 2
    page_2_requests = [r for r, _ in httpserver.log if r.path == "/feed/page-2"]
    assert len(page_2_requests) == 2


def test_a_failed_fetch_keeps_the_previous_state(httpserver, data_dir):
    run(data_dir, serve_feed(httpserver, [[signup("S1"), signup("S2")]]))
    httpserver.clear()
    httpserver.expect_request("/gone/page-1").respond_with_data("not here", status=404)
    settings = make_settings(data_dir, httpserver.url_for("/gone/page-1"))

    fetched = pledge.fetch(settings)
    assert fetched["status"] == "failed"
    assert "404" in fetched["error"]
    with pytest.raises(pledge.PledgeLoadError, match="previous state kept"):
        pledge.load(settings, fetched, loaded_at="2025-01-11T06:00:00Z")

    assert sorted(current(data_dir).index) == ["S1", "S2"]
    loads = query(data_dir, "select status from audit.pledge_loads order by loaded_at")
    assert loads["status"].tolist() == ["loaded", "fetch_failed"]


def test_the_csv_export_is_accepted(httpserver, data_dir):
    export = (
        "id,organisation_name,ods_code,signed_at,signatory_name,signatory_email,signatory_role,"
        "commitment_lead,commitment_target,commitment_train,action_plan_url,data_url,"
        "board_review_date,managers_trained_pct,status,updated_at\r\n"
        f"C1,Isle of Wight NHS Trust,,2024-05-01T09:00:00Z,{SIGNATORY_NAME},{SIGNATORY_EMAIL},"
        "HR Director,yes,no,yes,,,,75,signed,2024-05-01T09:00:00Z\r\n"
    )
    httpserver.expect_request("/export").respond_with_data(
        export, content_type="text/csv; charset=utf-8"
    )
    fetched, counts = run(data_dir, httpserver.url_for("/export"))

    assert fetched["format"] == "csv"
    row = current(data_dir).loc["C1"]
    assert row["org_code"] == "R1F"
    assert (row["commits_lead"], row["commits_target"], row["commits_train"]) == (
        True,
        False,
        True,
    )
    assert not any(p.encode() in Path(f).read_bytes() for f in fetched["landed"] for p in PERSONAL)


# ---------------------------------------------------------------------------
# Matching to ODS trusts (rule P3)
# ---------------------------------------------------------------------------

# (case, organisation_name, ods_code given, expected org_code, expected match_method)
MATCHED_CASES = [
    ("code in lower case", "Some Trust", "rj1", "RJ1", "ods_code"),
    ("code with spaces", "Some Trust", " r 1f ", "R1F", "ods_code"),
    ("wrong code, name right", "Guy's and St Thomas' NHS FT", "RJ101", "RJ1", "name"),
    ("'&' for 'and'", "Guy's & St Thomas' NHS Foundation Trust", None, "RJ1", "name"),
    ("'Saint' for 'St'", "Guys and Saint Thomas NHS Foundation Trust", None, "RJ1", "name"),
    ("'NHS FT'", "East Lancashire Hospitals NHS FT", None, "RXR", "name"),
    ("trailing punctuation", "Portsmouth Hospitals University NHS Trust.", None, "RHU", "name"),
]

# (case, organisation_name, ods_code given, expected reason, codes among the candidates)
REVIEW_CASES = [
    ("name of two trusts", "Westford Hospitals", None, "several trusts match", {"RA9", "RB1"}),
    ("not a trust", "Westford County Council", None, "no match", set()),
    ("wrong code, name unknown", "Flex Partners Ltd", "RJ101", "code not a trust", set()),
    ("a closed trust only", "Ashcombe Community Health Services", None, "closed trust", {"RC3"}),
    ("a Welsh health board", "Betsi Cadwaladr University LHB", "7A1", "code not a trust", set()),
]


@pytest.fixture(scope="module")
def matched_feed(make_httpserver, tmp_path_factory):
    # One load serves every matching case (module-scoped: a load costs most of a second).
    httpserver = make_httpserver
    data_dir = make_data_dir(tmp_path_factory.mktemp("matching") / "data")
    signups = [
        signup(f"M{i}", organisation_name=name, ods_code=code)
        for i, (_, name, code, _, _) in enumerate(MATCHED_CASES)
    ] + [
        signup(f"R{i}", organisation_name=name, ods_code=code)
        for i, (_, name, code, _, _) in enumerate(REVIEW_CASES)
    ]
    _, counts = run(data_dir, serve_feed(httpserver, [signups], "/matching"))
    httpserver.clear()
    return counts, current(data_dir), review(data_dir)


@pytest.mark.parametrize(
    ("i", "case"),
    [(i, c[0]) for i, c in enumerate(MATCHED_CASES)],
    ids=[c[0] for c in MATCHED_CASES],
)
def test_sign_ups_are_matched_by_code_or_normalised_name(matched_feed, i, case):
    _, state, review_list = matched_feed
    _, _, _, org_code, method = MATCHED_CASES[i]
    assert state.at[f"M{i}", "org_code"] == org_code
    assert state.at[f"M{i}", "match_method"] == method
    assert f"M{i}" not in review_list.index


@pytest.mark.parametrize(
    ("i", "case"), [(i, c[0]) for i, c in enumerate(REVIEW_CASES)], ids=[c[0] for c in REVIEW_CASES]
)
def test_unmatched_sign_ups_go_to_review_with_candidates(matched_feed, i, case):
    counts, state, review_list = matched_feed
    _, name, _, reason, candidates = REVIEW_CASES[i]
    sid = f"R{i}"
    # kept, unmatched: never dropped, never guessed
    assert sid in state.index
    assert state.at[sid, "org_code"] is None or state.isna().at[sid, "org_code"]
    assert reason in review_list.at[sid, "reason"]
    listed = review_list.at[sid, "candidates"] or ""
    assert {c for c in ("RA9", "RB1", "RC3") if c in listed} == candidates
    assert review_list.at[sid, "organisation_name"] == name
    assert counts["review"] == len(REVIEW_CASES)


def test_an_override_settles_a_reviewed_sign_up(httpserver, data_dir, tmp_path):
    overrides = tmp_path / "overrides.csv"
    overrides.write_text(
        "signup_id,org_code,reviewed_by,reviewed_on,note\n"
        "# reviewed cases\n"
        "A1,RB1,Data team,2025-01-05,successor of RA9\n"
        "A2,,Data team,2025-01-05,a council: not an NHS trust\n"
    )
    feed = [
        signup("A1", organisation_name="Westford Hospitals"),
        signup("A2", organisation_name="Westford County Council"),
    ]
    _, counts = run(data_dir, serve_feed(httpserver, [feed]), overrides=overrides)

    state = current(data_dir)
    assert state.at["A1", "org_code"] == "RB1"
    assert state.at["A1", "match_method"] == "override"
    assert counts["review"] == 0
    assert review(data_dir).empty


# ---------------------------------------------------------------------------
# History (rule P4), validation, the registry
# ---------------------------------------------------------------------------


def test_an_edit_and_a_withdrawal_between_two_runs_keep_the_earlier_states(httpserver, data_dir):
    first = [
        signup("H1", managers_trained_pct=20),
        signup("H2", organisation_name="East Lancashire Hospitals NHS Trust"),
        signup("H3", organisation_name="Portsmouth Hospitals University NHS Trust"),
    ]
    run(data_dir, serve_feed(httpserver, [first], "/day1"), loaded_at="2025-01-10T06:00:00Z")
    second = [
        signup("H1", managers_trained_pct=65, updated_at="2024-11-01T10:00:00Z"),
        signup(
            "H2",
            organisation_name="East Lancashire Hospitals NHS Trust",
            status="withdrawn",
            updated_at="2024-12-01T10:00:00Z",
        ),
        signup("H3", organisation_name="Portsmouth Hospitals University NHS Trust"),
    ]
    _, counts = run(
        data_dir, serve_feed(httpserver, [second], "/day2"), loaded_at="2025-01-11T06:00:00Z"
    )

    state = current(data_dir)
    assert state.at["H1", "managers_trained_pct"] == 65
    assert state.at["H2", "status"] == "withdrawn"
    assert str(state.at["H2", "withdrawn_at"].date()) == "2024-12-01"
    assert counts["withdrawn"] == 1
    history = query(
        data_dir,
        "select signup_id, status, managers_trained_pct, is_current, "
        "cast(valid_from as date)::varchar as valid_from, cast(valid_to as date)::varchar "
        "as valid_to from raw.pledge_signups_history order by signup_id, valid_from",
    )
    by_id = {sid: g for sid, g in history.groupby("signup_id")}
    # edited and withdrawn: two states each, the earlier one closed on the second load
    assert by_id["H1"]["managers_trained_pct"].tolist() == [20, 65]
    assert by_id["H2"]["status"].tolist() == ["signed", "withdrawn"]
    assert by_id["H2"]["valid_to"].tolist()[0] == "2025-01-11"
    # unchanged: one state
    assert len(by_id["H3"]) == 1
    # what did the pledge look like on the first day: the earlier states
    day1 = query(
        data_dir,
        "select signup_id, status from raw.pledge_signups_history "
        "where valid_from <= timestamptz '2025-01-10 12:00:00+00' "
        "and (valid_to is null or valid_to > timestamptz '2025-01-10 12:00:00+00')",
    ).set_index("signup_id")
    assert day1.at["H2", "status"] == "signed"


def test_loading_the_same_feed_twice_changes_nothing(httpserver, data_dir):
    url = serve_feed(httpserver, [[signup("S1"), signup("S2", status="withdrawn")]])
    run(data_dir, url, loaded_at="2025-01-10T06:00:00Z")
    run(data_dir, url, loaded_at="2025-01-11T06:00:00Z")
    assert len(query(data_dir, "select * from raw.pledge_signups_history")) == 2


def test_sign_ups_failing_a_check_go_to_review(httpserver, data_dir):
    feed = [
        signup("V1"),
        # a link typed without http(s): the pledge counts, the link is not kept
        signup("V2", ods_code="RJ1", data_url="www.trust.nhs.uk/data"),
        # an unknown status: not loaded at all
        signup("V3", status="pending"),
        # not a trust and an impossible percentage: one review row with both reasons
        signup("V4", organisation_name="Flex Partners Ltd", managers_trained_pct=250),
    ]
    _, counts = run(data_dir, serve_feed(httpserver, [feed]))

    state = current(data_dir)
    assert state.at["V2", "org_code"] == "RJ1"
    assert state.isna().at["V2", "data_url"]
    assert "V3" not in state.index
    assert counts["rejected"] == 1
    listed = review(data_dir)
    assert sorted(listed.index) == ["V2", "V3", "V4"]
    assert "data-url-web-address" in listed.at["V2", "reason"]
    assert "status-known" in listed.at["V3", "reason"]
    assert "no match" in listed.at["V4", "reason"]
    assert "managers-trained-percentage" in listed.at["V4", "reason"]


def test_a_sign_up_missing_or_failing_next_time_keeps_its_state_and_its_review(
    httpserver, data_dir
):
    first = [
        signup("K1", managers_trained_pct=30),
        signup("K2", organisation_name="Westford County Council"),
    ]
    run(data_dir, serve_feed(httpserver, [first], "/day1"), loaded_at="2025-01-10T06:00:00Z")
    # Next day: K1's edit has an unknown status, K2 is missing from the feed.
    second = [
        signup(
            "K1",
            managers_trained_pct=90,
            status="paused",
            updated_at="2024-11-01T10:00:00Z",
        )
    ]
    run(data_dir, serve_feed(httpserver, [second], "/day2"), loaded_at="2025-01-11T06:00:00Z")

    state = current(data_dir)
    assert state.at["K1", "managers_trained_pct"] == 30  # the earlier, valid state
    assert "K2" in state.index  # a missing entry is not a withdrawal
    listed = review(data_dir)
    assert "status-known" in listed.at["K1", "reason"]
    assert listed.at["K2", "reason"] == "no match"


def test_data_urls_of_matched_signed_sign_ups_join_the_publications_registry(httpserver, data_dir):
    feed = [
        signup("D1", ods_code="RJ1", data_url="https://www.gstt.nhs.uk/flex.csv"),
        signup(
            "D2", ods_code="R1F", data_url="https://www.iow.nhs.uk/flex.csv", status="withdrawn"
        ),
        signup(
            "D3", organisation_name="Westford County Council", data_url="https://x.gov.uk/a.csv"
        ),
        signup("D4", ods_code="RXR", data_url=None),
    ]
    run(data_dir, serve_feed(httpserver, [feed]))

    from flexbench.pipeline.publications import registry

    registry_file = data_dir / "registry" / "pledge_data_urls.csv"
    with open(registry_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"org_code": "RJ1", "url": "https://www.gstt.nhs.uk/flex.csv"}]
    entries = registry(make_settings(data_dir, "https://unused.example/feed"))
    assert {(e["org_code"], e["url"]) for e in entries} == {
        ("RJ1", "https://www.gstt.nhs.uk/flex.csv")
    }


# ---------------------------------------------------------------------------
# Personal data (rule P1)
# ---------------------------------------------------------------------------


def test_no_personal_data_reaches_the_landing_zone_the_warehouse_or_the_logs(
    httpserver, data_dir, caplog
):
    caplog.set_level(logging.DEBUG)
    pages = [
        [signup("P1", ods_code="RJ1"), signup("P2", organisation_name="Westford Hospitals")],
        [signup("P3", contact={"name": SIGNATORY_NAME, "email": SIGNATORY_EMAIL})],
    ]
    fetched, _ = run(data_dir, serve_feed(httpserver, pages))
    assert fetched["pages"] == 2

    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" and "landing" in p.parts for p in files)
    for path in files:
        body = path.read_bytes()
        for secret in PERSONAL:
            assert secret.encode() not in body, f"{secret!r} found in {path}"
            assert secret.lower().encode() not in body.lower(), f"{secret!r} found in {path}"

    con = warehouse.connect(data_dir / "flexbench.duckdb", read_only=True)
    try:
        columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR'"
        ).fetchall()
        assert ("staging", "pledge_signups", "organisation_name") in columns
        for schema, table, column in columns:
            for secret in PERSONAL:
                hits = con.execute(
                    f'select count(*) from "{schema}"."{table}" '
                    f'where contains(lower("{column}"), lower(?))',
                    [secret],
                ).fetchone()[0]
                assert hits == 0, f"{secret!r} found in {schema}.{table}.{column}"
    finally:
        con.close()

    assert caplog.records, "the pipeline logs what it did"
    for secret in PERSONAL:
        assert secret.lower() not in caplog.text.lower()


# ---------------------------------------------------------------------------
# marts.pledge_tracker
# ---------------------------------------------------------------------------


def test_pledge_tracker_has_one_row_per_trust_with_its_pledge_and_evidence(httpserver, data_dir):
    feed = [
        signup(
            "T1",
            ods_code="RJ1",
            signed_at="2024-05-01T09:00:00Z",
            managers_trained_pct=80,
            board_review_date="2024-10-15",
        ),
        signup(
            "T2",
            ods_code="R1F",
            signed_at="2024-06-03T09:00:00Z",
            status="withdrawn",
            updated_at="2024-12-02T09:00:00Z",
        ),
    ]
    run(data_dir, serve_feed(httpserver, [feed]))

    from flexbench.pipeline.benchmark import params

    con = warehouse.connect(data_dir / "flexbench.duckdb")
    try:
        # RJ1 published a recent quarter; RXR an old one (stale).
        for code, start, end in (
            ("RJ1", "2024-10-01", "2024-12-31"),
            ("RXR", "2022-01-01", "2022-03-31"),
        ):
            con.execute(
                "insert into raw.publication_rows (file_sha256, fetched_at, org_code, "
                "period_start, period_end, staff_group, requests_received) "
                "values (?, '2025-01-05', ?, ?, ?, 'All staff groups', 10)",
                [code, code, start, end],
            )
            con.execute(
                "insert into audit.publication_files (org_code, url, sha256, fetched_at, status) "
                "values (?, 'https://x', ?, '2025-01-05', 'accepted')",
                [code, code],
            )
        warehouse.build_layers_named(
            con,
            [
                "staging.publications",
                "intermediate.int_benchmark_window",
                "intermediate.int_trust_population",
                "marts.publication_status",
                "marts.pledge_tracker",
            ],
            params(date(2025, 1, 31)),
        )
        tracker = con.execute("select * from marts.pledge_tracker").df().set_index("org_code")
    finally:
        con.close()

    # the population: open English trusts (not the Welsh board, not trusts closed before the window)
    assert sorted(tracker.index) == ["R1F", "RB1", "RHU", "RJ1", "RXR"]
    rj1, r1f, rxr = tracker.loc["RJ1"], tracker.loc["R1F"], tracker.loc["RXR"]
    assert bool(rj1["pledged"]) and rj1["signed_on"].date() == date(2024, 5, 1)
    assert bool(rj1["data_published"]) and bool(rj1["data_current"])
    assert rj1["managers_trained_pct"] == 80
    assert rj1["board_review_date"].date() == date(2024, 10, 15)
    assert rj1["action_plan_url"].startswith("https://")
    assert (bool(rj1["commits_lead"]), bool(rj1["commits_target"]), bool(rj1["commits_train"])) == (
        True,
        True,
        False,
    )
    assert not bool(r1f["pledged"])
    assert r1f["signed_on"].date() == date(2024, 6, 3)
    assert r1f["withdrawn_on"].date() == date(2024, 12, 2)
    assert not bool(r1f["data_published"])
    assert (
        not bool(rxr["pledged"]) and bool(rxr["data_published"]) and not bool(rxr["data_current"])
    )
