"""Every published measure by quarter, year on year, and by region (docs/methodology.md,
"Trends and year on year" and "Regions and ICBs").

The measures are those of the benchmark (:data:`transforms.benchmark.PROPORTIONS`, the
decline-reason shares and uptake), with the same definitions and intervals: Wilson for
proportions (:func:`transforms.stats.wilson_interval`), the exact Poisson interval for uptake
(:func:`transforms.benchmark.poisson_interval`). Pure: no I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transforms import stats
from transforms.benchmark import (
    DECLINE_REASONS,
    PROPORTIONS,
    Proportion,
    add_derived_counts,
    poisson_interval,
)
from transforms.equity import newcombe_difference

UPTAKE = "requests_per_100_staff"

#: Every proportion published for a trust: the benchmark's proportions and the share of
#: declines on each of the nine grounds.
TREND_PROPORTIONS: tuple[Proportion, ...] = (
    *PROPORTIONS,
    *(Proportion(f"decline_share_{r.removeprefix('declined_')}", r, "declined")
      for r in DECLINE_REASONS),
)  # fmt: skip

#: Every measure with a quarterly trend: the proportions, then uptake.
TREND_MEASURES: tuple[str, ...] = (*(p.name for p in TREND_PROPORTIONS), UPTAKE)

LONG_COLUMNS = (
    "measure",
    "numerator",
    "denominator",
    "rate",
    "rate_lower95",
    "rate_upper95",
    "rate_lower998",
    "rate_upper998",
)


def _counts(frame: pd.DataFrame) -> pd.DataFrame:
    c = frame.copy()
    add_derived_counts(c)
    return c


def measures_long(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per unit (``keys``) per measure of :data:`TREND_MEASURES`.

    ``frame`` holds the summary-form counts of each unit, ``months_covered`` and
    ``headcount`` (staff in post, for uptake). Rates as in marts.trust_benchmark: a
    proportion is numerator / denominator with Wilson intervals (NaN where the denominator
    is 0); uptake is requests received per 100 staff a year (x 12 / months covered), its
    numerator the requests and its denominator the staff in post, with the exact Poisson
    interval of the count, scaled.
    """
    c = _counts(frame)
    parts = []
    for p in TREND_PROPORTIONS:
        x = c[p.numerator].astype(float)
        n = c[p.denominator].astype(float)
        part = c[keys].copy()
        part["measure"] = p.name
        part["numerator"], part["denominator"] = x.to_numpy(), n.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            part["rate"] = np.where(n > 0, x / n, np.nan)
        for confidence, suffix in ((0.95, "95"), (0.998, "998")):
            lower, upper = stats.wilson_interval(x, n, confidence)
            part[f"rate_lower{suffix}"] = np.asarray(lower, dtype=float)
            part[f"rate_upper{suffix}"] = np.asarray(upper, dtype=float)
        parts.append(part)
    part = c[keys].copy()
    part["measure"] = UPTAKE
    x = c["requests_received"].astype(float)
    staff = pd.to_numeric(c["headcount"], errors="coerce").astype(float)
    months = pd.to_numeric(c["months_covered"], errors="coerce").astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where((staff > 0) & (months > 0), 100 * 12 / staff / months, np.nan)
    part["numerator"], part["denominator"] = x.to_numpy(), staff.to_numpy()
    part["rate"] = x.to_numpy() * scale
    for confidence, suffix in ((0.95, "95"), (0.998, "998")):
        lower, upper = poisson_interval(x, confidence)
        part[f"rate_lower{suffix}"] = lower * scale
        part[f"rate_upper{suffix}"] = upper * scale
    parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    return out[[*keys, *LONG_COLUMNS]]


YOY_COLUMNS = (
    "measure",
    "latest_numerator",
    "latest_denominator",
    "latest_rate",
    "previous_numerator",
    "previous_denominator",
    "previous_rate",
    "change_kind",
    "change",
    "change_lower95",
    "change_upper95",
    "change_significant",
)


