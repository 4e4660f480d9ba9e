"""Equity: who gets flexible working approved (docs/methodology.md, "Equity").

The words of the equity dimensions (the groups a request-level file or a breakdown file may
name, and how they are read), the reference group of each dimension, and the statistics the
equity marts need that :mod:`transforms.stats` does not give:

- :func:`relative_likelihood`: approval of the reference group over approval of a group (the
  WRES convention), with its interval by the log method;
- :func:`fisher_exact_p`: the two-sided p-value of Fisher's exact test of two proportions;
- :func:`benjamini_hochberg`: false-discovery-rate adjusted p-values (q-values);
- :func:`newcombe_difference`: the difference of two proportions with Newcombe's hybrid
  score interval (method 10), built from Wilson intervals of :mod:`transforms.stats`;
- :func:`equity_gap_tests`: the equity gap flag (small-number rule, then BH).

Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import gammaln

from transforms.stats import _z, wilson_interval

#: No comparison from fewer than this many decided requests in either group (methodology,
#: "Small numbers"); the same number as transforms.benchmark.MIN_DECIDED.
MIN_DECIDED = 10

#: The false-discovery rate the equity gap flag controls (Benjamini-Hochberg), methodology,
#: "Equity gap flag".
FDR_Q = 0.05

NOT_STATED = "Not stated"

# --- the dimensions and their groups ---------------------------------------------------------

SEX_GROUPS = ("Female", "Male")
ETHNIC_GROUPS = (
    "White",
    "Mixed",
    "Asian or Asian British",
    "Black or Black British",
    "Other ethnic group",
)
#: The 19 ethnic groups of the 2021 Census of England and Wales, each with its broad group.
#: Chinese is Asian or Asian British, as in the 2021 Census (the NHS 2001 codes put it under
#: "Other"): the detailed group is kept, so a reader can regroup it.
ETHNIC_DETAILED: dict[str, str] = {
    "White: English, Welsh, Scottish, Northern Irish or British": "White",
    "White: Irish": "White",
    "White: Gypsy or Irish Traveller": "White",
    "White: Roma": "White",
    "White: Other White": "White",
    "Mixed: White and Asian": "Mixed",
    "Mixed: White and Black African": "Mixed",
    "Mixed: White and Black Caribbean": "Mixed",
    "Mixed: Other Mixed or Multiple ethnic groups": "Mixed",
    "Asian: Bangladeshi": "Asian or Asian British",
    "Asian: Chinese": "Asian or Asian British",
    "Asian: Indian": "Asian or Asian British",
    "Asian: Pakistani": "Asian or Asian British",
    "Asian: Other Asian": "Asian or Asian British",
    "Black: African": "Black or Black British",
    "Black: Caribbean": "Black or Black British",
    "Black: Other Black": "Black or Black British",
    "Other: Arab": "Other ethnic group",
    "Other: Any other ethnic group": "Other ethnic group",
}
DISABILITY_GROUPS = ("Disabled", "Not disabled")
AGE_BANDS = ("Under 25", "25-34", "35-44", "45-54", "55-64", "65 and over")
PAY_BANDS = (
    "Band 1",
    "Band 2",
    "Band 3",
    "Band 4",
    "Band 5",
    "Band 6",
    "Band 7",
    "Band 8a",
    "Band 8b",
    "Band 8c",
    "Band 8d",
    "Band 9",
    "Medical and dental",
    "Other pay scale",
)

#: The seven equity dimensions (and the column of the request-level form each is read from),
#: then the detailed ethnic groups, kept where a file gives them.
DIMENSION_COLUMNS: dict[str, str] = {
    "sex": "sex",
    "ethnic_group": "ethnic_group",
    "disability": "disability",
    "age_band": "age_band",
    "pay_band": "band",
    "staff_group": "staff_group",
    "flex_type": "flex_type",
}
DIMENSIONS: tuple[str, ...] = (*DIMENSION_COLUMNS, "ethnic_group_detailed")

#: Protected characteristics (Equality Act 2010) among the dimensions: the equity gap flag is
#: raised on these only. Pay band, staff group and flex type are reported, not flagged.
PROTECTED_DIMENSIONS: tuple[str, ...] = ("sex", "ethnic_group", "disability", "age_band")

#: The reference group of each dimension (methodology, "Equity"): the group every other group
#: is compared with. Where an NHS equality standard compares, its comparator: White (WRES),
#: not disabled (WDES), male (gender pay gap reporting); otherwise the largest group of the NHS
#: workforce or of requests.
REFERENCE_GROUPS: dict[str, str] = {
    "sex": "Male",
    "ethnic_group": "White",
    "ethnic_group_detailed": "White: English, Welsh, Scottish, Northern Irish or British",
    "disability": "Not disabled",
    "age_band": "35-44",
    "pay_band": "Band 5",
    "staff_group": "Nurses & health visitors",
    "flex_type": "part_time",
}


def _key(value: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(value).lower().replace("&", "and"))


def _lookup(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for group, variants in table.items():
        for v in (group, *variants):
            out[_key(v)] = group
    return out


_NOT_STATED_WORDS = (
    "not stated",
    "not known",
    "unknown",
    "prefer not to say",
    "not declared",
    "undisclosed",
    "not given",
    "unspecified",
    "z",
    "n/a",
    "na",
)

_SEX = _lookup({"Female": ("f", "woman", "women"), "Male": ("m", "man", "men")})
_DISABILITY = _lookup(
    {
        "Disabled": ("yes", "y", "disabled", "has a disability", "true"),
        "Not disabled": ("no", "n", "not disabled", "non-disabled", "false"),
    }
)
_BROAD = _lookup(
    {
        "White": (),
        "Mixed": ("mixed or multiple ethnic groups", "mixed multiple"),
        "Asian or Asian British": ("asian", "asian british", "asian or asian british"),
        "Black or Black British": (
            "black",
            "black british",
            "black african caribbean or black british",
            "black, black british, caribbean or african",
        ),
        "Other ethnic group": ("other", "other ethnic groups", "any other ethnic group"),
    }
)
#: NHS Data Dictionary ethnic category codes (2001 Census based) -> 2021 Census detailed group.
NHS_ETHNIC_CODES = {
    "A": "White: English, Welsh, Scottish, Northern Irish or British",
    "B": "White: Irish",
    "C": "White: Other White",
    "D": "Mixed: White and Black Caribbean",
    "E": "Mixed: White and Black African",
    "F": "Mixed: White and Asian",
    "G": "Mixed: Other Mixed or Multiple ethnic groups",
    "H": "Asian: Indian",
    "J": "Asian: Pakistani",
    "K": "Asian: Bangladeshi",
    "L": "Asian: Other Asian",
    "M": "Black: Caribbean",
    "N": "Black: African",
    "P": "Black: Other Black",
    "R": "Asian: Chinese",
    "S": "Other: Any other ethnic group",
}
_DETAILED: dict[str, str] = {}
for _name in ETHNIC_DETAILED:
    _DETAILED[_key(_name)] = _name
    _DETAILED[_key(_name.split(": ", 1)[1])] = _name  # "Indian", "Other White" ...
_DETAILED.update({_key(k): v for k, v in NHS_ETHNIC_CODES.items()})
_DETAILED.update(
    {
        _key("White British"): "White: English, Welsh, Scottish, Northern Irish or British",
        _key("British"): "White: English, Welsh, Scottish, Northern Irish or British",
        _key("White - British"): "White: English, Welsh, Scottish, Northern Irish or British",
        _key("Any other White background"): "White: Other White",
        _key("Any other Asian background"): "Asian: Other Asian",
        _key("Any other Black background"): "Black: Other Black",
        _key("Any other Mixed background"): "Mixed: Other Mixed or Multiple ethnic groups",
        _key("Gypsy or Irish Traveller"): "White: Gypsy or Irish Traveller",
    }
)
# A broad name is never a detailed one ("Other" or "White" alone stay broad).
for _broad_key in _BROAD:
    _DETAILED.pop(_broad_key, None)

_BAND = {_key(b): b for b in PAY_BANDS}
_BAND.update({_key(b.removeprefix("Band ")): b for b in PAY_BANDS if b.startswith("Band")})
_BAND.update({_key("AfC " + b): b for b in PAY_BANDS if b.startswith("Band")})
_BAND.update(
    {
        _key(v): "Medical and dental"
        for v in ("Medical", "Medical & dental", "Doctors", "Consultant", "M&D")
    }
)
_BAND.update({_key(v): "Other pay scale" for v in ("Other", "Non-AfC", "VSM", "Non AfC")})

_NOT_STATED = {_key(w) for w in _NOT_STATED_WORDS}


def _blank(value: Any) -> bool:
    return (
        value is None or (isinstance(value, float) and value != value) or str(value).strip() == ""
    )


def normalise_sex(value: Any) -> str | None:
    """Sex as written -> "Female" | "Male" | "Not stated"; None when not recognised."""
    if _blank(value) or _key(value) in _NOT_STATED:
        return NOT_STATED
    return _SEX.get(_key(value))


def normalise_disability(value: Any) -> str | None:
    """Disability as written ("Yes"/"No", ...) -> "Disabled" | "Not disabled" | "Not stated"."""
    if _blank(value) or _key(value) in _NOT_STATED:
        return NOT_STATED
    return _DISABILITY.get(_key(value))


def normalise_ethnic_group(value: Any) -> tuple[str | None, str | None]:
    """Ethnic group as written -> (broad group, detailed 2021 Census group or None).

    A broad name ("Black or Black British") gives no detailed group; a detailed one
    ("Black: African", "African", NHS code "N") gives both. Blank or "Not stated" gives
    ("Not stated", None); a value not recognised gives (None, None).
    """
    if _blank(value) or _key(value) in _NOT_STATED:
        return NOT_STATED, None
    key = _key(value)
    if key in _DETAILED:
        detailed = _DETAILED[key]
        return ETHNIC_DETAILED[detailed], detailed
    return _BROAD.get(key), None


def normalise_age_band(value: Any) -> str | None:
    """Age band as written ("25-34", "25 to 34", "<25", "65+") -> one of :data:`AGE_BANDS`."""
    if _blank(value) or _key(value) in _NOT_STATED:
        return NOT_STATED
    text = str(value).strip().lower()
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if not numbers:
        return None
    low = numbers[0]
    if re.match(r"^(under|<|up to|less than)", text) or (len(numbers) == 2 and numbers[1] <= 24):
        return "Under 25" if numbers[-1] <= 25 else None
    if "+" in text or "over" in text or "and above" in text or low >= 65:
        return "65 and over" if low >= 65 else None
    for band in AGE_BANDS[1:-1]:
        lo, hi = (int(n) for n in band.split("-"))
        if lo <= low <= hi and (len(numbers) == 1 or numbers[1] <= hi):
            return band
    return None


def normalise_band(value: Any) -> str | None:
    """Agenda for Change band as written ("Band 8A", "8a", "AfC band 5") -> :data:`PAY_BANDS`."""
    if _blank(value) or _key(value) in _NOT_STATED:
        return NOT_STATED
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _BAND.get(_key(value))


def group_values(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The group of every request in each dimension the frame carries a column for.

    ``frame`` is the coerced request-level form (transforms.publications.coerce_request_level:
    staff group and flex type already coded). Returns dimension -> Series of group names
    (same index). Blank cells are "Not stated"; a value not recognised is "Not known"
    (methodology, "Equity": kept apart, never compared). ``ethnic_group_detailed`` is given
    only where at least one row names a detailed group, and then holds the detailed group, or
    the broad group plus " (not detailed)" where a row gives only that.
    """
    out: dict[str, pd.Series] = {}

    def each(column: str, convert) -> pd.Series:
        values = frame[column].astype(object)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        converted = [convert(u) for u in uniques] + [convert(None)]
        table = np.empty(len(converted), dtype=object)
        table[:] = converted
        return pd.Series(table[codes], index=frame.index, dtype=object)

    known = "Not known"
    if "sex" in frame:
        out["sex"] = each("sex", normalise_sex).fillna(known)
    if "ethnic_group" in frame:
        # Both parts of each distinct value's (broad, detailed) pair are taken once, not
        # from a pair per row.
        codes, uniques = pd.factorize(frame["ethnic_group"].astype(object), use_na_sentinel=True)
        pairs = [normalise_ethnic_group(u) for u in uniques] + [normalise_ethnic_group(None)]
        parts = np.empty((2, len(pairs)), dtype=object)
        parts[0, :] = [p[0] for p in pairs]
        parts[1, :] = [p[1] for p in pairs]
        broad = pd.Series(parts[0][codes], index=frame.index, dtype=object).fillna(known)
        detailed = pd.Series(parts[1][codes], index=frame.index, dtype=object)
        out["ethnic_group"] = broad
        if detailed.notna().any():
            out["ethnic_group_detailed"] = detailed.where(
                detailed.notna(),
                broad.where(broad.isin([NOT_STATED, known]), broad + " (not detailed)"),
            )
    if "disability" in frame:
        out["disability"] = each("disability", normalise_disability).fillna(known)
    if "age_band" in frame:
        out["age_band"] = each("age_band", normalise_age_band).fillna(known)
    if "band" in frame:
        out["pay_band"] = each("band", normalise_band).fillna(known)
    if "staff_group" in frame:
        out["staff_group"] = (
            frame["staff_group"].astype(object).where(frame["staff_group"].notna(), NOT_STATED)
        )
    if "flex_type" in frame:
        out["flex_type"] = (
            frame["flex_type"].astype(object).where(frame["flex_type"].notna(), NOT_STATED)
        )
    return {d: out[d] for d in DIMENSIONS if d in out}


