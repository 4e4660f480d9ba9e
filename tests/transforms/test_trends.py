"""Trends, year on year and area funnels (docs/methodology.md, "Trends and year on year",
"Regions and ICBs")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transforms import stats, trends
from transforms.benchmark import poisson_interval
from transforms.vocabulary import COUNT_COLUMNS


def _counts(**values) -> dict:
    row = dict.fromkeys(COUNT_COLUMNS, 0)
    row.update(values)
    return row


def test_every_measure_in_long_form_with_the_benchmark_intervals():
    frame = pd.DataFrame([
        {"unit": "A", "months_covered": 3, "headcount": 1000,
         **_counts(requests_received=30, approved_in_full=20, approved_with_changes=4,
                   declined=6, declined_costs=4, declined_other=2, appeals=2,
                   appeals_upheld=1, escalated=6, decided_within_2_months=27)},
    ])  # fmt: skip
    out = trends.measures_long(frame, ["unit"]).set_index("measure")
    assert list(out.index) == list(trends.TREND_MEASURES)
    approval = out.loc["approval_rate"]
    assert (approval["numerator"], approval["denominator"]) == (24, 30)
    lower, upper = stats.wilson_interval(24, 30, 0.998)
    assert approval["rate_lower998"] == pytest.approx(lower)
    assert approval["rate_upper998"] == pytest.approx(upper)
    assert out.loc["decline_share_other", "rate"] == pytest.approx(2 / 6)
    # Uptake: 30 requests in 3 months over 1,000 staff = 12 per 100 staff a year.
    uptake = out.loc["requests_per_100_staff"]
    assert uptake["rate"] == pytest.approx(12.0)
    lo, hi = poisson_interval(pd.Series([30.0]), 0.95)
    assert uptake["rate_lower95"] == pytest.approx(lo[0] * 0.4)
    assert uptake["rate_upper95"] == pytest.approx(hi[0] * 0.4)


def test_year_on_year_difference_with_newcombe_and_uptake_as_a_rate_ratio():
    def long(approved, decided, requests, staff):
        frame = pd.DataFrame([{"unit": "A", "months_covered": 12, "headcount": staff,
                               **_counts(requests_received=requests, approved_in_full=approved,
                                         declined=decided - approved)}])  # fmt: skip
        return trends.measures_long(frame, ["unit"])

    out = trends.year_on_year(long(56, 70, 200, 1000), long(48, 80, 100, 2000), ["unit"])
    out = out.set_index("measure")
    approval = out.loc["approval_rate"]
    # Newcombe (1998), method 10: 56/70 - 48/80 = 0.2 (0.0524 to 0.3339).
    assert approval["change"] == pytest.approx(0.2)
    assert (round(approval["change_lower95"], 4), round(approval["change_upper95"], 4)) == (
        0.0524, 0.3339,
    )  # fmt: skip
    assert approval["change_significant"]
    uptake = out.loc["requests_per_100_staff"]
    # 20 per 100 staff against 5: four times the rate, though only twice the requests.
    assert uptake["change"] == pytest.approx(4.0)
    assert uptake["change_lower95"] < 4.0 < uptake["change_upper95"]
    assert uptake["change_lower95"] > 1 and uptake["change_significant"]


def test_area_funnels_use_the_area_rate_and_widen_with_national_overdispersion():
    frame = pd.DataFrame({
        "org_code": ["A", "B", "C", "D"], "region": ["X", "X", "X", "Y"],
        "approved": [450, 900, 700, 90], "decided": [500, 1000, 1000, 100],
    })  # fmt: skip
    plain = trends.funnel_within(frame, "region").set_index("org_code")
    assert plain.loc["A", "area_rate"] == pytest.approx(2050 / 2500)
    assert plain.loc["D", "area_rate"] == pytest.approx(0.9)
    assert plain.loc["C", "funnel"].startswith("Low")
    assert plain.loc["B", "funnel"].startswith("High")
    wide = trends.funnel_within(frame, "region", tau2=0.01).set_index("org_code")
    assert (wide["control_upper95"] - wide["control_lower95"]
            > plain["control_upper95"] - plain["control_lower95"]).all()  # fmt: skip
    assert np.isfinite(wide["control_lower998"]).all()


@pytest.mark.parametrize("tau2", [0.0, 0.01])
def test_each_trust_is_placed_against_its_own_area_as_if_the_area_were_alone(tau2):
    """funnel_within works the areas out together: each trust's rate, label and limits are
    those of its area taken alone (the area's pooled rate as one target), for areas with and
    without decided requests, missing counts and trusts in no area."""
    rng = np.random.default_rng(3)
    method = "arcsine" if tau2 else "wilson"
    for trial in range(60):
        k = int(rng.integers(1, 60))
        n = rng.choice([0, 3, 10, 50, 200, 1000], size=k).astype(float)
        x = np.floor(n * rng.uniform(0.3, 1, k))
        n[rng.random(k) < 0.05] = np.nan
        areas = rng.choice(np.array(["a", "b", "c", None], dtype=object), size=k)
        frame = pd.DataFrame({"org_code": [f"T{i}" for i in range(k)], "region": areas,
                              "approved": x, "decided": n})  # fmt: skip
        if trial % 3 == 0:  # an area without decided requests
            frame.loc[frame["region"] == "b", "decided"] = 0.0
        got = trends.funnel_within(frame, "region", tau2=tau2)
        assert list(got["org_code"]) == list(
            frame[frame["region"].notna()].sort_values("region", kind="stable")["org_code"]
        )
        got = got.set_index("org_code")
        for _, g in frame.groupby("region"):
            ok = g["decided"] > 0
            xs, ns = g["approved"].where(ok), g["decided"].where(ok)
            mine = got.loc[g["org_code"]]
            if not ok.any():
                assert mine["area_rate"].isna().all() and mine["funnel"].isna().all()
                continue
            target = stats.pooled_rate(xs, ns)
            assert (mine["area_rate"] == target).all()
            labels = stats.funnel_significance(xs, ns, target, method=method, tau2=tau2)
            assert list(mine["funnel"].fillna("-")) == list(labels.fillna("-"))
            lower, upper = stats.funnel_limits(target, ns, 0.998, tau2, method)
            np.testing.assert_array_equal(mine["control_lower998"], lower)
            np.testing.assert_array_equal(mine["control_upper998"], upper)
