"""Calibration of the overdispersion-adjusted funnel on null nations (docs/methodology.md,
"Calibration").

A null nation is drawn from the demo generator's distributions (flexbench/sample/nation.py,
``build_nation``) with nothing planted: each peer group's trusts and headcounts as in
``PEER_GROUPS``, uptake log-normal around 9 requests per 100 staff a year (5.2-14.8), 94% of
requests decided, and true approval rates 0.85 + 0.12 x Beta(4, 3), which differ between
trusts (the overdispersion the adjustment is for). On such nations a calibrated adjusted
funnel puts about 5% of trusts outside its 95% limits and 0.2% outside its 99.8% limits.
The count over all nations must lie within the central 99.9% of the binomial count those
rates give.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from flexbench.sample.nation import PEER_GROUPS
from transforms import benchmark, stats

NATIONS = 24
SEED = 16


def _null_nation(rng: np.random.Generator) -> pd.DataFrame:
    """One nation's window counts, in the columns ``trust_measures`` reads."""
    rows = []
    for group in PEER_GROUPS:
        for i in range(group.real_count):
            headcount = np.clip(
                np.exp(rng.normal(np.log(group.median_headcount), group.spread)),
                group.min_headcount,
                group.max_headcount,
            )
            uptake = np.clip(np.exp(rng.normal(np.log(9.0), 0.28)), 5.2, 14.8)
            received = rng.poisson(headcount * uptake / 100)
            decided = rng.binomial(received, 0.94)
            approved = rng.binomial(decided, 0.85 + 0.12 * rng.beta(4, 3))
            rows.append(
                dict(
                    org_code=f"{group.benchmark_group[:3]}{i:03d}",
                    peer_group=group.benchmark_group,
                    headcount=float(round(headcount)),
                    months_covered=12,
                    requests_received=received,
                    approved_in_full=approved,
                    approved_with_changes=0,
                    declined=decided - approved,
                    escalated=decided - approved,
                    decided_within_2_months=decided,
                )
            )
    return pd.DataFrame(rows)


def _outside(labels: pd.Series) -> tuple[int, int]:
    outer = labels.isin([stats.HIGH_OUTER, stats.LOW_OUTER])
    inner = outer | labels.isin([stats.HIGH_INNER, stats.LOW_INNER])
    return int(inner.sum()), int(outer.sum())


@pytest.fixture(scope="module")
def null_nations():
    rng = np.random.default_rng(SEED)
    counts = {"trusts": 0, "benchmark": [0, 0], "funnelplotr_phi": [0, 0], "phi": []}
    for _ in range(NATIONS):
        nation = _null_nation(rng)
        m = benchmark.trust_measures(nation)
        counts["trusts"] += len(m)
        inner, outer = _outside(m["approval_rate_funnel_adjusted"])
        counts["benchmark"][0] += inner
        counts["benchmark"][1] += outer
        counts["phi"].append(float(m["approval_rate_phi"].iloc[0]))
        # The same nation with FunnelPlotR's phi, not made consistent.
        x, n = nation["approved_in_full"], nation["approved_in_full"] + nation["declined"]
        target = stats.pooled_rate(x, n)
        _, tau2 = stats.overdispersion(x, n, target=target)
        labels = stats.funnel_significance(x, n, target, method="arcsine", tau2=tau2)
        inner, outer = _outside(labels)
        counts["funnelplotr_phi"][0] += inner
        counts["funnelplotr_phi"][1] += outer
    return counts


def _bounds(trusts: int, rate: float) -> tuple[float, float]:
    return binom.ppf(0.0005, trusts, rate), binom.ppf(0.9995, trusts, rate)


def test_null_nations_are_overdispersed(null_nations):
    # the true rates differ between trusts: every nation's phi is well above 1
    assert NATIONS >= 20 and min(null_nations["phi"]) > 1.5


@pytest.mark.parametrize("level, rate", [(0, 0.05), (1, 0.002)])
def test_share_outside_the_adjusted_limits_is_what_chance_gives(null_nations, level, rate):
    trusts = null_nations["trusts"]
    outside = null_nations["benchmark"][level]
    lower, upper = _bounds(trusts, rate)
    assert lower <= outside <= upper, (outside, trusts, lower, upper)


def test_funnelplotr_phi_alone_leaves_the_limits_too_narrow(null_nations):
    # Why the benchmark makes the winsorised phi consistent: uncorrected, about twice the
    # expected share of ordinary trusts falls outside the 95% limits.
    trusts = null_nations["trusts"]
    _, upper = _bounds(trusts, 0.05)
    assert null_nations["funnelplotr_phi"][0] > upper
