"""Reference data ingestion end to end: files (file:// URLs) → landing → parse → GX → warehouse.

The files are written by the sample writers in the real official formats (flexbench/sample/
reference.py), or are the real files in ../shared/data/reference/. The pipeline functions the
reference DAG calls are called directly (no Airflow): fetch(settings) then load(settings, ...).
"""

from __future__ import annotations

import math
import shutil
import sys
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

# tests/warehouse (a folder of tests) would shadow the real `warehouse` package: put the
# project root first (as tests/flexbench/test_pipeline_pledge.py does).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
if "warehouse" in sys.modules and getattr(sys.modules["warehouse"], "__file__", None) is None:
    del sys.modules["warehouse"]

import warehouse  # noqa: E402
from flexbench import settings as settings_mod  # noqa: E402
from flexbench.pipeline import reference  # noqa: E402
from flexbench.sample.reference import write_etr, write_staff_survey, write_workforce  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"


def trusts(*rows) -> pd.DataFrame:
    """An etr frame from (code, name, region, icb, open, close) rows."""
    df = pd.DataFrame(
        rows, columns=["org_code", "name", "region_code", "icb_code", "open_date", "close_date"]
    )
    df["postcode"] = "AB1 2CD"
    df["open_date"] = pd.to_datetime(df["open_date"])
    df["close_date"] = pd.to_datetime(df["close_date"])
    return df


# July 2024: five English trusts and a Welsh one.
ETR_2024 = trusts(
    ("RAA", "ALPHA NHS TRUST", "Y56", "QKK", "1993-04-01", None),
    ("RBB", "BETA NHS TRUST", "Y58", "QUY", "1994-04-01", None),
    ("RDD", "DELTA NHS TRUST", "Y60", "QJ2", "1995-04-01", None),
    ("REE", "EPSILON NHS TRUST", "Y61", "QH8", "1996-04-01", None),
    ("RFF", "FOXTROT NHS TRUST", "Y62", "QOP", "1997-04-01", None),
    ("7A1", "BETSI CADWALADR UNIVERSITY LOCAL HEALTH BOARD", "W15", "Q99", "2009-10-01", None),
)
# July 2025: BETA closed on 31 March 2025 and CHARLIE opened the next day; DELTA changed its
# name and ICB; EPSILON is no longer listed (kept as last seen).
ETR_2025 = trusts(
    ("RAA", "ALPHA NHS TRUST", "Y56", "QKK", "1993-04-01", None),
    ("RBB", "BETA NHS TRUST", "Y58", "QUY", "1994-04-01", "2025-03-31"),
    ("RCC", "CHARLIE NHS FOUNDATION TRUST", "Y58", "QUY", "2025-04-01", None),
    ("RDD", "DELTA UNIVERSITY HOSPITALS NHS TRUST", "Y60", "QNC", "1995-04-01", None),
    ("RFF", "FOXTROT NHS TRUST", "Y62", "QOP", "1997-04-01", None),
    ("7A1", "BETSI CADWALADR UNIVERSITY LOCAL HEALTH BOARD", "W15", "Q99", "2009-10-01", None),
)

SURVEY = pd.DataFrame(
    {
        "org_code": ["RAA", "RBB", "RDD", "QXX"],
        "org_name": ["Alpha NHS Trust", "Beta NHS Trust", "Delta NHS Trust", "NHS Sample ICB"],
        "q4d_pct_satisfied": [57.3, 48.0, math.nan, 41.0],
        "q6b_pct_agree": [51.2, 50.0, math.nan, 45.5],
        "q6c_pct_agree": [54.4, 52.0, math.nan, 60.0],
        "q6d_pct_agree": [70.4, 66.0, math.nan, 66.6],
        "we_work_flexibly_score": [6.25, 6.0, math.nan, 5.9],
        "survey_benchmarking_group": [
            "Acute and Acute & Community Trusts",
            "Acute and Acute & Community Trusts",
            "Acute and Acute & Community Trusts",
            "ICBs",
        ],
        "responses": [1302, 800, 7, 310],
    }
)

