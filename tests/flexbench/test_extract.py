"""Extracts for NHS Employers and the status command (docs/analysts.md, "Extracts").

Every format is checked for what a user opening the file would notice: a trust name that a
spreadsheet would run as a formula is inert text, small numbers are withheld, numbers stay
numbers, the XLSX notes sheet says what the columns mean and how old the data is.
"""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
from test_site import FORMULA_NAME, REJECTED_TRUST, TINY_COUNTS, TINY_TRUST, tiny_warehouse_once

import warehouse
from flexbench import extract
from flexbench.cli_outputs import main


@pytest.fixture(scope="module")
def wh(shared_build):
    return tiny_warehouse_once(shared_build)


def _read_back(path, fmt: str) -> pd.DataFrame:
    """The extract as a user's tool reads it: every cell as it appears (text for CSV/XLSX)."""
    if fmt == "csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            return pd.DataFrame(list(csv.DictReader(f)))
    if fmt == "xlsx":
        return pd.read_excel(path, sheet_name="benchmark", dtype=object)
    return pd.read_parquet(path)


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_every_format_neutralises_formulas_and_withholds_small_numbers(wh, tmp_path, fmt):
    out = tmp_path / f"extract.{fmt}"
    assert main(["extract", "--warehouse", str(wh), "--format", fmt, "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    df = _read_back(out, fmt)
    tiny = df[df["org_code"] == TINY_TRUST].iloc[0]
    # The name from the feed starts with "=": it reaches the reader as text, not a formula.
    assert tiny["name"] == "'" + FORMULA_NAME
    # 3 declines and 1 withdrawn: withheld, and the true values appear nowhere in the row.
    for column in ("declined", "withdrawn", "appeals", "decline_rate"):
        if fmt == "parquet":
            assert pd.isna(tiny[column]), column
        else:
            assert tiny[column] == "[c]", column
        assert column in tiny["withheld"].split(";")
    assert str(tiny["declined"]) != str(TINY_COUNTS["declined"])
    # Counts of 5 and over are rounded to the nearest 5: 14 requests read 15.
    assert int(float(tiny["decided"])) == 15
    # CSV and Parquet carry their notes beside them: the method and what can be worked out.
    if fmt != "xlsx":
        notes = extract.notes_path(out).read_text()
        assert "Hospital Episode Statistics" in notes and "You cannot" in notes


def test_xlsx_cells_are_text_or_numbers_never_formulas(wh, tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "extract.xlsx"
    assert main(["extract", "--warehouse", str(wh), "--out", str(out), "--quiet"]) == 0
    sheet = load_workbook(out)["benchmark"]
    header = [c.value for c in sheet[1]]
    types = {c.data_type for row in sheet.iter_rows(min_row=2) for c in row if c.value is not None}
    assert "f" not in types  # no formula cell anywhere
    received = header.index("requests_received")
    counts = [row[received] for row in sheet.iter_rows(min_row=2)]
    assert any(c.data_type == "n" and isinstance(c.value, int) for c in counts)


def test_negative_numbers_stay_numbers_but_text_that_looks_like_one_is_neutralised():
    frame = pd.DataFrame({
        "change": [-5, 3],
        "note": ["-5", "ok"],
        "formula": ["@SUM(A1)", "\tcmd"],
        "plus": ["+1", "a+b"],
    })  # fmt: skip
    out = extract.neutralised(frame)
    assert out["change"].tolist() == [-5, 3]
    assert out["note"].tolist() == ["'-5", "ok"]
    assert out["formula"].tolist() == ["'@SUM(A1)", "'\tcmd"]
    assert out["plus"].tolist() == ["'+1", "a+b"]


def test_xlsx_notes_sheet_has_definitions_as_of_suppression_and_sources(wh, tmp_path):
    out = tmp_path / "extract.xlsx"
    assert main(["extract", "--warehouse", str(wh), "--out", str(out), "--quiet"]) == 0
    notes = pd.read_excel(out, sheet_name="notes", header=None, dtype=str).fillna("")
    text = "\n".join(" | ".join(r) for r in notes.values.tolist())
    assert "Data as of 31 October 2026" in text
    assert "Counts from 1 to 4 are withheld" in text
    data = pd.read_excel(out, sheet_name="benchmark", dtype=object)
    defined = set(notes[0])
    assert set(data.columns) <= defined  # every column is defined
    assert "approved / decided" in text
    assert "publications" in defined  # source versions


def test_filters_pick_rows_by_region_peer_group_trusts_and_period(wh):
    con = extract.open_public(wh)
    try:
        everyone = extract.extract_table(con)
        region = everyone["region_code"].iloc[0]
        by_region = extract.extract_table(con, extract.ExtractFilter(regions=[region.lower()]))
        assert set(by_region["region_code"]) == {region}
        assert len(by_region) == (everyone["region_code"] == region).sum()
        peer = everyone["peer_group"].dropna().iloc[0]
        by_peer = extract.extract_table(con, extract.ExtractFilter(peer_groups=[peer.upper()]))
        assert set(by_peer["peer_group"]) == {peer}
        two = extract.extract_table(con, extract.ExtractFilter(trusts=[f"{TINY_TRUST}, R9N"]))
        assert sorted(two["org_code"]) == sorted([TINY_TRUST, "R9N"])
        quarters = extract.extract_table(con, extract.ExtractFilter(
            by="quarter", trusts=["R9N"], date_from=pd.Timestamp("2026-01-01").date()))  # fmt: skip
        assert len(quarters) == 3 and quarters["quarter"].str.match(r"\d{4}-Q\d").all()
        assert min(quarters["quarter_start"]).isoformat() == "2026-01-01"
        with pytest.raises(extract.ExtractError, match="unknown peer group"):
            extract.extract_table(con, extract.ExtractFilter(peer_groups=["Nope"]))
        with pytest.raises(extract.ExtractError, match="not in the benchmark"):
            extract.extract_table(con, extract.ExtractFilter(trusts=["ZZZ"]))
    finally:
        con.close()


def test_one_row_per_trust_with_only_documented_columns(wh):
    con = extract.open_public(wh)
    try:
        df = extract.extract_table(con)
        quarters = extract.extract_table(con, extract.ExtractFilter(by="quarter"))
    finally:
        con.close()
    marts = warehouse.connect(wh, read_only=True)
    try:
        n = marts.execute("select count(*) from marts.trust_benchmark").fetchone()[0]
    finally:
        marts.close()
    assert set(quarters.columns) <= set(extract.COLUMNS)
    assert len(df) == n and df["org_code"].is_unique
    assert set(df.columns) <= set(extract.COLUMNS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "x.txt"], "give --format"),
        (["--out", "x.csv", "--from", "2026-05-01", "--to", "2026-01-01"], "--from is after --to"),
        (["--out", "x.csv", "--region", "Y99"], "no trusts in region Y99"),
    ],
)
def test_extract_usage_errors_are_one_line(wh, tmp_path, capsys, argv, message):
    argv = [a if not a.startswith("x.") else str(tmp_path / a) for a in argv]
    assert main(["extract", "--warehouse", str(wh), *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_status_lists_rejected_trusts_first_with_why(wh, capsys):
    assert main(["status", "--warehouse", str(wh)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "1 rejected" in lines[0]
    assert lines[2].startswith(REJECTED_TRUST) and "rejected" in lines[2]
    assert "outcomes-sum" in lines[2]
    # Each source's freshness follows the trusts.
    sources = lines[lines.index(next(x for x in lines if x.startswith("Sources"))) + 1 :]
    assert [x.split()[0] for x in sources] == [
        "ods_trusts",
        "staff_survey",
        "workforce",
        "pledge_signups",
        "publications",
    ]
    assert main(["status", "--warehouse", str(wh), "--only", "rejected", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["org_code"] for r in records] == [REJECTED_TRUST]
    assert records[0]["last_report_path"].endswith(".json")


def test_status_shows_each_sources_freshness_and_names_the_sources_that_failed(tmp_path, capsys):
    # The real pipeline steps, one source failing each way: the workforce file gone upstream,
    # the pledge feed unreachable, one trust's publication URL dead.
    from test_pipeline_reference import make_settings, run, write_files

    from flexbench.fetch import now_utc
    from flexbench.pipeline import pledge, publications, reference

    files = write_files(tmp_path / "published")
    s = make_settings(tmp_path, files["etr_2024"], files["survey"], files["workforce"])
    run(s)
    files["workforce"].unlink()
    with pytest.raises(reference.ReferenceLoadError):
        run(s)
    feed = "https://pledge.example/signups.json"
    with pytest.raises(pledge.PledgeLoadError):
        pledge.load(
            s,
            {"status": "failed", "url": feed, "fetched_at": now_utc(),
             "error": f"{feed}: unreachable (connection refused)"},
        )  # fmt: skip
    served = tmp_path / "published" / "raa.csv"
    served.write_text("org_code\nRAA\n")
    batch = [
        {"org_code": "RAA", "url": served.as_uri()},
        {"org_code": "RBB", "url": (tmp_path / "gone.csv").as_uri()},
    ]
    today = pd.Timestamp.now().date()
    outcomes = publications.validate_batch(s, publications.fetch_batch(s, batch), today)
    publications.load(s, outcomes, "run-1", today)

    assert main(["status", "--warehouse", str(s.warehouse_path), "--sources", "--json"]) == 0
    got = {r["source"]: r for r in json.loads(capsys.readouterr().out)}

    assert list(got) == ["ods_trusts", "staff_survey", "workforce", "pledge_signups",
                         "publications"]  # fmt: skip
    for source in ("ods_trusts", "staff_survey"):
        assert not got[source]["last_attempt_failed"] and got[source]["age_days"] == 0
    # The workforce data is still there, from the first load: its age is shown, and that
    # its last attempt failed, with the reason.
    assert got["workforce"]["last_attempt_failed"] and got["workforce"]["age_days"] == 0
    assert "fetch failed" in got["workforce"]["failure"]
    assert "no such file" in got["workforce"]["failure"]
    assert got["pledge_signups"]["last_success_at"] is None
    assert "unreachable" in got["pledge_signups"]["failure"]
    assert got["publications"]["failure"] == "the last fetch of 1 of 2 publication URLs failed"

    assert main(["status", "--warehouse", str(s.warehouse_path), "--sources"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("Sources")
    failed = [line.split()[0] for line in text[1:] if "last attempt FAILED" in line]
    assert failed == ["workforce", "pledge_signups", "publications"]
    assert "never" in next(line for line in text if line.split()[0] == "pledge_signups")
