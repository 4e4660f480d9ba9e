"""Benchmark statistics: confidence intervals, funnel limits, overdispersion, ranks.

These implement the comparison methods of the benchmark (docs/methodology.md):

- Wilson score intervals (95% and 99.8%) for every proportion -> :func:`wilson_interval`;
- funnel plots for proportions against the national rate, control limits at 95% and 99.8%
  -> :func:`funnel_limits`, :func:`funnel_significance` and :func:`arcsine_z`;
- the overdispersion adjustment of Spiegelhalter (2005) as FunnelPlotR computes it: arcsine
  z-scores winsorised at the 10th and 90th percentiles, phi tested against chi-squared(k - 1),
  DerSimonian-Laird tau^2 -> :func:`overdispersion`, :func:`overdispersion_p_value`;
- tests for many trusts and small groups: Benjamini-Hochberg q-values -> :func:`bh_q_values`,
  Fisher's exact test of two proportions -> :func:`fisher_exact_p`;
- rank and quartile, ties ranked as ties, no rank from tiny numbers -> :func:`rank_with_ties`
  and :func:`quartile`, with the uncertainty of each rank -> :func:`rank_intervals`.

Every function is pure and vectorised: it accepts scalars, numpy arrays or pandas Series (and
mixtures of them, broadcast together) and returns the same shape. A pandas Series in gives a
Series out carrying the index of the first Series argument (arguments are matched by
position, not aligned on their indexes). Missing values (``None``, ``NaN``, ``pd.NA``) and
zero denominators give a missing result rather than an error.

References
----------
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
    JASA 22, 209-212.
Spiegelhalter, D. J. (2005). Funnel plots for comparing institutional performance.
    Statistics in Medicine 24, 1185-1202.
Spiegelhalter, D. J. (2005). Handling over-dispersion of performance indicators.
    Quality and Safety in Health Care 14, 347-351.
Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate. JRSS B 57, 289-300.
Jones, H. E., Ohlssen, D. I. & Spiegelhalter, D. J. (2008). Use of the false discovery rate
    when comparing multiple health care providers. J Clin Epidemiol 61, 232-240.
Goldstein, H. & Spiegelhalter, D. J. (1996). League tables and their limitations. JRSS A 159,
    385-443.
FunnelPlotR (nhs-r-community), the R implementation of Spiegelhalter's overdispersed funnels
    whose proportion convention :func:`overdispersion` follows.
OHID Fingertips technical guidance and the PHEindicatormethods R package (``wilson_lower``,
    ``wilson_upper``, ``phe_funnels``, ``phe_funnel_significance``), whose published test
    figures the tests of this module reproduce.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import chdtrc, gammaln, ndtr, ndtri

#: The two control-limit levels of the benchmark's funnel plots (two-sided coverage).
FUNNEL_CONFIDENCE_INNER = 0.95
FUNNEL_CONFIDENCE_OUTER = 0.998

#: Labels of :func:`funnel_significance`, in the words used by Fingertips/PHEindicatormethods.
HIGH_OUTER = "High (0.001)"
HIGH_INNER = "High (0.025)"
NOT_SIGNIFICANT = "Not significant"
LOW_INNER = "Low (0.025)"
LOW_OUTER = "Low (0.001)"
SIGNIFICANCE_LEVELS = (HIGH_OUTER, HIGH_INNER, NOT_SIGNIFICANT, LOW_INNER, LOW_OUTER)

FUNNEL_METHODS = ("wilson", "arcsine")


# --------------------------------------------------------------------------------------------
# shape handling: scalars, arrays and Series in, the same shape out
# --------------------------------------------------------------------------------------------


def _to_float_array(value: Any) -> np.ndarray:
    """Return ``value`` as a float ndarray, missing values (None, NaN, pd.NA) as NaN."""
    if value is None:
        return np.array(np.nan)
    if isinstance(value, pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        return pd.array(value, dtype="Float64").to_numpy(dtype=float, na_value=np.nan)
    if np.isscalar(value) and pd.isna(value):
        return np.array(np.nan)
    try:
        return np.asarray(value, dtype=float)
    except TypeError:  # lists holding pd.NA
        return pd.array(list(np.ravel(value)), dtype="Float64").to_numpy(
            dtype=float, na_value=np.nan
        )


def _template(*values: Any) -> pd.Series | None:
    """The first pandas Series among ``values``: its index is given to the result."""
    for value in values:
        if isinstance(value, pd.Series):
            return value
    return None


def _shaped(result: np.ndarray, template: pd.Series | None, dtype: Any = float) -> Any:
    """Give ``result`` the shape of the inputs: Series, array or Python scalar."""
    if template is not None:
        values = np.broadcast_to(result, (len(template),))
        return pd.Series(values, index=template.index, dtype=dtype)
    if np.ndim(result) == 0:
        item = result.item() if isinstance(result, np.ndarray) else result
        if dtype is float:
            return float(item)
        return item
    return result


def _z(confidence: float) -> float:
    """Two-sided normal quantile: ``norm.ppf(1 - (1 - confidence) / 2)`` (not 1.96)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return float(ndtri(1 - (1 - confidence) / 2))


