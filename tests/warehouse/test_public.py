"""The public layer: every model keeps the grain its header states, outputs can read nothing but
``public.*``, models are built in dependency order, and the quarterly numbers every output shows
are the mart's (docs/methodology.md, "Disclosure control"; docs/analysts.md, "Public tables")."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from test_models import _row, build  # noqa: F401  (the fixture is used by name)

import warehouse
from transforms.disclosure import MAX_SUPPRESSED_COUNT, ROUND_TO

FLEXBENCH_TESTS = Path(__file__).resolve().parents[1] / "flexbench"


@pytest.fixture(scope="module")
def nation_warehouse(tmp_path_factory) -> Path:
    """A generated nation of 60 trusts, built by the real build (every model has rows)."""
    if str(FLEXBENCH_TESTS) not in sys.path:
        sys.path.insert(0, str(FLEXBENCH_TESTS))
    from nation_warehouse import build_nation_warehouse

    return build_nation_warehouse(tmp_path_factory.mktemp("grain"), seed=11, n_trusts=60)


def test_every_model_keeps_the_grain_its_header_states(nation_warehouse):
    con = warehouse.connect(nation_warehouse, read_only=True)
    try:
        checked = []
        for table, path in warehouse.ordered_models(warehouse.LAYERS):
            keys = warehouse.model_keys(path)
            header = " ".join(warehouse.model_header(path).split())
            rows = con.execute(f"select count(*) from {table}").fetchone()[0]
            if not keys:
                assert "exactly one row" in header, f"{table}: the header states no keys"
                assert rows == 1, table
                continue
            cols = ", ".join(keys)
            nulls = " or ".join(f"{k} is null" for k in keys)
            dupes = con.execute(
                f"select count(*) from (select {cols} from {table} group by all "
                "having count(*) > 1)"
            ).fetchone()[0]
            missing = con.execute(f"select count(*) from {table} where {nulls}").fetchone()[0]
            assert dupes == 0, f"{table}: {dupes} duplicate keys ({cols})"
            assert missing == 0, f"{table}: {missing} rows with a null key ({cols})"
            checked.append(table)
    finally:
        con.close()
    # every layer's models, the Python ones too
    assert {"public.trust_window", "public.funnel_limits", "intermediate.int_trust_measures",
            "marts.trust_trends", "staging.publications"} <= set(checked)  # fmt: skip


def test_a_public_connection_sees_the_public_layer_and_nothing_else(nation_warehouse):
    con = warehouse.connect_public(nation_warehouse)
    try:
        schemas = {
            r[0] for r in con.execute("select distinct schema_name from duckdb_tables()").fetchall()
        }
        assert schemas == {"public"}
        assert con.execute("select count(*) from public.trust_window").fetchone()[0] > 0
        for table in ("marts.trust_benchmark", "staging.publications", "audit.publication_files"):
            with pytest.raises(duckdb.CatalogException):
                con.execute(f"select * from {table}")
        with pytest.raises(duckdb.Error):  # and no way back to the file
            con.execute(f"attach '{nation_warehouse}' as again (read_only)")
        with pytest.raises(duckdb.Error):
            con.execute("set enable_external_access = true")
    finally:
        con.close()


def test_public_counts_are_withheld_or_rounded_and_zeros_shown(nation_warehouse):
    columns = ("pending", "appeals_upheld", "declined_costs", "declined_quality", "withdrawn")
    con = warehouse.connect(nation_warehouse, read_only=True)
    try:
        pairs = pd.concat(
            con.execute(
                f"select '{c}' as col, m.{c} as true, p.{c} as shown, p.withheld "
                "from marts.trust_benchmark m join public.trust_window p using (org_code) "
                "where m.has_data"
            ).df()
            for c in columns
        )
    finally:
        con.close()
    small = pairs["true"].between(1, MAX_SUPPRESSED_COUNT)
    assert small.any() and pairs.loc[small, "shown"].isna().all()
    withheld = pairs[small]
    assert all(
        c in w.split(";") for c, w in zip(withheld["col"], withheld["withheld"], strict=True)
    )
    assert (pairs.loc[pairs["true"] == 0, "shown"] == 0).all()
    big = pairs[pairs["true"] > MAX_SUPPRESSED_COUNT]
    assert len(big) and (big["shown"] % ROUND_TO == 0).all()
    assert ((big["shown"] - big["true"]).abs() <= ROUND_TO // 2).all()


def test_models_are_built_after_the_models_they_read():
    order = [name for name, _ in warehouse.ordered_models(warehouse.LAYERS)]
    position = {name: i for i, name in enumerate(order)}
    for name, path in warehouse.ordered_models(warehouse.LAYERS):
        for ref in warehouse.model_reads(path):
            if ref in position and ref != name:
                assert position[ref] < position[name], f"{name} is built before {ref}"
    # the flags read a mart: it is built first, across layers
    assert position["marts.publication_status"] < position["intermediate.int_policy_practice_flags"]
    assert max(position[n] for n in order if n.startswith("marts.")) < min(
        position[n] for n in order if n.startswith("public.") and n != "public.organisations"
    ) or all(
        position[r] < position[n]
        for n, p in warehouse.ordered_models(["public"])
        for r in warehouse.model_reads(p)
        if r.startswith("marts.")
    )


def test_quarters_on_the_site_and_in_extracts_are_the_marts_with_overlapping_periods(
    build,  # noqa: F811  (the fixture of test_models)
    tmp_path,
):
    from flexbench import extract
    from flexbench.site import build_site

    rows = [
        # RAA publishes Q2 as a quarter AND April as a month: the mart counts the quarter once.
        _row("RAA", "2026-04-01", "2026-06-30", approved=50, declined=10),
        _row("RAA", "2026-04-01", "2026-04-30", approved=5, declined=5),
        _row("RAA", "2026-07-01", "2026-09-30", approved=40, declined=10),
    ]
    _, con = build(rows)
    trends = con.execute(
        "select quarter, requests_received, decided from marts.trust_trends "
        "where org_code = 'RAA' order by quarter"
    ).df()
    path = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()[0]
    con.close()
    assert list(trends["decided"]) == [60, 50]  # not 70: April is not counted twice

    pub = extract.open_public(path)
    try:
        quarters = extract.extract_table(pub, extract.ExtractFilter(by="quarter", trusts=["RAA"]))
    finally:
        pub.close()
    assert list(quarters["quarter"]) == list(trends["quarter"])
    assert list(quarters["decided"]) == list(trends["decided"])  # multiples of 5 already
    assert list(quarters["requests_received"]) == list(trends["requests_received"])

    site = build_site(path, tmp_path / "site").parent
    html = (site / "trusts" / "RAA.html").read_text()

    def based_on(measure):
        """(quarter, 'x of y' or 'x requests, y staff') of a measure's trend table."""
        block = html.split(f'id="trend-{measure}"')[1]
        table = re.search(r'<table class="trend-table">.*?</table>', block, re.S)[0]
        return re.findall(r'<th scope="row">([^<]+)</th>.*?<td class="basis">([^<]+)</td>',
                          table)  # fmt: skip

    decided = [(q, int(b.split(" of ")[1])) for q, b in based_on("approval_rate")]
    received = [(q, int(b.split(" requests")[0])) for q, b in based_on("requests_per_100_staff")]
    marts = list(trends.itertuples(index=False))
    assert decided == [(t.quarter, int(t.decided)) for t in marts]
    assert received == [(t.quarter, int(t.requests_received)) for t in marts]
    assert pd.notna(quarters["approval_rate"]).all()


