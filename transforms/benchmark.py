"""The benchmark's measures, comparisons and policy-practice gap flags, on DataFrames.

Pure: no warehouse, no Airflow. :mod:`flexbench.pipeline.benchmark` reads the intermediate
tables, calls :func:`trust_measures` and :func:`policy_practice_flags`, and writes their
results back in the build's one transaction. Every rule here is documented, in words an
analyst can quote, in ``docs/methodology.md``; the numbers in brackets (``[A3]``) cite its
assumptions-and-caveats log.

- :func:`trust_measures` - rates with 95% and 99.8% Wilson intervals, uptake with exact
  Poisson intervals, funnel positions (unadjusted and overdispersion-adjusted), ranks with
  their intervals and quartiles, staff voice against the peers, the clinical vs non-clinical
  approval gap, and the p- and q-values of every test behind a flag;
- :func:`policy_practice_flags` - one row per trust per gap flag raised, with the p- and
  q-values of the tested ones (docs/methodology.md, "Policy–practice gap flags").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy.special import gammaincinv, ndtri

from transforms import stats, vocabulary

# --------------------------------------------------------------------------------------------
# documented constants (docs/methodology.md, "Thresholds")
# --------------------------------------------------------------------------------------------

#: No rank, and no rate-based flag, from fewer decided requests than this [A6].
MIN_DECIDED = 10
#: Data is stale when the latest accepted period ended more days than this before as-of.
STALE_DAYS = 183
#: Decisions within two months: a trust is flagged when its share of decisions made within
#: two months is significantly below this standard (score test) [A8].
TIMELINESS_STANDARD = 0.90
#: A flag decided by a test is raised when its p-value is below this (beyond the 95% limits,
#: in the direction the flag looks for) [A13] ...
FLAG_P = 0.05
#: ... and is "high" when its Benjamini-Hochberg q-value over every trust x tested flag is at
#: most this: a discovery with the false discovery rate held at 5% [A13].
FDR_HIGH = 0.05
#: Clinical vs non-clinical gap: each group needs at least this many decided requests [A9].
MIN_DECIDED_PER_GROUP = 10
#: Staff Survey percentages are weighted: their variance is taken as this many times the
#: binomial one (design effect, an assumption, not measured) [A11].
VOICE_DESIGN_EFFECT = 1.2
#: Declines without escalation: an escalation made up to this many months before the window
#: can be followed by a decline inside it (the statutory two-month decision period) [A3].
ESCALATION_CARRY_MONTHS = 2
#: Declines on a non-statutory ground: "high" when at least this share of declines.
NON_STATUTORY_HIGH_SHARE = 0.10
#: Clinical vs non-clinical approval gap: flagged only when at least this large (and
#: significant) [A9].
CLINICAL_GAP_MIN = 0.05
#: Low uptake: fewer requests per 100 staff than this fraction of the peer-group median [A10].
LOW_UPTAKE_RATIO = 0.5
#: Staff voice is "below peers" when both of these questions are significantly low against
#: the peer median; "We work flexibly" is built from Q4d, Q6b, Q6c and Q6d, so it is shown but
#: not counted as further evidence [A11].
VOICE_TESTED_MEASURES = ("q4d_pct_satisfied", "q6d_pct_agree")

Z95 = float(ndtri(1 - (1 - stats.FUNNEL_CONFIDENCE_INNER) / 2))
Z998 = float(ndtri(1 - (1 - stats.FUNNEL_CONFIDENCE_OUTER) / 2))


def _chi2_ppf(q, df):
    """The chi-squared quantile (what ``scipy.stats.chi2.ppf`` computes), from
    ``scipy.special``: importing ``scipy.stats`` costs every task that builds the benchmark
    about half a second."""
    return 2 * gammaincinv(np.asarray(df) / 2, q)


#: The staff groups counted as clinical: the NHS Workforce Statistics groups of
#: professionally qualified clinical staff and the support to clinical staff. The rest
#: (central functions, hotel property & estates, managers, senior managers - "NHS
#: infrastructure support") are non-clinical [A7].
CLINICAL_STAFF_GROUPS = frozenset(
    {
        "HCHS Doctors (exc. Resident doctors and equivalents)",
        "Nurses & health visitors",
        "Midwives",
        "Ambulance staff",
        "Scientific, therapeutic & technical staff",
        "Support to doctors, nurses & midwives",
        "Support to ambulance staff",
        "Support to ST&T staff",
    }
)
NON_CLINICAL_STAFF_GROUPS = frozenset(
    {"Central functions", "Hotel, property & estates", "Senior managers", "Managers"}
)

DECLINE_REASONS = vocabulary.DECLINE_REASON_COLUMNS


@dataclass(frozen=True)
class Proportion:
    """A rate of the benchmark: ``numerator / denominator`` (both count columns)."""

    name: str
    numerator: str
    denominator: str


#: The proportions of the benchmark (docs/methodology.md, "Measures"). Escalation is over
#: the requests not agreed at the first stage [A3]; appeals over declines [A4].
PROPORTIONS = (
    Proportion("approval_rate", "approved", "decided"),
    Proportion("decline_rate", "declined", "decided"),
    Proportion("escalation_rate", "escalated", "not_agreed_first_stage"),
    Proportion("appeal_rate", "appeals", "declined"),
    Proportion("appeals_upheld_rate", "appeals_upheld", "appeals"),
    Proportion("timeliness_rate", "decided_within_2_months", "decided"),
    Proportion("non_statutory_decline_share", "declined_other", "declined"),
)


def add_derived_counts(count) -> None:
    """Add the benchmark's derived counts to ``count`` (a DataFrame, or a dict of Series, of
    the summary form's counts), in place: the one definition of each (docs/methodology.md,
    "Measures").

    - ``approved`` = approved_in_full + approved_with_changes;
    - ``decided`` = approved + declined;
    - ``not_agreed_first_stage``: requests not agreed at the first stage, at least every
      escalated and every declined one (a compliant decline follows an escalation, so the two
      overlap) [A3].
    """
    count["approved"] = count["approved_in_full"] + count["approved_with_changes"]
    count["decided"] = count["approved"] + count["declined"]
    escalated, declined = count["escalated"], count["declined"]
    count["not_agreed_first_stage"] = np.fmax(escalated, declined).where(
        escalated.notna() & declined.notna()
    )


#: The rates compared on funnel plots against the national (pooled) rate.
FUNNEL_MEASURES = ("approval_rate", "decline_rate")

#: Staff voice measures: (column, kind) - "percent" (0-100, tested with the survey base) or
#: "score" (0-10, tested against the spread of scores between trusts) [A12].
VOICE_MEASURES = (
    ("q4d_pct_satisfied", "percent"),
    ("q6d_pct_agree", "percent"),
    ("we_work_flexibly_score", "score"),
)

FLAGS = (
    "pledged_not_publishing",
    "decline_rate_high_outlier",
    "non_statutory_declines",
    "declines_without_escalation",
    "decisions_outside_two_months",
    "clinical_approval_gap",
    "voice_below_peers",
    "low_uptake_low_voice",
    "data_stale_or_rejected",
)
FLAG_COLUMNS = (
    "org_code", "flag", "rule", "threshold", "evidence", "severity", "p_value", "q_value",
)  # fmt: skip
#: The flags decided by a test: the column of ``trust_measures`` holding each one's p-value
#: (its q-value is in the same name with ``q_value``). The rest are rules, with no p-value.
FLAG_TESTS = {
    "decline_rate_high_outlier": "decline_rate_high_p_value",
    "decisions_outside_two_months": "timeliness_p_value",
    "clinical_approval_gap": "clinical_gap_p_value",
    "voice_below_peers": "staff_voice_p_value",
    "low_uptake_low_voice": "staff_voice_p_value",
}


# --------------------------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------------------------


def _num(values) -> pd.Series:
    return pd.to_numeric(pd.Series(values), errors="coerce").astype(float)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    d = denominator.where(denominator > 0)
    return numerator / d


def staff_group_kind(staff_group: str) -> str | None:
    """``"clinical"``, ``"non_clinical"`` or None (the total row, or an unknown group) [A7]."""
    if staff_group in CLINICAL_STAFF_GROUPS:
        return "clinical"
    if staff_group in NON_CLINICAL_STAFF_GROUPS:
        return "non_clinical"
    return None


def significance_label(z: pd.Series) -> pd.Series:
    """A z-score in the funnel-plot words of :mod:`transforms.stats` (two-sided 95%, 99.8%)."""
    z = _num(z)
    labels = np.select(
        [z > Z998, z > Z95, z < -Z998, z < -Z95],
        [stats.HIGH_OUTER, stats.HIGH_INNER, stats.LOW_OUTER, stats.LOW_INNER],
        default=stats.NOT_SIGNIFICANT,
    ).astype(object)
    labels[z.isna().to_numpy()] = None
    return pd.Series(labels, index=z.index, dtype="str")


def poisson_interval(count, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) interval for a Poisson count: ``chi2(a/2, 2x)/2 .. chi2(1-a/2, 2x+2)/2``.

    Benchmark rule: uptake (requests per 100 staff) is a rate of events, not a proportion, so
    its interval is the exact Poisson one [A5]. NaN where the count is missing.
    """
    x = _num(count).to_numpy()
    alpha = 1 - confidence
    # each distinct count once (the quantiles are worked out value by value; counts repeat
    # across units and quarters)
    values, at = np.unique(x, return_inverse=True)
    with np.errstate(invalid="ignore"):
        lower = np.where(values > 0, _chi2_ppf(alpha / 2, 2 * values) / 2, 0.0)[at]
        upper = (_chi2_ppf(1 - alpha / 2, 2 * values + 2) / 2)[at]
    bad = ~np.isfinite(x) | (x < 0)
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)


