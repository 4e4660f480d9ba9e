"""GX suites for trust publications: the row-level rules of the Flex Data Standard v1.

Two suites, one per form of the standard (``docs/flex-data-standard.md`` lists every rule id):
``SUMMARY_RULES`` and ``REQUEST_LEVEL_RULES``. They run on a *check frame*: the publication's
values typed by ``transforms.publications`` plus a few helper columns computed here in pandas
(sums, period flags, the uniqueness key, the expected trust). Helper columns start with ``_``;
each rule still names, in ``column``, the column a trust should look at.

File-level rules (empty file, HTML page, missing columns, personal data, size limits) are
raised while reading, by ``transforms.publications.read_publication``.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from expectations.core import FILE_COLUMN, ROW_COLUMN, Rule, RuleFailure
from transforms.publications import (
    ALL_STAFF_GROUPS,
    APPEALS,
    COUNT_COLUMNS,
    DECISION_WINDOW_MONTHS,
    DECLINE_REASON_COLUMNS,
    DECLINE_REASONS,
    EARLIEST_DATE,
    FLEX_TYPES,
    MAX_COUNT,
    OUTCOME_COLUMNS,
    OUTCOMES,
    REQUEST_LEVEL_OPTIONAL,
    REQUESTS_PER_HEAD,
    STAFF_GROUPS,
    coerce_request_level,
    coerce_summary,
    date_order,
)

ORG_CODE_PATTERN = r"^[A-Z0-9]{3,5}$"
_DECIDED = ("approved_in_full", "approved_with_changes", "declined")


def _meta(name: str) -> dict:
    return {"rule": name}


def _not_null(name: str, column: str, description: str, shown: str | None = None, **schema) -> Rule:
    """Rule: the column is given on every row. ``schema`` (e.g. ``type="date"``) goes into the
    expectation's meta for the Table Schema (:func:`table_schema`)."""
    meta = {**_meta(name), **schema}
    return Rule(
        name,
        shown or column,
        description,
        lambda gx, c=column, m=meta: gx.ExpectColumnValuesToNotBeNull(column=c, meta=dict(m)),
    )


def _in_set(name: str, column: str, values, description: str, shown: str | None = None) -> Rule:
    values = list(values)
    return Rule(
        name,
        shown or column,
        description,
        lambda gx, c=column, v=values, n=name: gx.ExpectColumnValuesToBeInSet(
            column=c, value_set=v, meta=_meta(n)
        ),
    )


def _flag(name: str, flag: str, shown: str, description: str, **schema) -> Rule:
    """A rule checked by a helper column that is True where the row keeps the rule.

    ``schema`` (e.g. ``columns=[...]``, ``type="integer"``, ``enum=[...]``,
    ``max_months_after_period=12``) is kept in the expectation's meta: the suite states what
    its helper column checks, and :func:`table_schema` reads it.
    """
    meta = {**_meta(name), **schema}
    return Rule(
        name,
        shown,
        description,
        lambda gx, f=flag, m=meta: gx.ExpectColumnValuesToBeInSet(
            column=f, value_set=[True], meta=dict(m)
        ),
    )


def _between(
    name: str,
    column: str,
    description: str,
    shown: str | None = None,
    low=None,
    high=None,
    **schema,
) -> Rule:
    """Rule: ``low <= column <= high`` on every row where the column is given (``schema`` as
    for :func:`_flag`)."""
    meta = {**_meta(name), **schema}
    return Rule(
        name,
        shown or column,
        description,
        lambda gx, c=column, m=meta: gx.ExpectColumnValuesToBeBetween(
            column=c, min_value=low, max_value=high, meta=dict(m)
        ),
    )


#: The earliest date of the standard as the GX suites compare it (a datetime at midnight).
EARLIEST = datetime.combine(EARLIEST_DATE, datetime.min.time())
_EARLIEST_TEXT = f"{EARLIEST_DATE:%-d %B %Y}"


def _pair_equal(name: str, a: str, b: str, shown: str, description: str) -> Rule:
    return Rule(
        name,
        shown,
        description,
        lambda gx, n=name: gx.ExpectColumnPairValuesToBeEqual(
            column_A=a, column_B=b, ignore_row_if="either_value_is_missing", meta=_meta(n)
        ),
    )


