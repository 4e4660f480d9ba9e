"""The benchmark's SQL models and build on tiny hand-made warehouses."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

import warehouse
from flexbench.pipeline import benchmark
from transforms.vocabulary import COUNT_COLUMNS

AS_OF = date(2026, 10, 31)
COUNTS = list(COUNT_COLUMNS)


def _row(code, start, end, group="All staff groups", approved=9, declined=1):
    row = dict.fromkeys(COUNTS, 0)
    row.update(
        org_code=code,
        period_start=pd.Timestamp(start),
        period_end=pd.Timestamp(end),
        staff_group=group,
        requests_received=approved + declined,
        approved_in_full=approved,
        declined=declined,
        escalated=declined,
        declined_demand=declined,
        decided_within_2_months=approved + declined,
        file_sha256=f"sha-{code}",
        fetched_at=pd.Timestamp(datetime(2026, 10, 1, tzinfo=UTC)),
    )
    return row


@pytest.fixture
def build(tmp_path):
    """Load the given publication rows beside two open English trusts and build."""

    def run(rows, survey=None, breakdown=None, workforce=None):
        path = tmp_path / "wh.duckdb"
        con = warehouse.connect(path)
        warehouse.apply_schema(con)
        ods = pd.DataFrame(
            {
                "org_code": ["RAA", "RBB"],
                "name": ["A TRUST", "B TRUST"],
                "region_code": ["Y56", "Y56"],
                "icb_code": ["QKK", "QMJ"],
                "open_date": pd.Timestamp("2000-04-01"),
                "country": "England",
                "sha256": "x",
                "loaded_at": pd.Timestamp(datetime(2026, 1, 1, tzinfo=UTC)),
            }
        )
        for table, frame in (
            ("raw.ods_trusts", ods),
            ("raw.publication_rows", pd.DataFrame(rows)),
            ("raw.staff_survey", survey),
            ("raw.publication_breakdown_rows", breakdown),
            ("raw.workforce", workforce),
        ):
            if frame is not None and len(frame):
                con.register("f", frame)
                con.execute(f"insert into {table} by name select * from f")
                con.unregister("f")
        con.close()
        result = benchmark.build(_Settings(path), AS_OF)
        con = warehouse.connect(path, read_only=True)
        return result, con

    return run


class _Settings:
    """The only setting the build reads."""

    def __init__(self, path):
        self.warehouse_path = path


def test_an_empty_warehouse_builds_every_table_with_no_flags(build):
    result, con = build([])
    assert "marts.policy_practice_gaps" in result["tables"] and result["flags"] == 0
    assert con.execute("select count(*) from marts.trust_benchmark").fetchone()[0] == 2
    assert con.execute("select count(*) from marts.trust_trends").fetchone()[0] == 0


def test_a_table_no_model_builds_any_more_is_dropped_by_the_next_build(build, tmp_path):
    # A warehouse built before a model was renamed (marts.withheld_zeros is now
    # marts.withheld_cells) or removed: its table would stay, stale, beside the new ones.
    path = tmp_path / "wh.duckdb"
    con = warehouse.connect(path)
    warehouse.apply_schema(con)
    con.execute("create table marts.withheld_zeros as select 'RAA' as org_code")
    con.execute("create view public.old_view as select 1 as x")
    con.execute("create table raw.kept_by_the_loader as select 1 as x")  # not a model layer
    con.close()
    _, con = build([])
    tables = {
        f"{s}.{n}"
        for s, n in con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
    }
    assert "marts.withheld_zeros" not in tables and "public.old_view" not in tables
    assert "marts.withheld_cells" in tables and "raw.kept_by_the_loader" in tables
    models = {t for t, _ in warehouse.ordered_models(warehouse.LAYERS)}
    assert {t for t in tables if t.split(".")[0] in warehouse.LAYERS} == models


def test_trends_prefer_a_quarter_and_sum_months_otherwise(build):
    rows = [
        # RAA: Q3 as three months; Q2 as a quarter AND as months (the quarter wins).
        _row("RAA", "2026-07-01", "2026-07-31"),
        _row("RAA", "2026-08-01", "2026-08-31"),
        _row("RAA", "2026-09-01", "2026-09-30", approved=4, declined=6),
        _row("RAA", "2026-04-01", "2026-06-30", approved=50, declined=10),
        _row("RAA", "2026-04-01", "2026-04-30", approved=1, declined=1),
        # RBB: a financial year cannot be split into quarters.
        _row("RBB", "2025-04-01", "2026-03-31"),
    ]
    _, con = build(rows)
    trends = con.execute("select * from marts.trust_trends order by org_code, quarter").df()
    assert list(trends["org_code"]) == ["RAA", "RAA"]
    q2, q3 = trends.iloc[0], trends.iloc[1]
    assert (q2["quarter"], q2["decided"], q2["months_covered"]) == ("2026-Q2", 60, 3)
    assert (q3["quarter"], q3["approved"], q3["decided"]) == ("2026-Q3", 22, 30)
    assert q3["national_approval_rate"] == pytest.approx(22 / 30)


def test_staff_group_counts_feed_the_clinical_gap(build):
    rows = [
        _row("RAA", "2026-07-01", "2026-09-30", "Nurses & health visitors", 60, 40),
        _row("RAA", "2026-07-01", "2026-09-30", "Central functions", 99, 1),
        _row("RAA", "2026-07-01", "2026-09-30", "All staff groups", 159, 41),
    ]
    _, con = build(rows)
    b = con.execute("select * from marts.trust_benchmark where org_code = 'RAA'").df().iloc[0]
    assert (b["clinical_approval_rate"], b["non_clinical_approval_rate"]) == (0.6, 0.99)
    assert b["decided"] == 200  # the "All staff groups" row, not the groups added twice
    gaps = con.execute(
        "select flag, severity from marts.policy_practice_gaps where org_code = 'RAA'"
    ).fetchall()
    assert ("clinical_approval_gap", "high") in gaps


def test_staff_voice_is_the_latest_survey_up_to_the_window_end(build):
    survey = pd.DataFrame(
        {
            "org_code": ["RAA"] * 3,
            "survey_year": [2024, 2025, 2027],
            "q4d_pct_satisfied": [50.0, 55.0, 70.0],
            "responses": [900.0] * 3,
            "is_ods_trust": True,
            "unit_kind": "trust",
            "sha256": "s",
            "loaded_at": pd.Timestamp(datetime(2026, 1, 1, tzinfo=UTC)),
        }
    )
    _, con = build([_row("RAA", "2026-07-01", "2026-09-30")], survey)
    got = con.execute(
        "select survey_year, q4d_pct_satisfied from marts.trust_benchmark where org_code = 'RAA'"
    ).fetchone()
    assert got == (2025, 55.0)


def test_a_failed_measure_step_leaves_the_previous_benchmark(build, monkeypatch):
    _, con = build([_row("RAA", "2026-07-01", "2026-09-30")])
    before = con.execute("select count(*) from marts.trust_benchmark").fetchone()[0]
    path = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()[0]
    con.close()

    def boom(*args, **kwargs):
        raise RuntimeError("measure step failed")

    monkeypatch.setattr("transforms.benchmark.trust_measures", boom)
    with pytest.raises(RuntimeError, match="measure step failed"):
        benchmark.build(_Settings(path), AS_OF)
    con = warehouse.connect(path, read_only=True)
    assert con.execute("select count(*) from marts.trust_benchmark").fetchone()[0] == before
    assert con.execute("select count(*) from marts.trust_trends").fetchone()[0] == 1


def _group(code, dimension, group, approved, declined, start="2026-07-01", end="2026-09-30"):
    return dict(
        org_code=code, period_start=pd.Timestamp(start), period_end=pd.Timestamp(end),
        dimension=dimension, group_value=group, requests_received=approved + declined,
        approved_in_full=approved, approved_with_changes=0, declined=declined, withdrawn=0,
        pending=0, file_sha256=f"sha-{code}",
        fetched_at=pd.Timestamp(datetime(2026, 10, 1, tzinfo=UTC)),
    )  # fmt: skip


def test_equity_rows_per_trust_and_nation_with_relative_likelihood_and_the_small_number_rule(
    build,
):
    breakdown = [
        _group("RAA", "ethnic_group", "White", 90, 10),
        _group("RAA", "ethnic_group", "Black or Black British", 30, 20),
        _group("RAA", "ethnic_group", "Mixed", 5, 4),  # 9 decided: not compared
        _group("RBB", "ethnic_group", "White", 45, 5),
        _group("RAA", "ethnic_group", "White", 1, 1, "2025-04-01", "2025-06-30"),  # before
    ]
    rows = [_row("RAA", "2026-07-01", "2026-09-30", approved=126, declined=34),
            _row("RBB", "2026-07-01", "2026-09-30", approved=45, declined=5)]  # fmt: skip
    _, con = build(rows, breakdown=pd.DataFrame(breakdown))
    eb = con.execute("select * from marts.equity_benchmark").df()
    eb = eb.set_index(["level", "org_code", "group_value"])
    black = eb.loc[("trust", "RAA", "Black or Black British")]
    assert (black["decided"], black["approved"]) == (50, 30)  # the window only
    assert black["relative_likelihood"] == pytest.approx(0.9 / 0.6)
    assert black["relative_likelihood_lower95"] < 1.5 < black["relative_likelihood_upper95"]
    assert black["approval_rate_lower95"] < 0.6 < black["approval_rate_upper95"]
    assert black["reference_group"] == "White" and black["comparable"]
    mixed = eb.loc[("trust", "RAA", "Mixed")]
    assert not mixed["comparable"] and pd.isna(mixed["relative_likelihood"])
    nation = eb.loc[("england", "ENGLAND", "White")]
    assert (nation["decided"], nation["trusts"]) == (150, 2)
    gaps = con.execute("select * from marts.equity_gaps").df()
    assert list(zip(gaps["org_code"], gaps["group_value"], strict=True)) == [
        ("RAA", "Black or Black British")
    ]
    assert "30 of 50" in gaps["evidence"][0]


def test_every_measure_has_a_quarterly_trend_and_regions_and_icbs_have_names(build):
    from transforms.trends import TREND_MEASURES

    rows = [_row("RAA", "2026-07-01", "2026-09-30", approved=80, declined=20),
            _row("RAA", "2025-07-01", "2025-09-30", approved=95, declined=5),
            _row("RBB", "2026-07-01", "2026-09-30", approved=40, declined=10)]  # fmt: skip
    # NHS Workforce Statistics names QKK in two editions (renamed in the later one) and does
    # not name QMJ.
    workforce = pd.DataFrame(
        {
            "sha256": ["wf-aug", "wf-oct"],
            "loaded_at": pd.Timestamp(datetime(2026, 1, 1, tzinfo=UTC)),
            "org_code": "RAA",
            "period": ["202507 to 202508", "202509 to 202510"],
            "period_end": pd.to_datetime(["2026-08-31", "2026-10-31"]),
            "staff_group": "All staff groups",
            "headcount": 1000.0,
            "region_code": "Y56",
            "ics_code": "QKK",
            "ics_name": ["South East London", "South East London Health and Care"],
        }
    )
    _, con = build(rows, workforce=workforce)
    trends = con.execute(
        "select * from marts.trust_measure_trends where level = 'trust' and org_code = 'RAA'"
    ).df()
    assert set(trends["measure"]) == set(TREND_MEASURES)
    assert set(trends["quarter"]) == {"2025-Q3", "2026-Q3"}
    approval = trends[trends["measure"] == "approval_rate"].set_index("quarter")
    assert approval.loc["2026-Q3", "rate"] == pytest.approx(0.8)
    yoy = (
        con.execute(
            "select * from marts.trust_measure_yoy where org_code = 'RAA' "
            "and measure = 'approval_rate'"
        )
        .df()
        .iloc[0]
    )
    assert yoy["change"] == pytest.approx(0.8 - 0.95)
    assert yoy["change_upper95"] < 0 and yoy["change_significant"]
    region = con.execute("select * from marts.region_benchmark").df().iloc[0]
    assert (region["region_name"], region["decided"]) == ("London", 150)
    assert region["approval_rate"] == pytest.approx(120 / 150)
    icbs = con.execute("select icb_code, icb_name from marts.icb_benchmark order by 1").df()
    # the latest name the workforce file gives; QMJ, named by none, keeps its code and region
    assert icbs.values.tolist() == [
        ["QKK", "South East London Health and Care"],
        ["QMJ", "QMJ (London)"],
    ]
    names = con.execute(
        "select area_code, area_name from public.area_names where area_kind = 'icb'"
    ).fetchall()
    assert dict(names) == dict(icbs.values.tolist())
    funnels = con.execute("select * from marts.area_trust_funnels where area_kind = 'region'")
    assert set(funnels.df()["area_name"]) == {"London"}


def test_the_newest_version_of_a_period_gives_each_key_once_however_it_was_fetched(build):
    # A's file: its bytes accepted from two URLs at the same instant, then fetched again
    # later. B's: accepted from two URLs at the same instant only. Each staged key once,
    # from the latest fetch of the newest version.
    first = datetime(2026, 10, 1, tzinfo=UTC)
    later = datetime(2026, 10, 8, tzinfo=UTC)
    rows = []
    for fetched in (first, first, later):
        for group, approved in (("All staff groups", 9), ("Nursing and midwifery", 4)):
            row = _row("RAA", "2026-07-01", "2026-09-30", group, approved=approved)
            row["fetched_at"] = pd.Timestamp(fetched)
            rows.append(row)
    rows += [_row("RBB", "2026-07-01", "2026-09-30") for _ in range(2)]
    breakdown = pd.DataFrame(
        [
            {
                **_group("RAA", "sex", "Female", 5, 1),
                "fetched_at": pd.Timestamp(fetched),
            }
            for fetched in (first, first, later)
        ]
    )

    _, con = build(rows, breakdown=breakdown)

    staged = con.execute(
        "select org_code, staff_group, approved_in_full, source_fetched_at "
        "from staging.publications order by all"
    ).fetchall()
    assert [(o, g, a) for o, g, a, _ in staged] == [
        ("RAA", "All staff groups", 9),
        ("RAA", "Nursing and midwifery", 4),
        ("RBB", "All staff groups", 9),
    ]
    assert {f for o, _, _, f in staged if o == "RAA"} == {later}
    groups = con.execute(
        "select org_code, dimension, group_value, source_fetched_at "
        "from staging.publication_breakdowns"
    ).fetchall()
    assert groups == [("RAA", "sex", "Female", later)]