# --------------------------------------------------------------------------------------------
# measures
# --------------------------------------------------------------------------------------------


def clinical_split(staff_groups: pd.DataFrame) -> pd.DataFrame:
    """Approved and decided requests of clinical and non-clinical staff, per trust [A7].

    Parameters
    ----------
    staff_groups : DataFrame
        One row per trust per staff group (the window's counts): org_code, staff_group,
        approved_in_full, approved_with_changes, declined. "All staff groups" rows and
        unknown groups are ignored.

    Returns
    -------
    DataFrame
        One row per trust: org_code, clinical_approved, clinical_decided,
        non_clinical_approved, non_clinical_decided.
    """
    columns = ["org_code", "clinical_approved", "clinical_decided", "non_clinical_approved",
               "non_clinical_decided"]  # fmt: skip
    if staff_groups is None or staff_groups.empty:
        return pd.DataFrame(columns=columns)
    df = staff_groups.copy()
    df["kind"] = df["staff_group"].map(staff_group_kind)
    df = df[df["kind"].notna()]
    df["approved"] = (
        _num(df["approved_in_full"]).to_numpy() + _num(df["approved_with_changes"]).to_numpy()
    )
    df["decided"] = df["approved"] + _num(df["declined"]).to_numpy()
    out = df.pivot_table(
        index="org_code", columns="kind", values=["approved", "decided"], aggfunc="sum"
    )
    result = pd.DataFrame({"org_code": out.index.astype(str)})
    for kind in ("clinical", "non_clinical"):
        for what in ("approved", "decided"):
            values = out[(what, kind)] if (what, kind) in out.columns else np.nan
            result[f"{kind}_{what}"] = np.asarray(values, dtype=float)
    return result[columns].reset_index(drop=True)