# --- statistics ------------------------------------------------------------------------------


def _arr(value: Any) -> np.ndarray:
    return np.asarray(pd.to_numeric(pd.Series(np.ravel(value)), errors="coerce"), dtype=float)


def relative_likelihood(
    ref_approved: Any,
    ref_decided: Any,
    approved: Any,
    decided: Any,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative likelihood of approval, WRES convention, with its interval (log method).

    ``RL = (ref_approved / ref_decided) / (approved / decided)``: above 1, the reference group
    is more likely to be approved than the group. The interval is
    ``exp(ln RL -/+ z * sqrt(1/a - 1/n + 1/a_ref - 1/n_ref))`` (Katz log method for a ratio
    of two proportions). NaN where a group has no decided or no approved request.

    Returns
    -------
    (rl, lower, upper) as float arrays.
    """
    a0, n0, a1, n1 = (_arr(v) for v in (ref_approved, ref_decided, approved, decided))
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (a0 > 0) & (a1 > 0) & (n0 > 0) & (n1 > 0)
        rl = np.where(ok, (a0 / n0) / (a1 / n1), np.nan)
        se = np.sqrt(1 / a1 - 1 / n1 + 1 / a0 - 1 / n0)
        lower = np.where(ok, np.exp(np.log(rl) - z * se), np.nan)
        upper = np.where(ok, np.exp(np.log(rl) + z * se), np.nan)
    return rl, lower, upper


def fisher_exact_p(x1: Any, n1: Any, x2: Any, n2: Any) -> np.ndarray:
    """Two-sided p-value of Fisher's exact test of x1/n1 against x2/n2 (approved / decided).

    Exact, so valid with the small groups equity breakdowns bring (a normal-approximation
    z-test gives too many small p-values where a group has few declines, which would break
    the false-discovery bound). NaN where a group has no decided request. Each distinct
    table is computed once.
    """
    x1, n1, x2, n2 = (_arr(v) for v in (x1, n1, x2, n2))
    out = np.full(x1.shape, np.nan)
    cache: dict[tuple[int, int, int, int], float] = {}
    tables = []
    for i in range(len(x1)):
        if not (n1[i] > 0 and n2[i] > 0) or np.isnan(x1[i] + x2[i]):
            continue
        tables.append((i, (int(x1[i]), int(n1[i]), int(x2[i]), int(n2[i]))))
    if not tables:
        return out
    # log(m!) for every m a table needs, once (each table's terms are looked up, not computed)
    log_factorial = gammaln(np.arange(max(k[1] + k[3] for _, k in tables) + 1) + 1)
    for i, key in tables:
        if key not in cache:
            cache[key] = _fisher_two_sided(*key, log_factorial=log_factorial)
        out[i] = cache[key]
    return out


def _log_choose(n: Any, k: Any, log_factorial: np.ndarray | None = None) -> Any:
    if log_factorial is not None:  # gammaln(m + 1) looked up: the same values
        return log_factorial[n] - log_factorial[k] - log_factorial[n - k]
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def _fisher_two_sided(
    x1: int, n1: int, x2: int, n2: int, log_factorial: np.ndarray | None = None
) -> float:
    """Fisher's exact two-sided p: the hypergeometric probability of every table with the
    same margins no more likely than the one observed (scipy.stats.fisher_exact's rule,
    relative tolerance 1e-7), computed on the log scale over the whole support at once.
    ``log_factorial``: ``gammaln(m + 1)`` for m from 0 to at least n1 + n2, if computed."""
    total, approved = n1 + n2, x1 + x2
    ks = np.arange(max(0, approved - n2), min(n1, approved) + 1)
    lf = log_factorial
    log_p = (
        _log_choose(approved, ks, lf)
        + _log_choose(total - approved, n1 - ks, lf)
        - _log_choose(total, n1, lf)
    )
    observed = log_p[x1 - ks[0]]
    return float(min(1.0, np.exp(log_p[log_p <= observed + np.log1p(1e-7)]).sum()))


def benjamini_hochberg(p_values: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of a family of tests.

    ``q_(i) = min over j >= i of p_(j) * m / j`` (p sorted ascending, m tests), capped at 1;
    the same as R's ``p.adjust(p, "BH")``. Rejecting where ``q <= FDR_Q`` keeps the expected
    share of false discoveries among the flags at most FDR_Q (independent or positively
    dependent tests). NaN p-values are not tests: their q is NaN and they do not count in m.
    """
    p = _arr(p_values)
    q = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = len(valid)
    if m == 0:
        return q
    order = valid[np.argsort(p[valid], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def newcombe_difference(
    x1: Any, n1: Any, x2: Any, n2: Any, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference of two proportions ``x1/n1 - x2/n2`` with Newcombe's hybrid score interval.

    Newcombe (1998), method 10: with Wilson limits (l1, u1) and (l2, u2) of each proportion,
    ``lower = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)``, ``upper = d + sqrt((u1 - p1)^2 + (p2 -
    l2)^2)``. Used for the year-on-year change (methodology, "Trends and year on year"). NaN
    where either denominator is 0.
    """
    x1, n1, x2, n2 = (_arr(v) for v in (x1, n1, x2, n2))
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = x1 / n1, x2 / n2
        d = p1 - p2
        lower = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
        upper = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    bad = ~((n1 > 0) & (n2 > 0))
    return (np.where(bad, np.nan, d), np.where(bad, np.nan, lower), np.where(bad, np.nan, upper))


# --- comparisons and the equity gap flag ----------------------------------------------------

COMPARISON_COLUMNS = (
    "level",
    "org_code",
    "dimension",
    "group_value",
    "reference_group",
    "is_reference",
    "reference_decided",
    "reference_approved",
    "comparable",
    "not_compared_reason",
    "relative_likelihood",
    "relative_likelihood_lower95",
    "relative_likelihood_upper95",
    "p_value",
    "q_value",
    "tested",
    "flagged",
    "direction",
)


def compare_groups(
    groups: pd.DataFrame, min_decided: int = MIN_DECIDED, q: float = FDR_Q
) -> pd.DataFrame:
    """Every group against its dimension's reference group, and the equity gap flag.

    Implements methodology, "Equity" and "Equity gap flag":

    - the relative likelihood of approval (:func:`relative_likelihood`, WRES convention) of
      each group against :data:`REFERENCE_GROUPS` in the same unit (trust, peer group or
      England) and dimension, given only where both have at least ``min_decided`` decided
      requests (small-number rule, per group) and the group is neither the reference nor
      "Not stated"/"Not known" (``comparable``; ``not_compared_reason`` says why not);
    - the gap test: for trust rows of a protected characteristic
      (:data:`PROTECTED_DIMENSIONS`) that are comparable, Fisher's exact test of the group's
      approvals against the reference group's (``p_value``). All the tests of one build
      are one family, adjusted by Benjamini-Hochberg (``q_value``); a comparison is
      ``flagged`` where ``q_value <= q``.

    Parameters
    ----------
    groups : DataFrame
        One row per level x org_code x dimension x group_value with ``decided`` and
        ``approved`` (intermediate.int_equity_groups).

    Returns
    -------
    DataFrame
        :data:`COMPARISON_COLUMNS`, one row per input row.
    """
    keys = ["level", "org_code", "dimension"]
    t = groups[[*keys, "group_value", "decided", "approved"]].copy()
    t["reference_group"] = t["dimension"].map(REFERENCE_GROUPS)
    t["is_reference"] = t["group_value"] == t["reference_group"]
    ref = t[t["is_reference"]][[*keys, "decided", "approved"]].rename(
        columns={"decided": "reference_decided", "approved": "reference_approved"}
    )
    t = t.merge(ref, on=keys, how="left")
    for c in ("decided", "approved", "reference_decided", "reference_approved"):
        t[c] = pd.to_numeric(t[c]).fillna(0).astype("int64")
    unknown = t["group_value"].isin([NOT_STATED, "Not known"]) | t["reference_group"].isna()
    small = t["decided"] < min_decided
    small_ref = t["reference_decided"] < min_decided
    reason = np.select(
        [t["is_reference"], unknown, small, small_ref],
        [
            "the reference group",
            "group not stated or not known",
            f"fewer than {min_decided} decided requests in the group",
            f"fewer than {min_decided} decided requests in the reference group",
        ],
        default="",
    )
    t["comparable"] = reason == ""
    t["not_compared_reason"] = pd.Series(reason, index=t.index).replace("", None)
    rl, lo, hi = relative_likelihood(
        t["reference_approved"], t["reference_decided"], t["approved"], t["decided"]
    )
    ok = t["comparable"].to_numpy()
    t["relative_likelihood"] = np.where(ok, rl, np.nan)
    t["relative_likelihood_lower95"] = np.where(ok, lo, np.nan)
    t["relative_likelihood_upper95"] = np.where(ok, hi, np.nan)
    t["tested"] = (
        t["comparable"] & (t["level"] == "trust") & t["dimension"].isin(PROTECTED_DIMENSIONS)
    )
    tested = t["tested"].to_numpy()
    p = np.full(len(t), np.nan)
    p[tested] = fisher_exact_p(
        t["approved"][tested],
        t["decided"][tested],
        t["reference_approved"][tested],
        t["reference_decided"][tested],
    )
    t["p_value"] = p
    t["q_value"] = benjamini_hochberg(t["p_value"])
    t["flagged"] = t["tested"] & (t["q_value"] <= q)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = t["approved"] / t["decided"]
        ref_rate = t["reference_approved"] / t["reference_decided"]
    t["direction"] = np.where(
        ~ok,
        None,
        np.where(
            rate < ref_rate,
            "lower than reference",
            np.where(rate > ref_rate, "higher than reference", "same as reference"),
        ),
    )
    return t[list(COMPARISON_COLUMNS)]


# --- the breakdown form of the standard ------------------------------------------------------

#: How a breakdown file may name a dimension (docs/flex-data-standard.md, "Breakdown form").
_DIMENSION_KEYS: dict[str, str] = {_key(d): d for d in DIMENSIONS}
_DIMENSION_KEYS.update(
    {
        _key(k): v
        for k, v in {
            "Gender": "sex",
            "Ethnicity": "ethnic_group",
            "Ethnic group (broad)": "ethnic_group",
            "Ethnicity detailed": "ethnic_group_detailed",
            "Ethnic group (2021 Census)": "ethnic_group_detailed",
            "Disabled": "disability",
            "Age": "age_band",
            "Band": "pay_band",
            "AfC band": "pay_band",
            "Type of flexible working": "flex_type",
            "Flexible working type": "flex_type",
        }.items()
    }
)

#: Headers of the breakdown form and their documented synonyms (normalised as the summary
#: form's headers are).
BREAKDOWN_HEADER_SYNONYMS: dict[str, str] = {
    "ODS code": "org_code",
    "Trust code": "org_code",
    "Characteristic": "dimension",
    "Protected characteristic": "dimension",
    "Group": "group_value",
    "Category": "group_value",
    "Requests": "requests_received",
    "Agreed with amendments": "approved_with_changes",
}


def normalise_dimension(value: Any) -> Any:
    """A dimension as a breakdown file names it -> its name in :data:`DIMENSIONS`, or the
    value unchanged (rule "known-dimension" then names it)."""
    if _blank(value):
        return None
    return _DIMENSION_KEYS.get(_key(value), str(value).strip())


def normalise_group(dimension: Any, value: Any) -> Any:
    """A group of a breakdown file -> the group name the equity marts use, or None when the
    value is not a group of that dimension (rule "known-group")."""
    from transforms.publications import normalise_code, normalise_staff_group

    if dimension == "sex":
        return normalise_sex(value)
    if dimension == "ethnic_group":
        broad, _ = normalise_ethnic_group(value)
        return broad
    if dimension == "ethnic_group_detailed":
        broad, detailed = normalise_ethnic_group(value)
        return detailed or (broad if broad == NOT_STATED else None)
    if dimension == "disability":
        return normalise_disability(value)
    if dimension == "age_band":
        return normalise_age_band(value)
    if dimension == "pay_band":
        return normalise_band(value)
    if _blank(value):
        return NOT_STATED
    if dimension == "staff_group":
        from transforms.publications import STAFF_GROUPS

        group = normalise_staff_group(value)
        return group if group in STAFF_GROUPS else None
    if dimension == "flex_type":
        from transforms.publications import FLEX_TYPES

        code = normalise_code(value, "flex_type")
        return code if code in FLEX_TYPES else None
    return None


def read_breakdown(data: bytes, filename: str) -> pd.DataFrame:
    """Read a file in the breakdown form (CSV or XLSX) into its columns, as read.

    The same tolerance as the other forms (encodings, BOM, header spelling, a title row, an
    XLSX "data" sheet), with the same file-level refusals, by the readers of
    :mod:`transforms.publications`. Returns the columns of
    :data:`transforms.publications.BREAKDOWN_COLUMNS` (values as read, blanks None) and
    ``_row`` (the row number a person sees).

    Raises
    ------
    transforms.publications.PublicationError
        ``missing-columns`` and the file-level rules of the other forms.
    """
    from transforms import publications as pub

    if len(data) > pub.MAX_DOWNLOAD_BYTES:
        raise pub.PublicationError("too-large", f"{filename} is too large")
    if not data.strip():
        raise pub.PublicationError("empty-file", f"{filename} is empty")
    if data[:4] == b"PK\x03\x04":
        rows, _ = pub._read_xlsx_rows(data, filename)
    else:
        pub._refuse_non_csv(data, filename)
        rows = pub._read_csv_rows(pub._decode(data, filename))
    rows = [(n, v) for n, v in rows if not pub._blank_row(v)]
    keys = {_key(c): c for c in pub.BREAKDOWN_COLUMNS}
    keys.update({_key(k): v for k, v in BREAKDOWN_HEADER_SYNONYMS.items()})
    header_at = next(
        (
            i
            for i, (_, v) in enumerate(rows[:10])
            if len({keys.get(_key(x)) for x in v} - {None}) > 3
        ),
        None,
    )
    if header_at is None:
        raise pub.PublicationError(
            "missing-columns",
            f"{filename} has no header row of the breakdown form (org_code, period_start, "
            "period_end, dimension, group_value and the counts; see docs/flex-data-standard.md)",
        )
    header = rows[header_at][1]
    position = {}
    for i, raw in enumerate(header):
        name = keys.get(_key(raw)) if not pub._blank(raw) else None
        if name and name not in position:
            position[name] = i
    missing = [c for c in pub.BREAKDOWN_COLUMNS if c not in position]
    if missing:
        raise pub.PublicationError(
            "missing-columns",
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}: the "
            "breakdown form of the Flex Data Standard needs them (see docs/flex-data-standard.md)",
            ", ".join(missing),
        )
    body = rows[header_at + 1 :]
    if not body:
        raise pub.PublicationError("empty-file", f"{filename} has a header but no data rows")
    out = pd.DataFrame(
        {
            c: pd.Series(
                [
                    (v[position[c]].strip() or None)
                    if position[c] < len(v) and isinstance(v[position[c]], str)
                    else (v[position[c]] if position[c] < len(v) else None)
                    for _, v in body
                ],
                dtype=object,
            )
            for c in pub.BREAKDOWN_COLUMNS
        }
    )
    out["_row"] = pd.Series([n for n, _ in body], dtype="int64")
    return out


def coerce_breakdown(frame: pd.DataFrame) -> pd.DataFrame:
    """The breakdown form as read -> typed values: org_code upper case, dates, dimension and
    group named as in the equity marts (None where not recognised), counts as floats (NaN
    where not a whole number). Never raises on bad values: the GX suite
    (expectations/breakdown.py) names the rows."""
    from transforms import publications as pub

    out = pd.DataFrame({"_row": frame["_row"].astype("int64")}, index=frame.index)
    out["org_code"] = frame["org_code"].map(pub.normalise_org_code)
    out["period_start"] = pub.parse_dates(frame["period_start"])
    out["period_end"] = pub.parse_dates(frame["period_end"])
    out["dimension"] = frame["dimension"].map(normalise_dimension)
    out["group_as_written"] = frame["group_value"]
    out["group_value"] = [
        normalise_group(d, v) for d, v in zip(out["dimension"], frame["group_value"], strict=True)
    ]
    for c in pub.BREAKDOWN_COUNT_COLUMNS:
        out[c] = pub.parse_counts(frame[c])
    return out