def _pair_at_least(name: str, a: str, b: str, shown: str, description: str) -> Rule:
    """Rule: column ``a`` >= column ``b`` on every row where both are given."""
    return Rule(
        name,
        shown,
        description,
        lambda gx, n=name: gx.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=a,
            column_B=b,
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta=_meta(n),
        ),
    )


def _unique(name: str, key: str, shown: str, description: str) -> Rule:
    return Rule(
        name,
        shown,
        description,
        lambda gx, n=name: gx.ExpectColumnValuesToBeUnique(column=key, meta=_meta(n)),
    )


def _common_org_rules() -> list[Rule]:
    return [
        _not_null("required", "org_code", "org_code must be filled in on every row"),
        Rule(
            "org-code-format",
            "org_code",
            "org_code must be the trust's ODS code, 3 to 5 letters or digits (e.g. RJ1)",
            lambda gx: gx.ExpectColumnValuesToMatchRegex(
                column="org_code", regex=ORG_CODE_PATTERN, meta=_meta("org-code-format")
            ),
        ),
        _pair_equal(
            "org-matches",
            "org_code",
            "_expected_org",
            "org_code",
            "org_code must be the ODS code of the trust publishing the file",
        ),
    ]


_SUM_OUTCOMES = "+".join(OUTCOME_COLUMNS)
COUNTS_SHOWN = "(count columns)"
_SUM_REASONS = "+".join(DECLINE_REASON_COLUMNS)


#: Row-level rules of the summary form (DESIGN 3.1), run on :func:`summary_check_frame`.
def _period_rules() -> list[Rule]:
    """The rules of a reporting period, shared by the summary and breakdown forms
    (docs/flex-data-standard.md): in order, a regular period, over before it is published."""
    return [
        _pair_at_least(
            "period-order",
            "period_end",
            "period_start",
            "period_start+period_end",
            "period_end must not be before period_start",
        ),
        _flag(
            "regular-period",
            "_regular_period",
            "period_start+period_end",
            "a period must be a calendar month, a quarter (Jan-Mar, Apr-Jun, Jul-Sep, Oct-Dec) "
            "or a financial year (1 April to 31 March)",
        ),
        _flag(
            "period-not-future",
            "_period_over",
            "period_end",
            "a period must be over before it is published (period_end in the future)",
        ),
    ]


SUMMARY_RULES: list[Rule] = [
    *_common_org_rules(),
    _not_null(
        "valid-date", "period_start", "period_start must be a date (e.g. 2024-04-01)", type="date"
    ),
    _not_null(
        "valid-date", "period_end", "period_end must be a date (e.g. 2024-06-30)", type="date"
    ),
    _not_null("required", "staff_group", "staff_group must be filled in on every row"),
    _in_set(
        "known-staff-group",
        "staff_group",
        STAFF_GROUPS,
        "staff_group must be an NHS Workforce Statistics staff group or 'All staff groups'",
    ),
    # One expectation per rule over all count columns (a helper flag per row) keeps the GX
    # run short; split_count_failures then names the columns at fault.
    _flag(
        "whole-number",
        "_counts_whole",
        COUNTS_SHOWN,
        "counts must be whole numbers (0, 1, 2, ...); write 0 rather than leaving a blank",
        columns=list(COUNT_COLUMNS),
        type="integer",
        required=True,
    ),
    _between(
        "not-negative",
        "_counts_min",
        "counts must not be negative",
        COUNTS_SHOWN,
        low=0,
        columns=list(COUNT_COLUMNS),
    ),
    _between(
        "count-within-bound",
        "_counts_max",
        f"a count must be at most {MAX_COUNT:,} (ten times the headcount of the largest trust)",
        COUNTS_SHOWN,
        high=MAX_COUNT,
        columns=list(COUNT_COLUMNS),
    ),
    _pair_at_least(
        "requests-within-headcount",
        "_max_requests",
        "requests_received",
        "requests_received",
        f"requests_received cannot be more than {REQUESTS_PER_HEAD} times the trust's "
        "headcount (NHS Workforce Statistics)",
    ),
    _pair_equal(
        "outcomes-sum",
        "_outcomes_total",
        "requests_received",
        f"{_SUM_OUTCOMES} vs requests_received",
        "approved in full + approved with changes + declined + withdrawn + pending must "
        "equal requests_received",
    ),
    _pair_equal(
        "decline-reasons-sum",
        "_decline_reasons_total",
        "declined",
        f"{_SUM_REASONS} vs declined",
        "the nine declined_* reason columns must add up to declined",
    ),
    _pair_at_least(
        "appeals-upheld-within-appeals",
        "appeals",
        "appeals_upheld",
        "appeals_upheld",
        "appeals_upheld cannot be more than appeals",
    ),
    _pair_at_least(
        "decided-within-2-months-within-decided",
        "_decided",
        "decided_within_2_months",
        "decided_within_2_months",
        "decided_within_2_months cannot be more than approved_in_full + "
        "approved_with_changes + declined",
    ),
    _pair_at_least(
        "escalated-within-received",
        "requests_received",
        "escalated",
        "escalated",
        "escalated cannot be more than requests_received",
    ),
    _unique(
        "unique-key",
        "_key",
        "org_code+period_start+period_end+staff_group",
        "only one row per trust, period and staff group",
    ),
    *_period_rules(),
    _between(
        "date-in-range",
        "period_start",
        f"period_start must not be before {_EARLIEST_TEXT}",
        low=EARLIEST,
    ),
    _flag(
        "unambiguous-date",
        "_dates_unambiguous",
        "period_start+period_end",
        "a date written in numbers must read one way only as a UK date (day first); write "
        "it as 2024-04-01 or 1 April 2024",
    ),
]