def two_proportion_z(x1, n1, x2, n2) -> pd.Series:
    """z of the two-proportion score test (pooled standard error): (p2 - p1) / se.

    Shown with the clinical vs non-clinical gap for its size and direction; the gap's p-value
    is Fisher's exact test (:func:`transforms.stats.fisher_exact_p`), valid for small groups
    [A9]. NaN where a group has no decided requests or every request had the same outcome.
    """
    x1, n1, x2, n2 = (_num(v) for v in (x1, n1, x2, n2))
    p1, p2 = _ratio(x1, n1), _ratio(x2, n2)
    pooled = _ratio(x1 + x2, n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1.where(n1 > 0) + 1 / n2.where(n2 > 0)))
    return (p2 - p1) / se.where(se > 0)


def trust_measures(
    trusts: pd.DataFrame,
    staff_groups: pd.DataFrame | None = None,
    min_decided: int = MIN_DECIDED,
) -> pd.DataFrame:
    """Every computed measure of the benchmark for each trust of one window.

    Parameters
    ----------
    trusts : DataFrame
        One row per trust in the population (``intermediate.int_trust_window``): org_code,
        peer_group, headcount, months_covered, the window's summed counts (requests_received,
        approved_in_full, approved_with_changes, declined, escalated, appeals, appeals_upheld,
        decided_within_2_months, the nine declined_* reasons; missing when the trust has no
        data), and its staff survey (q4d_pct_satisfied, q6d_pct_agree,
        we_work_flexibly_score, responses; missing when not surveyed).
    staff_groups : DataFrame, optional
        Window counts per trust per staff group, for the clinical gap (:func:`clinical_split`).
    min_decided : int
        No rank and no funnel flag from fewer decided requests [A6].

    Returns
    -------
    DataFrame
        One row per trust (same order): org_code and the computed columns listed in
        docs/methodology.md ("The columns of marts.trust_benchmark").
    """
    t = trusts.reset_index(drop=True)
    out = _Columns(t.index)
    out["org_code"] = t["org_code"].astype(str)
    count = {c: _num(t[c]) if c in t else pd.Series(np.nan, index=t.index) for c in (
        "requests_received", "approved_in_full", "approved_with_changes", "declined",
        "escalated", "appeals", "appeals_upheld", "decided_within_2_months", *DECLINE_REASONS,
    )}  # fmt: skip
    add_derived_counts(count)

    out["not_agreed_first_stage"] = count["not_agreed_first_stage"]

    # Rates with Wilson intervals at 95% and 99.8% (exact z) [A1].
    for p in PROPORTIONS:
        _add_rate(out, p.name, count[p.numerator], count[p.denominator])

    # Decline reasons mix: each reason's share of declines, with its intervals.
    for reason in DECLINE_REASONS:
        name = f"decline_share_{reason.removeprefix('declined_')}"
        _add_rate(out, name, count[reason], count["declined"])

    # Uptake: requests per 100 staff (headcount) a year, exact Poisson interval [A5].
    headcount = _num(t["headcount"]) if "headcount" in t else pd.Series(np.nan, index=t.index)
    months = _num(t["months_covered"]) if "months_covered" in t else pd.Series(12.0, index=t.index)
    scale = 100 / headcount.where(headcount > 0) * 12 / months.where(months > 0)
    out["requests_per_100_staff"] = count["requests_received"] * scale
    for confidence, suffix in ((0.95, "95"), (0.998, "998")):
        lower, upper = poisson_interval(count["requests_received"], confidence)
        out[f"requests_per_100_staff_lower{suffix}"] = lower * scale
        out[f"requests_per_100_staff_upper{suffix}"] = upper * scale
    peer = t["peer_group"] if "peer_group" in t else pd.Series(None, index=t.index)
    # The peer median without the trust itself, as for staff voice [A10, A11].
    out["peer_median_requests_per_100_staff"] = _leave_one_out_median(
        out["requests_per_100_staff"], peer.to_numpy()
    )

    _funnels(out, count, min_decided)
    _timeliness(out, count, min_decided)
    _ranks(out, count, peer, min_decided)
    _staff_voice(out, t, peer)
    _clinical_gap(out, staff_groups)
    _q_values(out)
    return out.frame()


class _Columns(dict):
    """The computed columns of :func:`trust_measures`, one Series each on the trusts' index,
    made into a DataFrame once at the end (a column at a time into a DataFrame costs seconds
    at ~300 columns)."""

    def __init__(self, index: pd.Index):
        super().__init__()
        self.index = index

    def __setitem__(self, name: str, value) -> None:
        if isinstance(value, pd.Series):
            value = value.set_axis(self.index) if len(value) == len(self.index) else value
        elif np.ndim(value) == 0:
            value = pd.Series(value, index=self.index)
        else:
            value = pd.Series(np.asarray(value), index=self.index)
        super().__setitem__(name, value)

    def __len__(self) -> int:
        return len(self.index)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(dict(self.items()), index=self.index).reset_index(drop=True)


