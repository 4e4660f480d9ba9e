"""Equity rules: how groups are read, the relative likelihood, BH, Newcombe, and the equity gap
flag's small-number rule and false-discovery control (docs/methodology.md, "Equity")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from transforms import equity


@pytest.mark.parametrize(
    ("written", "broad", "detailed"),
    [
        ("White", "White", None),
        ("Black or Black British", "Black or Black British", None),  # broad: no detail
        ("Black: African", "Black or Black British", "Black: African"),
        ("African", "Black or Black British", "Black: African"),
        ("N", "Black or Black British", "Black: African"),  # NHS Data Dictionary code
        ("Chinese", "Asian or Asian British", "Asian: Chinese"),  # 2021 Census grouping
        ("Any other White background", "White", "White: Other White"),
        ("", "Not stated", None),
        ("Prefer not to say", "Not stated", None),
        ("Z", "Not stated", None),
        ("Purple", None, None),  # not recognised: counted as "Not known"
    ],
)
def test_ethnic_groups_are_read_broad_and_detailed(written, broad, detailed):
    assert equity.normalise_ethnic_group(written) == (broad, detailed)


@pytest.mark.parametrize(
    ("written", "band"),
    [("25-34", "25-34"), ("25 to 34", "25-34"), ("<25", "Under 25"), ("16-24", "Under 25"),
     ("65+", "65 and over"), ("60-69", None), ("", "Not stated")],
)  # fmt: skip
def test_age_bands(written, band):
    assert equity.normalise_age_band(written) == band


@pytest.mark.parametrize(
    ("written", "band"),
    [("Band 8A", "Band 8a"), ("8a", "Band 8a"), (5.0, "Band 5"), ("AfC band 6", "Band 6"),
     ("Medical", "Medical and dental"), ("Band 12", None)],
)  # fmt: skip
def test_pay_bands(written, band):
    assert equity.normalise_band(written) == band


def test_sex_and_disability():
    assert [equity.normalise_sex(v) for v in ("F", "male", None, "x")] == [
        "Female", "Male", "Not stated", None
    ]  # fmt: skip
    assert [equity.normalise_disability(v) for v in ("Yes", "N", "Not declared")] == [
        "Disabled", "Not disabled", "Not stated"
    ]  # fmt: skip


def test_every_dimension_has_a_reference_group_among_its_groups():
    assert set(equity.REFERENCE_GROUPS) == set(equity.DIMENSIONS)
    assert equity.REFERENCE_GROUPS["ethnic_group"] in equity.ETHNIC_GROUPS
    assert equity.REFERENCE_GROUPS["ethnic_group_detailed"] in equity.ETHNIC_DETAILED
    assert equity.REFERENCE_GROUPS["disability"] in equity.DISABILITY_GROUPS
    assert equity.REFERENCE_GROUPS["age_band"] in equity.AGE_BANDS
    assert equity.REFERENCE_GROUPS["pay_band"] in equity.PAY_BANDS


def test_relative_likelihood_is_reference_over_group_with_a_log_interval():
    # White 90 of 100 approved, a group 60 of 100: RL = 0.9 / 0.6 = 1.5 (WRES convention).
    rl, lower, upper = equity.relative_likelihood(90, 100, 60, 100)
    se = np.sqrt(1 / 60 - 1 / 100 + 1 / 90 - 1 / 100)
    assert rl[0] == pytest.approx(1.5)
    assert lower[0] == pytest.approx(1.5 * np.exp(-1.959963985 * se))
    assert upper[0] == pytest.approx(1.5 * np.exp(1.959963985 * se))
    # No approval in a group: no ratio.
    assert np.isnan(equity.relative_likelihood(90, 100, 0, 10)[0][0])


def _bh_by_definition(p):
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    for rank, i in enumerate(order, start=1):
        q[i] = min(1.0, min(p[order[j - 1]] * m / j for j in range(rank, m + 1)))
    return q


def test_fisher_exact_p_matches_the_textbook_tea_tasting_table():
    # Fisher's lady tasting tea: 3 of 4 right each way, two-sided p = 34/70.
    assert equity.fisher_exact_p(3, 4, 1, 4)[0] == pytest.approx(34 / 70)
    assert np.isnan(equity.fisher_exact_p(3, 4, 0, 0)[0])
    # The same p-values as scipy's fisher_exact, table by table.
    from scipy.stats import fisher_exact

    rng = np.random.default_rng(5)
    n1, n2 = rng.integers(1, 400, 60), rng.integers(1, 400, 60)
    x1, x2 = rng.binomial(n1, 0.9), rng.binomial(n2, 0.85)
    expected = [fisher_exact([[a, n - a], [b, m - b]]).pvalue
                for a, n, b, m in zip(x1, n1, x2, n2, strict=True)]  # fmt: skip
    assert equity.fisher_exact_p(x1, n1, x2, n2) == pytest.approx(expected, rel=1e-9)


def test_benjamini_hochberg_matches_its_definition_and_skips_missing_values():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert equity.benjamini_hochberg(p) == pytest.approx(_bh_by_definition(p))
    assert equity.benjamini_hochberg([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05] * 5)
    q = equity.benjamini_hochberg([0.01, np.nan, 0.04])
    assert np.isnan(q[1]) and q[0] == pytest.approx(0.02) and q[2] == pytest.approx(0.04)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "lower", "upper"),
    [  # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
    ],
)
def test_newcombe_difference_matches_the_published_examples(x1, n1, x2, n2, lower, upper):
    d, lo, hi = equity.newcombe_difference(x1, n1, x2, n2)
    assert d[0] == pytest.approx(x1 / n1 - x2 / n2)
    assert (round(lo[0], 4), round(hi[0], 4)) == (lower, upper)


def _groups(org, dimension, counts):
    """counts: group -> (approved, decided)."""
    return [
        dict(level="trust", org_code=org, dimension=dimension, group_value=g, approved=a, decided=n)
        for g, (a, n) in counts.items()
    ]


def test_a_large_gap_is_flagged_and_a_small_group_is_not_compared():
    rows = _groups(
        "RAA",
        "ethnic_group",
        {
            "White": (380, 400),
            "Black or Black British": (150, 200),
            "Mixed": (2, 9),
            "Not stated": (1, 30),
        },
    )
    rows += _groups("RAA", "pay_band", {"Band 5": (380, 400), "Band 2": (100, 200)})
    out = equity.compare_groups(pd.DataFrame(rows)).set_index(["dimension", "group_value"])
    black = out.loc[("ethnic_group", "Black or Black British")]
    assert black["flagged"] and black["direction"] == "lower than reference"
    assert black["relative_likelihood"] == pytest.approx((380 / 400) / (150 / 200))
    # 2 of 9 approved is a stark rate, but under 10 decided: no comparison (small numbers).
    mixed = out.loc[("ethnic_group", "Mixed")]
    assert not mixed["comparable"] and not mixed["flagged"]
    assert (
        np.isnan(mixed["relative_likelihood"]) and "fewer than 10" in mixed["not_compared_reason"]
    )
    assert not out.loc[("ethnic_group", "Not stated"), "comparable"]
    assert out.loc[("ethnic_group", "White"), "is_reference"]
    # Pay band is not a protected characteristic: compared, never flagged.
    band2 = out.loc[("pay_band", "Band 2")]
    assert band2["comparable"] and not band2["tested"] and not band2["flagged"]


def _null_family(rng, trusts=30):
    rows = []
    shares = {"sex": {"Male": 0.2, "Female": 0.8},
              "ethnic_group": {"White": 0.7, "Asian or Asian British": 0.15,
                               "Black or Black British": 0.1, "Mixed": 0.05},
              "disability": {"Not disabled": 0.94, "Disabled": 0.06},
              "age_band": {"35-44": 0.3, "25-34": 0.3, "45-54": 0.25, "55-64": 0.15}}  # fmt: skip
    for t in range(trusts):
        decided = rng.integers(100, 800)
        rate = rng.uniform(0.85, 0.97)
        for dimension, s in shares.items():
            n = rng.multinomial(decided, list(s.values()))
            a = rng.binomial(n, rate)  # the same approval rate in every group: no gap
            rows += _groups(f"T{t}", dimension, dict(zip(s, zip(a, n, strict=True), strict=True)))
    return pd.DataFrame(rows)


def test_with_no_gap_anywhere_a_build_flags_anything_at_most_5_percent_of_the_time():
    # Where no trust has a gap, every flag is a false discovery: BH at q = 0.05 keeps the
    # chance of any flag at all at most 5% (methodology, "Equity gap flag").
    rng = np.random.default_rng(2026)
    builds = 200
    any_flag = sum(bool(equity.compare_groups(_null_family(rng))["flagged"].any())
                   for _ in range(builds))  # fmt: skip
    assert any_flag <= binom.ppf(0.999, builds, equity.FDR_Q)
