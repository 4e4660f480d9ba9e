"""GX suites for the reference data: real files pass, broken values fail the named rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from expectations.reference import validate_reference

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"


def _real(name: str) -> Path:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"real reference files absent: {path} not found")
    return path


def failed(failures) -> dict[str, list[int]]:
    return {f.rule: sorted(sum(f.rows.values(), [])) for f in failures}


ODS = pd.DataFrame(
    {
        "org_code": ["RA1", "RA2", "RA2", "RA4", "RQF", "RA6"],
        "name": ["A", "B", "C", "D", "E", "F"],
        # RQF: a Welsh trust whose grouping is empty (its country came from the GOR code W);
        # RA6: an English trust (GOR code H) whose grouping is empty.
        "region_code": ["Y56", "W00", "Y64", "Y63", None, None],
        "icb_code": ["QKK", "Q99", "QKK", "QKK", None, "QKK"],
        "postcode": ["SE1", "CF1", "SE1", "NE1", "CF1", "SE1"],
        "open_date": pd.to_datetime(["2000-04-01"] * 3 + ["2020-04-01"] + ["2000-04-01"] * 2),
        "close_date": pd.to_datetime([None, None, None, "2019-03-31", None, None]),
        "country": ["England", "Wales", "England", "England", "Wales", "England"],
        "_row": [1, 2, 3, 4, 5, 6],
    }
)

SURVEY = pd.DataFrame(
    {
        "org_code": ["RA1", "RA2", "RA3"],
        "survey_year": [2024, 2024, 2024],
        "q4d_pct_satisfied": [55.0, None, 101.0],  # None = suppressed, allowed
        "q6b_pct_agree": [50.0, None, 40.0],
        "q6c_pct_agree": [50.0, None, 40.0],
        "q6d_pct_agree": [-1.0, None, 40.0],
        "we_work_flexibly_score": [6.1, None, 10.5],
        "survey_benchmarking_group": ["Acute", "Acute", "Acute"],
        "responses": [100, 5, 200],
        "_row": [6, 7, 8],
    }
)

WORKFORCE = pd.DataFrame(
    {
        "org_code": ["RA1", "RA1", "RA2"],
        "period": ["202510 to 202511"] * 3,
        "period_end": pd.to_datetime(["2025-11-30"] * 3),
        "staff_group": ["All staff groups", "All staff groups", "Physician associates"],
        "headcount": pd.array([100, 100, -3], dtype="Int64"),
        "fte": [90.0, 90.0, 1.0],
        "region_code": ["Y56", "Y56", "W00"],
        "_row": [2, 3, 4],
    }
)


@pytest.mark.parametrize(
    ("suite", "frame", "expected"),
    [
        (
            "ods_trusts",
            ODS,
            {
                "ods-code-unique": [2, 3],  # RA2 twice
                "ods-region-known": [3],  # Y64 is not a region
                "ods-dates-ordered": [4],  # closed before it opened
                "ods-english-region-present": [6],  # RQF, Welsh, needs none
            },
        ),
        (
            "staff_survey",
            SURVEY,
            {
                "survey-q4d-pct-satisfied-range": [8],  # 101 %
                "survey-q6d-pct-agree-range": [6],  # -1 %
                "survey-we-work-flexibly-range": [8],  # 10.5 on a 0-10 scale
            },
        ),
        (
            "workforce",
            WORKFORCE,
            {
                "workforce-grain-unique": [2, 3],  # RA1 All staff groups twice
                "workforce-headcount-not-negative": [4],
                "workforce-staff-group-known": [4],
                "workforce-region-known": [4],  # the workforce file is England only
            },
        ),
    ],
)
def test_broken_values_fail_the_named_rule_on_their_rows(suite, frame, expected):
    assert failed(validate_reference(suite, frame)) == expected


def test_real_reference_files_pass_their_suites():
    from transforms.ods import parse_etr
    from transforms.staff_survey import parse_staff_survey
    from transforms.workforce import parse_workforce

    etr = _real("etr_2025-07.csv")
    nss = _real("NSS24_detailed_spreadsheets_organisational_results.xlsx")
    wf = _real("turnover_benchmarking_staff_group_organisation_Nov-25.csv")
    frames = {
        "ods_trusts": parse_etr(etr.read_bytes(), etr.name),
        "staff_survey": parse_staff_survey(nss.read_bytes(), 2024),
        "workforce": parse_workforce(wf.read_bytes()),
    }
    for suite, frame in frames.items():
        assert [f.line() for f in validate_reference(suite, frame)] == [], suite


def test_every_rule_is_described_in_words():
    from expectations.reference import SUITES

    for rules in SUITES.values():
        names = [r.name for r in rules]
        assert len(names) == len(set(names))
        assert all(len(r.description.split()) >= 4 for r in rules)