def _add_rate(out: _Columns, name: str, x: pd.Series, n: pd.Series) -> None:
    """``name`` = x / n with its Wilson intervals at 95% and 99.8% (``_lower95`` ...) [A1].
    No interval where the count exceeds its base (a window can hold appeals of earlier
    declines [A4])."""
    out[name] = _ratio(x, n)
    ok = (n > 0) & (x >= 0) & (x <= n)
    for confidence, suffix in ((0.95, "95"), (0.998, "998")):
        lower, upper = stats.wilson_interval(x.where(ok), n.where(ok), confidence)
        out[f"{name}_lower{suffix}"] = lower
        out[f"{name}_upper{suffix}"] = upper


def _funnels(out: _Columns, count: dict[str, pd.Series], min_decided: int) -> None:
    """Funnel position against the national (pooled) rate [A2].

    ``<rate>_funnel``: Fingertips (Wilson) limits, no adjustment. ``<rate>_funnel_adjusted``:
    Spiegelhalter's arcsine limits widened by tau^2, always on the arcsine scale (tau^2 is 0
    when k phi <= k - 1); phi is the winsorised estimate made consistent
    (:func:`transforms.stats.overdispersion` with ``consistent=True``) and tested against
    chi-squared(k - 1) (``<rate>_phi_p_value``). ``<rate>_funnel_z`` and
    ``<rate>_funnel_p_value`` (two-sided) are the adjusted z-score and its p-value, for trusts
    with at least ``min_decided`` decided requests; ``decline_rate_high_p_value`` the p-value
    of the high side only (:func:`transforms.stats.directional_p`), which the
    ``decline_rate_high_outlier`` flag tests. Control limits at the trust's denominator
    are kept for the evidence of flags.
    """
    numerators = {"approval_rate": count["approved"], "decline_rate": count["declined"]}
    n = count["decided"]
    ok = n > 0
    for name in FUNNEL_MEASURES:
        x = numerators[name]
        target = stats.pooled_rate(x.where(ok), n.where(ok))
        phi, tau2 = stats.overdispersion(x.where(ok), n.where(ok), target=target, consistent=True)
        out[f"national_{name}"] = target
        out[f"{name}_phi"] = phi
        out[f"{name}_phi_p_value"] = stats.overdispersion_p_value(phi, int(ok.sum()))
        out[f"{name}_tau2"] = tau2
        out[f"{name}_funnel"] = stats.funnel_significance(x.where(ok), n.where(ok), target)
        out[f"{name}_funnel_adjusted"] = stats.funnel_significance(
            x.where(ok), n.where(ok), target, method="arcsine", tau2=tau2
        )
        z = stats.arcsine_z(x.where(ok), n.where(ok), target, tau2)
        z = z.where(n >= min_decided)
        out[f"{name}_funnel_z"] = z
        out[f"{name}_funnel_p_value"] = stats.two_sided_p(z)
        for confidence, suffix in ((0.95, "95"), (0.998, "998")):
            lower, upper = stats.funnel_limits(target, n.where(ok), confidence, tau2, "arcsine")
            out[f"{name}_control_lower{suffix}"] = lower
            out[f"{name}_control_upper{suffix}"] = upper
    out["decline_rate_high_p_value"] = stats.directional_p(out["decline_rate_funnel_z"], "high")


def _timeliness(out: _Columns, count: dict[str, pd.Series], min_decided: int) -> None:
    """Score test of timeliness against the standard [A8]: z = (y - 0.9) / sqrt(0.9 x 0.1 / n),
    the test whose inversion is the Wilson interval (so the upper 95% Wilson limit is below 90%
    exactly when z < -1.96); the p-value of the low side (:func:`transforms.stats.directional_p`:
    below 0.05 exactly when z < -1.96). None under ``min_decided`` decided."""
    n = count["decided"].where(count["decided"] >= min_decided)
    p0 = TIMELINESS_STANDARD
    z = (out["timeliness_rate"] - p0) / np.sqrt(p0 * (1 - p0) / n)
    out["timeliness_z"] = z
    out["timeliness_p_value"] = stats.directional_p(z, "low")


def _q_values(out: pd.DataFrame) -> None:
    """Benjamini-Hochberg q-values over the whole family of tests behind flags: every trust x
    every tested flag (decline-rate funnel, timeliness, clinical gap, staff voice), as Jones,
    Ohlssen & Spiegelhalter (2008) propose for comparing many providers [A13]. Each
    ``<test>_p_value`` column gets its ``<test>_q_value``."""
    columns = sorted(set(FLAG_TESTS.values()))
    stacked = pd.concat([out[c] for c in columns], ignore_index=True)
    q = stats.bh_q_values(stacked).to_numpy()
    for i, column in enumerate(columns):
        out[column.replace("p_value", "q_value")] = q[i * len(out) : (i + 1) * len(out)]


