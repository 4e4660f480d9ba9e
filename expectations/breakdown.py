"""GX suite of the breakdown form of the Flex Data Standard (docs/flex-data-standard.md,
"Breakdown form"): the counts of requests and their outcomes by equity dimension and group,
one row per trust x period x dimension x group.

:func:`breakdown_check_frame` types a file as read (transforms.equity.coerce_breakdown) and
adds the helper columns the rules read; :data:`BREAKDOWN_RULES` are the rules, each with the
id a trust HR lead sees; :func:`check_breakdown` reads, checks and returns the accepted rows
or the failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from expectations import core
from expectations.core import FILE_COLUMN, Rule, RuleFailure
from expectations.publications import (
    _common_org_rules,
    _flag,
    _flags,
    _keyed,
    _not_null,
    _pair_equal,
    _per_row,
    _period_rules,
    _unique,
    regular_periods,
)
from transforms import equity
from transforms.publications import (
    BREAKDOWN_COLUMNS,
    BREAKDOWN_COUNT_COLUMNS,
    OUTCOME_COLUMNS,
    PublicationError,
)

BREAKDOWN_RULES: list[Rule] = [
    *_common_org_rules(),
    _not_null("valid-date", "period_start", "period_start must be a date (e.g. 2024-04-01)"),
    _not_null("valid-date", "period_end", "period_end must be a date (e.g. 2024-06-30)"),
    _not_null("required", "dimension", "dimension must be filled in on every row"),
    _flag(
        "known-dimension",
        "_dimension_known",
        "dimension",
        "dimension must be one of " + ", ".join(equity.DIMENSIONS),
    ),
    _flag(
        "known-group",
        "_group_known",
        "group_value",
        "group_value must be a group of its dimension as the standard lists them (e.g. "
        "Female, Male or Not stated for sex; the five broad ethnic groups for ethnic_group)",
    ),
    _flag(
        "whole-number",
        "_counts_whole",
        "(count columns)",
        "counts must be whole numbers (0, 1, 2, ...); write 0 rather than leaving a blank",
    ),
    _flag("not-negative", "_counts_not_negative", "(count columns)", "counts must not be negative"),
    _pair_equal(
        "outcomes-sum",
        "_outcomes_total",
        "requests_received",
        "+".join(OUTCOME_COLUMNS) + " vs requests_received",
        "approved in full + approved with changes + declined + withdrawn + pending must "
        "equal requests_received",
    ),
    _unique(
        "unique-key",
        "_key",
        "org_code+period_start+period_end+dimension+group_value",
        "only one row per trust, period, dimension and group",
    ),
    *_period_rules(),
]


def breakdown_check_frame(
    frame: pd.DataFrame,
    expected_org: str | None = None,
    today: date | None = None,
    file: str | None = None,
) -> pd.DataFrame:
    """The breakdown form as read -> the frame :data:`BREAKDOWN_RULES` run on."""
    today_ts = pd.Timestamp(today or date.today())
    df = equity.coerce_breakdown(frame)
    counts = df[list(BREAKDOWN_COUNT_COLUMNS)]
    outcomes = counts[list(OUTCOME_COLUMNS)]
    df["_outcomes_total"] = outcomes.sum(axis=1).where(outcomes.notna().all(axis=1))
    df["_counts_whole"] = _flags(counts.notna().all(axis=1))
    df["_counts_not_negative"] = _flags(~(counts < 0).any(axis=1))
    known_dim = df["dimension"].isin(equity.DIMENSIONS)
    df["_dimension_known"] = _flags(known_dim, unknown=df["dimension"].isna())
    df["_group_known"] = _flags(df["group_value"].notna(), unknown=~known_dim)
    start, end = df["period_start"], df["period_end"]
    dated = (start.notna() & end.notna()).to_numpy()
    ordered = dated & (start <= end).fillna(False).to_numpy()
    df["_regular_period"] = _flags(regular_periods(start, end), unknown=~ordered)
    df["_period_over"] = _flags((end <= today_ts).fillna(False), unknown=end.isna())
    files = _per_row("" if file is None else file, df.index)
    parts = df[["org_code", "period_start", "period_end", "dimension", "group_value"]]
    df["_key"] = _keyed(
        [
            files,
            df["org_code"],
            start.dt.strftime("%Y-%m-%d"),
            end.dt.strftime("%Y-%m-%d"),
            df["dimension"].astype("str"),
            df["group_value"].astype("str"),
        ],
        parts.notna().all(axis=1),
    )
    df["_expected_org"] = _per_row(expected_org, df.index, upper=True)
    if file is not None:
        df[FILE_COLUMN] = files.astype("str")
    return df


@dataclass
class BreakdownVerdict:
    """Whether a breakdown file is accepted; its rows (``BREAKDOWN_COLUMNS``, counts int64)
    when it is, the failed rules when not."""

    accepted: bool
    rows: pd.DataFrame | None
    failures: list[RuleFailure] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f.line() for f in self.failures]


def check_breakdown(
    data: bytes, filename: str, org: str | None = None, today: date | None = None
) -> BreakdownVerdict:
    """Read and check one file in the breakdown form (one GX run)."""
    try:
        frame = equity.read_breakdown(data, filename)
    except PublicationError as error:
        return BreakdownVerdict(False, None, [RuleFailure(error.rule, error.column, str(error))])
    check = breakdown_check_frame(frame, org, today)
    failures = core.run_rules(check, BREAKDOWN_RULES, "publications_breakdown")
    if failures:
        return BreakdownVerdict(False, None, failures)
    rows = check[list(BREAKDOWN_COLUMNS)].copy()
    rows[list(BREAKDOWN_COUNT_COLUMNS)] = rows[list(BREAKDOWN_COUNT_COLUMNS)].astype("int64")
    return BreakdownVerdict(True, rows.reset_index(drop=True))
