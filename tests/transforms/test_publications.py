"""Reading trust publications: formats, header matching, limits, coercion, aggregation."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from transforms import publications as pub
from transforms.publications import (
    PublicationError,
    aggregate_requests,
    coerce_request_level,
    read_publication,
)

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"
WORKFORCE = REFERENCE / "turnover_benchmarking_staff_group_organisation_Nov-25.csv"

HEADER = ",".join(pub.SUMMARY_COLUMNS)
ROW = "RJ1,2024-04-01,2024-06-30,All staff groups," + ",".join(
    ["10", "6", "2", "1", "1", "0", "1", "1", "0", "9", "1", "0", "0", "0", "0", "0", "0", "0", "0"]
)


def test_staff_groups_are_the_workforce_statistics_groups():
    if not WORKFORCE.exists():
        pytest.skip(f"real workforce reference file not found at {WORKFORCE}")
    groups = set(pd.read_csv(WORKFORCE, usecols=["STAFF_GROUP_1_NAME"])["STAFF_GROUP_1_NAME"])
    assert set(pub.STAFF_GROUPS) == groups - {"Unknown classification"}


@pytest.mark.parametrize(
    "written, expected",
    [
        ("nurses and health visitors", "Nurses & health visitors"),  # "&" written as "and"
        ("  CENTRAL FUNCTIONS ", "Central functions"),  # case and spaces
        ("Scientific therapeutic & technical staff", "Scientific, therapeutic & technical staff"),
        ("Total", "All staff groups"),  # a documented short name
        ("Porters", "Porters"),  # unknown: kept so the rule can name it
    ],
)
def test_staff_group_matching(written, expected):
    assert pub.normalise_staff_group(written) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("12", 12),
        (12, 12),
        (12.0, 12),  # Excel stores whole numbers as floats
        ("1,234", 1234),  # thousands separator
        ("-3", -3),  # a whole number; "not-negative" rejects it later
        ("12.5", None),
        ("n/a", None),
        ("*", None),  # suppression marks are not counts
        (None, None),
    ],
)
def test_parse_count(value, expected):
    got = pub.parse_count(value)
    assert pd.isna(got) if expected is None else got == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-04-01", "2024-04-01"),
        ("01/04/2024", "2024-04-01"),  # UK day first
        ("1 April 2024", "2024-04-01"),
        ("2024-04-01 00:00:00", "2024-04-01"),
        (date(2024, 4, 1), "2024-04-01"),
        ("April", None),
        ("31/02/2024", None),
    ],
)
def test_parse_date(value, expected):
    got = pub.parse_date(value)
    assert pd.isna(got) if expected is None else got == pd.Timestamp(expected)


def test_header_synonyms_and_spelling_map_to_the_standard():
    header = HEADER.replace("org_code", "ODS Code").replace(
        "approved_with_changes", "Agreed with amendments"
    )
    header = header.replace("requests_received", "Requests-Received").replace(
        "staff_group", "STAFF GROUP"
    )
    parsed = read_publication(f"{header}\n{ROW}\n".encode(), "x.csv")
    assert parsed.form == "summary"
    assert list(parsed.frame.columns) == [*pub.SUMMARY_COLUMNS, "_row"]
    assert parsed.frame.loc[0, "approved_with_changes"] == "2"


def test_row_numbers_are_those_a_person_sees():
    text = f"{HEADER}\n{ROW}\n\n{ROW.replace('All staff groups', 'Midwives')}\n"
    parsed = read_publication(text.encode(), "x.csv")
    # header is row 1; a blank line 3 is skipped but still counted
    assert parsed.frame["_row"].tolist() == [2, 4]


def test_title_row_above_header_is_skipped_with_a_warning():
    text = f"Flexible working requests 2024/25\n{HEADER}\n{ROW}\n"
    parsed = read_publication(text.encode(), "x.csv")
    assert parsed.frame["_row"].tolist() == [3]
    assert any("above the header" in w for w in parsed.warnings)


def test_extra_columns_are_ignored_and_named_in_a_warning():
    text = f"{HEADER},Trust name\n{ROW},Guy’s and St Thomas’\n"
    parsed = read_publication(text.encode("cp1252"), "x.csv")
    assert "Trust name" not in parsed.frame.columns
    assert parsed.warnings == ["ignored extra columns: Trust name"]


def test_two_headers_for_the_same_column_are_refused():
    text = f"{HEADER},ODS code\n{ROW},RJ1\n"
    with pytest.raises(PublicationError) as err:
        read_publication(text.encode(), "x.csv")
    assert err.value.rule == "duplicate-columns" and err.value.column == "org_code"


def test_missing_columns_are_named():
    header = HEADER.replace(",declined_other", "").replace("pending,", "")
    row = ",".join(ROW.split(",")[:-1])
    row = ",".join(v for i, v in enumerate(row.split(",")) if i != 9)
    with pytest.raises(PublicationError) as err:
        read_publication(f"{header}\n{row}\n".encode(), "x.csv")
    assert err.value.rule == "missing-columns"
    assert err.value.column == "pending, declined_other"


def _xlsx(sheets: dict[str, list[list]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for r in rows:
            sheet.append(r)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_reads_sheet_named_data_wherever_it_is():
    row = ROW.split(",")
    data = _xlsx({"Notes": [["About this file"]], "Data": [list(pub.SUMMARY_COLUMNS), row]})
    parsed = read_publication(data, "x.xlsx")
    assert parsed.sheet == "Data"
    assert parsed.frame.loc[0, "org_code"] == "RJ1"


def test_xlsx_dates_and_numbers_arrive_typed():
    row = ROW.split(",")
    row[1], row[2] = date(2024, 4, 1), date(2024, 6, 30)
    row[4:] = [int(v) for v in row[4:]]
    parsed = read_publication(_xlsx({"Figures": [list(pub.SUMMARY_COLUMNS), row]}), "x.xlsx")
    typed = pub.coerce_summary(parsed.frame)
    assert typed.loc[0, "period_start"] == pd.Timestamp("2024-04-01")
    assert typed.loc[0, "requests_received"] == 10


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def test_zip_bomb_refused_by_compression_ratio():
    # 8 MiB of zeros compresses about 1000 times: no real sheet does that
    data = _zip({"xl/worksheets/sheet1.xml": b"\0" * (8 * 1024 * 1024)})
    with pytest.raises(PublicationError) as err:
        read_publication(data, "bomb.xlsx")
    assert err.value.rule == "too-large-inflated"


def test_xlsx_past_inflated_limit_refused(monkeypatch):
    monkeypatch.setattr(pub, "MAX_INFLATED_BYTES", 100_000)
    data = _zip({"xl/worksheets/sheet1.xml": bytes(range(256)) * 1000})  # 256 kB
    with pytest.raises(PublicationError) as err:
        read_publication(data, "big.xlsx")
    assert err.value.rule == "too-large-inflated"


def test_download_past_size_limit_refused(monkeypatch):
    monkeypatch.setattr(pub, "MAX_DOWNLOAD_BYTES", 1000)
    with pytest.raises(PublicationError) as err:
        read_publication((f"{HEADER}\n" + f"{ROW}\n" * 50).encode(), "big.csv")
    assert err.value.rule == "too-large"


REQUESTS = pd.DataFrame(
    {
        "org_code": ["RJ1"] * 6,
        "request_id": ["a", "b", "c", "d", "e", "f"],
        "received_date": [
            "2024-04-10",
            "2024-05-31",
            "2024-06-30",
            "2024-06-01",
            "2024-07-01",  # next quarter
            "2024-04-02",
        ],
        "decision_date": ["2024-06-10", "2024-07-31", "2024-09-01", None, "2024-07-02", None],
        "outcome": [
            "approved_in_full",
            "declined",
            "Agreed with amendments",
            "pending",
            "declined",
            "withdrawn",
        ],
        "escalated": ["no", "yes", "no", "no", "Y", "no"],
        "appeal": [None, "upheld", None, None, "not_upheld", None],
        "decline_reason": [None, "costs", None, None, "other", None],
        "staff_group": [
            "Midwives",
            "Midwives",
            "Central functions",
            "Midwives",
            "Midwives",
            "Central functions",
        ],
        "_row": [2, 3, 4, 5, 6, 7],
    }
)


def _aggregated(period="quarter"):
    typed = coerce_request_level(REQUESTS.astype(object))
    out = aggregate_requests(typed, period=period)
    return out.set_index(["period_start", "staff_group"])


def test_aggregation_counts_each_quarter_and_staff_group():
    out = _aggregated()
    q1 = pd.Timestamp("2024-04-01")
    total = out.loc[(q1, "All staff groups")]
    assert total["period_end"] == pd.Timestamp("2024-06-30")
    assert (total["requests_received"], total["approved_in_full"]) == (5, 1)
    assert (total["approved_with_changes"], total["declined"]) == (1, 1)
    assert (total["withdrawn"], total["pending"]) == (1, 1)
    assert (total["escalated"], total["appeals"], total["appeals_upheld"]) == (1, 1, 1)
    assert total["declined_costs"] == 1 and total["declined_other"] == 0
    assert out.loc[(q1, "Midwives"), "requests_received"] == 3
    q2 = out.loc[(pd.Timestamp("2024-07-01"), "All staff groups")]
    assert (q2["declined"], q2["declined_other"], q2["appeals_upheld"]) == (1, 1, 0)


def test_decided_within_two_months_is_exact_to_the_day():
    # 10 Apr -> 10 Jun is exactly two months (in); 31 May -> 31 Jul is exactly two months
    # (in); 30 Jun -> 1 Sep is one day over (out)
    out = _aggregated()
    q1 = pd.Timestamp("2024-04-01")
    assert out.loc[(q1, "All staff groups"), "decided_within_2_months"] == 2
    assert out.loc[(q1, "Central functions"), "decided_within_2_months"] == 0


def test_two_months_from_month_end_lands_on_month_end():
    within = pub.decided_within_two_months(
        pd.Series(pd.to_datetime(["2023-12-31", "2023-12-31"])),
        pd.Series(pd.to_datetime(["2024-02-29", "2024-03-01"])),
    )
    assert within.tolist() == [True, False]


def test_aggregation_by_financial_year():
    out = _aggregated("financial_year")
    fy = out.loc[(pd.Timestamp("2024-04-01"), "All staff groups")]
    assert fy["period_end"] == pd.Timestamp("2025-03-31")
    assert fy["requests_received"] == 6


# --- whole-column typing gives what cell-by-cell parsing gives ------------------------------

# Every kind of cell a CSV or XLSX brings: each documented format, spacing, midnight times,
# impossible dates, blanks, XLSX dates/numbers/booleans, digits of other scripts.
DATE_CELLS = [
    "2024-04-01", "01/04/2024", "1/4/2024", "2024-4-1", "01-04-2024", "01.04.2024",
    "1 April 2024", "1 Apr 2024", "20240401", "2024-04-01 00:00:00", "2024-04-01T00:00",
    "2024-04-01 12:00", " 2024-04-01 ", "April", "31/02/2024", "29/02/2023", "2024-02-29",
    "2024/04/01", "", None, date(2024, 4, 1), pd.Timestamp("2024-04-01 13:05"), 20240401,
]  # fmt: skip
COUNT_CELLS = [
    "12", " 12 ", "1,234", "1,23", "12.0", "12.", "12.5", "-3", "+4", "n/a", "*", "", None,
    "1e3", "１２", 12, 12.0, 12.5, True, "-0",
]  # fmt: skip


def test_dates_read_column_wise_as_cell_by_cell():
    got = pub.parse_dates(pd.Series(DATE_CELLS, dtype=object))
    expected = [pub.parse_date(v) for v in DATE_CELLS]
    assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in expected]


def test_counts_read_column_wise_as_cell_by_cell():
    got = pub.parse_counts(pd.Series(COUNT_CELLS, dtype=object))
    expected = [pub.parse_count(v) for v in COUNT_CELLS]
    assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in expected]


def test_a_batch_of_files_aggregates_each_file_on_its_own():
    # two files of the same trust in one batch: each keeps its own counts
    typed = coerce_request_level(REQUESTS.astype(object))
    both = pd.concat([typed.assign(_file="a"), typed.iloc[:2].assign(_file="b")])
    out = aggregate_requests(both, by=("_file",))
    totals = out[out["staff_group"] == "All staff groups"].set_index(["_file", "period_start"])
    q1 = pd.Timestamp("2024-04-01")
    assert totals.loc[("a", q1), "requests_received"] == 5
    assert totals.loc[("b", q1), "requests_received"] == 2


# --- aggregation with the equity dimensions (docs/methodology.md, "Equity") ------------------


def _with_equity(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    return coerce_request_level(frame.assign(**columns).astype(object))


def test_the_breakdown_counts_every_request_once_in_each_dimension_it_has():
    typed = _with_equity(
        REQUESTS,
        sex=["F", "Female", "Male", None, "female", "M"],
        ethnic_group=["White", "Black: African", "N", "Indian", "", "Purple"],
        band=["Band 5", "5", "8A", "Band 2", "Band 5", "Band 3"],
    )
    out = pub.aggregate_request_breakdown(typed)
    assert list(out.columns) == list(pub.BREAKDOWN_COLUMNS)
    # Only the dimensions the file has: no age band or disability column, no such rows.
    assert set(out["dimension"]) == {
        "sex", "ethnic_group", "ethnic_group_detailed", "pay_band", "staff_group"
    }  # fmt: skip
    q1 = out[out["period_start"] == pd.Timestamp("2024-04-01")].set_index(
        ["dimension", "group_value"]
    )
    assert q1.loc[
        ("sex", "Female"), ["requests_received", "approved_in_full", "declined"]
    ].tolist() == [2, 1, 1]  # noqa: E501
    assert q1.loc[("sex", "Not stated"), "pending"] == 1  # a blank cell
    assert q1.loc[("sex", "Male"), "approved_with_changes"] == 1  # "Agreed with amendments"
    assert q1.loc[("ethnic_group", "Black or Black British"), "requests_received"] == 2
    assert q1.loc[("ethnic_group", "Not known"), "withdrawn"] == 1  # "Purple"
    assert q1.loc[("ethnic_group_detailed", "Asian: Indian"), "pending"] == 1
    assert q1.loc[("ethnic_group_detailed", "White (not detailed)"), "requests_received"] == 1
    assert q1.loc[("pay_band", "Band 5"), "requests_received"] == 2
    # Every dimension adds up to the quarter's total; the July request is in the next quarter.
    totals = _aggregated().xs("All staff groups", level="staff_group")["requests_received"]
    by_dim = out.groupby(["period_start", "dimension"])["requests_received"].sum()
    for (start, _), n in by_dim.items():
        assert n == totals[start]


def test_detailed_ethnic_groups_only_for_the_files_that_give_them():
    a = _with_equity(REQUESTS, ethnic_group=["Black: African"] + ["White"] * 5)
    b = _with_equity(REQUESTS.assign(org_code="RBB"), ethnic_group=["White"] * 6)
    both = pd.concat([a.assign(_file="a"), b.assign(_file="b")], ignore_index=True)
    out = pub.aggregate_request_breakdown(both, by=("_file",))
    detailed = out[out["dimension"] == "ethnic_group_detailed"]
    assert set(detailed["_file"]) == {"a"}
    assert set(out.loc[out["_file"] == "b", "dimension"]) == {"ethnic_group", "staff_group"}


# --- exact counts, personal data, date order, shared strings --------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("99999999999999999999", 99999999999999999999),  # exact, never through a float
        ("9" * 309, int("9" * 309)),  # a float would overflow to inf
        ("-" + "1" * 25, -int("1" * 25)),
        ("100000000000000001000", 100000000000000001000),  # off by 1,000 stays off by 1,000
        (1e20, 100000000000000000000),  # an XLSX number cell
        (float("inf"), None),
        (float("nan"), None),
        ("0001", 1),
    ],
)
def test_parse_count_is_exact(value, expected):
    assert pub.parse_count(value) == expected


def test_parse_counts_holds_counts_past_the_bound_at_the_bound_plus_one():
    got = pub.parse_counts(
        pd.Series(["99999999999999999999", "-" + "9" * 400, "500000", "1,000", 1e20, "x"])
    )
    over = pub.MAX_COUNT + 1
    assert str(got.dtype) == "Int64"
    assert got.tolist()[:5] == [over, -over, 500000, 1000, over]
    assert got.isna().tolist() == [False] * 5 + [True]


@pytest.mark.parametrize(
    "header, personal",
    [
        ("Name", True),
        ("Nаme", True),  # Cyrillic а
        ("ＮＡＭＥ", True),  # full-width letters
        ("Employee name", True),
        ("Employee (ESR)", True),  # a qualifier in brackets is read past
        ("Pay no.", True),
        ("Pay Number", True),
        ("Staff No", True),
        ("NI number", True),
        ("National Insurance No.", True),
        ("Date of Birth (dd/mm/yyyy)", True),
        ("E-mail address", True),
        ("Applicant's full name", True),
        ("Trust name", False),  # an organisation, not a person
        ("Organisation name", False),
        ("Pay band", False),  # a synonym of band
        ("Staff group name", False),  # a synonym of staff_group
        ("Payroll area", False),
        ("notes", False),
    ],
)
def test_personal_data_headers(header, personal):
    assert pub.is_personal_data_header(header) is personal


@pytest.mark.parametrize(
    "header, column",
    [
        ("requests_recieved", "requests_received"),
        ("Aproved in full", "approved_in_full"),
        ("desicion date", "decision_date"),
        ("colour", None),
    ],
)
def test_closest_column(header, column):
    assert pub.closest_column(header) == column


def test_headers_match_through_look_alike_letters():
    header = HEADER.replace("org_code", "Оrg соde")  # Cyrillic О, с, о
    parsed = read_publication(f"{header}\n{ROW}\n".encode(), "x.csv")
    assert parsed.frame.loc[0, "org_code"] == "RJ1"


def test_date_order_tells_ambiguous_day_first_and_month_first_dates():
    got = pub.date_order(
        pd.Series(["04/01/2024", "30/06/2024", "06/30/2024", "01/01/2024", "2024-04-01", None])
    )
    assert got["ambiguous"].tolist() == [True, False, False, False, False, False]
    assert got["day_first"].tolist() == [False, True, False, False, False, False]
    assert got["month_first"].tolist() == [False, False, True, False, False, False]


def test_xlsx_shared_strings_are_looked_up_only_for_the_cells_read(monkeypatch):
    from flexbench.bench import shared_strings_xlsx

    calls = []
    real = pub._SharedStrings._parse

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(pub._SharedStrings, "_parse", staticmethod(counted))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = shared_strings_xlsx(Path(tmp) / "s.xlsx", 300_000).read_bytes()
    parsed = read_publication(data, "s.xlsx")
    assert parsed.frame.loc[0, "staff_group"] == "All staff groups"
    assert parsed.frame.loc[0, "requests_received"] == 120
    assert len(calls) == 1  # one 1 MiB piece parsed as XML; the rest only counted


def test_xlsx_cell_naming_a_missing_shared_string_is_unreadable():
    import tempfile

    from flexbench.bench import shared_strings_xlsx

    with tempfile.TemporaryDirectory() as tmp:
        data = shared_strings_xlsx(Path(tmp) / "s.xlsx", 10).read_bytes()
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            part = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                part = part.replace(b"<v>0</v>", b"<v>999999</v>", 1)
            target.writestr(item.filename, part)
    with pytest.raises(PublicationError) as caught:
        read_publication(out.getvalue(), "s.xlsx")
    assert caught.value.rule == "unreadable-xlsx"
    assert "shared string 999999" in str(caught.value)


def test_xlsx_personal_data_column_cannot_hide_past_column_200():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "data"
    header = list(pub.SUMMARY_COLUMNS)
    sheet.append(header)
    sheet.append(ROW.split(","))
    sheet.cell(row=1, column=250, value="Employee name")
    sheet.cell(row=2, column=250, value="A. Smith")
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(PublicationError) as caught:
        read_publication(out.getvalue(), "wide.xlsx")
    assert caught.value.rule == "personal-data" and caught.value.sheet == "data"


# --- the quoted cells a declared-schema read may hold (csv_plan) ------------------------------

#: The pattern csv_plan used before it was made faster: the meaning the fast one must keep.
_QUOTED_FIELD_AS_FIRST_WRITTEN = {
    d: re.compile(rf'(?:^|(?<={re.escape(d)}))"(?:[^"\r\n]|"")*"(?={re.escape(d)}|\r?$)', re.M)
    for d in ",;\t|"
}


def test_quoted_cells_are_found_as_the_first_pattern_found_them():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(['"', '""', ",", ";", "\t", "|", "a", " ", "\n", "\r\n", "\r"])

    @settings(max_examples=3000, derandomize=True, database=None, deadline=None)
    @given(st.lists(pieces, max_size=40).map("".join), st.sampled_from(",;\t|"))
    def same(text, delimiter):
        fast = pub._QUOTED_FIELD[delimiter].sub("", text)
        assert fast == _QUOTED_FIELD_AS_FIRST_WRITTEN[delimiter].sub("", text), (text, delimiter)

    same()
    line = 'RJ1,"White: English, Welsh","a ""b"" c",x'
    assert pub._QUOTED_FIELD[","].sub("", line) == "RJ1,,,x"
    assert pub._QUOTED_FIELD[","].sub("", 'a"b,"c"') == 'a"b,'  # a quote inside a cell stays


def test_carriage_returns_decide_a_plan_as_they_did():
    rows = [HEADER, ROW, ROW.replace("RJ1", "RRL")]
    plain = pub.csv_plan("\n".join(rows).encode() + b"\n", "a.csv")
    assert plain is not None and plain.rows == 2
    # Every line ended by CRLF: the same plan; a lone CR, or a blank CRLF line: none.
    assert pub.csv_plan("\r\n".join(rows).encode() + b"\r\n", "a.csv") == plain
    assert (
        pub.csv_plan(("\r\n".join(rows) + "\r\n").replace("\r\n", "\r", 1).encode(), "a.csv")
        is None
    )
    assert pub.csv_plan(("\n".join(rows[:2]) + "\n\r\n" + rows[2]).encode(), "a.csv") is None
    assert pub.csv_plan(("\n".join(rows[:2]) + "\n\n" + rows[2]).encode(), "a.csv") is None


# --- the same counts in SQL (the pipeline's DuckDB pass over a batch) -------------------------


def _over_by(typed: pd.DataFrame, today: date, period: str) -> pd.DataFrame:
    """The rows whose period is over on ``today`` (the ones a summary or breakdown counts)."""
    _, end = pub.period_of(typed["received_date"], period)
    return typed[(end <= pd.Timestamp(today)).to_numpy()]


def _run(sql: str, table: pd.DataFrame) -> pd.DataFrame:
    import duckdb

    con = duckdb.connect()
    con.register("requests", table)
    return con.execute(sql).df()


# A period's last day is the as-of date of each case: that period is counted, the next not.
PERIOD_ENDS = [
    ("quarter", date(2024, 6, 30)),
    ("month", date(2024, 4, 30)),
    ("financial_year", date(2025, 3, 31)),
    ("quarter", date(2024, 9, 30)),
]


@pytest.mark.parametrize("period, today", PERIOD_ENDS)
def test_the_summary_counted_in_sql_is_the_one_aggregate_requests_gives(period, today):
    typed = coerce_request_level(REQUESTS.astype(object))
    other = typed.assign(org_code="RBB", received_date=typed["received_date"][::-1].to_numpy())
    both = pd.concat([typed.assign(_file="b"), other.assign(_file="a")], ignore_index=True)
    codes = pub.request_codes(both, both["_file"])

    got = pub.summary_from_counts(
        _run(pub.request_summary_sql(codes, today, period), codes.table), codes
    )

    expected = aggregate_requests(_over_by(both, today, period), period=period, by=("_file",))
    pd.testing.assert_frame_equal(got.rename(columns={"file": "_file"}), expected)
    ongoing = _run(pub.request_ongoing_sql(today, period), codes.table)
    _, end = pub.period_of(both["received_date"], period)
    late = both[(end > pd.Timestamp(today)).to_numpy()].groupby("_file").size()
    left_out = zip(codes.labels["file"][ongoing["file"]], ongoing["left_out"], strict=True)
    assert dict(left_out) == late.to_dict()


@pytest.mark.parametrize("period, today", PERIOD_ENDS)
def test_the_breakdown_counted_in_sql_is_the_one_aggregate_request_breakdown_gives(period, today):
    a = _with_equity(
        REQUESTS,
        sex=["F", "Female", " MALE ", None, "Not stated", "M"],
        ethnic_group=["White", "Black: African", "N", "Indian", "", "Purple"],
        band=["Band 5", "5", "8A", "Band 2", "Band 5", "Band 3"],
    )
    b = _with_equity(REQUESTS.assign(org_code="RBB"), ethnic_group=["White"] * 6)
    both = pd.concat([a.assign(_file="a"), b.assign(_file="b")], ignore_index=True)
    codes = pub.breakdown_codes(both, both["_file"])

    got = pub.breakdown_from_counts(
        _run(pub.request_breakdown_sql(codes, today, period), codes.table), codes
    )

    expected = pub.aggregate_request_breakdown(
        _over_by(both, today, period), period=period, by=("_file",)
    )
    pd.testing.assert_frame_equal(got.rename(columns={"file": "_file"}), expected)
    assert len(got) > 0