def _ranks(out: _Columns, count, peer: pd.Series, min_decided: int) -> None:
    """Rank (1 = highest approval rate) and quartile, nationally and within the peer group;
    ties share a rank; no rank under ``min_decided`` decided requests [A6]. Each rank has a
    95% interval simulated from the trusts' uncertainty (``_rank_lower95``,
    ``_rank_upper95``); a quartile is ``_quartile_supported`` only when both ends of the rank
    interval fall in it [A14]."""
    rate, decided = out["approval_rate"], count["decided"]
    approved = count["approved"]
    out["national_rank"] = stats.rank_with_ties(rate, min_denominator=min_decided,
                                                denominators=decided)  # fmt: skip
    out["national_ranked"] = float(out["national_rank"].notna().sum())
    out["national_quartile"] = stats.quartile(out["national_rank"], out["national_ranked"])
    eligible = out["national_rank"].notna().to_numpy()
    lower, upper = stats.rank_intervals(approved, decided, eligible)
    out["national_rank_lower95"], out["national_rank_upper95"] = lower, upper
    out["peer_rank"] = np.nan
    out["peer_ranked"] = np.nan
    out["peer_rank_lower95"] = np.nan
    out["peer_rank_upper95"] = np.nan
    for _, idx in rate.groupby(peer.to_numpy(), dropna=True).groups.items():
        ranks = stats.rank_with_ties(rate.loc[idx], min_denominator=min_decided,
                                     denominators=decided.loc[idx])  # fmt: skip
        out["peer_rank"].loc[idx] = ranks
        out["peer_ranked"].loc[idx] = float(ranks.notna().sum())
        lower, upper = stats.rank_intervals(
            approved.loc[idx], decided.loc[idx], ranks.notna().to_numpy()
        )
        out["peer_rank_lower95"].loc[idx] = lower
        out["peer_rank_upper95"].loc[idx] = upper
    out["peer_quartile"] = stats.quartile(out["peer_rank"], out["peer_ranked"])
    for scope in ("national", "peer"):
        ranked = out[f"{scope}_ranked"]
        best = stats.quartile(out[f"{scope}_rank_lower95"], ranked)
        worst = stats.quartile(out[f"{scope}_rank_upper95"], ranked)
        supported = (best == worst).astype("boolean")
        out[f"{scope}_quartile_supported"] = supported.where(out[f"{scope}_rank"].notna())


def _leave_one_out_median(value: pd.Series, groups: np.ndarray) -> pd.Series:
    """Each trust's peer median without the trust itself: the median of the other trusts of
    its group with a value [A11]. Missing when it has no peer with a value.

    From each group's values sorted once: leaving a trust out shifts the sorted values after
    its own down by one place, so the others' middle value (or the mean of the two middle
    ones, as ``np.median`` takes it) is read off the sorted array, with no array per trust.
    """
    result = pd.Series(np.nan, index=value.index)
    values = value.to_numpy(dtype=float)
    labels, medians = [], []
    by_group = pd.DataFrame({"group": groups}).groupby("group", dropna=True).indices
    for positions in by_group.values():
        own = values[positions]
        finite = np.isfinite(own)
        ordered = np.sort(own[finite])
        m = ordered.size
        # the others of a trust with a value: m - 1 values, its own place (any place of its
        # value: the others are the same) taken out; of a trust without: all m
        size = np.where(finite, m - 1, m)
        place = np.where(finite, np.searchsorted(ordered, np.where(finite, own, 0.0)), m)
        keep = size > 0
        if not keep.any():
            continue
        size, place = size[keep], place[keep]
        # the i-th smallest of the others: the i-th of the group, or the next past its own
        upper = size // 2
        lower = np.where(size % 2 == 1, upper, upper - 1)
        hi = ordered[np.where(upper < place, upper, upper + 1)]
        lo = ordered[np.where(lower < place, lower, lower + 1)]
        middle = np.where(size % 2 == 1, hi, (lo + hi) / 2)
        labels.extend(value.index[positions[keep]])
        medians.extend(middle.tolist())
    # one assignment, not one per trust (each trust's label is its own)
    result.loc[labels] = medians
    return result


def _staff_voice(out: _Columns, t: pd.DataFrame, peer: pd.Series) -> None:
    """Staff voice against the peer group [A11, A12].

    Per measure: the median of the trust's peers (the other trusts of its peer group with a
    value, not the trust itself), the difference, a z-score, its two-sided p-value and a
    significance label.

    - Percentages, on the arcsine scale: variance ``design effect / (4 x base) + tau^2``. The
      base is the question's own number of respondents (``<question>_base``, e.g.
      ``q6d_base``) where the trust rows carry it, else ``responses`` (the Q4d base). tau^2 is
      the between-trust variance of Spiegelhalter (2005)
      (:func:`transforms.stats.overdispersion`, each trust against its own peer median), so
      that ordinary differences between trusts are not called significant.
    - The "We work flexibly" score (0-10, no base published): a robust z-score, the
      difference over 1.4826 x the national median absolute difference from the peer
      medians; shown, not counted (it is built from Q4d and Q6d among others).

    ``staff_voice_p_value`` is the larger of the low-side p-values of Q4d and Q6d (an
    intersection-union test: both must be low); it raises the staff voice flags and its
    q-value sets their severity [A13].
    """
    responses = _num(t["responses"]) if "responses" in t else pd.Series(np.nan, index=t.index)
    groups = peer.to_numpy()
    low = pd.Series(0, index=t.index)
    for column, kind in VOICE_MEASURES:
        value = _num(t[column]) if column in t else pd.Series(np.nan, index=t.index)
        median = _leave_one_out_median(value, groups)
        out[f"{column}_peer_median"] = median
        out[f"{column}_vs_peers"] = value - median
        if kind == "percent":
            own_base = f"{column.split('_')[0]}_base"
            base = _num(t[own_base]).fillna(responses) if own_base in t else responses
            effective = base.where(base > 0) / VOICE_DESIGN_EFFECT
            y, p0 = (value / 100).clip(0, 1), (median / 100).clip(0, 1)
            _, tau2 = stats.overdispersion(y * effective, effective, target=p0, consistent=True)
            se = np.sqrt(1 / (4 * effective) + tau2)
            z = (np.arcsin(np.sqrt(y)) - np.arcsin(np.sqrt(p0))) / se
        else:
            deviation = value - median
            spread = (
                1.4826 * float(np.nanmedian(np.abs(deviation)))
                if deviation.notna().any()
                else np.nan
            )
            z = deviation / spread if spread and spread > 0 else deviation * np.nan
        label = significance_label(z)
        out[f"{column}_vs_peers_z"] = z
        out[f"{column}_vs_peers_p_value"] = stats.two_sided_p(z)
        out[f"{column}_vs_peers_significance"] = label
        if column in VOICE_TESTED_MEASURES:
            low += label.isin([stats.LOW_INNER, stats.LOW_OUTER]).astype(int)
    out["staff_voice_low_measures"] = low.astype(float)
    tested_z = pd.concat([out[f"{c}_vs_peers_z"] for c in VOICE_TESTED_MEASURES], axis=1)
    low_p = tested_z.apply(lambda z: stats.directional_p(z, "low"))
    out["staff_voice_p_value"] = low_p.max(axis=1).where(tested_z.notna().all(axis=1))
    # The screen the staff voice flags use (docs/methodology.md, "Staff voice"), published as
    # a yes/no beside the trust's survey results.
    out["staff_voice_below_peers"] = out["staff_voice_p_value"] < FLAG_P