def test_quarterly_appeals_are_the_marts_under_the_rounding_rule(nation_warehouse):
    con = warehouse.connect(nation_warehouse, read_only=True)
    try:
        pairs = con.execute(
            "select t.org_code, t.quarter_start, t.appeals as true_appeals, "
            "t.appeals_upheld as true_upheld, t.declined as true_declined, "
            "q.appeals, q.appeals_upheld, q.declined, q.withheld, q.appeal_rate, "
            "q.appeal_rate_status, q.appeals_upheld_rate, q.appeals_upheld_rate_status "
            "from marts.trust_trends t join public.trust_quarters q using (org_code, quarter_start)"
        ).df()
    finally:
        con.close()
    assert len(pairs) > 100
    for true, shown, name in (("true_appeals", "appeals", "appeals"),
                              ("true_upheld", "appeals_upheld", "appeals_upheld")):  # fmt: skip
        named = pairs["withheld"].fillna("").str.split(";").map(lambda w, n=name: n in w)
        small = pairs[true].between(1, MAX_SUPPRESSED_COUNT)
        assert small.any() and pairs.loc[small, shown].isna().all() and named[small].all()
        # a 0 is shown, unless withheld with a count it shares a relation with
        zero = pairs[true] == 0
        assert ((pairs.loc[zero, shown] == 0) | named[zero]).all()
        assert (pairs.loc[zero, shown] == 0).any()
        # a larger count is rounded, unless withheld with its window's other quarters
        big = pairs[(pairs[true] > MAX_SUPPRESSED_COUNT) & pairs[shown].notna()]
        assert len(big) and (big[shown] % ROUND_TO == 0).all(), name
        assert ((big[shown] - big[true]).abs() <= ROUND_TO // 2).all(), name
        assert pairs.loc[pairs[shown].isna(), "withheld"].str.contains(name).all()
    # The rates are the ratio of the published counts, published only where both are.
    for rate, num, den in (("appeal_rate", "appeals", "declined"),
                           ("appeals_upheld_rate", "appeals_upheld", "appeals")):  # fmt: skip
        pub = pairs[pairs[f"{rate}_status"] == "published"]
        assert len(pub), rate
        assert ((pub[num] / pub[den]).round(3) - pub[rate]).abs().max() < 1e-9
        assert (pub[den] >= 10).all()
        assert pairs.loc[pairs[f"{rate}_status"] != "published", rate].isna().all()
        assert (pairs.loc[pairs[num].isna() & pairs[den].ge(10), f"{rate}_status"]
                == "withheld").all()  # fmt: skip


def test_quarterly_appeals_are_published_all_or_none_over_the_window(nation_warehouse):
    """Where one quarter's appeals (or appeals upheld) of a trust's window is withheld, every
    quarter's is, and appeals upheld with appeals: no published quarter can be taken from the
    window's total. The window is then rounded from its own value; where every quarter is
    published, it is their sum (docs/methodology.md, "Disclosure control")."""
    con = warehouse.connect(nation_warehouse, read_only=True)
    try:
        rows = con.execute(
            "select w.org_code, w.appeals as window_appeals, "
            "w.appeals_upheld as window_upheld, m.appeals as true_appeals, "
            "count(q.appeals) as appeals_shown, count(q.appeals_upheld) as upheld_shown, "
            "count(*) as quarters, sum(q.appeals) as appeals_sum "
            "from public.trust_window w join marts.trust_benchmark m using (org_code) "
            "join public.trust_quarters q on q.org_code = w.org_code "
            "and q.quarter_start >= w.window_start and q.quarter_end <= w.window_end "
            "where w.has_data group by all"
        ).df()
    finally:
        con.close()
    assert len(rows) > 30
    for shown in ("appeals_shown", "upheld_shown"):
        none, every = rows[shown] == 0, rows[shown] == rows["quarters"]
        assert none.any() and (none | every).all(), shown
    assert (rows.loc[rows["appeals_shown"] == 0, "upheld_shown"] == 0).all()
    together = rows[rows["appeals_shown"] == rows["quarters"]]
    assert len(together) and (together["window_appeals"] == together["appeals_sum"]).all()
    # withheld quarters leave the window's count rounded from its own value
    alone = rows[(rows["appeals_shown"] == 0) & rows["window_appeals"].notna()]
    assert len(alone) > len(rows) / 3
    assert (alone["window_appeals"] % ROUND_TO == 0).all()
    assert ((alone["window_appeals"] - alone["true_appeals"]).abs() <= ROUND_TO // 2).all()


def test_sql_and_python_define_approved_and_decided_alike():
    """approved and decided have one definition (transforms.benchmark.add_derived_counts); the
    SQL macros every model uses give the same counts, missing values included."""
    import duckdb
    import numpy as np
    import pandas as pd

    import warehouse
    from transforms.benchmark import add_derived_counts

    rows = pd.DataFrame(
        {
            "approved_in_full": [10, 0, 3, None],
            "approved_with_changes": [5, 0, None, 2],
            "declined": [7, 0, 1, 4],
            "escalated": [1, 0, 0, 0],
        },
        dtype="Float64",
    )
    con = duckdb.connect()
    try:
        warehouse.apply_schema(con)
        con.register("t", rows)
        sql = con.execute(
            "select approved_count(approved_in_full, approved_with_changes) as approved, "
            "decided_count(approved_in_full, approved_with_changes, declined) as decided from t"
        ).df()
    finally:
        con.close()
    python = rows.copy()
    add_derived_counts(python)
    for column in ("approved", "decided"):
        assert np.array_equal(sql[column].astype("Float64").isna(), python[column].isna()), column
        assert (sql[column].dropna().to_numpy() == python[column].dropna().to_numpy()).all()


#: Columns of the same name that mean different things: public.aggregates' ``trusts`` counts
#: the group's trusts with data (public.areas: ``trusts_with_data``; its ``trusts`` counts every
#: trust of the area).
SAME_FIGURE = {"aggregates": {"trusts": "trusts_with_data"}}


def _area_rows(con, table: str) -> pd.DataFrame | None:
    """A public table's region and ICB rows of the benchmark window, keyed (kind, code); None
    for a table that has none."""
    frame = con.execute(f"select * from public.{table}").df()
    if {"area_kind", "area_code"} <= set(frame.columns):
        keys = frame["area_kind"], frame["area_code"]
    elif {"scope", "group_code"} <= set(frame.columns):
        frame = frame[frame["scope"].isin(["region", "icb"])]
        if "period" in frame:
            frame = frame[frame["period"] == "window"]
        keys = frame["scope"], frame["group_code"]
    else:
        return None
    frame = frame.rename(columns=SAME_FIGURE.get(table, {}))
    frame.index = pd.MultiIndex.from_arrays(keys, names=["kind", "code"])
    return frame.drop(columns=["area_kind", "area_code", "scope", "group_code"], errors="ignore")


def test_region_and_icb_figures_agree_in_every_public_table(nation_warehouse):
    # A region's (or ICB's) figure is one figure wherever it is published: public.areas and
    # public.aggregates, and public.area_names' names, never disagree (docs/methodology.md,
    # "Disclosure control").
    con = warehouse.connect_public(nation_warehouse)
    try:
        tables = [t for (t,) in con.execute("show tables").fetchall()]
        rows = {t: f for t in tables if (f := _area_rows(con, t)) is not None}
        window = con.execute("select * from public.trust_window where has_data").df()
    finally:
        con.close()
    assert {"areas", "aggregates", "area_names"} <= set(rows)
    compared = withheld_in_a_trust = 0
    names = sorted(rows)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sorted(set(rows[a].columns) & set(rows[b].columns))
            both = rows[a].index.intersection(rows[b].index)
            assert len(both), (a, b)
            for column in common:
                left, right = rows[a].loc[both, column], rows[b].loc[both, column]
                same = (left == right) | (left.isna() & right.isna())
                assert same.all(), (a, b, column, list(both[~same.to_numpy()])[:5])
                compared += len(both)
    # every area of the population is in each table that has areas
    assert set(rows["areas"].index) == set(rows["area_names"].index)
    assert set(rows["aggregates"].index) <= set(rows["areas"].index)
    # the case that disagreed before: a region figure with one of its trusts' figures withheld
    for code, g in window.groupby("region_code"):
        withheld_in_a_trust += int(g["declined"].isna().any())
        assert rows["areas"].loc[("region", code), "trusts_with_data"] == len(g)
    assert compared > 500 and withheld_in_a_trust >= 3
