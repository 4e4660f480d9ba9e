"""The pledge sign-ups suite: checks on the sign-up feed before it is loaded.

Runs on the frame from :func:`transforms.pledge.signups_frame` (one row per sign-up).
Each rule is row-level, so a failure names the sign-ups (``_row`` is the sign-up's
position in the feed or the CSV export, counted from 1; ``signup_id`` is in the examples
only when that column is the one checked). Rules are described in docs/pledge-matching.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from expectations.core import ROW_COLUMN, Rule, RuleFailure, run_rules

SUITE_NAME = "pledge_signups"

#: A web address: http or https, a host, no spaces. No backslash anywhere and no userinfo
#: (``user@host``) in the host part: they make readers disagree on the host, so the fetch
#: refuses them too (``flexbench.fetch.parse_web_url``). Which hosts may be fetched is decided
#: by the fetch layer, not here.
WEB_URL_REGEX = r"^https?://[^\s/?#\\@]+(?:[/?#][^\s\\]*)?$"

SIGNUP_STATUSES = ("signed", "withdrawn")

PLEDGE_RULES: list[Rule] = [
    Rule(
        "signup-id-present",
        "signup_id",
        "every sign-up needs its id from the sign-up service",
        lambda gxe: gxe.ExpectColumnValuesToNotBeNull(column="signup_id"),
    ),
    Rule(
        "signup-id-unique",
        "signup_id",
        "a sign-up id may appear only once in a snapshot of the feed",
        lambda gxe: gxe.ExpectColumnValuesToBeUnique(column="signup_id"),
    ),
    Rule(
        "organisation-name-present",
        "organisation_name",
        "every sign-up needs the name of the organisation that signed",
        lambda gxe: gxe.ExpectColumnValuesToNotBeNull(column="organisation_name"),
    ),
    Rule(
        "status-known",
        "status",
        "status must be 'signed' or 'withdrawn'",
        lambda gxe: gxe.ExpectColumnValuesToBeInSet(
            column="status", value_set=list(SIGNUP_STATUSES)
        ),
    ),
    Rule(
        "status-present",
        "status",
        "every sign-up needs a status ('signed' or 'withdrawn')",
        lambda gxe: gxe.ExpectColumnValuesToNotBeNull(column="status"),
    ),
    Rule(
        "signed-at-present",
        "signed_at",
        "every sign-up needs the date and time it was signed (ISO 8601)",
        lambda gxe: gxe.ExpectColumnValuesToNotBeNull(column="signed_at"),
    ),
    Rule(
        "updated-at-present",
        "updated_at",
        "every sign-up needs the date and time it was last changed (ISO 8601)",
        lambda gxe: gxe.ExpectColumnValuesToNotBeNull(column="updated_at"),
    ),
    Rule(
        "updated-not-before-signed",
        "updated_at+signed_at",
        "a sign-up cannot be changed before it was signed (updated_at must be on or after "
        "signed_at)",
        lambda gxe: gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="updated_at",
            column_B="signed_at",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
    ),
    Rule(
        "managers-trained-percentage",
        "managers_trained_pct",
        "the share of managers trained is a percentage from 0 to 100",
        lambda gxe: gxe.ExpectColumnValuesToBeBetween(
            column="managers_trained_pct", min_value=0, max_value=100
        ),
    ),
    Rule(
        "action-plan-url-web-address",
        "action_plan_url",
        "the action plan link must be a web address starting http:// or https://",
        lambda gxe: gxe.ExpectColumnValuesToMatchRegex(
            column="action_plan_url", regex=WEB_URL_REGEX
        ),
    ),
    Rule(
        "data-url-web-address",
        "data_url",
        "the link to the trust's published request data must be a web address starting "
        "http:// or https://",
        lambda gxe: gxe.ExpectColumnValuesToMatchRegex(column="data_url", regex=WEB_URL_REGEX),
    ),
]


def validate_signups(
    signups_df: pd.DataFrame, rules: Sequence[Rule] = PLEDGE_RULES
) -> list[RuleFailure]:
    """Run the pledge suite on a sign-ups frame; return the failed rules.

    Parameters
    ----------
    signups_df : pandas.DataFrame
        From :func:`transforms.pledge.signups_frame`. When it has no ``_row`` column, rows are
        numbered 1, 2, … in frame order (the order of the feed).

    Returns
    -------
    list of RuleFailure
        Empty when every rule holds.
    """
    df = signups_df
    if ROW_COLUMN not in df.columns:
        df = df.copy()
        df[ROW_COLUMN] = range(1, len(df) + 1)
    return run_rules(df.reset_index(drop=True), rules, SUITE_NAME)
