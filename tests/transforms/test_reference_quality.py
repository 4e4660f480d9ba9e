"""Coverage between the ODS population, the Staff Survey and the Workforce Statistics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from transforms.reference_quality import (
    ISSUE_MISSING_FROM_SOURCE,
    ISSUE_NOT_IN_POPULATION,
    SchemaChangeError,
    coverage_summary,
    coverage_text,
)

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"

POPULATION = pd.DataFrame({"org_code": ["RA1", "RA2", "RA3"], "name": ["ONE", "TWO", "THREE"]})
SURVEY = pd.DataFrame(
    {
        "org_code": ["RA1", "RA2", "TAD", "QXX"],
        "org_name": ["One", "Two", "Care Trust", "Sample ICB"],
        "unit_kind": ["trust", "trust", "trust", "ICB"],
    }
)
WORKFORCE = pd.DataFrame(
    {
        "org_code": ["RA1", "RA1", "RA3", "QXX"],
        "org_name": ["One", "One", "Three", "Sample ICB"],
        "cluster_group": ["Acute", "Acute", "Acute", "Integrated Care Board"],
    }
)


def test_lists_population_trusts_missing_from_each_source_and_the_reverse():
    got = coverage_summary(POPULATION, SURVEY, WORKFORCE)
    as_set = set(got[["org_code", "issue", "source"]].itertuples(index=False, name=None))
    assert as_set == {
        ("RA3", ISSUE_MISSING_FROM_SOURCE, "staff_survey"),  # in ODS, not surveyed
        ("TAD", ISSUE_NOT_IN_POPULATION, "staff_survey"),  # a trust unit unknown to ODS
        ("RA2", ISSUE_MISSING_FROM_SOURCE, "workforce"),
    }
    # ICBs are not trusts: never reported as missing from the population.
    assert "QXX" not in set(got["org_code"])
    assert list(got.columns) == ["org_code", "name", "issue", "source"]
    assert got.set_index("org_code").loc["RA3", "name"] == "THREE"


def test_a_source_not_loaded_is_not_reported():
    got = coverage_summary(POPULATION, None, WORKFORCE)
    assert set(got["source"]) == {"workforce"}


def test_text_names_the_gaps_in_one_paragraph():
    text = coverage_text(coverage_summary(POPULATION, SURVEY, WORKFORCE), population_size=3)
    assert "3 trusts" in text
    assert "staff_survey lacks 1 population trusts (RA3)" in text
    assert "TAD" in text and "RA2" in text
    assert "\n" not in text


def test_text_when_everything_matches():
    full = POPULATION.rename(columns={"name": "org_name"})
    text = coverage_text(coverage_summary(POPULATION, full, full))
    assert "every population trust is in every source" in text


def test_schema_change_error_is_a_value_error():
    with pytest.raises(ValueError):
        raise SchemaChangeError("HC renamed")


def test_real_files_coverage():
    files = [
        REFERENCE / "etr_2025-07.csv",
        REFERENCE / "NSS24_detailed_spreadsheets_organisational_results.xlsx",
        REFERENCE / "turnover_benchmarking_staff_group_organisation_Nov-25.csv",
    ]
    if not all(f.exists() for f in files):
        pytest.skip(f"real reference files absent from {REFERENCE}")
    from transforms.ods import benchmark_population, parse_etr
    from transforms.staff_survey import combine_split_units, parse_staff_survey
    from transforms.workforce import parse_workforce

    ods = parse_etr(files[0].read_bytes(), files[0].name)
    population = benchmark_population(ods, "2025-07-01", "2025-07-01")
    survey = combine_split_units(parse_staff_survey(files[1].read_bytes(), 2024), ods["org_code"])
    workforce = parse_workforce(files[2].read_bytes())
    got = coverage_summary(population, survey, workforce)
    by = {k: sorted(g["org_code"]) for k, g in got.groupby(["source", "issue"])}
    # G6V2S opened 2024-11-01 (etr line 1), after the autumn 2024 survey was run; the
    # survey instead has its predecessors RAP and RRP and two other trusts closed in 2024
    # (R1C, RY9), and the four care trusts README says are not in etr.
    assert by[("staff_survey", ISSUE_MISSING_FROM_SOURCE)] == ["G6V2S"]
    assert by[("staff_survey", ISSUE_NOT_IN_POPULATION)] == [
        "R1C", "RAP", "RRP", "RY9", "TAD", "TAF", "TAH", "TAJ",
    ]  # fmt: skip
    # Workforce covers every open English trust; its care trusts TAD, TAH, TAJ are not in etr.
    assert ("workforce", ISSUE_MISSING_FROM_SOURCE) not in by
    assert by[("workforce", ISSUE_NOT_IN_POPULATION)] == ["TAD", "TAH", "TAJ"]


# --- row by row: what is quarantined, what rejects the file ----------------------------------


def test_rows_breaking_rules_are_quarantined_with_every_reason_and_the_rest_kept():
    from expectations.core import RuleFailure
    from transforms.reference_quality import split_quarantine

    frame = pd.DataFrame(
        {
            "org_code": ["RA1", "RA2", "RA3", "RA4"],
            "_row": [1, 2, 3, 4],
            "_problem": [None, "open date (column 11) 'x' is not a YYYYMMDD date", None, None],
        }
    )
    failures = [
        RuleFailure("ods-dates-ordered", "close_date", "closes after it opens", {"": [2, 4]}),
        RuleFailure("ods-region-known", "region_code", "a known region", {"": [4]}),
    ]

    kept, held, structural = split_quarantine(frame, failures, ["org_code"])

    assert kept["org_code"].tolist() == ["RA1", "RA3"] and "_problem" not in kept
    assert held["record_key"].tolist() == ["RA2", "RA4"]
    assert held["reasons"].tolist() == [
        "open date (column 11) 'x' is not a YYYYMMDD date; ods-dates-ordered: closes after "
        "it opens",
        "ods-dates-ordered: closes after it opens; ods-region-known: a known region",
    ]
    assert structural == []


def test_a_rule_failing_without_rows_is_structural():
    from expectations.core import RuleFailure
    from transforms.reference_quality import split_quarantine

    frame = pd.DataFrame({"org_code": ["RA1"], "_row": [1]})
    missing = RuleFailure("ods-name-present", "name", "every trust has a name", {})

    kept, held, structural = split_quarantine(frame, [missing], ["org_code"])

    assert (len(kept), len(held), structural) == (1, 0, [missing])


@pytest.mark.parametrize(
    ("rows", "last", "rejected"),
    [
        (210, None, False),  # a first edition: nothing to compare with
        (190, 210, False),  # 90.5% of the last edition
        (188, 210, True),  # 89.5%: a truncated file
        (0, None, True),  # nothing left to load
        (250, 210, False),  # more trusts than before
    ],
)
def test_too_few_rows_against_the_last_edition_rejects_the_file(rows, last, rejected):
    from transforms.reference_quality import too_few_rows

    assert (too_few_rows(rows, last) is not None) == rejected
