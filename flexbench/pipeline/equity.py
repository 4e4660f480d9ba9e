"""The equity, trends and geography step of the benchmark build (flexbench/pipeline/benchmark.py).

Inside the build's transaction, after the intermediate SQL models and before the marts, it
reads intermediate tables, applies the pure rules of :mod:`transforms.equity` and
:mod:`transforms.trends`, and writes:

- ``intermediate.int_equity_comparisons``: every group against its reference group, and the
  equity gap flag (docs/methodology.md, "Equity", "Equity gap flag");
- ``intermediate.int_measure_trends``: every published measure by quarter, for each trust,
  peer group and England ("Trends and year on year");
- ``intermediate.int_measure_yoy``: the latest 12 months against the 12 before;
- ``intermediate.int_area_funnels``: each trust's funnel position within its region and ICB
  ("Regions and ICBs").

The marts (``marts.equity_benchmark``, ``marts.equity_gaps``, ``marts.flex_type_mix``,
``marts.trust_measure_trends``, ``marts.trust_measure_yoy``, ``marts.region_benchmark``,
``marts.icb_benchmark``, ``marts.area_trust_funnels``) read these.
"""

from __future__ import annotations

import pandas as pd

from transforms import vocabulary

#: Count columns added up for a peer group or England (the summary form's counts).
_COUNTS = list(vocabulary.COUNT_COLUMNS)


def _write(con, table: str, frame: pd.DataFrame) -> None:
    con.register("step_df", frame)
    try:
        con.execute(f"create or replace table {table} as select * from step_df")
    finally:
        con.unregister("step_df")


def _levels(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Trust rows, then peer-group and England rows (counts, staff and months added up).

    months_covered of an aggregate is the largest of its trusts' (uptake of an aggregate is
    its requests over its staff in post, annualised on that).
    """
    sums = {c: "sum" for c in [*_COUNTS, "headcount"]}
    trust = frame.assign(level="trust")
    peer = (
        frame[frame["peer_group"].notna()]
        .groupby(["peer_group", *by], as_index=False)
        .agg({**sums, "months_covered": "max", "org_code": "nunique"})
        .rename(columns={"org_code": "trusts"})
    )
    peer = peer.assign(level="peer_group", org_code=peer["peer_group"])
    nation = (
        frame.groupby(by, as_index=False)
        .agg({**sums, "months_covered": "max", "org_code": "nunique"})
        .rename(columns={"org_code": "trusts"})
        .assign(level="england", org_code="ENGLAND")
    )
    return pd.concat([trust.assign(trusts=1), peer, nation], ignore_index=True)


def compute(con) -> dict[str, int]:
    """Write the four intermediate tables above; returns their row counts."""
    from transforms import equity, trends

    groups = con.execute("select * from intermediate.int_equity_groups").df()
    comparisons = equity.compare_groups(groups)
    _write(con, "intermediate.int_equity_comparisons", comparisons)

    quarters = con.execute("select * from intermediate.int_trust_quarters").df()
    keys = ["quarter", "quarter_start", "quarter_end"]
    levels = _levels(quarters, keys)
    long = trends.measures_long(levels, ["level", "org_code", *keys, "trusts", "months_covered"])
    _write(con, "intermediate.int_measure_trends", long)

    window = con.execute(
        "select window_start, window_end from intermediate.int_benchmark_window"
    ).fetchall()[0]
    start = pd.Timestamp(window[0])
    q = quarters.copy()
    q["year"] = None
    q.loc[q["quarter_start"] >= start, "year"] = "latest"
    previous = (q["quarter_start"] < start) & (
        q["quarter_start"] >= start - pd.DateOffset(months=12)
    )
    q.loc[previous, "year"] = "previous"
    q = q[q["year"].notna()]
    years = _levels(
        q.groupby(["org_code", "peer_group", "year"], as_index=False, dropna=False).agg(
            {**{c: "sum" for c in _COUNTS}, "months_covered": "sum", "headcount": "first"}
        ),
        ["year"],
    )
    # An aggregate's staff: the trusts with data in both years, so the two years compare.
    long_years = trends.measures_long(years, ["level", "org_code", "year", "months_covered"])
    ident = ["level", "org_code"]
    latest = long_years[long_years["year"] == "latest"].drop(columns=["year", "months_covered"])
    before = long_years[long_years["year"] == "previous"].drop(columns=["year", "months_covered"])
    yoy = trends.year_on_year(latest, before, ident)
    covered = years.pivot_table(
        index=ident, columns="year", values="months_covered", aggfunc="first"
    ).reindex(columns=["latest", "previous"])
    covered.columns = ["latest_months_covered", "previous_months_covered"]
    yoy = yoy.merge(covered.reset_index(), on=ident, how="left")
    yoy["latest_start"] = start.date()
    yoy["latest_end"] = pd.Timestamp(window[1]).date()
    yoy["previous_start"] = (start - pd.DateOffset(months=12)).date()
    yoy["previous_end"] = (start - pd.Timedelta(days=1)).date()
    _write(con, "intermediate.int_measure_yoy", yoy)

    trusts = con.execute(
        "select org_code, region_code, icb_code, approved, decided "
        "from intermediate.int_trust_window where has_data"
    ).df()
    # The national approval funnel's overdispersion (transforms.benchmark), used in each area.
    phi, tau2 = con.execute(
        "select max(approval_rate_phi), max(approval_rate_tau2) "
        "from intermediate.int_trust_measures"
    ).fetchall()[0]
    tau2 = float(tau2) if phi is not None and phi > 1 and tau2 is not None else 0.0
    funnels = pd.concat(
        [
            trends.funnel_within(trusts, "region_code", tau2=tau2)
            .rename(columns={"region_code": "area_code"})
            .assign(area_kind="region"),
            trends.funnel_within(trusts[trusts["icb_code"].notna()], "icb_code", tau2=tau2)
            .rename(columns={"icb_code": "area_code"})
            .assign(area_kind="icb"),
        ],
        ignore_index=True,
    )
    funnels["tau2"] = tau2
    _write(con, "intermediate.int_area_funnels", funnels)
    return {
        "equity_comparisons": len(comparisons),
        "equity_flags": int(comparisons["flagged"].sum()),
        "measure_trends": len(long),
        "measure_yoy": len(yoy),
        "area_funnels": len(funnels),
    }
