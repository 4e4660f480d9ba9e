"""ODS etr parser, benchmark population and merging of newer etr files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from transforms.ods import benchmark_population, merge_etr, parse_etr
from transforms.reference_quality import SchemaChangeError

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"
ETR = REFERENCE / "etr_2025-07.csv"


def etr_line(code, name, region="Y56", icb="QKK", opened="20000401", closed="", gor="H"):
    fields = [""] * 27
    fields[:4] = [code, name, region, icb]
    fields[9], fields[10], fields[11], fields[21] = "SE1 9RT", opened, closed, "0"
    fields[23] = gor
    return ",".join(f'"{f}"' for f in fields)


def blank_as_none(values: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in values]


def etr_bytes(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


@pytest.fixture(scope="module")
def real_etr() -> pd.DataFrame:
    if not ETR.exists():
        pytest.skip(f"real reference files absent: {ETR} not found")
    return parse_etr(ETR.read_bytes(), ETR.name)


# --- the real file: facts checked by hand in etr_2025-07.csv ---------------------------------


def test_real_etr_keeps_every_trust_open_and_closed(real_etr):
    # 210 lines in the file (README and `wc -l`); 5 have a close date in column 12.
    assert len(real_etr) == 210
    assert real_etr["close_date"].notna().sum() == 5


def test_real_etr_reads_one_trust_as_printed(real_etr):
    # Line 8: "R1F","ISLE OF WIGHT NHS TRUST","Y59","QRL",...,"PO30 5TG","20120401","",...
    r1f = real_etr.set_index("org_code").loc["R1F"]
    assert r1f["name"] == "ISLE OF WIGHT NHS TRUST"
    assert (r1f["region_code"], r1f["icb_code"], r1f["postcode"]) == ("Y59", "QRL", "PO30 5TG")
    assert r1f["open_date"] == pd.Timestamp("2012-04-01")
    assert pd.isna(r1f["close_date"])
    assert r1f["country"] == "England"


def test_real_etr_welsh_trusts_are_wales(real_etr):
    # Column 3 is "W00" on three lines: RQF Velindre, RT4 Welsh Ambulance, RYT Public Health Wales.
    wales = real_etr[real_etr["country"] == "Wales"]
    assert sorted(wales["org_code"]) == ["RQF", "RT4", "RYT"]


def test_real_population_on_1_july_2025_is_202_open_english_trusts(real_etr):
    # 207 lines have a Y5x/Y6x grouping; all 5 closed trusts closed in 2024 -> 202 open.
    population = benchmark_population(real_etr, "2025-07-01", "2025-07-01")
    assert len(population) == 202
    assert not population["part_window"].any()
    assert {"RQF", "RAP", "R1C"}.isdisjoint(population["org_code"])


def test_real_population_2024_25_includes_part_window_trusts(real_etr):
    # RAP closes 20241231 (275 days of Apr-Dec 2024 in the window);
    # G6V2S opens 20241101 (Nov 30 + Dec 31 + Jan 31 + Feb 28 + Mar 31 = 151 days).
    population = benchmark_population(real_etr, "2024-04-01", "2025-03-31").set_index("org_code")
    assert len(population) == 207
    assert population.loc["RAP", "part_window"]
    assert population.loc["RAP", "days_in_window"] == 275
    assert population.loc["G6V2S", "days_in_window"] == 151
    assert not population.loc["RJ1", "part_window"]
    assert population.loc["RJ1", "days_in_window"] == 365


def test_parsing_same_bytes_twice_gives_identical_frames(real_etr):
    again = parse_etr(ETR.read_bytes(), ETR.name)
    pd.testing.assert_frame_equal(real_etr, again)


def test_zip_holding_etr_csv_parses_like_the_csv():
    data = etr_bytes(etr_line("RJ1", "GUY'S"), etr_line("RQF", "VELINDRE", region="W00"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("etr.csv", data)
    pd.testing.assert_frame_equal(parse_etr(buf.getvalue(), "etr.zip"), parse_etr(data, "etr.csv"))


# --- country from the GOR code where the national grouping is empty (ODS-4) -----------------

GOR_CASES = [
    # (national grouping, GOR code in column 24, country)
    ("Y56", "H", "England"),
    ("W00", "W", "Wales"),
    ("", "W", "Wales"),  # a later edition leaves the grouping empty for some Welsh trusts
    ("", "H", "England"),  # an English trust without its grouping: still English
    ("", "K", "England"),
    ("", "", "Other"),  # nothing to tell the country: the suite quarantines the row
    ("", "Z", "Other"),
    ("W00", "H", "Wales"),  # the grouping, where given, decides
]


@pytest.mark.parametrize(("region", "gor", "country"), GOR_CASES)
def test_the_country_comes_from_the_gor_code_where_the_grouping_is_empty(region, gor, country):
    df = parse_etr(etr_bytes(etr_line("RQF", "VELINDRE", region=region, icb="", gor=gor)), "etr")

    assert df["country"].tolist() == [country]
    assert blank_as_none(df["region_code"]) == [region or None]
    assert blank_as_none(df["icb_code"]) == [None]


def test_a_welsh_trust_without_grouping_is_outside_the_english_population():
    data = etr_bytes(etr_line("RJ1", "GUY'S"), etr_line("RQF", "VELINDRE", region="", gor="W"))
    population = benchmark_population(parse_etr(data, "etr.csv"), "2025-04-01", "2026-03-31")
    assert population["org_code"].tolist() == ["RJ1"]


def test_an_unreadable_date_is_a_problem_of_its_row_only():
    data = etr_bytes(
        etr_line("RJ1", "GUY'S"),
        etr_line("RQF", "VELINDRE", opened="20250231"),  # 31 February
        etr_line("RYJ", "IMPERIAL"),
    )
    df = parse_etr(data, "etr.csv")

    unreadable = "open date (column 11) '20250231' is not a YYYYMMDD date"
    assert blank_as_none(df["_problem"]) == [None, unreadable, None]
    assert df["open_date"].isna().tolist() == [False, True, False]


# --- broken files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error", "names"),
    [
        # an error page served instead of the file
        (
            b"<!DOCTYPE html><html><body>Service unavailable</body></html>",
            SchemaChangeError,
            "HTML",
        ),
        # a column dropped upstream
        (
            etr_bytes(",".join(etr_line("RJ1", "X").split(",")[:26])),
            SchemaChangeError,
            "26 columns",
        ),
        # a header row added upstream
        (
            etr_bytes(",".join(["CODE", "NAME", "GROUP", "ICB"] + [f"C{i}" for i in range(23)])),
            SchemaChangeError,
            "header",
        ),
        # a date not in YYYYMMDD
        (etr_bytes(etr_line("RJ1", "X", opened="01/04/2000")), ValueError, "open date"),
        # the close date column holds something else on most rows: it moved
        (
            etr_bytes(*[etr_line(f"R{i}A", "X", closed="SE1 9RT") for i in range(3)]),
            SchemaChangeError,
            "close date \\(column 12\\): 3 of 3 values",
        ),
    ],
)
def test_broken_etr_is_refused_naming_the_problem(data, error, names):
    with pytest.raises(error, match=names):
        parse_etr(data, "etr.csv")


def test_zip_without_etr_csv_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(SchemaChangeError, match="etr.csv"):
        parse_etr(buf.getvalue(), "etr.zip")


# --- population rule, table-driven -----------------------------------------------------------

POP_CASES = [
    # code, opened, closed, in Apr-Jun 2025 window?, part_window
    ("RA1", "20000401", "", True, False),  # open throughout
    ("RA2", "20000401", "20250331", False, None),  # closed the day before the window
    ("RA3", "20000401", "20250401", True, True),  # closed on day 1: open that day (ODS-1)
    ("RA4", "20250515", "", True, True),  # opened mid-window
    ("RA5", "20250701", "", False, None),  # opened the day after the window
    ("RA6", "20000401", "20250630", True, False),  # closed on the last day: whole window
]


@pytest.mark.parametrize(("code", "opened", "closed", "included", "part"), POP_CASES)
def test_population_window_edges(code, opened, closed, included, part):
    ods = parse_etr(etr_bytes(etr_line(code, "T", opened=opened, closed=closed)), "etr.csv")
    population = benchmark_population(ods, "2025-04-01", "2025-06-30")
    assert (code in set(population["org_code"])) is included
    if included:
        assert bool(population["part_window"].iloc[0]) is part


def test_population_excludes_welsh_trusts():
    ods = parse_etr(etr_bytes(etr_line("RQF", "VELINDRE", region="W00")), "etr.csv")
    assert benchmark_population(ods, "2025-04-01", "2025-06-30").empty


# --- merging a newer etr file ----------------------------------------------------------------


def test_newer_file_changes_population_before_and_after():
    july = parse_etr(
        etr_bytes(etr_line("RA1", "OLD TRUST"), etr_line("RA2", "GOING TRUST", icb="QAA")),
        "etr.csv",
    )
    # October file: RA2 closes on 31 Aug, RA3 opens 1 Sep, RA1 moves ICB and is renamed.
    october = parse_etr(
        etr_bytes(
            etr_line("RA1", "NEW NAME TRUST", icb="QBB"),
            etr_line("RA2", "GOING TRUST", icb="QAA", closed="20250831"),
            etr_line("RA3", "NEW TRUST", opened="20250901"),
        ),
        "etr.csv",
    )
    current, history = merge_etr(None, july, "2025-07-01")
    current, history = merge_etr(current, october, "2025-10-01", history)

    august = benchmark_population(current, "2025-08-01", "2025-08-31")
    october_pop = benchmark_population(current, "2025-10-01", "2025-10-31")
    assert sorted(august["org_code"]) == ["RA1", "RA2"]
    assert sorted(october_pop["org_code"]) == ["RA1", "RA3"]
    ra1 = current.set_index("org_code").loc["RA1"]
    assert (ra1["name"], ra1["icb_code"]) == ("NEW NAME TRUST", "QBB")

    ra1_names = history[history["org_code"] == "RA1"].reset_index(drop=True)
    assert list(ra1_names["name"]) == ["OLD TRUST", "NEW NAME TRUST"]
    assert ra1_names.loc[0, "valid_to"] == pd.Timestamp("2025-09-30")
    assert ra1_names.loc[1, "valid_from"] == pd.Timestamp("2025-10-01")
    assert pd.isna(ra1_names.loc[1, "valid_to"])


def test_trust_absent_from_newer_file_is_kept_as_last_seen():
    first = parse_etr(etr_bytes(etr_line("RA1", "A"), etr_line("RA2", "B")), "etr.csv")
    second = parse_etr(etr_bytes(etr_line("RA1", "A")), "etr.csv")
    current, history = merge_etr(None, first, "2025-07-01")
    current, history = merge_etr(current, second, "2025-10-01", history)
    kept = current.set_index("org_code").loc["RA2"]
    assert kept["name"] == "B"
    assert not kept["in_latest_file"]
    assert kept["last_seen"] == pd.Timestamp("2025-07-01")
    assert "RA2" in set(history["org_code"])


def test_merging_the_same_file_twice_changes_nothing():
    etr = parse_etr(etr_bytes(etr_line("RA1", "A"), etr_line("RA2", "B")), "etr.csv")
    once, history_once = merge_etr(None, etr, "2025-07-01")
    twice, history_twice = merge_etr(once, etr, "2025-07-01", history_once)
    pd.testing.assert_frame_equal(once, twice)
    pd.testing.assert_frame_equal(history_once, history_twice)
