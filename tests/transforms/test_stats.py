"""Tests of transforms/stats.py: Wilson intervals, funnel limits, overdispersion, ranks."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, chi2, false_discovery_control, fisher_exact, norm
from scipy.stats.mstats import winsorize

from transforms.stats import (
    arcsine_z,
    bh_q_values,
    fisher_exact_p,
    funnel_limits,
    funnel_significance,
    overdispersion,
    overdispersion_p_value,
    pooled_rate,
    quartile,
    rank_intervals,
    rank_with_ties,
    two_sided_p,
    wilson_interval,
    winsorise_values,
    winsorised_consistency,
)

# --------------------------------------------------------------------------------------------
# Wilson score interval
# --------------------------------------------------------------------------------------------

# Published by R's prop.test(x, 10, correct = FALSE) (R 3.6.2), i.e. the Wilson interval, as
# recorded in SciPy's test suite (scipy/stats/tests/test_morestats.py,
# TestBinomTest.test_ci_wilson_method). R prints 7 significant digits, hence rtol 1e-6.
R_PROP_TEST_WILSON = [
    # x, n, confidence, lower, upper
    (3, 10, 0.95, 0.1077913, 0.6032219),
    (3, 10, 0.99, 0.07956632, 0.6799753),
    (0, 10, 0.95, 0.0, 0.2775328),
    (10, 10, 0.95, 0.7224672, 1.0),
]


@pytest.mark.parametrize("x, n, confidence, lower, upper", R_PROP_TEST_WILSON)
def test_wilson_interval_matches_published_r_values(x, n, confidence, lower, upper):
    got = wilson_interval(x, n, confidence)
    assert got == pytest.approx((lower, upper), rel=1e-6, abs=1e-12)


def _wilson_decimal(x: int, n: int, z: float) -> tuple[Decimal, Decimal]:
    """Textbook Wilson limits (2x + z^2 -/+ z sqrt(z^2 + 4x(1 - x/n))) / (2(n + z^2)) in
    50-digit decimal arithmetic, with the same double-precision z as the code."""
    getcontext().prec = 50
    X, N, Z = Decimal(x), Decimal(n), Decimal(z)
    root = (Z * Z + 4 * X * (1 - X / N)).sqrt()
    denominator = 2 * (N + Z * Z)
    return (2 * X + Z * Z - Z * root) / denominator, (2 * X + Z * Z + Z * root) / denominator


WILSON_CASES = [
    # a small trust, a large one, extremes, and the benchmark's two levels
    (1, 1, 0.95),
    (1, 2, 0.95),
    (65, 100, 0.95),
    (65, 100, 0.998),
    (1045, 5000, 0.95),
    (1045, 5000, 0.998),
    (1, 1_000_000, 0.95),
    (999_999, 1_000_000, 0.998),
    (7, 13, 0.9),
]


@pytest.mark.parametrize("x, n, confidence", WILSON_CASES)
def test_wilson_interval_to_relative_1e9_of_high_precision_textbook_formula(x, n, confidence):
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    lower, upper = _wilson_decimal(x, n, z)
    got_lower, got_upper = wilson_interval(x, n, confidence)
    assert got_lower == pytest.approx(float(lower), rel=1e-9)
    assert got_upper == pytest.approx(float(upper), rel=1e-9)


@pytest.mark.parametrize("x, n, confidence", WILSON_CASES)
def test_wilson_interval_agrees_with_scipy_binomtest(x, n, confidence):
    # SciPy's binomtest(...).proportion_ci(method="wilson") is an independent implementation.
    ci = binomtest(x, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert wilson_interval(x, n, confidence) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_wilson_interval_uses_the_exact_normal_quantile_not_1_96():
    # With z = 1.96 the 95% upper limit of 65/100 would differ in the 5th decimal.
    z196 = (2 * 65 + 1.96**2 + 1.96 * math.sqrt(1.96**2 + 4 * 65 * 0.35)) / (2 * (100 + 1.96**2))
    _, upper = wilson_interval(65, 100)
    assert upper != pytest.approx(z196, rel=1e-9)


def test_wilson_interval_is_exactly_0_and_1_at_the_extremes():
    lower, upper = wilson_interval(np.array([0, 40]), np.array([40, 40]), 0.998)
    assert lower[0] == 0.0
    assert upper[1] == 1.0
    assert 0 < upper[0] < 1 and 0 < lower[1] < 1


def test_wilson_interval_keeps_series_index_and_handles_missing():
    # a trust with no decided requests, one with a missing count, one with data
    numerator = pd.Series([0, pd.NA, 30], index=["RJ1", "R1F", "RXX"], dtype="Int64")
    denominator = pd.Series([0, 40, 40], index=["RJ1", "R1F", "RXX"], dtype="Int64")
    lower, upper = wilson_interval(numerator, denominator)
    assert list(lower.index) == ["RJ1", "R1F", "RXX"]
    assert lower.isna().tolist() == [True, True, False]
    assert upper.isna().tolist() == [True, True, False]
    assert lower["RXX"] < 0.75 < upper["RXX"]


def test_wilson_interval_shapes():
    assert isinstance(wilson_interval(3, 10)[0], float)
    lower, _ = wilson_interval(np.array([1, 2, 3]), 10)
    assert isinstance(lower, np.ndarray) and lower.shape == (3,)
    assert math.isnan(wilson_interval(3, None)[0])


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(3, 10, confidence=95)


# --------------------------------------------------------------------------------------------
# funnel limits: published PHEindicatormethods figures
# --------------------------------------------------------------------------------------------

# ukhsa-collaboration/PHEindicatormethods, tests/testthat/testdata_funnel_prop_outputs.csv:
# phe_funnels() output (multiplier 100) for the inputs in testdata_funnel_prop_inputs.csv,
# whose pooled rate (column Baseline) is published as 80.642448%. Rows as published:
# Population, Lower2s0025limit, Upper2s0025limit, Lower3s0001limit, Upper3s0001limit.
PHE_BASELINE = 0.80642448
PHE_FUNNEL_ROWS = [
    (1, 3.204264, 100, 0, 100),
    (3, 35.933491, 100, 10.150815, 100),
    (18, 62.390093, 98.894803, 51.864359, 100),
    (41, 68.548635, 92.73626, 61.574398, 99.710497),
    (1008, 78.203374, 83.081521, 76.796814, 84.488082),
    (23022, 80.13208, 81.152816, 79.837761, 81.447134),
    (110000, 80.408963, 80.875933, 80.274317, 81.010578),
]
# The published limits carry 6 decimals of a percentage (+-5e-7) and are computed from the
# unrounded baseline, which is itself published to 6 decimals; the limits move at most ~2.5x
# the baseline error, so agreement is checked to 2e-6 percentage points (2e-8 as a proportion).
PHE_TOLERANCE = 2e-8


def test_funnel_limits_reproduce_published_phe_funnels_output():
    n = np.array([row[0] for row in PHE_FUNNEL_ROWS])
    published = np.array([row[1:] for row in PHE_FUNNEL_ROWS]) / 100
    lower95, upper95 = funnel_limits(PHE_BASELINE, n, 0.95)
    lower998, upper998 = funnel_limits(PHE_BASELINE, n, 0.998)
    got = np.column_stack([lower95, upper95, lower998, upper998])
    np.testing.assert_allclose(got, published, rtol=0, atol=PHE_TOLERANCE)


# The same package's testdata_funnel_prop_inputs.csv lists each area's published significance
# from phe_funnel_significance(); a sample with every outcome, against the published baseline.
PHE_SIGNIFICANCE_ROWS = [
    ("New Forest PCT", 35078.4880000, 41980, "High (0.001)"),
    ("Norwich PCT", 24803.6256000, 31824, "Low (0.001)"),
    ("South Gloucestershire PCT", 50050.7443000, 61921, "Not significant"),
    ("West Norfolk PCT", 26789.2380000, 33012, "High (0.025)"),
    ("North Devon PCT", 30277.5312000, 37828, "Low (0.025)"),
    ("North Tees PCT", 36850.0492000, 45449, "High (0.025)"),
    ("Central Derby PCT", 24648.7596000, 30521, "Not significant"),
    ("Mid-Hampshire PCT", 34502.0685000, 42485, "High (0.025)"),
]


def test_funnel_significance_reproduces_published_phe_labels():
    frame = pd.DataFrame(PHE_SIGNIFICANCE_ROWS, columns=["area", "x", "n", "published"])
    frame = frame.set_index("area")
    got = funnel_significance(frame["x"], frame["n"], target=PHE_BASELINE)
    assert got.index.equals(frame.index)
    assert got.tolist() == frame["published"].tolist()


def test_funnel_limits_wilson_is_where_the_wilson_interval_reaches_the_target():
    # The upper limit is the observed proportion whose Wilson lower limit equals the target.
    target, n = 0.3, 250
    _, upper = funnel_limits(target, n, 0.95)
    lower_of_upper, _ = wilson_interval(upper * n, n, 0.95)
    assert lower_of_upper == pytest.approx(target, rel=1e-9)


def test_funnel_limits_arcsine_match_wilson_for_large_denominators():
    # Both are normal approximations with variance p(1-p)/n; they converge as n grows.
    wilson = funnel_limits(0.4, 1_000_000, 0.998, method="wilson")
    arcsine = funnel_limits(0.4, 1_000_000, 0.998, method="arcsine")
    assert arcsine == pytest.approx(wilson, abs=1e-6)


def test_funnel_limits_arcsine_hand_worked():
    # target 0.25: asin(sqrt(0.25)) = pi/6 = 0.5235988; n = 100: z sqrt(1/400) = z/20 with
    # z = 1.959964, so the angles are 0.4256006 and 0.6215970. By the sine series
    # (x - x^3/6 + x^5/120 - x^7/5040): sin(0.4256006) = 0.4128679, squared 0.170460;
    # sin(0.6215970) = 0.5823342, squared 0.339113.
    lower, upper = funnel_limits(0.25, 100, 0.95, method="arcsine")
    assert lower == pytest.approx(0.170460, abs=2e-6)
    assert upper == pytest.approx(0.339113, abs=2e-6)


def test_funnel_limits_overdispersion_keeps_limits_open_as_n_grows():
    tau2 = 0.001
    lower, upper = funnel_limits(0.5, 10**9, 0.95, tau2=tau2, method="arcsine")
    half = norm.ppf(0.975) * math.sqrt(tau2)
    assert lower == pytest.approx(math.sin(math.pi / 4 - half) ** 2, rel=1e-6)
    assert upper == pytest.approx(math.sin(math.pi / 4 + half) ** 2, rel=1e-6)
    plain = funnel_limits(0.5, 10**9, 0.95, method="arcsine")
    assert upper - lower > 10 * (plain[1] - plain[0])


def test_funnel_limits_are_clipped_not_folded():
    # a tiny trust against a rate near 0: the arcsine lower limit must be 0, not wrap round
    lower, upper = funnel_limits(0.02, 3, 0.998, method="arcsine")
    assert lower == 0.0 and 0.02 < upper < 1
    lower, upper = funnel_limits(0.98, np.array([3, 5]), 0.998, method="wilson")
    assert np.all(upper == 1.0)


def test_funnel_limits_missing_denominators_and_bad_arguments():
    lower, upper = funnel_limits(0.5, pd.Series([0, None, 20], dtype="Float64"), 0.95)
    assert lower.isna().tolist() == [True, True, False]
    with pytest.raises(ValueError):
        funnel_limits(0.5, 20, 0.95, method="poisson")
    with pytest.raises(ValueError):
        funnel_limits(0.5, 20, 0.95, tau2=0.01, method="wilson")


def test_funnel_significance_levels_and_missing():
    # target 0.5, n = 100: 95% limits 0.402..0.598, 99.8% limits 0.345..0.655
    x = pd.Series([70, 62, 50, 38, 30, 5], index=list("abcdef"))
    n = pd.Series([100, 100, 100, 100, 100, 0], index=list("abcdef"))
    got = funnel_significance(x, n, target=0.5)
    assert got.tolist()[:5] == [
        "High (0.001)",
        "High (0.025)",
        "Not significant",
        "Low (0.025)",
        "Low (0.001)",
    ]
    assert pd.isna(got["f"])
    assert funnel_significance(5, 0, target=0.5) is None


def test_funnel_significance_target_defaults_to_pooled_rate():
    x = np.array([10, 20, 30, 95])
    n = np.array([100, 100, 100, 100])
    assert pooled_rate(x, n) == pytest.approx(155 / 400)
    assert list(funnel_significance(x, n)) == list(funnel_significance(x, n, target=155 / 400))


# --------------------------------------------------------------------------------------------
# overdispersion (Spiegelhalter 2005)
# --------------------------------------------------------------------------------------------


def _units_with_z_scores(z_scores, n, target):
    """Numerators whose arcsine z-score against target at denominator n is exactly z."""
    angle = math.asin(math.sqrt(target))
    return np.array([n * math.sin(angle + z / (2 * math.sqrt(n))) ** 2 for z in z_scores])


def test_overdispersion_hand_worked_ten_units():
    # Ten trusts, each n = 100, target 0.5; their arcsine z-scores are
    #   -3, -2, -1, -0.5, 0, 0, 0.5, 1, 2, 4.
    # R's type-7 10th percentile: h = 0.1 x 9 = 0.9, -3 + 0.9 x (-2 - -3) = -2.1; the 90th:
    # h = 8.1, 2 + 0.1 x (4 - 2) = 2.2. Winsorised: -2.1, -2, -1, -0.5, 0, 0, 0.5, 1, 2, 2.2;
    # squares: 4.41 + 4 + 1 + 0.25 + 0 + 0 + 0.25 + 1 + 4 + 4.84 = 19.75, phi = 1.975.
    # Weights w = 4n = 400 each: sum w = 4000, sum w^2 / sum w = 1_600_000 / 4000 = 400.
    # tau2 = (k phi - (k - 1)) / (sum w - sum w^2 / sum w) = (19.75 - 9) / 3600 = 10.75 / 3600.
    z_scores = [-3, -2, -1, -0.5, 0, 0, 0.5, 1, 2, 4]
    n = np.full(10, 100)
    x = _units_with_z_scores(z_scores, 100, 0.5)
    phi, tau2 = overdispersion(x, n, target=0.5)
    assert phi == pytest.approx(1.975, rel=1e-9)
    assert tau2 == pytest.approx(10.75 / 3600, rel=1e-9)
    # consistent=True divides phi by the winsorised normal mean square (0.67865...).
    phi_c, tau2_c = overdispersion(x, n, target=0.5, consistent=True)
    assert phi_c == pytest.approx(1.975 / winsorised_consistency(0.1), rel=1e-12)
    assert tau2_c == pytest.approx((10 * phi_c - 9) / 3600, rel=1e-12)


def test_overdispersion_none_when_spread_is_small():
    # z-scores -1, -0.5, 0, 0.5, 1 (k = 5): the type-7 10th percentile is -1 + 0.4 x 0.5 = -0.8,
    # the 90th 0.8; winsorised squares 0.64 + 0.25 + 0 + 0.25 + 0.64 = 1.78, phi = 0.356;
    # k phi = 1.78 <= k - 1 = 4, so tau2 = 0.
    x = _units_with_z_scores([-1, -0.5, 0, 0.5, 1], 400, 0.3)
    phi, tau2 = overdispersion(x, np.full(5, 400), target=0.3)
    assert phi == pytest.approx(0.356, rel=1e-9)
    assert tau2 == 0.0


def test_overdispersion_target_defaults_to_pooled_rate_and_skips_empty_units():
    x = pd.Series([10, 40, 25, 70, 3, 0])
    n = pd.Series([100, 120, 80, 150, 30, 0])  # the last trust decided nothing
    assert overdispersion(x, n) == overdispersion(x[:5], n[:5], target=148 / 480)
    assert overdispersion([], []) == (pytest.approx(float("nan"), nan_ok=True), 0.0)


@pytest.mark.parametrize("k", [7, 10, 25, 41])
def test_winsorise_values_count_option_matches_scipy_winsorize(k):
    values = np.random.default_rng(k).normal(size=k)
    expected = np.asarray(winsorize(values, limits=(0.1, 0.1)))
    np.testing.assert_array_equal(winsorise_values(values, 0.1, method="count"), expected)


def _r_quantile_type7(values, prob):
    """R's default quantile (Hyndman & Fan type 7), from its definition, not from numpy: with
    sorted x_1..x_k and h = (k - 1) p + 1, x_j + (h - j) (x_(j+1) - x_j) where j = floor(h)."""
    x = sorted(values)
    h = (len(x) - 1) * prob + 1
    j = math.floor(h)
    if j >= len(x):
        return x[-1]
    return x[j - 1] + (h - j) * (x[j] - x[j - 1])


def test_winsorise_values_clips_at_r_type_7_percentiles():
    values = np.random.default_rng(3).normal(size=23)
    lower, upper = _r_quantile_type7(values, 0.1), _r_quantile_type7(values, 0.9)
    got = winsorise_values(values, 0.1)
    np.testing.assert_allclose(got, np.clip(values, lower, upper), rtol=0, atol=0)
    with pytest.raises(ValueError):
        winsorise_values(values, 0.1, method="trimmed")


# A published data set: the proportion inputs of PHEindicatormethods' funnel tests
# (ukhsa-collaboration/PHEindicatormethods, tests/testthat/testdata_funnel_prop_inputs.csv),
# the first 40 areas as published (numerator, denominator).
PHE_PROPORTION_INPUTS = [
    (35078.4880000, 41980), (24803.6256000, 31824), (50050.7443000, 61921),
    (48686.4364000, 59804), (35795.6324000, 45449), (66969.6742000, 80002),
    (48514.4460000, 64755), (70670.2858000, 93122), (26029.3176000, 33708),
    (22506.3828000, 25932), (20619.5552000, 25852), (19847.1920000, 23684),
    (23617.7778000, 28954), (21121.0160000, 27530), (30294.3882000, 41066),
    (24648.7596000, 30521), (18986.0000000, 22000), (31759.3850000, 39350),
    (26008.3050000, 29850), (49524.9445000, 63065), (24107.1107000, 28519),
    (55471.6028000, 73972), (30573.2632000, 39752), (49513.0482000, 69993),
    (39350.4825000, 52293), (54063.9774000, 71034), (55438.5333000, 77743),
    (29561.6517000, 36627), (18631.5660000, 21342), (32137.8848000, 38024),
    (18365.4621000, 29277), (27622.3500000, 35076), (18205.1925000, 22215),
    (20235.1110000, 24590), (29722.5035000, 41845), (46855.9900000, 56453),
    (33893.8041000, 40989), (18550.7595000, 22905), (48475.9332000, 59604),
    (27846.1152000, 36486),
]  # fmt: skip


def _funnelplotr_pr_oracle(numerator, denominator, trim_by=0.1):
    """FunnelPlotR's proportion ("PR") overdispersion, step by step as its R code does it
    (transformed_zscore, winsorisation, phi_func, tau_func), in plain Python: an independent
    oracle. FunnelPlotR publishes no phi or tau2 figures for proportions to compare with."""
    k = len(numerator)
    target = math.asin(math.sqrt(sum(numerator) / sum(denominator)))
    y = [math.asin(math.sqrt(r / n)) for r, n in zip(numerator, denominator, strict=True)]
    s = [1 / (2 * math.sqrt(n)) for n in denominator]
    uz = [(yi - target) / si for yi, si in zip(y, s, strict=True)]
    lz, upz = _r_quantile_type7(uz, trim_by), _r_quantile_type7(uz, 1 - trim_by)
    wz = [lz if z < lz else upz if z > upz else z for z in uz]
    phi = sum(z * z for z in wz) / k
    if k * phi < k - 1:
        return phi, 0.0
    w = [1 / si**2 for si in s]
    tau2 = max(0.0, (k * phi - (k - 1)) / (sum(w) - sum(wi * wi for wi in w) / sum(w)))
    return phi, tau2


@pytest.mark.parametrize("rows", [10, 23, 40])
def test_overdispersion_equals_funnelplotr_on_published_data(rows):
    numerator = [r for r, _ in PHE_PROPORTION_INPUTS[:rows]]
    denominator = [n for _, n in PHE_PROPORTION_INPUTS[:rows]]
    expected_phi, expected_tau2 = _funnelplotr_pr_oracle(numerator, denominator)
    phi, tau2 = overdispersion(numerator, denominator, winsorise=0.1)
    assert expected_phi > 1 and expected_tau2 > 0  # these areas are strongly overdispersed
    assert phi == pytest.approx(expected_phi, rel=1e-9)
    assert tau2 == pytest.approx(expected_tau2, rel=1e-9)


def test_winsorised_consistency_is_the_mean_square_of_a_winsorised_normal():
    # numerically: E[clip(Z, -c, c)^2] for Z standard normal, c its 90th percentile
    c = norm.ppf(0.9)
    grid = np.linspace(-c, c, 200_001)
    inner = np.trapezoid(grid**2 * norm.pdf(grid), grid)
    assert winsorised_consistency(0.1) == pytest.approx(inner + 2 * 0.1 * c * c, rel=1e-8)
    assert winsorised_consistency(0.0) == 1.0


def test_consistent_phi_is_about_one_without_overdispersion():
    # 60 nations of 150 trusts with one true rate: the consistent phi averages about 1, while
    # the winsorised mean square alone averages about 0.68.
    rng = np.random.default_rng(7)
    raw, consistent = [], []
    for _ in range(60):
        n = rng.integers(50, 2000, 150)
        r = rng.binomial(n, 0.9)
        raw.append(overdispersion(r, n)[0])
        consistent.append(overdispersion(r, n, consistent=True)[0])
    assert np.mean(raw) == pytest.approx(0.68, abs=0.03)
    assert np.mean(consistent) == pytest.approx(1.0, abs=0.04)


def test_overdispersion_p_value_is_the_chi_squared_tail():
    assert overdispersion_p_value(1.3, 50) == pytest.approx(chi2.sf(65.0, 49), rel=1e-12)
    assert overdispersion_p_value(1.0, 1) != overdispersion_p_value(1.0, 1)  # NaN: k < 2


def test_overdispersion_accepts_a_target_per_unit():
    x, n = np.array([30.0, 45, 60, 20]), np.array([100.0, 100, 100, 100])
    targets = np.array([0.4, 0.4, 0.5, np.nan])  # the last unit has no target: left out
    got = overdispersion(x, n, target=targets, winsorise=0)
    z = (np.arcsin(np.sqrt(x[:3] / 100)) - np.arcsin(np.sqrt(targets[:3]))) * 20
    assert got[0] == pytest.approx(np.mean(z**2), rel=1e-12)


# --------------------------------------------------------------------------------------------
# many comparisons and small groups
# --------------------------------------------------------------------------------------------


def test_bh_q_values_match_scipy_false_discovery_control():
    p = np.random.default_rng(11).uniform(size=57) ** 3
    np.testing.assert_allclose(bh_q_values(p), false_discovery_control(p), rtol=1e-12)
    # hand-worked: sorted 0.005, 0.01, 0.03, 0.04 times 4/rank = 0.02, 0.02, 0.04, 0.04
    got = bh_q_values(pd.Series([0.01, 0.04, None, 0.03, 0.005], index=list("abcde")))
    assert got.index.tolist() == list("abcde")
    np.testing.assert_allclose(got.to_numpy(), [0.02, 0.04, np.nan, 0.04, 0.02])


@pytest.mark.parametrize(
    "x1, n1, x2, n2",
    [(6, 6, 0, 3), (10, 10, 4, 10), (12, 40, 25, 41), (3, 15, 3, 15), (0, 10, 10, 10),
     (180, 200, 150, 190), (1, 12, 9, 11)],
)  # fmt: skip
def test_fisher_exact_p_matches_scipy(x1, n1, x2, n2):
    expected = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]]).pvalue
    assert fisher_exact_p(x1, n1, x2, n2) == pytest.approx(expected, rel=1e-9)


def test_fisher_exact_p_missing_groups():
    got = fisher_exact_p(pd.Series([5.0, 3.0]), pd.Series([10.0, 0.0]), 2, pd.Series([10, 5]))
    assert got.iloc[0] == pytest.approx(fisher_exact([[5, 5], [2, 8]]).pvalue)
    assert np.isnan(got.iloc[1])


def test_arcsine_z_and_two_sided_p():
    z = arcsine_z(60, 100, 0.5, tau2=0.001)
    expected = (math.asin(math.sqrt(0.6)) - math.asin(math.sqrt(0.5))) / math.sqrt(1 / 400 + 0.001)
    assert z == pytest.approx(expected, rel=1e-12)
    assert two_sided_p(1.959963984540054) == pytest.approx(0.05, rel=1e-9)
    assert np.isnan(arcsine_z(1, 0, 0.5))


# --------------------------------------------------------------------------------------------
# ranks and quartiles
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, ascending, expected",
    [
        # ties share the best rank and the next rank is skipped ("min" method)
        ([0.9, 0.8, 0.8, 0.7], False, [1, 2, 2, 4]),
        ([0.9, 0.8, 0.8, 0.7], True, [4, 2, 2, 1]),
        # a trust with no value is not ranked and does not push others down
        ([0.5, None, 0.7], False, [2, None, 1]),
    ],
)
def test_rank_with_ties(values, ascending, expected):
    got = rank_with_ties(np.array(values, dtype=float), ascending=ascending)
    expected = np.array([np.nan if e is None else e for e in expected], dtype=float)
    np.testing.assert_array_equal(got, expected)


def test_rank_with_ties_no_rank_from_tiny_numbers():
    rates = pd.Series([0.95, 0.60, 0.80, 0.70], index=["RJ1", "R1F", "RXX", "RYY"])
    decided = pd.Series([4, 50, 30, 8], index=rates.index)
    got = rank_with_ties(rates, min_denominator=10, denominators=decided)
    assert got.index.equals(rates.index)
    assert got.isna().tolist() == [True, False, False, True]
    assert got["RXX"] == 1 and got["R1F"] == 2
    with pytest.raises(ValueError):
        rank_with_ties(rates, min_denominator=10)


def test_quartile():
    ranks = np.array([1, 2, 3, 4, 5, 6, 7, 8, np.nan])
    np.testing.assert_array_equal(quartile(ranks, 8), [1, 1, 2, 2, 3, 3, 4, 4, np.nan])
    # tied ranks share a quartile; the top of a small peer group is in quartile 1
    assert list(quartile(pd.Series([1, 1, 3]), 3)) == [1, 1, 3]


def test_rank_intervals_contain_the_rank_and_say_when_trusts_are_indistinguishable():
    # Five trusts: two large ones far apart, three small ones with the same rate.
    x = np.array([950, 600, 8, 8, 8.0])
    n = np.array([1000, 1000, 10, 10, 10.0])
    lower, upper = rank_intervals(x, n)
    ranks = rank_with_ties(x / n)
    assert np.all((lower <= ranks) & (ranks <= upper))
    # the large trust at 95% is first or second (a small trust at 8/10 may be higher by
    # chance); the large one at 60% is never above third
    assert (lower[0], upper[0]) == (1, 2) and lower[1] >= 3
    # the three small trusts at 8/10 cannot be placed: each could be anywhere from 1st to 5th
    np.testing.assert_array_equal(lower[2:], [1, 1, 1])
    np.testing.assert_array_equal(upper[2:], [5, 5, 5])
    # the same data gives the same intervals (fixed seed)
    again = rank_intervals(x, n)
    np.testing.assert_array_equal(again[0], lower)
    np.testing.assert_array_equal(again[1], upper)


def test_rank_intervals_narrow_with_more_data_and_skip_ineligible_units():
    x = np.array([90, 80, 70, 60.0])
    small = rank_intervals(x, np.full(4, 100.0))
    large = rank_intervals(x * 100, np.full(4, 10_000.0))
    assert np.all(large[1] - large[0] <= small[1] - small[0])
    np.testing.assert_array_equal(large[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(large[1], [1, 2, 3, 4])
    lower, upper = rank_intervals(x, np.full(4, 100.0), eligible=[True, True, False, True])
    assert np.isnan(lower[2]) and np.isnan(upper[2]) and np.nanmax(upper) <= 3