WORKFORCE = pd.DataFrame(
    {
        "org_code": ["RAA", "RAA", "RBB", "RDD"],
        "org_name": ["Alpha NHS Trust", "Alpha NHS Trust", "Beta NHS Trust", "Delta NHS Trust"],
        "period": ["202510 to 202511"] * 4,
        "staff_group": [
            "All staff groups",
            "Scientific, therapeutic & technical staff",
            "All staff groups",
            "All staff groups",
        ],
        "headcount": [2263, 384, 410, 990],
        "fte": [2105.5, 351.2, 388.5, 900.0],
        "benchmark_group": ["Acute - Teaching"] * 2 + ["Acute - Medium", "Acute - Small"],
        "cluster_group": ["Acute"] * 4,
        "region_code": ["Y56", "Y56", "Y58", "Y60"],
        "ics_code": ["QKK", "QKK", "QUY", "QJ2"],
        "ics_name": ["South East London"] * 2
        + ["Bristol, North Somerset and South Gloucestershire", "Derby and Derbyshire"],
    }
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("FLEXBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("FLEXBENCH_ALLOW_LOCAL_URLS", raising=False)


def make_settings(tmp_path: Path, etr: Path, survey: Path | None = None, workforce=None):
    lines = ["allow_local_urls: true", f"ods_trusts: {{url: '{etr.as_uri()}'}}"]
    if survey is not None:
        lines.append(f"staff_survey: [{{year: 2024, url: '{survey.as_uri()}'}}]")
    if workforce is not None:
        lines.append(f"workforce: [{{url: '{workforce.as_uri()}'}}]")
    sources = tmp_path / "sources.yml"
    sources.write_text("\n".join(lines) + "\n")
    return settings_mod.load(sources=sources, warehouse=tmp_path / "data" / "flexbench.duckdb")


def run(settings) -> dict:
    return reference.load(settings, reference.fetch(settings))


def query(settings, sql: str, params=None) -> pd.DataFrame:
    con = warehouse.connect(settings.warehouse_path, read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def snapshot(settings, tables) -> dict[str, pd.DataFrame]:
    return {t: query(settings, f"select * from {t} order by all") for t in tables}


def population(settings, as_of: date) -> dict[str, bool]:
    """intermediate.int_trust_population for a window ending at ``as_of`` (no publications
    loaded, so the window is the 12 months up to as_of): org_code -> part_window."""
    con = warehouse.connect(settings.warehouse_path)
    try:
        warehouse.build_layers_named(
            con,
            [
                "staging.publications",
                "intermediate.int_benchmark_window",
                "intermediate.int_trust_population",
            ],
            {"as_of": warehouse.sql_literal(as_of)},
        )
        df = con.execute("select org_code, part_window from intermediate.int_trust_population").df()
    finally:
        con.close()
    return dict(zip(df["org_code"], df["part_window"], strict=True))


def write_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "etr_2024": write_etr(ETR_2024, folder / "etr_2024.csv"),
        "etr_2025": write_etr(ETR_2025, folder / "etr.zip"),
        "survey": write_staff_survey(SURVEY, folder / "nss24.xlsx", 2024),
        "workforce": write_workforce(WORKFORCE, folder / "workforce.csv"),
    }


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    return write_files(tmp_path / "published")


@pytest.fixture(scope="module")
def first_load(tmp_path_factory):
    """A warehouse with the 2024 etr, the survey and the workforce file loaded once: copied by
    each test that starts from it (a load runs three GX suites; doing it once keeps tests fast).
    Returns the folder and the first load's summary."""
    base = tmp_path_factory.mktemp("first-load")
    files = write_files(base / "published")
    result = run(make_settings(base, files["etr_2024"], files["survey"], files["workforce"]))
    return base, result


@pytest.fixture
def loaded(first_load, tmp_path):
    """A copy of the first load: (settings, files); the files may be changed by the test."""
    base, _ = first_load
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    files = {
        name: tmp_path / "published" / path
        for name, path in {
            "etr_2024": "etr_2024.csv",
            "etr_2025": "etr.zip",
            "survey": "nss24.xlsx",
            "workforce": "workforce.csv",
        }.items()
    }
    return make_settings(tmp_path, files["etr_2024"], files["survey"], files["workforce"]), files


# --- a newer etr file -----------------------------------------------------------------------


def test_a_newer_etr_file_gives_the_right_population_before_and_after_the_change(tmp_path, files):
    run(make_settings(tmp_path, files["etr_2024"]))
    settings = make_settings(tmp_path, files["etr_2025"])
    run(settings)

    # Calendar 2024: BETA still open, CHARLIE not yet; EPSILON kept as last seen; no Wales.
    assert population(settings, date(2024, 12, 31)) == {
        "RAA": False,
        "RBB": False,
        "RDD": False,
        "REE": False,
        "RFF": False,
    }
    # April 2025 to March 2026: BETA closed before it began, CHARLIE open throughout.
    assert population(settings, date(2026, 3, 31)) == {
        "RAA": False,
        "RCC": False,
        "RDD": False,
        "REE": False,
        "RFF": False,
    }
    # A window across the change holds both, each marked as there for part of it.
    across = population(settings, date(2025, 9, 30))
    assert (across["RBB"], across["RCC"], across["RAA"]) == (True, True, False)


def test_a_newer_etr_file_updates_names_and_icbs_and_keeps_former_names(tmp_path, files):
    run(make_settings(tmp_path, files["etr_2024"]))
    settings = make_settings(tmp_path, files["etr_2025"])
    run(settings)

    delta = query(settings, "select name, icb_code from staging.ods_trusts where org_code = 'RDD'")
    assert delta.iloc[0].tolist() == ["DELTA UNIVERSITY HOSPITALS NHS TRUST", "QNC"]
    names = query(
        settings, "select name from staging.ods_trust_names where org_code = 'RDD' order by name"
    )["name"].tolist()
    assert names == ["DELTA NHS TRUST", "DELTA UNIVERSITY HOSPITALS NHS TRUST"]
    beta = query(settings, "select close_date from staging.ods_trusts where org_code = 'RBB'")
    assert str(beta["close_date"][0])[:10] == "2025-03-31"
    # Both etr versions are kept in raw (history is never lost).
    versions = query(settings, "select count(distinct sha256) as n from raw.ods_trusts")
    assert versions["n"][0] == 2


# --- idempotence ------------------------------------------------------------------------------

TABLES = [
    "raw.ods_trusts",
    "raw.staff_survey",
    "raw.workforce",
    "staging.ods_trusts",
    "staging.ods_trust_names",
    "staging.staff_survey",
    "staging.workforce",
    "audit.reference_coverage",
]


def test_the_load_leaves_each_trusts_headcount_for_the_publications_validation(loaded):
    settings, files = loaded
    # All staff groups only (RAA's 384 is one staff group); what the publications' rule
    # "requests-within-headcount" reads (validation never opens the warehouse).
    assert reference.read_headcounts(settings) == {"RAA": 2263, "RBB": 410, "RDD": 990}
    # A later edition where RAA has shrunk: the bound keeps the largest headcount given.
    later = WORKFORCE.assign(period="202511 to 202512", headcount=[2000, 300, 450, 990])
    write_workforce(later, files["workforce"])
    run(settings)
    assert reference.read_headcounts(settings) == {"RAA": 2263, "RBB": 450, "RDD": 990}
    reference.headcounts_path(settings).write_text("{not json")
    with pytest.raises(reference.ReferenceLoadError, match="next reference load writes it"):
        reference.read_headcounts(settings)


def test_loading_the_same_files_twice_changes_nothing(first_load, loaded):
    _, first = first_load
    settings, _ = loaded
    before = snapshot(settings, TABLES)

    second = run(settings)

    assert [s["status"] for s in first["sources"]] == ["loaded"] * 3
    assert [s["status"] for s in second["sources"]] == ["unchanged"] * 3
    after = snapshot(settings, TABLES)
    for table in TABLES:
        pd.testing.assert_frame_equal(after[table], before[table], obj=table)


def test_the_coverage_summary_names_trusts_missing_from_a_source_and_the_reverse(tmp_path, files):
    settings = make_settings(tmp_path, files["etr_2025"], files["survey"], files["workforce"])
    result = run(settings)

    coverage = query(settings, "select org_code, source, issue from audit.reference_coverage")
    found = set(zip(coverage["org_code"], coverage["source"], strict=True))
    # CHARLIE and FOXTROT are open trusts the survey and workforce lack.
    assert {("RCC", "staff_survey"), ("RFF", "staff_survey")} <= found
    assert {("RCC", "workforce"), ("RFF", "workforce")} <= found
    # BETA closed, yet the survey and workforce still carry it (the reverse direction).
    assert ("RBB", "staff_survey") in found and ("RBB", "workforce") in found
    # An ICB in the survey is not a trust: not reported.
    assert "QXX" not in set(coverage["org_code"])
    assert result["coverage_issues"] == len(coverage)


# --- a broken file keeps the previous data ---------------------------------------------------


def rename_header(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8-sig")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def add_staff_group(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8-sig")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def move_q4d_title(path: Path) -> None:
    """Move the Q4d block title off row 1 (where every year's workbook has its titles)."""
    book = openpyxl.load_workbook(path)
    for sheet in book.worksheets:
        for cell in sheet[1]:
            if isinstance(cell.value, str) and cell.value.startswith("Q4d"):
                sheet.cell(row=2, column=cell.column, value=cell.value)
                cell.value = None
                book.save(path)
                return
    raise AssertionError("no Q4d block in the sample workbook")


def drop_etr_column(path: Path) -> None:
    lines = path.read_bytes().decode("latin-1").splitlines()
    path.write_bytes(("\r\n".join(line.rsplit(",", 1)[0] for line in lines) + "\r\n").encode())


BROKEN = [
    # (file to break, how, source, words the error must contain)
    (
        "workforce",
        lambda p: rename_header(p, "STAFF_GROUP_1_NAME", "STAFF_GROUP"),
        "workforce",
        "STAFF_GROUP_1_NAME",
    ),
    (
        "workforce",
        lambda p: add_staff_group(
            p, "Scientific, therapeutic & technical staff", "Digital and data staff"
        ),
        "workforce",
        # A new staff group is a row-level problem; here it is a quarter of the tiny file, so
        # too few rows are left against the last edition: the file is rejected as a whole.
        "fewer than 90% of the 4 rows of the last loaded edition",
    ),
    ("survey", move_q4d_title, "staff_survey", "'Q4d' not found on row 1"),
    ("etr_2024", drop_etr_column, "ods_trusts", "etr has 26 columns, expected 27"),
]


@pytest.mark.parametrize(
    ("name", "breaks", "source", "words"),
    BROKEN,
    ids=["renamed-column", "new-staff-group", "moved-q4d", "etr-column"],
)
def test_a_broken_file_keeps_the_previous_data_and_says_what_moved(
    loaded, name, breaks, source, words
):
    settings, files = loaded
    before = snapshot(settings, TABLES)

    breaks(files[name])
    with pytest.raises(reference.ReferenceLoadError) as error:
        run(settings)

    message = str(error.value)
    assert words in message
    assert message.startswith(f"{source} ") and "previous data kept" in message
    after = snapshot(settings, TABLES)
    for table in TABLES:
        pd.testing.assert_frame_equal(after[table], before[table], obj=table)
    audit = query(
        settings,
        "select status, reasons from audit.reference_loads where source = ? "
        "order by loaded_at desc limit 1",
        [source],
    )
    assert audit["status"][0] == "rejected" and words in audit["reasons"][0]


def test_one_broken_source_does_not_stop_the_others_loading(tmp_path, loaded):
    _, files = loaded
    # The workforce file breaks, while a newer etr file arrives.
    rename_header(files["workforce"], "STAFF_GROUP_1_NAME", "STAFF_GROUP")
    settings = make_settings(tmp_path, files["etr_2025"], files["survey"], files["workforce"])

    with pytest.raises(reference.ReferenceLoadError, match="workforce"):
        run(settings)

    codes = set(query(settings, "select org_code from staging.ods_trusts")["org_code"])
    assert "RCC" in codes  # the newer etr was loaded
    assert len(query(settings, "select * from staging.workforce")) == len(WORKFORCE)


def test_a_file_that_is_not_a_workbook_keeps_the_previous_survey(loaded):
    settings, files = loaded
    before = query(settings, "select * from staging.staff_survey order by all")
    files["survey"].write_bytes(b"<html><body>Page not found</body></html>")

    with pytest.raises(reference.ReferenceLoadError, match="staff_survey"):
        run(settings)

    after = query(settings, "select * from staging.staff_survey order by all")
    pd.testing.assert_frame_equal(after, before)


def test_an_unreachable_source_keeps_the_previous_data(loaded):
    settings, files = loaded
    files["workforce"].unlink()

    with pytest.raises(reference.ReferenceLoadError, match="workforce.*no such file"):
        run(settings)

    assert len(query(settings, "select * from staging.workforce")) == len(WORKFORCE)
    status = query(
        settings,
        "select status from audit.reference_loads where source = 'workforce' "
        "order by loaded_at desc limit 1",
    )["status"][0]
    assert status == "fetch_failed"


# --- the real files ---------------------------------------------------------------------------


def test_the_real_reference_files_load_with_their_coverage_summary(tmp_path):
    if not REFERENCE.exists():
        pytest.skip(f"real reference files not found at {REFERENCE}")
    settings = make_settings(
        tmp_path,
        REFERENCE / "etr_2025-07.csv",
        REFERENCE / "NSS24_detailed_spreadsheets_organisational_results.xlsx",
        REFERENCE / "turnover_benchmarking_staff_group_organisation_Nov-25.csv",
    )
    result = run(settings)

    assert [s["status"] for s in result["sources"]] == ["loaded"] * 3
    assert len(query(settings, "select * from staging.ods_trusts")) == 210
    # Isle of Wight's two survey units are combined into the ODS trust R1F.
    survey_codes = set(query(settings, "select org_code from staging.staff_survey")["org_code"])
    assert "R1F" in survey_codes and not {"R1F1", "R1F2"} & survey_codes
    coverage = query(settings, "select org_code, source, issue from audit.reference_coverage")
    # The four care trusts are in the survey but not in etr (the README's quirk).
    reverse = set(coverage.loc[coverage["source"] == "staff_survey", "org_code"])
    assert {"TAD", "TAF", "TAH", "TAJ"} <= reverse
    assert result["coverage_issues"] == len(coverage)


# --- a later real ODS edition, and drift: rows quarantined, the rest loads -------------------

REAL_ETR = REFERENCE / "etr_2025-07.csv"
REAL_WORKFORCE = REFERENCE / "turnover_benchmarking_staff_group_organisation_Nov-25.csv"


def later_etr_edition(path: Path) -> Path:
    """A later etr edition made from the real July 2025 file, with what later editions bring:
    two trusts closed and their successors opened the next day, an ICB change, the Welsh
    trusts without national grouping or health geography (GOR code W only), and two rows
    that break a rule (a trust closing before it opens; an English trust without grouping)."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(REAL_ETR.read_bytes().decode("latin-1"))))
    by_code = {r[0]: r for r in rows}
    for code in ("RVR", "RAJ"):  # closed on 30 September 2025
        by_code[code][11] = "20250930"
    by_code["R1F"][3] = "QU9"  # Isle of Wight moves ICB
    for code in ("RQF", "RT4", "RYT"):  # Welsh: columns 3 and 4 empty, GOR code W
        by_code[code][2], by_code[code][3], by_code[code][23] = "", "", "W"
    by_code["RTH"][2] = ""  # English, GOR code J, but no NHS England region

    def new(code, name, region, icb, gor, opened, closed=""):
        row = [""] * 27
        row[:4] = [code, name, region, icb]
        row[9], row[10], row[11], row[21], row[23] = "SM5 1AA", opened, closed, "0", gor
        return row

    rows += [
        new(
            "G7N1A",
            "SOUTH WEST LONDON HOSPITALS NHS FOUNDATION TRUST",
            "Y56",
            "QWE",
            "H",
            "20251001",
        ),
        new(
            "G7N2B",
            "ESSEX AND THAMES HOSPITALS NHS FOUNDATION TRUST",
            "Y61",
            "QH8",
            "G",
            "20251001",
        ),
        new("G7N3C", "MISKEYED NHS TRUST", "Y61", "QH8", "G", "20251001", "20250101"),
    ]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode("latin-1"))
    return path


def test_a_later_real_ods_edition_loads_with_new_trusts_closures_and_welsh_rows(tmp_path):
    if not REAL_ETR.exists():
        pytest.skip(f"real reference files not found at {REFERENCE}")
    first = make_settings(tmp_path, REAL_ETR)
    run(first)
    later = later_etr_edition(tmp_path / "etr_2025-10.csv")
    settings = make_settings(tmp_path, later)

    result = run(settings)  # no ReferenceLoadError: the file loads

    assert result["sources"] == [
        {"source": "ods_trusts", "status": "loaded", "rows": 211, "quarantined": 2}
    ]
    trusts_now = query(settings, "select * from staging.ods_trusts").set_index("org_code")
    # New trusts appear; closures apply; the ICB change is taken.
    assert {"G7N1A", "G7N2B"} <= set(trusts_now.index)
    assert [str(trusts_now.at[c, "close_date"])[:10] for c in ("RVR", "RAJ")] == ["2025-09-30"] * 2
    assert trusts_now.at["R1F", "icb_code"] == "QU9"
    # The Welsh rows are classified as Welsh, and are not in the English population.
    wales = trusts_now.loc[["RQF", "RT4", "RYT"]]
    assert wales["country"].tolist() == ["Wales"] * 3
    assert wales["region_code"].isna().all()
    after = population(settings, date(2026, 9, 30))
    assert {"G7N1A", "G7N2B"} <= set(after)
    assert not {"RVR", "RAJ", "RQF", "RT4", "RYT", "G7N3C"} & set(after)
    # The July 2025 file's 202 open English trusts, two closed and two opened.
    assert len(after) == 202 - 2 + 2
    # The rows that broke a rule are quarantined with their reasons; the English trust
    # without a region keeps its previous record (and its place in the population).
    held = query(
        settings,
        "select source, sha256, row_number, record_key, reasons "
        "from audit.reference_quarantine order by row_number",
    )
    assert held["record_key"].tolist() == ["RTH", "G7N3C"]
    assert "ods-english-region-present" in held["reasons"][0]
    assert "ods-dates-ordered" in held["reasons"][1]
    assert held["row_number"].tolist()[1] == 213
    assert set(held["source"]) == {"ods_trusts"}
    assert trusts_now.at["RTH", "region_code"] == "Y59" and "RTH" in after
    loads = query(
        settings,
        "select status, reasons from audit.reference_loads order by loaded_at desc limit 1",
    )
    assert loads["status"][0] == "loaded"
    assert "2 rows quarantined" in loads["reasons"][0]


def test_a_staff_survey_edition_with_drift_is_quarantined_row_by_row(tmp_path, files):
    # Two editions of 40 units: the 2024 one drifts as real spreadsheets do (a score put on
    # the 0-100 scale, a percentage whose decimal point was lost, a unit listed twice).
    units = pd.DataFrame(
        {
            "org_code": [f"R{i:02d}" for i in range(40)],
            "org_name": [f"Trust {i}" for i in range(40)],
            "q4d_pct_satisfied": 50.0,
            "q6b_pct_agree": 55.0,
            "q6c_pct_agree": 60.0,
            "q6d_pct_agree": 70.0,
            "we_work_flexibly_score": 6.2,
            "survey_benchmarking_group": "Acute and Acute & Community Trusts",
            "responses": 900,
        }
    )
    drifted = units.copy()
    drifted.loc[3, "we_work_flexibly_score"] = 62.0
    drifted.loc[7, "q4d_pct_satisfied"] = 573.0
    drifted = pd.concat([drifted, drifted.iloc[[11]]], ignore_index=True)
    folder = tmp_path / "published"
    nss23 = write_staff_survey(units, folder / "nss23.xlsx", 2023)
    nss24 = write_staff_survey(drifted, folder / "nss24.xlsx", 2024)
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "allow_local_urls: true\n"
        f"ods_trusts: {{url: '{files['etr_2024'].as_uri()}'}}\n"
        "staff_survey:\n"
        f"  - {{year: 2023, url: '{nss23.as_uri()}'}}\n"
        f"  - {{year: 2024, url: '{nss24.as_uri()}'}}\n"
    )
    settings = settings_mod.load(sources=sources, warehouse=tmp_path / "data" / "wh.duckdb")

    result = run(settings)

    survey = [s for s in result["sources"] if s["source"] == "staff_survey"]
    assert survey == [
        {"source": "staff_survey", "status": "loaded", "rows": 40, "quarantined": 0},
        {"source": "staff_survey", "status": "loaded", "rows": 37, "quarantined": 3},
    ]
    held = query(
        settings,
        "select record_key, reasons from audit.reference_quarantine order by record_key",
    )
    assert held["record_key"].tolist() == ["R03/2024", "R07/2024", "R11/2024"]
    assert "survey-we-work-flexibly-range" in held["reasons"][0]
    assert "survey-q4d-pct-satisfied-range" in held["reasons"][1]
    assert "appears more than once" in held["reasons"][2]
    loaded = query(settings, "select org_code from staging.staff_survey where survey_year = 2024")
    assert len(loaded) == 37 and not {"R03", "R07", "R11"} & set(loaded["org_code"])


def test_a_workforce_file_with_drift_is_quarantined_row_by_row(tmp_path, files):
    if not REAL_WORKFORCE.exists():
        pytest.skip(f"real reference files not found at {REFERENCE}")
    lines = REAL_WORKFORCE.read_bytes().decode("utf-8-sig").splitlines()
    header, body = lines[0], lines[1:]
    staff_rows = [i for i, line in enumerate(body) if ",Denominator at end of period," in line]
    # The same period republished with drift on five staff-in-post rows: an unreadable HC, a
    # negative FTE, a region code from nowhere, a staff group new to the file, no org code.
    first_rows = [staff_rows[k] for k in (0, 10, 20, 30, 40)]
    cells = [next(csv_reader([body[i]])) for i in first_rows]
    cells[0][11] = "n/a"
    cells[1][12] = "-3.5"
    cells[2][2] = "Y99"
    cells[3][10] = "Physician associates"
    cells[4][7] = ""
    for i, row in zip(first_rows, cells, strict=True):
        body[i] = csv_line(row)
    drifted = tmp_path / "workforce_republished.csv"
    drifted.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    first = make_settings(tmp_path, files["etr_2024"], workforce=REAL_WORKFORCE)
    run(first)
    clean_rows = len(query(first, "select * from staging.workforce"))
    settings = make_settings(tmp_path, files["etr_2024"], workforce=drifted)

    result = run(settings)

    (workforce,) = [s for s in result["sources"] if s["source"] == "workforce"]
    assert workforce == {
        "source": "workforce",
        "status": "loaded",
        "rows": clean_rows - 5,
        "quarantined": 5,
    }
    held = query(
        settings,
        "select row_number, record_key, reasons from audit.reference_quarantine "
        "order by row_number",
    )
    assert held["row_number"].tolist() == [i + 2 for i in first_rows]  # header is row 1
    reasons = held["reasons"].tolist()
    assert "HC is not a number" in reasons[0]
    assert "workforce-fte-not-negative" in reasons[1]
    assert "workforce-region-known" in reasons[2]
    assert "workforce-staff-group-known" in reasons[3]
    assert "workforce-code-present" in reasons[4]
    assert len(query(settings, "select * from staging.workforce")) == clean_rows - 5


def icb_names(settings) -> dict[str, str]:
    """intermediate.int_icb_names built on the loaded workforce: icb_code -> icb_name."""
    con = warehouse.connect(settings.warehouse_path)
    try:
        warehouse.build_layers_named(con, ["intermediate.int_icb_names"])
        rows = con.execute("select icb_code, icb_name from intermediate.int_icb_names").fetchall()
    finally:
        con.close()
    return dict(rows)


#: raw.workforce as flexbench created it before it kept the ICB's name.
OLD_RAW_WORKFORCE = """
    create schema raw;
    create table raw.workforce (
        sha256 varchar, loaded_at timestamptz, org_code varchar, org_name varchar,
        period varchar, period_end date, staff_group varchar, headcount double, fte double,
        benchmark_group varchar, cluster_group varchar, region_code varchar, ics_code varchar
    );
    insert into raw.workforce values ('old-sha', '2025-11-01 00:00:00+00', 'RAA',
        'Alpha NHS Trust', '202508 to 202509', '2025-09-30', 'All staff groups', 2200, 2050.0,
        'Acute - Teaching', 'Acute', 'Y56', 'QKK');
"""


def test_a_warehouse_made_before_icb_names_were_kept_upgrades_and_loads_them(tmp_path, files):
    settings = make_settings(tmp_path, files["etr_2024"], workforce=files["workforce"])
    settings.warehouse_path.parent.mkdir(parents=True)
    con = warehouse.connect(settings.warehouse_path)
    con.execute(OLD_RAW_WORKFORCE)
    con.close()

    result = run(settings)

    assert {"source": "workforce", "status": "loaded", "rows": 4, "quarantined": 0} in result[
        "sources"
    ]
    raw = query(settings, "select period, org_code, ics_name from raw.workforce order by all")
    # the old load is kept, with no name; the new edition's rows carry theirs
    assert raw.values.tolist()[0][:2] == ["202508 to 202509", "RAA"]
    assert pd.isna(raw.values.tolist()[0][2])
    assert set(raw["ics_name"].dropna()) == set(WORKFORCE["ics_name"])
    staged = query(settings, "select period, ics_code, ics_name from staging.workforce")
    new = staged[staged["period"] == "202510 to 202511"]
    assert set(zip(new["ics_code"], new["ics_name"], strict=True)) == set(
        zip(WORKFORCE["ics_code"], WORKFORCE["ics_name"], strict=True)
    )
    # the earlier period stays staged (its name unknown); the ICB takes the name of the latest
    assert staged.loc[staged["period"] == "202508 to 202509", "ics_name"].isna().all()
    assert icb_names(settings)["QKK"] == "South East London"


def later_workforce_edition(path: Path) -> Path:
    """The next month's edition made from the real Nov-25 file, with what later editions
    bring: a column added (ICS_CODE_2026), the columns in another order (ICS_NAME last) and an
    ICB renamed (QKK)."""
    frame = pd.read_csv(REAL_WORKFORCE, dtype=str, keep_default_na=False)
    frame["PERIOD"] = "202511 to 202512"
    frame.loc[frame["ICS_CODE"] == "QKK", "ICS_NAME"] = "South East London Health and Care"
    frame["ICS_CODE_2026"] = frame["ICS_CODE"]
    order = [c for c in frame.columns if c != "ICS_NAME"] + ["ICS_NAME"]
    frame[order].to_csv(path, index=False)
    return path


def test_a_later_workforce_edition_with_a_new_column_reordered_and_a_renamed_icb_loads(
    tmp_path, files
):
    if not REAL_WORKFORCE.exists():
        pytest.skip(f"real reference files not found at {REFERENCE}")
    run(make_settings(tmp_path, files["etr_2024"], workforce=REAL_WORKFORCE))
    before = icb_names(make_settings(tmp_path, files["etr_2024"], workforce=REAL_WORKFORCE))
    later = later_workforce_edition(tmp_path / "workforce_Dec-25.csv")
    settings = make_settings(tmp_path, files["etr_2024"], workforce=later)

    result = run(settings)  # no ReferenceLoadError: the edition loads

    (workforce,) = [s for s in result["sources"] if s["source"] == "workforce"]
    assert workforce == {"source": "workforce", "status": "loaded", "rows": 2774, "quarantined": 0}
    periods = query(settings, "select period, count(*) as n from staging.workforce group by 1")
    assert dict(periods.values.tolist()) == {"202510 to 202511": 2774, "202511 to 202512": 2774}
    after = icb_names(settings)
    # the renamed ICB takes the latest edition's name; the other 41 keep theirs
    assert before["QKK"] == "South East London"
    assert after["QKK"] == "South East London Health and Care"
    assert len(after) == 42
    assert {k: v for k, v in after.items() if k != "QKK"} == {
        k: v for k, v in before.items() if k != "QKK"
    }


def csv_reader(lines):
    import csv

    return csv.reader(lines)


def csv_line(cells: list[str]) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue()