def year_on_year(latest: pd.DataFrame, previous: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The latest 12 months against the 12 before, for every measure of every unit.

    ``latest`` and ``previous`` are :func:`measures_long` frames of the two years. Implements
    methodology, "Trends and year on year": for a proportion the change is the difference
    of the two rates (latest - previous, ``change_kind`` "difference") with Newcombe's hybrid
    score interval (:func:`transforms.equity.newcombe_difference`); for uptake it is the
    ratio of the two years' rates (``change_kind`` "ratio"), with the interval of the ratio
    of two Poisson counts conditional on their total: the Wilson interval (pl, pu) of
    latest / (latest + previous) requests gives ``pl / (1 - pl)`` .. ``pu / (1 - pu)`` for the
    count ratio, scaled by the ratio of the two years' exposures (staff x months).
    ``change_significant``: the 95% interval excludes no change (0 for a difference, 1 for a ratio).
    """
    m = latest.merge(previous, on=[*keys, "measure"], how="outer", suffixes=("_l", "_p"))
    out = m[[*keys, "measure"]].copy()
    out["latest_numerator"] = m["numerator_l"]
    out["latest_denominator"] = m["denominator_l"]
    out["latest_rate"] = m["rate_l"]
    out["previous_numerator"] = m["numerator_p"]
    out["previous_denominator"] = m["denominator_p"]
    out["previous_rate"] = m["rate_p"]
    uptake = (m["measure"] == UPTAKE).to_numpy()
    d, lo, hi = newcombe_difference(
        m["numerator_l"], m["denominator_l"], m["numerator_p"], m["denominator_p"]
    )
    x1 = m["numerator_l"].astype(float).to_numpy()
    x2 = m["numerator_p"].astype(float).to_numpy()
    total = x1 + x2
    pl, pu = stats.wilson_interval(
        np.where(total > 0, x1, np.nan), np.where(total > 0, total, np.nan), 0.95
    )
    pl, pu = np.asarray(pl, dtype=float), np.asarray(pu, dtype=float)
    rate_l = m["rate_l"].astype(float).to_numpy()
    rate_p = m["rate_p"].astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        # rate ratio = (x1 / x2) * k, k the ratio of the exposures (staff x months) of the
        # previous year to the latest: the count ratio's limits scale by the same k.
        ratio = np.where((x2 > 0) & (rate_p > 0), rate_l / rate_p, np.nan)
        k = ratio / (x1 / x2)
        r_lo = np.where(np.isfinite(ratio), pl / (1 - pl) * k, np.nan)
        r_hi = np.where(np.isfinite(ratio) & (pu < 1), pu / (1 - pu) * k, np.inf)
    r_hi = np.where(np.isfinite(ratio), r_hi, np.nan)
    out["change_kind"] = np.where(uptake, "ratio", "difference")
    out["change"] = np.where(uptake, ratio, d)
    out["change_lower95"] = np.where(uptake, r_lo, lo)
    out["change_upper95"] = np.where(uptake, r_hi, hi)
    none = np.where(uptake, 1.0, 0.0)
    known = np.isfinite(out["change_lower95"]) & np.isfinite(out["change_upper95"])
    out["change_significant"] = np.where(
        known,
        (out["change_lower95"] > none) | (out["change_upper95"] < none),
        None,
    )
    return out[[*keys, *YOY_COLUMNS]]


def funnel_within(
    frame: pd.DataFrame,
    area: str,
    numerator: str = "approved",
    denominator: str = "decided",
    tau2: float = 0.0,
) -> pd.DataFrame:
    """Funnel position of each trust against the pooled rate of its area (region or ICB).

    Methodology, "Regions and ICBs": control limits at 95% and 99.8% around the area's pooled
    approval rate (:func:`transforms.stats.funnel_significance`,
    :func:`transforms.stats.funnel_limits`). An area has too few trusts to estimate
    overdispersion itself, so the national one is used: with ``tau2 > 0`` (the national
    approval funnel's tau^2, where trusts are overdispersed) Spiegelhalter's arcsine limits
    widened by tau^2, else Fingertips (Wilson) limits. Returns ``frame``'s ``org_code`` and
    ``area`` with area_rate, funnel (the significance label) and the control limits at the
    trust's denominator.
    """
    method = "arcsine" if tau2 and tau2 > 0 else "wilson"
    tau2 = float(tau2) if method == "arcsine" else 0.0
    columns = ["org_code", area, "area_rate", "funnel", "control_lower95", "control_upper95",
               "control_lower998", "control_upper998"]  # fmt: skip
    # The areas in order, each area's trusts in the frame's order (as a groupby gives them),
    # worked out together: each trust against its own area's rate.
    rows = frame[frame[area].notna()]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.sort_values(area, kind="stable")
    x = rows[numerator].astype(float).to_numpy()
    n = rows[denominator].astype(float).to_numpy()
    ok = n > 0
    x_ok, n_ok = np.where(ok, x, np.nan), np.where(ok, n, np.nan)
    target = np.full(len(rows), np.nan)
    no_data = np.zeros(len(rows), dtype=bool)  # the trusts of areas without decided requests
    for positions in rows.groupby(area, sort=True).indices.values():
        if ok[positions].any():
            target[positions] = stats.pooled_rate(x_ok[positions], n_ok[positions])
        else:
            no_data[positions] = True
    out = rows[["org_code", area]].reset_index(drop=True)
    out["area_rate"] = target
    if no_data.all():
        out["funnel"] = None
    else:
        funnel = stats.funnel_significance(
            pd.Series(x_ok), pd.Series(n_ok), target, method=method, tau2=tau2
        )
        if no_data.any():  # no label, None (as an area without data has always had)
            funnel = funnel.astype(object).where(~no_data, None)
        out["funnel"] = funnel
    for confidence, s in ((0.95, "95"), (0.998, "998")):
        lower, upper = stats.funnel_limits(target, n_ok, confidence, tau2, method)
        out[f"control_lower{s}"] = np.asarray(lower, dtype=float)
        out[f"control_upper{s}"] = np.asarray(upper, dtype=float)
    return out
