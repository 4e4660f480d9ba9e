"""Benchmark statistics: confidence intervals, funnel limits, overdispersion, ranks.

These implement the comparison methods of the benchmark (brief, section 4, "Comparison done
the way NHS analysts do it"):

- Wilson score intervals (95% and 99.8%) for every proportion -> :func:`wilson_interval`;
- funnel plots for proportions against the national rate, control limits at 95% and 99.8%
  -> :func:`funnel_limits` and :func:`funnel_significance`;
- the overdispersion adjustment of Spiegelhalter (2005), z-scores winsorised at 10% and an
  additive random-effects variance tau^2 -> :func:`overdispersion`;
- rank and quartile, ties ranked as ties, no rank from tiny numbers -> :func:`rank_with_ties`
  and :func:`quartile`.

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
OHID Fingertips technical guidance and the PHEindicatormethods R package (``wilson_lower``,
    ``wilson_upper``, ``phe_funnels``, ``phe_funnel_significance``), whose published test
    figures the tests of this module reproduce.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

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


def winsorise_values(values: Any, proportion: float = 0.1) -> np.ndarray:
    """Winsorise: the ``floor(proportion * k)`` lowest and highest of k values are set to the
    nearest value kept (same convention as ``scipy.stats.mstats.winsorize``).

    Used by :func:`overdispersion` (Spiegelhalter 2005: z-scores winsorised at 10% each end).
    """
    z = np.asarray(values, dtype=float).copy()
    k = z.size
    g = int(np.floor(proportion * k + 1e-9))
    if g == 0 or k == 0:
        return z
    order = np.sort(z)
    return np.clip(z, order[g], order[k - 1 - g])


def overdispersion(
    numerators: Any, denominators: Any, target: float | None = None, winsorise: float = 0.1
) -> tuple[float, float]:
    """Overdispersion factor phi and random-effects variance tau^2 on the arcsine scale.

    Benchmark rule: funnel limits get "an overdispersion adjustment (Spiegelhalter 2005:
    z-scores winsorised at 10%, additive random effects tau^2) when the data is overdispersed".

    Parameters
    ----------
    numerators, denominators : array-like or pandas Series
        One entry per unit (trust). Units with a zero or missing denominator are left out.
    target : float, optional
        Comparator proportion; defaults to the pooled rate of the units used.
    winsorise : float, default 0.1
        Share of z-scores winsorised at each end.

    Returns
    -------
    (phi, tau2)
        ``phi`` is the winsorised estimate of the overdispersion factor (1 when the spread is
        what chance alone gives); ``tau2`` the additive between-unit variance on the arcsine
        scale (0 when not overdispersed). ``(nan, 0.0)`` with no units.

    Notes
    -----
    Exactly these formulas, with k units, y_i = r_i / n_i and p0 the target:

    - z_i = (asin(sqrt(y_i)) - asin(sqrt(p0))) / s_i, with s_i = 1 / (2 sqrt(n_i)) (the
      standard error on the arcsine scale);
    - z-scores winsorised: the floor(0.1 k) smallest set to the next smallest kept, likewise
      the largest (see :func:`winsorise_values`);
    - phi = (1/k) sum(z_w,i^2);
    - w_i = 1 / s_i^2 = 4 n_i;
    - tau2 = (k phi - (k - 1)) / (sum(w) - sum(w^2) / sum(w)) when k phi > k - 1, else 0.
    """
    r, n = _valid_units(numerators, denominators)
    k = n.size
    if k == 0:
        return float("nan"), 0.0
    p0 = r.sum() / n.sum() if target is None else float(target)
    if not 0 <= p0 <= 1:
        raise ValueError("target must be a proportion between 0 and 1")
    s = 1 / (2 * np.sqrt(n))
    z = (np.arcsin(np.sqrt(r / n)) - np.arcsin(np.sqrt(p0))) / s
    z_w = winsorise_values(z, winsorise)
    phi = float(np.mean(z_w**2))
    w = 4 * n
    excess = k * phi - (k - 1)
    if excess <= 0 or k < 2:
        return phi, 0.0
    tau2 = float(excess / (w.sum() - (w**2).sum() / w.sum()))
    return phi, tau2


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
    target : float, optional
        Comparator proportion; defaults to the pooled rate of all units with data.
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
    p0 = pooled_rate(r, n) if target is None else float(target)
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
