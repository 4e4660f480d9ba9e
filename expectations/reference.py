"""GX suites for the reference data: ODS trusts, NHS Staff Survey, Workforce Statistics.

Each suite runs on the staging frame a parser in ``transforms`` returns (which carries the
``_row`` of each record in the source file), before anything is loaded. Every rule is
row-level: the rows that break it are quarantined with its name and description
(``audit.reference_quarantine``) and the other rows load; a rule that fails without naming
rows (a column missing) rejects the file, whose previous good data is kept (docs/pipeline.md,
"Reference files: row by row").
"""

from __future__ import annotations

import pandas as pd

from expectations.core import Rule, RuleFailure, run_rules
from transforms.workforce import KNOWN_STAFF_GROUPS

#: NHS England regions (national groupings Y56–Y63) and Welsh groupings (W…).
REGION_CODE_PATTERN = r"^(?:Y5[6-9]|Y6[0-3]|W[0-9A-Z]{2})$"
ENGLISH_REGION_PATTERN = r"^(?:Y5[6-9]|Y6[0-3])$"

ODS_RULES = [
    Rule(
        "ods-code-present",
        "org_code",
        "every trust row has an ODS code",
        lambda e: e.ExpectColumnValuesToNotBeNull(column="org_code"),
    ),
    Rule(
        "ods-code-unique",
        "org_code",
        "each ODS code appears once",
        lambda e: e.ExpectColumnValuesToBeUnique(column="org_code"),
    ),
    Rule(
        "ods-name-present",
        "name",
        "every trust has a name",
        lambda e: e.ExpectColumnValuesToNotBeNull(column="name"),
    ),
    Rule(
        "ods-open-date-present",
        "open_date",
        "every trust has an open date (column 11)",
        lambda e: e.ExpectColumnValuesToNotBeNull(column="open_date"),
    ),
    Rule(
        "ods-dates-ordered",
        "close_date+open_date",
        "a trust closes on or after the day it opened",
        lambda e: e.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="close_date",
            column_B="open_date",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
    ),
    Rule(
        "ods-region-known",
        "region_code",
        "the national grouping, where given, is an NHS England region Y56–Y63 or a Welsh code W…",
        lambda e: e.ExpectColumnValuesToMatchRegex(column="region_code", regex=REGION_CODE_PATTERN),
    ),
    Rule(
        "ods-country-known",
        "country",
        "the country, from the national grouping or else the GOR code (column 24: A–K "
        "England, W Wales), is England or Wales",
        lambda e: e.ExpectColumnValuesToBeInSet(column="country", value_set=["England", "Wales"]),
    ),
    Rule(
        "ods-english-region-present",
        "region_code",
        "an English trust has its NHS England region (national grouping, column 3)",
        lambda e: e.ExpectColumnValuesToNotBeNull(
            column="region_code", row_condition='country=="England"', condition_parser="pandas"
        ),
    ),
]

#: The columns naming a record of each source in ``audit.reference_quarantine``.
RECORD_KEYS = {
    "ods_trusts": ["org_code"],
    "staff_survey": ["org_code", "survey_year"],
    "workforce": ["org_code", "period", "staff_group"],
}

_PERCENT_COLUMNS = ["q4d_pct_satisfied", "q6b_pct_agree", "q6c_pct_agree", "q6d_pct_agree"]


def _percent_rule(column: str) -> Rule:
    return Rule(
        f"survey-{column.replace('_', '-')}-range",
        column,
        "a percentage of respondents is between 0 and 100 (blank when suppressed)",
        lambda e: e.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=100),
    )


STAFF_SURVEY_RULES = [
    Rule(
        "survey-code-present",
        "org_code",
        "every survey unit has an organisation code",
        lambda e: e.ExpectColumnValuesToNotBeNull(column="org_code"),
    ),
    Rule(
        "survey-unit-unique",
        "org_code+survey_year",
        "each organisation appears once per survey year",
        lambda e: e.ExpectCompoundColumnsToBeUnique(column_list=["org_code", "survey_year"]),
    ),
    *[_percent_rule(c) for c in _PERCENT_COLUMNS],
    Rule(
        "survey-we-work-flexibly-range",
        "we_work_flexibly_score",
        "the People Promise 'We work flexibly' score is between 0 and 10",
        lambda e: e.ExpectColumnValuesToBeBetween(
            column="we_work_flexibly_score", min_value=0, max_value=10
        ),
    ),
    Rule(
        "survey-responses-not-negative",
        "responses",
        "the number of responses is not negative",
        lambda e: e.ExpectColumnValuesToBeBetween(column="responses", min_value=0),
    ),
    Rule(
        "survey-benchmarking-group-present",
        "survey_benchmarking_group",
        "every survey unit has a benchmarking group",
        lambda e: e.ExpectColumnValuesToNotBeNull(column="survey_benchmarking_group"),
    ),
]

WORKFORCE_RULES = [
    Rule(
        "workforce-code-present",
        "org_code",
        "every row has an organisation code",
        lambda e: e.ExpectColumnValuesToNotBeNull(column="org_code"),
    ),
    Rule(
        "workforce-grain-unique",
        "org_code+period+staff_group",
        "each organisation has one staff-in-post row per period and staff group",
        lambda e: e.ExpectCompoundColumnsToBeUnique(
            column_list=["org_code", "period", "staff_group"]
        ),
    ),
    Rule(
        "workforce-period-end-present",
        "period_end",
        "every row has a period end date",
        lambda e: e.ExpectColumnValuesToNotBeNull(column="period_end"),
    ),
    Rule(
        "workforce-headcount-not-negative",
        "headcount",
        "headcount is a count of staff, zero or more",
        lambda e: e.ExpectColumnValuesToBeBetween(column="headcount", min_value=0),
    ),
    Rule(
        "workforce-fte-not-negative",
        "fte",
        "full-time equivalent is zero or more",
        lambda e: e.ExpectColumnValuesToBeBetween(column="fte", min_value=0),
    ),
    Rule(
        "workforce-staff-group-known",
        "staff_group",
        "the staff group is one of the NHS Workforce Statistics staff groups",
        lambda e: e.ExpectColumnValuesToBeInSet(
            column="staff_group", value_set=list(KNOWN_STAFF_GROUPS)
        ),
    ),
    Rule(
        "workforce-region-known",
        "region_code",
        "the NHS England region code is one of Y56–Y63",
        lambda e: e.ExpectColumnValuesToMatchRegex(
            column="region_code", regex=ENGLISH_REGION_PATTERN
        ),
    ),
]

SUITES = {
    "ods_trusts": ODS_RULES,
    "staff_survey": STAFF_SURVEY_RULES,
    "workforce": WORKFORCE_RULES,
}


def validate_reference(name: str, df: pd.DataFrame) -> list[RuleFailure]:
    """Run the suite for reference dataset ``name`` (a key of :data:`SUITES`) on ``df``."""
    return run_rules(df, SUITES[name], f"reference_{name}")