def _clinical_gap(out: _Columns, staff_groups: pd.DataFrame | None) -> None:
    """Clinical vs non-clinical approval rates with their Wilson intervals, the score z and
    Fisher's exact p-value, only where each group has at least
    :data:`MIN_DECIDED_PER_GROUP` decided requests [A7, A9]."""
    split = clinical_split(staff_groups if staff_groups is not None else pd.DataFrame())
    merged = out["org_code"].to_frame().merge(split, on="org_code", how="left")
    for column in split.columns[1:]:
        out[column] = merged[column].to_numpy(dtype=float)
    for kind in ("clinical", "non_clinical"):
        _add_rate(out, f"{kind}_approval_rate", out[f"{kind}_approved"], out[f"{kind}_decided"])
    out["clinical_approval_gap"] = out["non_clinical_approval_rate"] - out["clinical_approval_rate"]
    enough = (out["clinical_decided"] >= MIN_DECIDED_PER_GROUP) & (
        out["non_clinical_decided"] >= MIN_DECIDED_PER_GROUP
    )
    z = two_proportion_z(out["clinical_approved"], out["clinical_decided"],
                         out["non_clinical_approved"], out["non_clinical_decided"])  # fmt: skip
    out["clinical_gap_z"] = z.where(enough).to_numpy()
    p = stats.fisher_exact_p(out["clinical_approved"], out["clinical_decided"],
                             out["non_clinical_approved"], out["non_clinical_decided"])  # fmt: skip
    out["clinical_gap_p_value"] = p.where(enough).to_numpy()


# --------------------------------------------------------------------------------------------
# policy-practice gap flags
# --------------------------------------------------------------------------------------------


def _pct(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * float(value):.1f}%"