_REQUEST_STAFF_GROUPS = [g for g in STAFF_GROUPS if g != ALL_STAFF_GROUPS]

#: Row-level rules of the request-level form, run on :func:`request_level_check_frame`.
REQUEST_LEVEL_RULES: list[Rule] = [
    *_common_org_rules(),
    _not_null("required", "request_id", "request_id must be filled in on every row"),
    _unique(
        "unique-request-id",
        "_key",
        "request_id",
        "each request must appear once (request_id repeated)",
    ),
    _not_null(
        "valid-date",
        "received_date",
        "received_date must be a date (e.g. 2024-04-01)",
        type="date",
    ),
    _flag(
        "valid-date",
        "_decision_date_readable",
        "decision_date",
        "decision_date must be a date (e.g. 2024-05-20) or blank",
        columns=["decision_date"],
        type="date",
    ),
    _not_null("required", "outcome", "outcome must be filled in on every row"),
    _in_set(
        "known-outcome",
        "outcome",
        OUTCOMES,
        "outcome must be one of " + ", ".join(OUTCOMES),
    ),
    _flag(
        "decision-date-required",
        "_decision_dated",
        "decision_date",
        "a request approved or declined needs its decision_date",
    ),
    _pair_at_least(
        "decision-not-before-receipt",
        "decision_date",
        "received_date",
        "decision_date",
        "decision_date must not be before received_date",
    ),
    _flag(
        "received-not-future",
        "_received_past",
        "received_date",
        "received_date must not be in the future",
    ),
    _between(
        "date-in-range",
        "received_date",
        f"received_date must not be before {_EARLIEST_TEXT}",
        low=EARLIEST,
    ),
    _flag(
        "decision-not-future",
        "_decision_past",
        "decision_date",
        "decision_date must not be in the future",
    ),
    _flag(
        "decision-within-window",
        "_decision_in_window",
        "decision_date",
        f"decision_date must be within {DECISION_WINDOW_MONTHS} months of the end of the "
        "quarter the request was received in",
        max_months_after_period=DECISION_WINDOW_MONTHS,
    ),
    _flag(
        "unambiguous-date",
        "_dates_unambiguous",
        "received_date+decision_date",
        "a date written in numbers must read one way only as a UK date (day first); write "
        "it as 2024-04-01 or 1 April 2024",
    ),
    _not_null("required", "escalated", "escalated must be yes or no on every row"),
    _in_set("escalated-yes-no", "escalated", ["yes", "no"], "escalated must be yes or no"),
    _in_set(
        "known-appeal",
        "appeal",
        APPEALS,
        "appeal must be one of " + ", ".join(APPEALS) + " (blank means none)",
    ),
    _flag(
        "appeal-only-when-declined",
        "_appeal_fits",
        "appeal",
        "an appeal can only be lodged against a declined request",
    ),
    _flag(
        "decline-reason-only-when-declined",
        "_reason_only_when_declined",
        "decline_reason",
        "decline_reason must be blank unless the outcome is declined",
    ),
    _flag(
        "known-decline-reason",
        "_reason_known",
        "decline_reason",
        "a declined request needs a decline_reason, one of " + ", ".join(DECLINE_REASONS),
        columns=["decline_reason"],
        enum=list(DECLINE_REASONS),
    ),
    _not_null("required", "staff_group", "staff_group must be filled in on every row"),
    _in_set(
        "known-staff-group",
        "staff_group",
        _REQUEST_STAFF_GROUPS,
        "staff_group must be an NHS Workforce Statistics staff group",
    ),
    _in_set(
        "known-flex-type",
        "flex_type",
        FLEX_TYPES,
        "flex_type, when given, must be one of " + ", ".join(FLEX_TYPES),
    ),
]