# --------------------------------------------------------------------------------------------
# Wilson score interval
# --------------------------------------------------------------------------------------------


def _wilson_lower(x: np.ndarray, n: np.ndarray, z: float) -> np.ndarray:
    # Wilson's lower limit (2x + z^2 - z*sqrt(z^2 + 4x(1 - x/n))) / (2(n + z^2)), rewritten by
    # multiplying through by the conjugate so it does not cancel for small x:
    #     lower = 2 x^2 / (n (2x + z^2 + z sqrt(z^2 + 4 x (n - x) / n)))
    # which is exactly 0 at x = 0.
    root = np.sqrt(z * z + 4 * x * (n - x) / n)
    return 2 * x * x / (n * (2 * x + z * z + z * root))


def wilson_interval(numerator: Any, denominator: Any, confidence: float = 0.95) -> tuple[Any, Any]:
    """Wilson score interval for a proportion (benchmark rule: Wilson intervals for every
    proportion).

    Parameters
    ----------
    numerator : scalar, array-like or pandas Series
        Count of units with the characteristic (e.g. requests approved), ``0 <= x <= n``.
    denominator : scalar, array-like or pandas Series
        Count of units (e.g. requests decided).
    confidence : float, default 0.95
        Two-sided coverage, e.g. 0.95 or 0.998. ``z = norm.ppf(1 - (1 - confidence) / 2)``.

    Returns
    -------
    (lower, upper)
        Limits as proportions (0-1), the same shape as the inputs. The lower limit is exactly 0
        when the numerator is 0 and the upper exactly 1 when numerator equals denominator.
        Both are NaN where the denominator is 0 or either count is missing.

    Raises
    ------
    ValueError
        If a numerator is negative or larger than its denominator, or confidence is not in (0, 1).

    Notes
    -----
    Wilson (1927); the same formula as PHEindicatormethods' ``wilson_lower``/``wilson_upper``:
    ``(2x + z^2 -/+ z sqrt(z^2 + 4x(1 - x/n))) / (2(n + z^2))``. It is computed in the
    algebraically equal form ``lower(x) = 2x^2 / (n (2x + z^2 + z sqrt(z^2 + 4x(n - x)/n)))``,
    ``upper(x) = 1 - lower(n - x)``, which avoids cancellation near 0 and 1.
    """
    z = _z(confidence)
    template = _template(numerator, denominator)
    x, n = np.broadcast_arrays(_to_float_array(numerator), _to_float_array(denominator))
    valid = np.isfinite(x) & np.isfinite(n) & (n > 0)
    if np.any(valid & ((x < 0) | (x > n))):
        raise ValueError("a numerator must be between 0 and its denominator")
    xs = np.where(valid, x, 0.0)
    ns = np.where(valid, n, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(valid, _wilson_lower(xs, ns, z), np.nan)
        upper = np.where(valid, 1.0 - _wilson_lower(ns - xs, ns, z), np.nan)
    return _shaped(lower, template), _shaped(upper, template)


# --------------------------------------------------------------------------------------------
# funnel plot control limits
# --------------------------------------------------------------------------------------------


def funnel_limits(
    target: Any,
    denominators: Any,
    confidence: float,
    tau2: float = 0.0,
    method: str = "wilson",
) -> tuple[Any, Any]:
    """Funnel plot control limits for a proportion (benchmark rule: funnel plots at 95%/99.8%).

    Parameters
    ----------
    target : float or array-like
        The comparator proportion (0-1), normally the national (pooled) rate.
    denominators : scalar, array-like or pandas Series
        Denominator at which the limits are drawn (a trust's decided requests, say).
    confidence : float
        Two-sided coverage: 0.95 for the inner, 0.998 for the outer limits.
    tau2 : float, default 0.0
        Additive random-effects variance on the arcsine scale from :func:`overdispersion`;
        widens ``"arcsine"`` limits. Only meaningful with ``method="arcsine"``.
    method : {"wilson", "arcsine"}
        ``"wilson"``: the limits of OHID Fingertips / PHEindicatormethods ``phe_funnels``:
        the observed proportion whose Wilson interval at that denominator just reaches the
        target. The Wilson interval is the set of p with ``|y - p| <= z sqrt(p(1 - p)/n)``, so
        that proportion has the closed form ``target -/+ z sqrt(target (1 - target) / n)``
        (PHEindicatormethods' ``sigma_adjustment`` simplifies algebraically to this).
        ``"arcsine"``: Spiegelhalter's variance-stabilised limits
        ``sin^2(asin(sqrt(target)) -/+ z sqrt(1/(4n) + tau2))``.

    Returns
    -------
    (lower, upper)
        Limits as proportions, clipped to [0, 1] (for ``"arcsine"`` the angle is clipped to
        [0, pi/2] before squaring, so a limit never folds back). NaN where the denominator is 0
        or missing.

    Raises
    ------
    ValueError
        Unknown method, confidence outside (0, 1), negative tau2, or tau2 > 0 with
        ``method="wilson"`` (tau2 is a variance on the arcsine scale).
    """
    if method not in FUNNEL_METHODS:
        raise ValueError(f"method must be one of {FUNNEL_METHODS}, got {method!r}")
    if not tau2 >= 0:
        raise ValueError(f"tau2 must be >= 0, got {tau2!r}")
    if method == "wilson" and tau2 > 0:
        raise ValueError("tau2 is on the arcsine scale: use method='arcsine' to widen limits")
    z = _z(confidence)
    template = _template(target, denominators)
    p, n = np.broadcast_arrays(_to_float_array(target), _to_float_array(denominators))
    valid = np.isfinite(p) & np.isfinite(n) & (n > 0)
    if np.any(valid & ((p < 0) | (p > 1))):
        raise ValueError("target must be a proportion between 0 and 1")
    ps = np.where(valid, p, 0.5)
    ns = np.where(valid, n, 1.0)
    if method == "wilson":
        half = z * np.sqrt(ps * (1 - ps) / ns)
        lower = np.clip(ps - half, 0.0, 1.0)
        upper = np.clip(ps + half, 0.0, 1.0)
    else:
        angle = np.arcsin(np.sqrt(ps))
        half = z * np.sqrt(1 / (4 * ns) + tau2)
        lower = np.sin(np.clip(angle - half, 0.0, np.pi / 2)) ** 2
        upper = np.sin(np.clip(angle + half, 0.0, np.pi / 2)) ** 2
    lower = np.where(valid, lower, np.nan)
    upper = np.where(valid, upper, np.nan)
    return _shaped(lower, template), _shaped(upper, template)


# --------------------------------------------------------------------------------------------
# overdispersion (Spiegelhalter 2005)
# --------------------------------------------------------------------------------------------


def _valid_units(numerators: Any, denominators: Any) -> tuple[np.ndarray, np.ndarray]:
    r, n = np.broadcast_arrays(_to_float_array(numerators), _to_float_array(denominators))
    r, n = np.atleast_1d(r), np.atleast_1d(n)
    keep = np.isfinite(r) & np.isfinite(n) & (n > 0)
    if np.any(keep & ((r < 0) | (r > n))):
        raise ValueError("a numerator must be between 0 and its denominator")
    return r[keep], n[keep]


def pooled_rate(numerators: Any, denominators: Any) -> float:
    """The pooled (national) rate ``sum(numerators) / sum(denominators)`` over units with data.

    Units whose denominator is 0 or missing are left out. NaN when no unit has data.
    """
    r, n = _valid_units(numerators, denominators)
    return float(r.sum() / n.sum()) if n.size else float("nan")


WINSORISE_METHODS = ("percentile", "count")


def winsorise_values(
    values: Any, proportion: float = 0.1, method: str = "percentile"
) -> np.ndarray:
    """Winsorise values at each end (Spiegelhalter 2005, as FunnelPlotR does it).

    ``method="percentile"`` (the default): values below the ``proportion`` quantile are set to
    it, values above the ``1 - proportion`` quantile likewise, the quantiles being R's default
    (type 7, linear interpolation between order statistics: numpy's default ``np.quantile``).
    This is FunnelPlotR's convention. ``method="count"``: the ``floor(proportion * k)`` lowest
    and highest of k values are set to the nearest value kept (``scipy.stats.mstats.winsorize``),
    the convention of the first edition of the benchmark, kept as an option.
    """
    if method not in WINSORISE_METHODS:
        raise ValueError(f"method must be one of {WINSORISE_METHODS}, got {method!r}")
    z = np.asarray(values, dtype=float).copy()
    k = z.size
    if k == 0 or proportion <= 0:
        return z
    if method == "percentile":
        lower, upper = np.quantile(z, [proportion, 1 - proportion])
        return np.clip(z, lower, upper)
    g = int(np.floor(proportion * k + 1e-9))
    if g == 0:
        return z
    order = np.sort(z)
    return np.clip(z, order[g], order[k - 1 - g])


def winsorised_consistency(proportion: float) -> float:
    """Mean square of a standard normal winsorised at its ``proportion`` and ``1 - proportion``
    quantiles: ``(1 - 2w) - 2 c pdf(c) + 2 w c^2`` with ``c = norm.ppf(1 - w)``.

    Dividing a winsorised mean square by this makes it a consistent estimate of the variance of
    normal z-scores (the same idea as the 1.4826 factor of the median absolute deviation). For
    w = 0.1 it is 0.6787: uncorrected, the winsorised phi of a nation whose z-scores are normal
    with variance phi estimates only 0.68 phi (docs/methodology.md, "Overdispersion").
    """
    if not 0 <= proportion < 0.5:
        raise ValueError(f"proportion must be in [0, 0.5), got {proportion!r}")
    if proportion == 0:
        return 1.0
    c = float(ndtri(1 - proportion))
    density = float(np.exp(-c * c / 2) / np.sqrt(2 * np.pi))
    return (1 - 2 * proportion) - 2 * c * density + 2 * proportion * c * c


def arcsine_z(numerators: Any, denominators: Any, target: float, tau2: float = 0.0) -> Any:
    """z-score of each unit on the arcsine scale (Spiegelhalter 2005):
    ``(asin(sqrt(r/n)) - asin(sqrt(target))) / sqrt(1/(4n) + tau2)``. NaN without data."""
    template = _template(numerators, denominators)
    r, n = np.broadcast_arrays(_to_float_array(numerators), _to_float_array(denominators))
    valid = np.isfinite(r) & np.isfinite(n) & (n > 0)
    if np.any(valid & ((r < 0) | (r > n))):
        raise ValueError("a numerator must be between 0 and its denominator")
    ns = np.where(valid, n, 1.0)
    y = np.where(valid, r, 0.0) / ns
    z = (np.arcsin(np.sqrt(y)) - np.arcsin(np.sqrt(float(target)))) / np.sqrt(1 / (4 * ns) + tau2)
    return _shaped(np.where(valid, z, np.nan), template)


def overdispersion(
    numerators: Any,
    denominators: Any,
    target: float | None = None,
    winsorise: float = 0.1,
    consistent: bool = False,
) -> tuple[float, float]:
    """Overdispersion factor phi and random-effects variance tau^2 on the arcsine scale.

    Spiegelhalter (2005), as FunnelPlotR computes it for proportions (``data_type = "PR"``).

    Parameters
    ----------
    numerators, denominators : array-like or pandas Series
        One entry per unit (trust). Units with a zero or missing denominator are left out.
    target : float or array-like, optional
        Comparator proportion; defaults to the pooled rate of the units used (FunnelPlotR).
        An array gives each unit its own target (staff voice: each trust's peer median); units
        whose target is missing are then left out.
    winsorise : float, default 0.1
        z-scores are winsorised at the ``winsorise`` and ``1 - winsorise`` quantiles (R type 7).
    consistent : bool, default False
        False: FunnelPlotR's phi, the mean square of the winsorised z-scores. True: that mean
        square divided by :func:`winsorised_consistency` so that phi is consistent for normal
        z-scores; the benchmark uses this (docs/methodology.md, "Overdispersion": without it,
        10.9% of the trusts of null nations fell outside the adjusted 95% limits).

    Returns
    -------
    (phi, tau2)
        ``phi`` (1 when the spread is what chance alone gives) and ``tau2``, the additive
        between-unit variance on the arcsine scale (DerSimonian-Laird moment form; 0 when
        ``k phi <= k - 1``). ``(nan, 0.0)`` with no units.

    Notes
    -----
    With k units, y_i = r_i / n_i and p0 the target:

    - z_i = (asin(sqrt(y_i)) - asin(sqrt(p0))) / s_i, s_i = 1 / (2 sqrt(n_i));
    - z_i clipped to [q(0.1), q(0.9)], q the type-7 quantile of the k z-scores;
    - phi = (1/k) sum(z_w,i^2) (divided by the consistency factor when ``consistent``);
    - w_i = 1 / s_i^2 = 4 n_i;
    - tau2 = max(0, (k phi - (k - 1)) / (sum(w) - sum(w^2) / sum(w))).
    """
    r, n = np.broadcast_arrays(_to_float_array(numerators), _to_float_array(denominators))
    r, n = np.atleast_1d(r), np.atleast_1d(n)
    p0 = np.broadcast_to(np.nan if target is None else _to_float_array(target), r.shape)
    keep = np.isfinite(r) & np.isfinite(n) & (n > 0) & (target is None or np.isfinite(p0))
    if np.any(keep & ((r < 0) | (r > n))):
        raise ValueError("a numerator must be between 0 and its denominator")
    r, n, p0 = r[keep], n[keep], p0[keep]
    k = n.size
    if k == 0:
        return float("nan"), 0.0
    if target is None:
        p0 = np.full(k, r.sum() / n.sum())
    if np.any((p0 < 0) | (p0 > 1)):
        raise ValueError("target must be a proportion between 0 and 1")
    s = 1 / (2 * np.sqrt(n))
    z = (np.arcsin(np.sqrt(r / n)) - np.arcsin(np.sqrt(p0))) / s
    z_w = winsorise_values(z, winsorise)
    phi = float(np.mean(z_w**2))
    if consistent:
        phi /= winsorised_consistency(winsorise)
    w = 1 / s**2
    excess = k * phi - (k - 1)
    if excess <= 0 or k < 2:
        return phi, 0.0
    tau2 = float(excess / (w.sum() - (w**2).sum() / w.sum()))
    return phi, max(0.0, tau2)


def overdispersion_p_value(phi: float, k: int) -> float:
    """p-value of the test of overdispersion: ``P(chi2(k - 1) > k phi)`` (Spiegelhalter 2005:
    with no overdispersion, k phi is approximately chi-squared on k - 1 degrees of freedom).
    NaN when k < 2 or phi is missing."""
    if k is None or k < 2 or phi is None or not np.isfinite(phi):
        return float("nan")
    return float(chdtrc(k - 1, k * phi))


def two_sided_p(z: Any) -> Any:
    """Two-sided normal p-value ``2 * Phi(-|z|)``; NaN where z is missing."""
    template = _template(z)
    values = _to_float_array(z)
    return _shaped(2 * ndtr(-np.abs(values)), template)


def directional_p(z: Any, direction: str) -> Any:
    """p-value of a test that looks one way, on the two-sided scale: ``min(1, 2 P(Z > z))``
    for ``"high"``, ``min(1, 2 P(Z < z))`` for ``"low"``. Below 0.05 exactly when z is beyond
    the 95% two-sided limit on that side (the funnel plot's convention), and near 1 on the
    other side, so results in the direction no flag looks for are not counted as discoveries
    by :func:`bh_q_values`."""
    if direction not in ("high", "low"):
        raise ValueError(f"direction must be 'high' or 'low', got {direction!r}")
    template = _template(z)
    values = _to_float_array(z)
    tail = ndtr(-values) if direction == "high" else ndtr(values)
    return _shaped(np.minimum(1.0, 2 * tail), template)


def bh_q_values(p_values: Any) -> Any:
    """Benjamini-Hochberg q-values (false discovery rate adjusted p-values), what R's
    ``p.adjust(p, "BH")`` gives: ``q_(i) = min over j >= i of min(1, m p_(j) / j)`` for the
    sorted p-values, m the number of p-values present. Missing p-values stay missing and are
    not counted in m (Benjamini & Hochberg 1995; Jones, Ohlssen & Spiegelhalter 2008 for
    league tables)."""
    template = _template(p_values)
    p = np.atleast_1d(_to_float_array(p_values)).astype(float)
    q = np.full(p.shape, np.nan)
    present = np.isfinite(p)
    m = int(present.sum())
    if m:
        values = p[present]
        order = np.argsort(values, kind="stable")
        ranked = values[order] * m / np.arange(1, m + 1)
        adjusted = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
        out = np.empty(m)
        out[order] = adjusted
        q[present] = out
    return _shaped(q, template)


def _log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def fisher_exact_p(x1: Any, n1: Any, x2: Any, n2: Any) -> Any:
    """Two-sided p-value of Fisher's exact test of two proportions x1/n1 and x2/n2.

    Conditional on the margins, the sum of the hypergeometric probabilities of the tables no
    more likely than the one observed (R's ``fisher.test`` convention, with its relative
    tolerance of 1e-7 for ties). Exact, so valid for small groups. NaN where a count is
    missing or a group is empty.
    """
    template = _template(x1, n1, x2, n2)
    a, m, b, k = np.broadcast_arrays(*(_to_float_array(v) for v in (x1, n1, x2, n2)))
    a, m, b, k = (np.atleast_1d(v) for v in (a, m, b, k))
    out = np.full(a.shape, np.nan)
    for i in range(a.size):
        if not all(np.isfinite(v[i]) for v in (a, m, b, k)) or m[i] <= 0 or k[i] <= 0:
            continue
        n_a, n_b, hits = int(m[i]), int(k[i]), int(a[i] + b[i])
        lo, hi = max(0, hits - n_b), min(hits, n_a)
        support = np.arange(lo, hi + 1, dtype=float)
        log_p = (
            _log_choose(np.float64(n_a), support)
            + _log_choose(np.float64(n_b), hits - support)
            - _log_choose(np.float64(n_a + n_b), np.float64(hits))
        )
        prob = np.exp(log_p)
        observed = prob[int(a[i]) - lo]
        out[i] = min(1.0, float(prob[prob <= observed * (1 + 1e-7)].sum()))
    if template is None and np.ndim(x1) == 0 and np.ndim(n1) == 0:
        return float(out[0])
    return _shaped(out, template)


# --------------------------------------------------------------------------------------------
# funnel significance
# --------------------------------------------------------------------------------------------


def funnel_significance(
    numerators: Any,
    denominators: Any,
    target: float | None = None,
    method: str = "wilson",
    tau2: float = 0.0,
) -> Any:
    """Where each unit falls on the funnel plot (benchmark rule: outliers named at each level).

    Parameters
    ----------
    numerators, denominators : scalar, array-like or pandas Series
        One entry per unit.
    target : float or array-like, optional
        Comparator proportion, or one per unit (each unit against its own area's rate, say);
        defaults to the pooled rate of all units with data.
    method : {"wilson", "arcsine"}
        Control limits as in :func:`funnel_limits`.
    tau2 : float, default 0.0
        Overdispersion variance (arcsine scale, ``method="arcsine"`` only).

    Returns
    -------
    labels
        Per unit one of ``"High (0.001)"`` (above the 99.8% limit), ``"High (0.025)"`` (above
        the 95% limit), ``"Not significant"``, ``"Low (0.025)"``, ``"Low (0.001)"``; missing
        (None, or NaN in a Series) where the denominator is 0 or a count is missing. A value
        exactly on a limit is not significant (strict comparison, as PHEindicatormethods).
    """
    template = _template(numerators, denominators)
    r, n = np.broadcast_arrays(_to_float_array(numerators), _to_float_array(denominators))
    valid = np.isfinite(r) & np.isfinite(n) & (n > 0)
    if np.any(valid & ((r < 0) | (r > n))):
        raise ValueError("a numerator must be between 0 and its denominator")
    if target is None:
        p0 = pooled_rate(r, n)
    else:  # one comparator, or one per unit
        p0 = float(target) if np.ndim(target) == 0 else _to_float_array(target)
    ns = np.where(valid, n, 1.0)
    y = np.where(valid, r, 0.0) / ns
    lo_out, hi_out = funnel_limits(p0, ns, FUNNEL_CONFIDENCE_OUTER, tau2, method)
    lo_in, hi_in = funnel_limits(p0, ns, FUNNEL_CONFIDENCE_INNER, tau2, method)
    labels = np.select(
        [y > hi_out, y > hi_in, y < lo_out, y < lo_in],
        [HIGH_OUTER, HIGH_INNER, LOW_OUTER, LOW_INNER],
        default=NOT_SIGNIFICANT,
    ).astype(object)
    labels = np.where(valid, labels, None)
    if template is not None:
        labels = np.broadcast_to(labels, (len(template),))
        return pd.Series(labels, index=template.index, dtype="str")
    if labels.ndim == 0:
        return labels.item()
    return labels


# --------------------------------------------------------------------------------------------
# ranks and quartiles
# --------------------------------------------------------------------------------------------


def rank_with_ties(
    values: Any,
    ascending: bool = False,
    min_denominator: float | None = None,
    denominators: Any = None,
) -> Any:
    """Rank units, ties sharing the best rank (benchmark rule: ties ranked as ties; no rank
    from tiny numbers).

    Parameters
    ----------
    values : array-like or pandas Series
        The measure to rank (e.g. approval rate).
    ascending : bool, default False
        False ranks the highest value 1; True ranks the lowest value 1.
    min_denominator : float, optional
        Units whose denominator is under this get no rank and are not counted in others' ranks.
    denominators : array-like or pandas Series, optional
        Required with ``min_denominator``.

    Returns
    -------
    ranks
        Float ranks (1 = best), the "min" method: values 0.9, 0.8, 0.8, 0.7 rank 1, 2, 2, 4.
        NaN where the value is missing or the denominator is under the minimum.
    """
    if min_denominator is not None and denominators is None:
        raise ValueError("min_denominator needs denominators")
    template = _template(values, denominators)
    v = np.atleast_1d(_to_float_array(values))
    eligible = np.isfinite(v)
    if min_denominator is not None:
        d = np.broadcast_to(np.atleast_1d(_to_float_array(denominators)), v.shape)
        eligible &= np.isfinite(d) & (d >= min_denominator)
    ranks = np.full(v.shape, np.nan)
    if eligible.any():
        key = v[eligible] if ascending else -v[eligible]
        ranks[eligible] = pd.Series(key).rank(method="min").to_numpy(dtype=float)
    return _shaped(ranks, template)


#: Seed of the rank simulation: the same data gives the same rank intervals on every build.
RANK_SIMULATION_SEED = 20_050_401
RANK_SIMULATIONS = 2000


def rank_intervals(
    numerators: Any,
    denominators: Any,
    eligible: Any = None,
    confidence: float = 0.95,
    simulations: int = RANK_SIMULATIONS,
    seed: int = RANK_SIMULATION_SEED,
    ascending: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of each unit's rank, by simulation from each unit's uncertainty (Goldstein &
    Spiegelhalter 1996; Marshall & Spiegelhalter 1998).

    Each eligible unit's true rate is drawn ``simulations`` times from Beta(x + 1/2, n - x + 1/2)
    (the Jeffreys posterior, whose central interval is close to the Wilson one); the units are
    ranked in every draw (1 = highest unless ``ascending``) and the interval is the central
    ``confidence`` range of each unit's simulated ranks (lower quantile rounded down, upper
    rounded up, so both are whole ranks). Deterministic: a fixed ``seed``.

    Returns
    -------
    (lower, upper)
        Float arrays; NaN where the unit is not eligible (e.g. too few decided to be ranked)
        or has no data.
    """
    x = np.atleast_1d(_to_float_array(numerators))
    n = np.atleast_1d(_to_float_array(denominators))
    x, n = np.broadcast_arrays(x, n)
    ok = np.isfinite(x) & np.isfinite(n) & (n > 0) & (x >= 0) & (x <= n)
    if eligible is not None:
        ok &= np.broadcast_to(np.atleast_1d(np.asarray(eligible, dtype=bool)), ok.shape)
    lower = np.full(x.shape, np.nan)
    upper = np.full(x.shape, np.nan)
    k = int(ok.sum())
    if k == 0:
        return lower, upper
    rng = np.random.default_rng(seed)
    draws = rng.beta(x[ok] + 0.5, n[ok] - x[ok] + 0.5, size=(simulations, k))
    if not ascending:  # highest first (in place: the draws are not needed again)
        np.negative(draws, out=draws)
    # each draw's ranks: the inverse of its sorting permutation (what a second argsort gives,
    # without sorting again), as 32-bit integers (half the memory to write and read)
    order = draws.argsort(axis=1)
    ranks = np.empty(order.shape, dtype=np.int32)
    np.put_along_axis(ranks, order, np.arange(1, k + 1, dtype=np.int32)[np.newaxis, :], axis=1)
    alpha = (1 - confidence) / 2
    lower[ok] = np.quantile(ranks, alpha, axis=0, method="lower")
    upper[ok] = np.quantile(ranks, 1 - alpha, axis=0, method="higher")
    return lower, upper


def quartile(ranks: Any, n: Any) -> Any:
    """Quartile of a rank among n ranked units: 1 = top quarter ... 4 = bottom quarter.

    Benchmark rule: "rank and quartile nationally and within peers". A unit's quartile is set
    by the share of units ranked above it: ``1 + floor(4 * (rank - 1) / n)``. So with n = 8,
    ranks 1-2 are quartile 1 and 7-8 quartile 4; the top-ranked unit (and any tied with it) is
    always quartile 1. NaN where the rank is missing or n is not positive.
    """
    template = _template(ranks, n)
    r, k = np.broadcast_arrays(_to_float_array(ranks), _to_float_array(n))
    valid = np.isfinite(r) & np.isfinite(k) & (k > 0) & (r >= 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.clip(1 + np.floor(4 * (r - 1) / np.where(valid, k, 1.0)), 1, 4)
    return _shaped(np.where(valid, q, np.nan), template)
