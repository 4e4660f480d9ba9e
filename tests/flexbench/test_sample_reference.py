"""Synthetic reference files are in the real formats: the real parsers read them back."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from flexbench.sample.reference import write_etr, write_staff_survey, write_workforce
from transforms.ods import parse_etr
from transforms.staff_survey import parse_staff_survey
from transforms.workforce import parse_workforce

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"

TRUSTS = pd.DataFrame(
    {
        "org_code": ["RAA", "RBB", "RWW"],
        "name": ["ALPHA NHS TRUST", "BETA NHS FOUNDATION TRUST", "GAMMA, WALES NHS TRUST"],
        "region_code": ["Y56", "Y63", "W00"],
        "icb_code": ["QKK", "QHM", "Q99"],
        "postcode": ["SE1 9RT", "NE1 4LP", "CF14 2TL"],
        "open_date": pd.to_datetime(["1993-04-01", "2001-04-01", "1998-04-01"]),
        "close_date": pd.to_datetime([None, "2024-09-30", None]),
    }
)

SURVEY = pd.DataFrame(
    {
        "org_code": ["RAA", "RBB", "QXX"],
        "org_name": ["Alpha NHS Trust", "Beta NHS Foundation Trust", "NHS Sample ICB"],
        "q4d_pct_satisfied": [57.3, math.nan, 41.0],
        "q6b_pct_agree": [51.2, math.nan, 45.5],
        "q6c_pct_agree": [54.4, math.nan, 60.0],
        "q6d_pct_agree": [70.4, math.nan, 66.6],
        "we_work_flexibly_score": [6.25, math.nan, 5.9],
        "survey_benchmarking_group": [
            "Acute and Acute & Community Trusts",
            "Ambulance Trusts",
            "ICBs",
        ],
        "responses": [13028, 7, 310],
    }
)

WORKFORCE = pd.DataFrame(
    {
        "org_code": ["RAA", "RAA", "RBB"],
        "org_name": ["Alpha NHS Trust", "Alpha NHS Trust", "Beta NHS Foundation Trust"],
        "period": ["202510 to 202511"] * 3,
        "staff_group": [
            "All staff groups",
            "Scientific, therapeutic & technical staff",
            "All staff groups",
        ],
        "headcount": [22634, 3843, 410],
        "fte": [21053.01846, 3513.22458, 388.5],
        "benchmark_group": ["Acute - Teaching", "Acute - Teaching", "Ambulance Trust"],
        "cluster_group": ["Acute", "Acute", "Ambulance"],
        "region_code": ["Y56", "Y56", "Y63"],
        "ics_code": ["QKK", "QKK", "QHM"],
        "ics_name": ["South East London", "South East London", "North East and North Cumbria"],
    }
)


# --- ODS etr ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["etr.csv", "etr.zip"])
def test_etr_round_trip(tmp_path, name):
    path = write_etr(TRUSTS, tmp_path / name)
    got = parse_etr(path.read_bytes(), name)
    cols = ["org_code", "name", "region_code", "icb_code", "postcode", "open_date", "close_date"]
    expected = TRUSTS[cols].astype({"open_date": "datetime64[s]", "close_date": "datetime64[s]"})
    pd.testing.assert_frame_equal(got[cols], expected, check_dtype=False)
    assert list(got["country"]) == ["England", "England", "Wales"]


def test_etr_is_headerless_quoted_crlf_27_columns_like_the_real_file(tmp_path):
    raw = write_etr(TRUSTS, tmp_path / "etr.csv").read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == 4  # three CRLF-terminated lines, no header
    assert lines[0].startswith(b'"RAA","ALPHA NHS TRUST","Y56","QKK",')
    assert lines[0].count(b'","') == 26
    real = REFERENCE / "etr_2025-07.csv"
    if real.exists():  # same shape as a real line: 27 quoted fields, CRLF
        first_real = real.read_bytes().split(b"\r\n")[0]
        assert first_real.count(b'","') == lines[0].count(b'","')


def test_etr_zip_holds_etr_csv(tmp_path):
    with zipfile.ZipFile(write_etr(TRUSTS, tmp_path / "etr.zip")) as zf:
        assert zf.namelist() == ["etr.csv"]


# --- Staff Survey ----------------------------------------------------------------------------


def test_staff_survey_round_trip_with_suppressed_unit(tmp_path):
    path = write_staff_survey(SURVEY, tmp_path / "nss.xlsx", 2024)
    got = parse_staff_survey(path.read_bytes(), 2024).set_index("org_code")
    for col in [
        "q4d_pct_satisfied",
        "q6b_pct_agree",
        "q6c_pct_agree",
        "q6d_pct_agree",
        "we_work_flexibly_score",
    ]:
        assert got.loc["RAA", col] == pytest.approx(SURVEY.loc[0, col]), col
        assert got.loc["QXX", col] == pytest.approx(SURVEY.loc[2, col]), col
        assert pd.isna(got.loc["RBB", col]), col  # blank cells, not 0
    assert got.loc["RAA", "responses"] == 13028
    assert got.loc["QXX", "unit_kind"] == "ICB"
    assert got.loc["RAA", "survey_benchmarking_group"] == "Acute and Acute & Community Trusts"


def test_staff_survey_layout_matches_the_real_workbook(tmp_path):
    path = write_staff_survey(SURVEY, tmp_path / "nss.xlsx", 2024)
    wb = openpyxl.load_workbook(path, read_only=True)
    ws = wb["YOUR JOB Q4-6"]
    assert ws["Y1"].value.startswith("Q4d - ")  # same column as the real file
    assert [ws["AB5"].value, ws["AC5"].value, ws["AD5"].value] == [
        "% Satisfied",
        "% Very satisfied",
        "Base (number of responses)",
    ]
    assert ws["A6"].value == "RAA"
    pp = wb["PEOPLE PROMISE ELEMENTS"]
    assert (pp["AM1"].value, pp["AM5"].value) == ("PP6 - We work flexibly", "PP6 - score")
    real = REFERENCE / "NSS24_detailed_spreadsheets_organisational_results.xlsx"
    if real.exists():
        real_wb = openpyxl.load_workbook(real, read_only=True)
        assert set(wb.sheetnames) <= set(real_wb.sheetnames)
        for sheet in ("YOUR JOB Q4-6", "PEOPLE PROMISE ELEMENTS"):
            ours = next(wb[sheet].iter_rows(min_row=1, max_row=5, values_only=True))
            theirs = next(real_wb[sheet].iter_rows(min_row=1, max_row=5, values_only=True))
            assert ours[6:] == theirs[6 : len(ours)], sheet  # same titles in the same columns
        real_wb.close()
    wb.close()


# --- Workforce -------------------------------------------------------------------------------


def test_workforce_round_trip(tmp_path):
    path = write_workforce(WORKFORCE, tmp_path / "workforce.csv")
    got = parse_workforce(path.read_bytes())
    cols = list(WORKFORCE.columns)
    pd.testing.assert_frame_equal(
        got[cols].reset_index(drop=True), WORKFORCE, check_dtype=False, check_exact=False
    )
    assert (got["period_end"] == pd.Timestamp("2025-11-30")).all()


def test_workforce_has_real_header_and_four_row_types(tmp_path):
    text = write_workforce(WORKFORCE, tmp_path / "workforce.csv").read_text()
    header, *rows = text.splitlines()
    real = REFERENCE / "turnover_benchmarking_staff_group_organisation_Nov-25.csv"
    if real.exists():
        assert header == real.read_text().splitlines()[0]
    kinds = [r.split(",")[1] for r in rows]
    assert sorted(set(kinds)) == [
        "Denominator at end of period",
        "Denominator at start of period",
        "Joiners",
        "Leavers",
    ]
    assert len(rows) == 4 * len(WORKFORCE)
    assert '"Scientific, therapeutic & technical staff"' in text  # quoted like the real file