def _flags(keeps, unknown=None) -> pd.arrays.BooleanArray:
    """Helper flag column: True where a row keeps the rule, missing where it cannot say."""
    keeps = np.asarray(keeps, dtype=bool)
    unknown = np.zeros(len(keeps), dtype=bool) if unknown is None else np.asarray(unknown, bool)
    return pd.arrays.BooleanArray(keeps & ~unknown, unknown.copy())


def is_regular_period(start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """Rule "regular-period": a calendar month, a quarter or a financial year (1 Apr-31 Mar).

    Quarters are calendar quarters (Jan-Mar, Apr-Jun, Jul-Sep, Oct-Dec), which are also the
    quarters of the NHS financial year.
    """
    if start.day != 1:
        return False
    month_end = start + pd.DateOffset(months=1) - pd.Timedelta(days=1)
    quarter_end = start + pd.DateOffset(months=3) - pd.Timedelta(days=1)
    year_end = start + pd.DateOffset(months=12) - pd.Timedelta(days=1)
    return (
        end == month_end
        or (start.month in (1, 4, 7, 10) and end == quarter_end)
        or (start.month == 4 and end == year_end)
    )


def regular_periods(start: pd.Series, end: pd.Series) -> pd.Series:
    """:func:`is_regular_period` on whole columns (rule "regular-period").

    A period starting on the 1st ends ``MonthEnd(n)`` later: n = 1 (a month), 3 (a quarter
    starting in January, April, July or October) or 12 (a financial year from 1 April).
    """
    first = (start.dt.day == 1).fillna(False)
    month = start.dt.month
    return first & (
        (end == start + pd.offsets.MonthEnd(1))
        | (month.isin([1, 4, 7, 10]) & (end == start + pd.offsets.MonthEnd(3)))
        | ((month == 4) & (end == start + pd.offsets.MonthEnd(12)))
    ).fillna(False)


def _per_row(value, index: pd.Index, upper: bool = False) -> pd.Series:
    """A per-file value (one for the frame, or a Series of one per row) as an object column."""
    if isinstance(value, pd.Series):
        out = value.to_numpy(dtype=object).copy()
    else:
        out = np.full(len(index), value, dtype=object)
    if upper:
        out = _upper(out)
    return pd.Series(out, index=index, dtype=object)


def _upper(values: np.ndarray) -> np.ndarray:
    """Each value as text, stripped, in upper case (None stays None). A column of text (a
    per-file value repeated over the file's rows) is read once per distinct value; its
    blanks (None, NaN) one by one, as any other column's values."""

    def one(v):
        return None if v is None else str(v).strip().upper()

    if infer_dtype(values, skipna=True) != "string":
        return np.array([one(v) for v in values], dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [one(u) for u in uniques]
    out = table[codes]
    for i in np.flatnonzero(codes < 0):
        out[i] = one(values[i])
    return out


def _isin(values: np.ndarray, allowed: tuple[str, ...]) -> np.ndarray:
    """``np.isin(values, allowed)`` of a coded column (a few distinct values, or None): each
    distinct value looked up once, not each row compared with each allowed value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.append(np.isin(uniques, allowed), False)[codes]


def _unambiguous(frame: pd.DataFrame, columns: tuple[str, ...], files: pd.Series):
    """Flag of rule "unambiguous-date": True where no date of the row could be read two ways,
    or where the file shows it writes the day first (docs/flex-data-standard.md, "Dates").

    A file shows it writes the day first when one of its all-number dates has a first number
    above 12 (``30/06/2024``) and none has a second number above 12 (``06/30/2024``).
    """
    orders = [date_order(frame[c]) for c in columns if c in frame.columns]
    ambiguous = np.logical_or.reduce([o["ambiguous"].to_numpy() for o in orders])
    if not ambiguous.any():
        return _flags(np.ones(len(frame), dtype=bool))
    day_first = np.logical_or.reduce([o["day_first"].to_numpy() for o in orders])
    month_first = np.logical_or.reduce([o["month_first"].to_numpy() for o in orders])
    keys = files.to_numpy()
    uk = pd.Series(day_first).groupby(keys).transform("any").to_numpy(dtype=bool)
    us = pd.Series(month_first).groupby(keys).transform("any").to_numpy(dtype=bool)
    return _flags(~ambiguous | (uk & ~us))


def _max_requests(headcount, index: pd.Index) -> pd.Series:
    """Most requests_received a row may hold given the trust's headcount (Int64, missing
    where the headcount is not known): rule "requests-within-headcount"."""
    # Numbers of any type: a batch whose files' headcounts are partly unknown gives them as
    # floats with NaN for the unknown (they were then all taken as unknown).
    heads = pd.to_numeric(
        pd.Series(_per_row(headcount, index).to_numpy(dtype=object)), errors="coerce"
    ).to_numpy(dtype="float64")
    known = np.isfinite(heads) & (heads > 0)
    out = np.zeros(len(index), dtype="int64")
    out[known] = REQUESTS_PER_HEAD * np.floor(heads[known]).astype("int64")
    return pd.Series(pd.arrays.IntegerArray(out, ~known), index=index)


def _keyed(parts: list[pd.Series], complete: pd.Series) -> pd.Series:
    """``a|b|c`` per row where every part is given, else None (the uniqueness key)."""
    joined = parts[0].astype("str")
    for p in parts[1:]:
        joined = joined + "|" + p.astype("str")
    out = joined.to_numpy(dtype=object)
    out[~complete.to_numpy(dtype=bool)] = None
    return pd.Series(out, index=complete.index, dtype=object)


def summary_check_frame(
    frame: pd.DataFrame,
    expected_org: str | pd.Series | None = None,
    today: date | None = None,
    file: str | pd.Series | None = None,
    headcount: int | pd.Series | None = None,
) -> pd.DataFrame:
    """Summary form as read -> the frame ``SUMMARY_RULES`` run on (typed + helper columns).

    Built column-wise, so one call serves a whole batch of files (one GX run per batch).

    Parameters
    ----------
    frame : pandas.DataFrame
        ``ParsedPublication.frame`` of a summary-form file, or many such frames
        concatenated.
    expected_org : str or pandas.Series, optional
        ODS code of the trust that published the file (rule "org-matches"); a Series
        (aligned with ``frame``) gives it per row when many files are checked together.
    today : datetime.date, optional
        Reference date for "period-not-future"; default today.
    file : str or pandas.Series, optional
        File id put in ``_file`` for batched validation (keys are unique per file); a
        Series gives it per row.
    headcount : int or pandas.Series, optional
        The trust's headcount (rule "requests-within-headcount"); None (or a None per row)
        where not known.
    """
    today_ts = pd.Timestamp(today or date.today())
    df = coerce_summary(frame)
    counts = df[list(COUNT_COLUMNS)]
    outcomes = counts[list(OUTCOME_COLUMNS)]
    df["_outcomes_total"] = outcomes.sum(axis=1).where(outcomes.notna().all(axis=1))
    reasons = counts[list(DECLINE_REASON_COLUMNS)]
    df["_decline_reasons_total"] = reasons.sum(axis=1).where(reasons.notna().all(axis=1))
    decided = counts[list(_DECIDED)]
    df["_decided"] = decided.sum(axis=1).where(decided.notna().all(axis=1))
    df["_counts_whole"] = _flags(counts.notna().all(axis=1))
    df["_counts_min"] = counts.min(axis=1, skipna=True).astype("Int64")
    df["_counts_max"] = counts.max(axis=1, skipna=True).astype("Int64")
    df["_max_requests"] = _max_requests(headcount, df.index)
    start, end = df["period_start"], df["period_end"]
    dated = (start.notna() & end.notna()).to_numpy()
    ordered = dated & (start <= end).fillna(False).to_numpy()
    df["_regular_period"] = _flags(regular_periods(start, end), unknown=~ordered)
    df["_period_over"] = _flags((end <= today_ts).fillna(False), unknown=end.isna())
    files = _per_row("" if file is None else file, df.index)
    df["_dates_unambiguous"] = _unambiguous(frame, ("period_start", "period_end"), files)
    key_parts = df[["org_code", "period_start", "period_end", "staff_group"]]
    complete = key_parts.notna().all(axis=1)
    groups = df["staff_group"].astype("str").str.lower()
    df["_key"] = _keyed(
        [files, df["org_code"], start.dt.strftime("%Y-%m-%d"), end.dt.strftime("%Y-%m-%d"), groups],
        complete,
    )
    df["_expected_org"] = _per_row(expected_org, df.index, upper=True)
    if file is not None:
        df[FILE_COLUMN] = files.astype("str")
    return df


def request_level_check_frame(
    frame: pd.DataFrame,
    expected_org: str | pd.Series | None = None,
    today: date | None = None,
    file: str | pd.Series | None = None,
    headcount: int | pd.Series | None = None,
) -> pd.DataFrame:
    """Request-level form as read -> the frame ``REQUEST_LEVEL_RULES`` run on.

    Parameters as :func:`summary_check_frame` (``headcount`` is not used: each request is
    a row, and rows are bounded by ``MAX_ROWS``).
    """
    today_ts = pd.Timestamp(today or date.today())
    df = coerce_request_level(frame)
    for c in REQUEST_LEVEL_OPTIONAL:
        if c not in df.columns:
            df[c] = pd.Series([None] * len(df), index=df.index, dtype=object)
    outcome = df["outcome"].to_numpy(dtype=object)
    reason = df["decline_reason"].to_numpy(dtype=object)
    appeal = df["appeal"].to_numpy(dtype=object)
    declined = outcome == "declined"
    known_outcome = _isin(outcome, OUTCOMES)
    raw_given = frame["decision_date"].notna().to_numpy()
    df["_decision_date_readable"] = _flags(~raw_given | df["decision_date"].notna().to_numpy())
    # A decision date that could not be read is reported by "valid-date", not here.
    df["_decision_dated"] = _flags(~_isin(outcome, _DECIDED) | raw_given)
    received = df["received_date"]
    df["_received_past"] = _flags((received <= today_ts).fillna(False), unknown=received.isna())
    decided = df["decision_date"]
    df["_decision_past"] = _flags((decided <= today_ts).fillna(False), unknown=decided.isna())
    quarter_end = received.dt.to_period("Q").dt.end_time.dt.normalize()
    window_end = quarter_end + pd.DateOffset(months=DECISION_WINDOW_MONTHS)
    df["_decision_in_window"] = _flags(
        (decided <= window_end).fillna(False), unknown=(decided.isna() | received.isna())
    )
    df["_appeal_fits"] = _flags(
        (appeal == "none") | declined, unknown=~known_outcome | ~_isin(appeal, APPEALS)
    )
    df["_reason_only_when_declined"] = _flags(pd.isna(reason) | declined, unknown=~known_outcome)
    df["_reason_known"] = _flags(_isin(reason, DECLINE_REASONS), unknown=~declined)
    files = _per_row("" if file is None else file, df.index)
    df["_dates_unambiguous"] = _unambiguous(frame, ("received_date", "decision_date"), files)
    df["_key"] = _keyed([files, df["request_id"]], df["request_id"].notna())
    df["_expected_org"] = _per_row(expected_org, df.index, upper=True)
    if file is not None:
        df[FILE_COLUMN] = files.astype("str")
    return df


_COUNT_RULE_TEXT = {
    "whole-number": "{c} must be a whole number (0, 1, 2, ...); write 0 rather than a blank",
    "not-negative": "{c} must not be negative",
    "count-within-bound": "{c} must be at most " + f"{MAX_COUNT:,}" + " (as written: {v})",
}
_SUMS = {
    "outcomes-sum": (OUTCOME_COLUMNS, "requests_received"),
    "decline-reasons-sum": (DECLINE_REASON_COLUMNS, "declined"),
}
_SHOWN_ROWS = 3


def _at(frame: pd.DataFrame, rows) -> pd.DataFrame:
    return frame[frame[ROW_COLUMN].isin(set(rows))].sort_values(ROW_COLUMN)


def _written(value) -> str:
    """A cell as written, short: a blank says so, a very long number gives its length."""
    if value is None or (isinstance(value, float) and value != value):
        return "blank"
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()  # an XLSX date cell
    text = str(value)
    if len(text) > 24:
        digits = sum(ch.isdigit() for ch in text)
        return f"{text[:12]}... ({digits} digits)" if digits > len(text) / 2 else text[:24] + "..."
    return text


def _row_label(r: pd.Series, rows) -> str:
    """ "row 3: " when a rule failed on several rows (the line lists them all), else ""."""
    return f"row {int(r[ROW_COLUMN])}: " if len(set(rows)) > 1 else ""


def explain_failure(
    failure: RuleFailure, check: pd.DataFrame, read: pd.DataFrame | None = None
) -> list[RuleFailure]:
    """A failed rule of one file -> the lines a trust sees, with the numbers that broke it.

    - "whole-number", "not-negative", "count-within-bound" over all counts: one failure per
      count column at fault (the value as written, for a count past the bound);
    - "outcomes-sum", "decline-reasons-sum": the sum on the first rows, e.g.
      "row 3: 10 + 3 + 0 + 1 + 0 = 14, but requests_received is 15";
    - "unambiguous-date", "valid-date", "date-in-range": the dates as written.

    ``check`` is the file's check frame, ``read`` its frame as read (values as written).
    """
    rows = failure.rows_for("")
    if not rows:
        return [failure]
    if failure.column == COUNTS_SHOWN and failure.rule in _COUNT_RULE_TEXT:
        return _split_counts(failure, check, read)
    if failure.rule in _SUMS:
        parts, total = _SUMS[failure.rule]
        shown = []
        for _, r in _at(check, rows).head(_SHOWN_ROWS).iterrows():
            values = [r[c] for c in (*parts, total)]
            if any(pd.isna(v) or abs(int(v)) > MAX_COUNT for v in values):
                continue  # a blank or a count past the bound has its own line
            *values, stated = (int(v) for v in values)
            added = " + ".join(str(v) for v in values)
            shown.append(f"{_row_label(r, rows)}{added} = {sum(values)}, but {total} is {stated}")
        return [_with(failure, "; ".join(shown))]
    columns = [c for c in failure.column.split("+") if read is not None and c in read.columns]
    if failure.rule in ("unambiguous-date", "valid-date", "date-in-range") and columns:
        shown = []
        for _, r in _at(read, rows).head(_SHOWN_ROWS).iterrows():
            for c in columns:
                value = r[c]
                if failure.rule == "unambiguous-date":
                    order = date_order(pd.Series([value], dtype=object))
                    if not order["ambiguous"].iloc[0]:
                        continue
                    shown.append(
                        f"{_row_label(r, rows)}{c} {_written(value)} could be "
                        + _two_readings(str(value))
                    )
                elif value is not None:
                    us = date_order(pd.Series([value], dtype=object))["month_first"].iloc[0]
                    note = " (dates are read day first, as in the UK)" if us else ""
                    shown.append(f"{_row_label(r, rows)}{c} is {_written(value)}{note}")
        return [_with(failure, "; ".join(shown))]
    return [failure]


def _two_readings(text: str) -> str:
    """``"04/01/2024"`` -> ``"4 January 2024 or 1 April 2024"``."""
    a, b, year = (int(p) for p in re.findall(r"\d+", text)[:3])
    return f"{a} {_month(b)} {year} or {b} {_month(a)} {year}"


def _month(n: int) -> str:
    return date(2000, n, 1).strftime("%B")


def _with(failure: RuleFailure, detail: str) -> RuleFailure:
    if not detail:
        return failure
    return RuleFailure(
        failure.rule,
        failure.column,
        f"{failure.description}: {detail}",
        failure.rows,
        failure.examples,
    )


def _split_counts(
    failure: RuleFailure, check: pd.DataFrame, read: pd.DataFrame | None
) -> list[RuleFailure]:
    at_fault = _at(check, failure.rows_for(""))
    out = []
    for c in COUNT_COLUMNS:
        values = at_fault[c]
        if failure.rule == "whole-number":
            bad = values.isna()
        elif failure.rule == "not-negative":
            bad = (values < 0).fillna(False)
        else:
            bad = (values > MAX_COUNT).fillna(False)
        if not bad.any():
            continue
        found = sorted(int(r) for r in at_fault.loc[bad, ROW_COLUMN])
        written = ""
        if failure.rule == "count-within-bound" and read is not None and c in read.columns:
            cells = _at(read, found)[c].head(_SHOWN_ROWS)
            written = ", ".join(_written(v) for v in cells)
        text = _COUNT_RULE_TEXT[failure.rule].format(c=c, v=written)
        out.append(RuleFailure(failure.rule, c, text, {"": found}))
    return out or [failure]


def split_count_failures(failure: RuleFailure, check: pd.DataFrame) -> list[RuleFailure]:
    """A count rule failed over all counts -> one failure per count column (see
    :func:`explain_failure`)."""
    return explain_failure(failure, check)


# --- the standard in machine-readable form ---------------------------------------------------

#: Where the Table Schemas are published, beside the templates (one per form).
TABLE_SCHEMA_FILES = {
    "summary": "flex-summary.schema.json",
    "request_level": "flex-request-level.schema.json",
}


def table_schema(form: str) -> dict:
    """The Frictionless Table Schema of one form, read off its GX suite.

    Each expectation of ``SUMMARY_RULES`` / ``REQUEST_LEVEL_RULES`` says what it checks:
    "given on every row" -> ``required``; a value set -> ``enum``; a pattern -> ``pattern``;
    a range -> ``minimum`` / ``maximum``; the meta of a helper-column rule names the
    columns, type, enum or bounds it stands for; the uniqueness rule gives ``primaryKey``.
    Rules across rows or columns (sums, periods, the as-of date) have no Table Schema form
    and are listed in ``flexbench:rules``. Needs GX (imported here, not at module import).
    """
    from great_expectations import expectations as gxe

    from transforms.publications import REQUEST_LEVEL_COLUMNS, SUMMARY_COLUMNS

    rules = SUMMARY_RULES if form == "summary" else REQUEST_LEVEL_RULES
    columns = SUMMARY_COLUMNS if form == "summary" else REQUEST_LEVEL_COLUMNS
    fields: dict[str, dict] = {c: {"name": c, "type": "string"} for c in columns}
    constraints: dict[str, dict] = {c: {} for c in columns}
    key: list[str] = []
    captured: set[int] = set()  # rules the fields or the key express
    for rule in rules:
        expectation = rule.build(gxe)
        kind = type(expectation).__name__
        meta = dict(expectation.meta or {})
        column = getattr(expectation, "column", None)
        for c in meta.get("columns") or [column]:
            if c not in fields:
                continue
            before = (dict(fields[c]), dict(constraints[c]))
            _schema_constraints(kind, expectation, meta, c, column, fields, constraints)
            if (fields[c], constraints[c]) != before:
                captured.add(id(rule))
        if kind == "ExpectColumnValuesToBeUnique":
            key = [c for c in rule.column.split("+") if c in fields]
            captured.add(id(rule))
    for c in columns:
        if constraints[c]:
            fields[c]["constraints"] = constraints[c]
    return {
        "$schema": "https://datapackage.org/profiles/2.0/tableschema.json",
        "title": f"Flex Data Standard v1, {form.replace('_', '-')} form",
        "description": "Generated from the GX suite in expectations/publications.py by "
        "docs/templates/make_templates.py; the standard is docs/flex-data-standard.md. "
        "Dates are read day first (dd/mm/yyyy) or as ISO dates; counts are whole numbers.",
        "fields": list(fields.values()),
        "missingValues": [""],
        **({"primaryKey": key} if key else {}),
        "flexbench:rules": [
            {"rule": r.name, "column": r.column, "description": r.description}
            for r in rules
            if id(r) not in captured
        ],
    }


def _schema_constraints(kind, expectation, meta, c, column, fields, constraints) -> None:
    """What one expectation says about column ``c`` of the Table Schema (see
    :func:`table_schema`)."""
    if "type" in meta:
        fields[c]["type"] = meta["type"]
        if meta["type"] == "date":
            fields[c]["format"] = "any"
    if kind == "ExpectColumnValuesToNotBeNull" or meta.get("required"):
        constraints[c]["required"] = True
    if kind == "ExpectColumnValuesToBeInSet" and c == column:
        constraints[c]["enum"] = list(expectation.value_set)
    if "enum" in meta:
        constraints[c]["enum"] = list(meta["enum"])
    if kind == "ExpectColumnValuesToMatchRegex":
        constraints[c]["pattern"] = expectation.regex.removeprefix("^").removesuffix("$")
    if kind == "ExpectColumnValuesToBeBetween":
        for bound, value in (
            ("minimum", expectation.min_value),
            ("maximum", expectation.max_value),
        ):
            if value is not None:
                constraints[c][bound] = (
                    value.date().isoformat() if isinstance(value, datetime) else value
                )


__all__ = [
    "REQUEST_LEVEL_RULES",
    "ROW_COLUMN",
    "SUMMARY_RULES",
    "is_regular_period",
    "regular_periods",
    "explain_failure",
    "table_schema",
    "split_count_failures",
    "request_level_check_frame",
    "summary_check_frame",
]