def _int(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{int(round(float(value))):,}"


def policy_practice_flags(
    benchmark: pd.DataFrame,
    publication_status: pd.DataFrame | None = None,
    pledge_signups: pd.DataFrame | None = None,
    as_of: date | None = None,
    min_decided: int = MIN_DECIDED,
    stale_days: int = STALE_DAYS,
) -> pd.DataFrame:
    """The policy-practice gap flags (docs/methodology.md), one row per trust per flag.

    Parameters
    ----------
    benchmark : DataFrame
        One row per population trust: the window counts (as given to :func:`trust_measures`)
        joined with its output.
    publication_status : DataFrame, optional
        ``marts.publication_status``: org_code, latest_period_end, last_attempt_status,
        last_attempt_reasons, stale.
    pledge_signups : DataFrame, optional
        ``staging.pledge_signups``: org_code (matched trust, may be null), status, signed_at.
        Missing or empty: nobody has pledged.
    as_of : date, optional
        The build's as-of date (for the evidence text).
    min_decided, stale_days : int
        As in docs/methodology.md.

    Returns
    -------
    DataFrame
        Columns :data:`FLAG_COLUMNS`: org_code, flag (one of :data:`FLAGS`), rule (text),
        threshold (text), evidence (text with the trust's values), severity
        (high | medium | low), p_value and q_value (floats; missing for rule-based flags).
        Sorted by org_code and flag order.
    """
    b = benchmark.reset_index(drop=True)
    rows: list[dict] = []

    def add(code, flag, rule, threshold, evidence, severity, p_value=None, q_value=None):
        rows.append(dict(org_code=code, flag=flag, rule=rule, threshold=threshold,
                         evidence=evidence, severity=severity, p_value=p_value,
                         q_value=q_value))  # fmt: skip

    def tested(r, flag):
        """(p, q) of the test behind ``flag`` for trust row ``r``; (nan, nan) if untested."""
        column = FLAG_TESTS[flag]
        p, q = r.get(column), r.get(column.replace("p_value", "q_value"))
        return (float(p) if pd.notna(p) else np.nan), (float(q) if pd.notna(q) else np.nan)

    decided = _num(b["approved_in_full"]) + _num(b["approved_with_changes"]) + _num(b["declined"])
    enough = decided >= min_decided
    status = (publication_status if publication_status is not None else pd.DataFrame(
        columns=["org_code", "latest_period_end", "last_attempt_status", "last_attempt_reasons",
                 "stale"])).set_index("org_code")  # fmt: skip
    population = set(b["org_code"])

    # 1. Pledged but not publishing, or stale.
    pledged: dict[str, object] = {}
    if pledge_signups is not None and not pledge_signups.empty:
        signed = pledge_signups[
            pledge_signups["org_code"].notna() & (pledge_signups["status"] == "signed")
        ]
        for r in signed.sort_values("signed_at").itertuples():
            pledged.setdefault(r.org_code, r.signed_at)
    for code in sorted(c for c in pledged if c in population):
        signed_on = pd.Timestamp(pledged[code]).date() if pd.notna(pledged[code]) else None
        latest = status["latest_period_end"].get(code) if code in status.index else None
        latest = None if latest is None or pd.isna(latest) else pd.Timestamp(latest).date()
        stale = bool(status["stale"].get(code)) if code in status.index else True
        if latest is None:
            add(
                code,
                "pledged_not_publishing",
                "signed the Get Ahead on Flex pledge (commitment 2: publish request data) but "
                "no accepted publication",
                "no accepted data at all",
                f"pledge signed {signed_on}; no accepted publication as of {as_of}",
                "high",
            )
        elif stale:
            add(
                code,
                "pledged_not_publishing",
                "signed the pledge but its published data is stale",
                f"latest period ended more than {stale_days} days before the as-of date",
                f"pledge signed {signed_on}; latest accepted period ended {latest}",
                "medium",
            )

    def column(name: str) -> np.ndarray:
        return (_num(b[name]) if name in b.columns else pd.Series(np.nan, index=b.index)).to_numpy()

    # Per-trust values read once, column-wise (a Series per trust per value cost seconds
    # at national scale); rows as plain dicts.
    other_n, declined_n, escalated_n, months_n = (
        column(c) for c in ("declined_other", "declined", "escalated", "months_covered")
    )
    status_rows = status.to_dict("index") if status.index.is_unique else None
    for i, r in enumerate(b.to_dict("records")):
        code = r["org_code"]
        # 2. Decline rate a high outlier (overdispersion-adjusted funnel, FDR) [A2, A13].
        p, q = tested(r, "decline_rate_high_outlier")
        z = r.get("decline_rate_funnel_z")
        if enough[i] and pd.notna(z) and z > 0 and p < FLAG_P:
            outer = q <= FDR_HIGH
            add(
                code,
                "decline_rate_high_outlier",
                "decline rate above the national rate, beyond what ordinary variation between "
                "trusts gives (funnel plot adjusted for overdispersion)",
                f"p-value below {FLAG_P:g}, upper 95% control limit (high: q-value at most "
                f"{FDR_HIGH:g})",
                f"decline rate {_pct(r['decline_rate'])} ({_int(r['declined'])} of "
                f"{_int(decided[i])} decided); national {_pct(r['national_decline_rate'])}; "
                f"95% limit {_pct(r['decline_rate_control_upper95'])}, 99.8% limit "
                f"{_pct(r['decline_rate_control_upper998'])}; z = {z:.2f}, p = {p:.2g}, "
                f"q = {q:.2g}",
                "high" if outer else "low",
                p,
                q,
            )
        # 3. Declines on non-statutory grounds.
        other = other_n[i]
        if other > 0:
            share = r["non_statutory_decline_share"]
            add(
                code,
                "non_statutory_declines",
                "requests declined on a ground that is not one of the eight in s.80G ERA 1996",
                "any decline recorded as declined_other",
                f"{_int(other)} of {_int(r['declined'])} declines ({_pct(share)}) on other grounds",
                "high" if share >= NON_STATUTORY_HIGH_SHARE else "medium",
            )
        # 4. Declines without an escalation stage, allowing for escalations made before the
        # window and declined inside it [A3].
        declined, escalated = declined_n[i], escalated_n[i]
        months = months_n[i] if months_n[i] > 0 else 12.0
        carry = np.ceil(escalated * ESCALATION_CARRY_MONTHS / months) if escalated > 0 else 0.0
        if declined > 0 and declined - escalated > carry:
            missing = declined - escalated - carry
            add(
                code,
                "declines_without_escalation",
                "more requests declined than escalated, beyond the escalations of the two "
                "months before the window that could be declined inside it: some declines "
                "skipped the escalation stage NHS T&Cs Section 33 requires",
                f"declined > escalated + escalations of {ESCALATION_CARRY_MONTHS} months "
                "before the window (estimated at the window's monthly rate)",
                f"{_int(declined)} declined, {_int(escalated)} escalated in "
                f"{_int(months)} months (allowance {_int(carry)}): at least {_int(missing)} "
                "declines without escalation",
                "high" if missing >= declined / 2 else "medium",
            )
        # 5. Decisions outside two months: significantly below the standard (FDR) [A8, A13].
        p, q = tested(r, "decisions_outside_two_months")
        z = r.get("timeliness_z")
        if enough[i] and pd.notna(z) and z < 0 and p < FLAG_P:
            add(
                code,
                "decisions_outside_two_months",
                "significantly fewer decisions within two months (including appeal) than the "
                "standard (score test)",
                f"below {_pct(TIMELINESS_STANDARD)} with p-value below {FLAG_P:g} (high: "
                f"q-value at most {FDR_HIGH:g})",
                f"{_int(r['decided_within_2_months'])} of {_int(decided[i])} decisions within "
                f"two months ({_pct(r['timeliness_rate'])}, 95% CI "
                f"{_pct(r['timeliness_rate_lower95'])}-{_pct(r['timeliness_rate_upper95'])}); "
                f"z = {z:.2f}, p = {p:.2g}, q = {q:.2g}",
                "high" if q <= FDR_HIGH else "medium",
                p,
                q,
            )
        # 6. Clinical vs non-clinical approval gap: each group 10+ decided, Fisher's exact
        # test, FDR [A9, A13].
        p, q = tested(r, "clinical_approval_gap")
        gap = r.get("clinical_approval_gap")
        if pd.notna(p) and p < FLAG_P and abs(gap) >= CLINICAL_GAP_MIN:
            lower_group = "clinical" if gap > 0 else "non-clinical"
            add(
                code,
                "clinical_approval_gap",
                f"{lower_group} staff approved significantly less often than "
                f"{'non-clinical' if gap > 0 else 'clinical'} staff (Fisher's exact test, each "
                f"group at least {MIN_DECIDED_PER_GROUP} decided)",
                f"gap of at least {CLINICAL_GAP_MIN * 100:.0f} points and p-value below "
                f"{FLAG_P:g} (high: q-value at most {FDR_HIGH:g})",
                f"clinical {_pct(r['clinical_approval_rate'])} of "
                f"{_int(r['clinical_decided'])} decided, non-clinical "
                f"{_pct(r['non_clinical_approval_rate'])} of {_int(r['non_clinical_decided'])}; "
                f"p = {p:.2g}, q = {q:.2g}",
                "high" if q <= FDR_HIGH else "low",
                p,
                q,
            )
        # 7. Good numbers on paper, staff voice significantly below peers (FDR) [A11, A13].
        p_voice, q_voice = tested(r, "voice_below_peers")
        voice_low = bool(pd.notna(p_voice) and p_voice < FLAG_P)
        voice_text = "; ".join(
            f"{c} {r[c]:.1f} vs peer median {r[f'{c}_peer_median']:.1f} "
            f"({r[f'{c}_vs_peers_significance']})"
            for c, _ in VOICE_MEASURES
            if pd.notna(r.get(c)) and pd.notna(r.get(f"{c}_peer_median"))
        )
        if voice_low:
            voice_text += f"; p = {p_voice:.2g}, q = {q_voice:.2g}"
        good_paper = (
            enough[i]
            and r["approval_rate"] >= r["national_approval_rate"]
            and r.get("approval_rate_funnel_adjusted") not in (stats.LOW_INNER, stats.LOW_OUTER)
        )
        if good_paper and voice_low:
            add(
                code,
                "voice_below_peers",
                "approval rate at or above the national rate, but staff say significantly "
                "less often than peers that they can work flexibly",
                "approval >= national rate, and Q4d and Q6d both significantly below the peer "
                f"median (p-value below {FLAG_P:g}; high: q-value at most {FDR_HIGH:g})",
                f"approval rate {_pct(r['approval_rate'])} (national "
                f"{_pct(r['national_approval_rate'])}); {voice_text}",
                "high" if q_voice <= FDR_HIGH else "medium",
                p_voice,
                q_voice,
            )
        # 8. Low uptake together with low staff voice [A10].
        uptake, peer_uptake = (
            r.get("requests_per_100_staff"),
            r.get("peer_median_requests_per_100_staff"),
        )
        if (voice_low and pd.notna(uptake) and pd.notna(peer_uptake)
                and uptake < LOW_UPTAKE_RATIO * peer_uptake):  # fmt: skip
            add(
                code,
                "low_uptake_low_voice",
                "few requests per head and staff voice below peers: people may not be asking",
                f"requests per 100 staff below {LOW_UPTAKE_RATIO:g} x the peer median, and "
                "staff voice below peers",
                f"{uptake:.1f} requests per 100 staff a year (peer median {peer_uptake:.1f}); "
                f"{voice_text}",
                "medium",
                p_voice,
                q_voice,
            )
        # 9. Data stale or rejected.
        if code in status.index:
            s = status_rows[code] if status_rows is not None else status.loc[code]
            last = s.get("last_attempt_status")
            latest = s.get("latest_period_end")
            has_window_data = bool(pd.notna(decided[i]) and decided[i] > 0)
            reasons = []
            if last in ("rejected", "fetch_failed"):
                why = s.get("last_attempt_reasons")
                why = why if isinstance(why, str) and why else "no reason recorded"
                reasons.append(f"latest file {last.replace('_', ' ')}: {why[:300]}")
            if pd.notna(latest) and bool(s.get("stale")):
                reasons.append(f"latest accepted period ended {pd.Timestamp(latest).date()}")
            if reasons:
                add(
                    code,
                    "data_stale_or_rejected",
                    "the trust's latest publication was rejected or could not be fetched, or "
                    "its accepted data is stale",
                    f"last file rejected/unreachable, or latest period over {stale_days} days old",
                    "; ".join(reasons),
                    "medium" if has_window_data else "high",
                )

    out = pd.DataFrame(rows, columns=list(FLAG_COLUMNS))
    order = {f: i for i, f in enumerate(FLAGS)}
    out["_order"] = out["flag"].map(order)
    out = out.sort_values(["org_code", "_order"], kind="stable").drop(columns="_order")
    for column in FLAG_COLUMNS:
        if column in ("p_value", "q_value"):
            out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
        else:
            out[column] = out[column].astype("str")
    return out.reset_index(drop=True)


def flag_counts(flags: pd.DataFrame, codes: Iterable[str] | None = None) -> dict[str, int]:
    """How many trusts carry each flag (optionally among ``codes`` only)."""
    f = flags if codes is None else flags[flags["org_code"].isin(set(codes))]
    return {flag: int((f["flag"] == flag).sum()) for flag in FLAGS}
