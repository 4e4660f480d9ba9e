"""The equity, trends and geography steps of the benchmark build (flexbench/pipeline/benchmark.py).

Each function reads intermediate tables and applies the pure rules of
:mod:`transforms.equity` and :mod:`transforms.trends`; the Python model files of
``warehouse/models/intermediate/`` call them inside the build's transaction and write:

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


def equity_comparisons(con) -> pd.DataFrame:
    """Every group against its reference group, and the equity gap flag
    (``intermediate.int_equity_comparisons``)."""
    from transforms import equity

    groups = con.execute("select * from intermediate.int_equity_groups").df()
    return equity.compare_groups(groups)


def measure_trends(con) -> pd.DataFrame:
    """Every published measure by quarter, for each trust, peer group and England
    (``intermediate.int_measure_trends``)."""
    from transforms import trends

    quarters = con.execute("select * from intermediate.int_trust_quarters").df()
    keys = ["quarter", "quarter_start", "quarter_end"]
    levels = _levels(quarters, keys)
    return trends.measures_long(levels, ["level", "org_code", *keys, "trusts", "months_covered"])


def measure_yoy(con) -> pd.DataFrame:
    """The latest 12 months against the 12 before (``intermediate.int_measure_yoy``)."""
    from transforms import trends

    quarters = con.execute("select * from intermediate.int_trust_quarters").df()
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
    return yoy


def area_funnels(con) -> pd.DataFrame:
    """Each trust's funnel position within its region and ICB
    (``intermediate.int_area_funnels``)."""
    from transforms import trends

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
    return funnels
