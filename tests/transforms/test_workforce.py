"""Workforce Statistics parser: staff in post per organisation and staff group."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from transforms.reference_quality import SchemaChangeError
from transforms.workforce import KNOWN_STAFF_GROUPS, parse_workforce, period_end_of

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"
WORKFORCE = REFERENCE / "turnover_benchmarking_staff_group_organisation_Nov-25.csv"

HEADER = (
    "PERIOD,TYPE,NHSE_REGION_CODE,NHSE_REGION_NAME,ICS_CODE,ICS_NAME,REPORTING_ORG_NAME,"
    "REPORTING_ORG_CODE,CLUSTER_GROUP,BENCHMARK_GROUP,STAFF_GROUP_1_NAME,HC,FTE"
)


def row(kind="Denominator at end of period", group="All staff groups", hc="100", fte="90.5"):
    return (
        f"202510 to 202511,{kind},Y56,London,QKK,South East London,Sample Trust,RAA,"
        f'Acute,Acute - Teaching,"{group}",{hc},{fte}'
    )


def csv_bytes(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


@pytest.fixture(scope="module")
def real_workforce() -> pd.DataFrame:
    if not WORKFORCE.exists():
        pytest.skip(f"real reference files absent: {WORKFORCE} not found")
    return parse_workforce(WORKFORCE.read_bytes())


# --- the real file: facts checked by hand --------------------------------------------------


def test_real_staff_in_post_for_one_trust(real_workforce):
    # Line 2 of the CSV: "202510 to 202511,Denominator at end of period,Y56,London,QKK,
    # South East London,Guy's and St Thomas' NHS Foundation Trust,RJ1,Acute,Acute - Teaching,
    # All staff groups,22634,21053.01846". (Its start-of-period row says 22555: not staff in post.)
    rj1 = real_workforce[
        (real_workforce["org_code"] == "RJ1")
        & (real_workforce["staff_group"] == "All staff groups")
    ]
    assert len(rj1) == 1
    got = rj1.iloc[0]
    assert got["headcount"] == 22634
    assert got["fte"] == pytest.approx(21053.01846)
    assert (got["benchmark_group"], got["cluster_group"]) == ("Acute - Teaching", "Acute")
    assert (got["region_code"], got["ics_code"]) == ("Y56", "QKK")
    assert got["ics_name"] == "South East London"
    assert got["period"] == "202510 to 202511"
    assert got["period_end"] == pd.Timestamp("2025-11-30")


def test_real_file_keeps_only_end_of_period_rows_and_every_staff_group(real_workforce):
    # `cut -d, -f2 | sort | uniq -c`: 2774 "Denominator at end of period" rows of 9,351.
    assert len(real_workforce) == 2774
    assert set(real_workforce["staff_group"]) == set(KNOWN_STAFF_GROUPS)


def test_parsing_same_bytes_twice_gives_identical_frames(real_workforce):
    pd.testing.assert_frame_equal(real_workforce, parse_workforce(WORKFORCE.read_bytes()))


# --- rules on small files ------------------------------------------------------------------


def test_only_denominator_at_end_of_period_is_staff_in_post():
    data = csv_bytes(
        row(hc="100"),
        row(kind="Denominator at start of period", hc="95"),
        row(kind="Joiners", hc="7"),
        row(kind="Leavers", hc="2"),
    )
    got = parse_workforce(data)
    assert list(got["headcount"]) == [100]
    assert list(got["_row"]) == [2]  # line 2 of the file, for validation reports


@pytest.mark.parametrize(
    ("period", "end"),
    [
        ("202510 to 202511", "2025-11-30"),
        ("202401 to 202402", "2024-02-29"),  # leap year
        ("202503", "2025-03-31"),
    ],
)
def test_period_end_is_last_day_of_last_month(period, end):
    assert period_end_of(period) == pd.Timestamp(end).date()


def test_every_real_icb_has_one_name(real_workforce):
    # `cut -d, -f5,6 | sort -u`: 42 ICS codes, each with one ICS_NAME (QOP: Greater Manchester).
    names = real_workforce.dropna(subset=["ics_code"]).groupby("ics_code")["ics_name"].nunique()
    assert len(names) == 42 and (names == 1).all()
    qop = real_workforce.loc[real_workforce["ics_code"] == "QOP", "ics_name"]
    assert set(qop) == {"Greater Manchester"}


# --- a later edition: columns read by name -------------------------------------------------


def test_a_later_edition_with_a_new_column_reordered_columns_and_a_renamed_icb_reads_the_same():
    # The next edition adds ICS_CODE_2026, moves ICS_NAME to the end and renames QKK: the
    # columns are read by name, and the row carries the new name as published.
    columns = HEADER.split(",")
    later = [c for c in columns if c != "ICS_NAME"] + ["ICS_CODE_2026", "ICS_NAME"]
    values = dict(zip(columns, next(csv.reader([row()])), strict=True))
    values.update(ICS_NAME="South East London (renamed)", ICS_CODE_2026="QKK")
    line = ",".join(f'"{values[c]}"' for c in later)
    got = parse_workforce(csv_bytes(line, header=",".join(later))).iloc[0]
    assert (got["org_code"], got["headcount"], got["ics_code"]) == ("RAA", 100, "QKK")
    assert got["ics_name"] == "South East London (renamed)"


def test_a_blank_icb_name_is_read_as_unknown():
    got = parse_workforce(csv_bytes(row().replace(",South East London,", ",,"))).iloc[0]
    assert got["ics_code"] == "QKK" and pd.isna(got["ics_name"])


# --- schema changes and broken files ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "names"),
    [
        # HC renamed to HEADCOUNT upstream
        # ICS_NAME dropped upstream: the names would be lost
        (csv_bytes(row(), header=HEADER.replace(",ICS_NAME,", ",ICS_LABEL,")), "ICS_NAME"),
        (csv_bytes(row(), header=HEADER.replace(",HC,", ",HEADCOUNT,")), "HC"),
        # an unknown row type appears
        (csv_bytes(row(kind="Transfers in")), "Transfers in"),
        # an error page instead of the CSV
        (b"<html><head><title>Page not found</title></head></html>", "HTML"),
        # the period is written differently
        (csv_bytes(row().replace("202510 to 202511", "Oct-Nov 2025")), "Oct-Nov 2025"),
    ],
)
def test_schema_change_fails_naming_what_changed(data, names):
    with pytest.raises(SchemaChangeError, match=names):
        parse_workforce(data)


def test_a_non_numeric_headcount_is_a_problem_of_its_row_only():
    # Row 3 of the file: its HC is unreadable; the row is noted (the load quarantines it), the
    # other row is read as published.
    df = parse_workforce(csv_bytes(row(group="Managers"), row(hc="n/a")))

    assert df["_row"].tolist() == [2, 3]
    problems = [p if isinstance(p, str) else None for p in df["_problem"]]
    assert problems == [None, "HC is not a number"]
    assert df["headcount"].tolist()[0] == 100 and pd.isna(df["headcount"].tolist()[1])


def test_a_column_mostly_unreadable_has_changed_type_and_refuses_the_file():
    # HC and FTE swapped with the names upstream: most HC values are not numbers.
    rows = [row(hc="Sample Trust"), row(hc="Other Trust", group="Managers"), row(group="Midwives")]
    with pytest.raises(SchemaChangeError, match="HC: 2 of 3 values.*'Sample Trust'"):
        parse_workforce(csv_bytes(*rows))


def test_a_new_staff_group_is_kept_as_published_for_the_suite_to_quarantine():
    df = parse_workforce(csv_bytes(row(), row(group="Physician associates")))

    assert df["staff_group"].tolist() == ["All staff groups", "Physician associates"]
    assert "Physician associates" not in KNOWN_STAFF_GROUPS


def test_schema_change_error_is_a_value_error():
    assert issubclass(SchemaChangeError, ValueError)
