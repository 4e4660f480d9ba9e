"""`flexbench validate` and the publication verdicts: the Flex Data Standard, file by file.

The table below is the issue's "at least 25 distinct malformed or variant files": each case
says the verdict the file must get and, when rejected, the rule id that must be among the
reasons (and the rows, where the fixture pins them). All cases are checked in one batched
run (``validate_many``), as the pipeline does.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from flexbench.validate import main, validate_many, validate_publication
from transforms.publications import SUMMARY_COLUMNS

TODAY = date(2025, 1, 15)
REPO = Path(__file__).resolve().parents[2]

# --- fixtures: one valid summary, one valid request-level file, and edits of them ---------

COUNTS = dict(
    requests_received=10,
    approved_in_full=6,
    approved_with_changes=2,
    declined=1,
    withdrawn=0,
    pending=1,
    escalated=1,
    appeals=1,
    appeals_upheld=0,
    decided_within_2_months=9,
    declined_costs=1,
    declined_demand=0,
    declined_reorganise=0,
    declined_recruit=0,
    declined_quality=0,
    declined_performance=0,
    declined_insufficient_work=0,
    declined_structural_changes=0,
    declined_other=0,
)


def summary_rows(**changes_by_row):
    """Three valid rows (file rows 2-4); ``row3={...}`` edits the second one, etc."""
    rows = []
    for group in ("All staff groups", "Nurses & health visitors", "Central functions"):
        rows.append(
            dict(
                org_code="RJ1",
                period_start="2024-04-01",
                period_end="2024-06-30",
                staff_group=group,
                **COUNTS,
            )
        )
    for key, change in changes_by_row.items():
        rows[int(key.removeprefix("row")) - 2].update(change)
    return rows


def csv_bytes(rows, columns=None, header=None, encoding="utf-8", newline="\n", sep=","):
    columns = columns or list(rows[0])
    lines = [sep.join(header or columns)]
    lines += [sep.join(str(r.get(c, "")) for c in columns) for r in rows]
    return (newline.join(lines) + newline).encode(encoding)


def summary_csv(**changes):
    return csv_bytes(summary_rows(**changes))


REQUEST_COLUMNS = [
    "org_code",
    "request_id",
    "received_date",
    "decision_date",
    "outcome",
    "escalated",
    "appeal",
    "decline_reason",
    "staff_group",
    "flex_type",
]


def request_rows(**changes_by_row):
    rows = [
        dict(
            org_code="RJ1",
            request_id="FW-0001",
            received_date="2024-04-03",
            decision_date="2024-05-01",
            outcome="approved_in_full",
            escalated="no",
            appeal="none",
            decline_reason="",
            staff_group="Midwives",
            flex_type="compressed_hours",
        ),
        dict(
            org_code="RJ1",
            request_id="FW-0002",
            received_date="2024-05-10",
            decision_date="2024-07-20",
            outcome="declined",
            escalated="yes",
            appeal="not_upheld",
            decline_reason="demand",
            staff_group="Nurses & health visitors",
            flex_type="part_time",
        ),
        dict(
            org_code="RJ1",
            request_id="FW-0003",
            received_date="2024-06-20",
            decision_date="",
            outcome="pending",
            escalated="no",
            appeal="",
            decline_reason="",
            staff_group="Central functions",
            flex_type="",
        ),
    ]
    for key, change in changes_by_row.items():
        rows[int(key.removeprefix("row")) - 2].update(change)
    return rows


def request_csv(extra_column=None, **changes):
    rows = request_rows(**changes)
    columns = list(REQUEST_COLUMNS)
    if extra_column:
        columns.append(extra_column)
    return csv_bytes(rows, columns)


def xlsx_bytes(sheets):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for r in rows:
            sheet.append(r)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def summary_xlsx(sheet_names=("Figures",), data_sheet="Figures"):
    rows = summary_rows()
    table = [list(SUMMARY_COLUMNS)] + [[r[c] for c in SUMMARY_COLUMNS] for r in rows]
    return xlsx_bytes(
        {name: table if name == data_sheet else [["read me first"]] for name in sheet_names}
    )


def renamed_header(**renames):
    return [renames.get(c, c) for c in SUMMARY_COLUMNS]


def filled_xlsx_template():
    """The downloadable XLSX template with the worked example's rows typed in."""
    book = openpyxl.load_workbook(REPO / "docs" / "templates" / "flex-summary-template.xlsx")
    example = (REPO / "docs" / "templates" / "worked-example-summary.csv").read_text()
    for line in example.splitlines()[1:]:
        book["data"].append([int(v) if v.isdigit() else v for v in line.split(",")])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


ACCEPT = "accepted"

# (case, file bytes, filename, --org, expected verdict or rule id, expected rows or None)
CASES = [
    # --- variants that must be accepted ---
    ("plain summary", summary_csv(), "a.csv", "RJ1", ACCEPT, None),
    ("utf-8 with BOM", b"\xef\xbb\xbf" + summary_csv(), "a.csv", "RJ1", ACCEPT, None),
    ("CRLF line ends", csv_bytes(summary_rows(), newline="\r\n"), "a.csv", "RJ1", ACCEPT, None),
    (
        "cp1252 with é and ’ in an extra column",
        csv_bytes(
            [dict(r, notes="Trust’s café review") for r in summary_rows()], encoding="cp1252"
        ),
        "a.csv",
        "RJ1",
        ACCEPT,
        None,
    ),
    (
        "header case, spacing and punctuation",
        csv_bytes(
            summary_rows(),
            header=[c.upper().replace("_", " ") + " " for c in SUMMARY_COLUMNS],
        ),
        "a.csv",
        "RJ1",
        ACCEPT,
        None,
    ),
    (
        "header synonyms",
        csv_bytes(
            summary_rows(),
            header=renamed_header(
                org_code="ODS code",
                approved_with_changes="Agreed with amendments",
                declined_costs="Burden of additional costs",
                period_start="Period from",
                period_end="Period to",
            ),
        ),
        "a.csv",
        "RJ1",
        ACCEPT,
        None,
    ),
    (
        "trust code synonym, semicolons",
        csv_bytes(summary_rows(), header=renamed_header(org_code="Trust code"), sep=";"),
        "a.csv",
        "RJ1",
        ACCEPT,
        None,
    ),
    (
        "staff group and code spelled loosely",
        summary_csv(row3={"staff_group": "nurses and health visitors", "org_code": " rj1"}),
        "a.csv",
        "RJ1",
        ACCEPT,
        None,
    ),
    (
        "UK dates",
        summary_csv(row2={"period_start": "01/04/2024", "period_end": "30/06/2024"}),
        "a.csv",
        "RJ1",
        ACCEPT,
        None,
    ),
    (
        "financial year and a month",
        summary_csv(
            row2={"period_start": "2023-04-01", "period_end": "2024-03-31"},
            row3={"period_start": "2024-02-01", "period_end": "2024-02-29"},
        ),
        "a.csv",
        "RJ1",
        ACCEPT,
        None,
    ),
    ("xlsx first sheet", summary_xlsx(), "a.xlsx", "RJ1", ACCEPT, None),
    (
        "xlsx sheet named data",
        summary_xlsx(("Notes", "data"), data_sheet="data"),
        "a.xlsx",
        "RJ1",
        ACCEPT,
        None,
    ),
    (
        "the documented worked example",
        (REPO / "docs" / "templates" / "worked-example-summary.csv").read_bytes(),
        "worked-example-summary.csv",
        "RXX",
        ACCEPT,
        None,
    ),
    ("the XLSX template filled in", filled_xlsx_template(), "t.xlsx", "RXX", ACCEPT, None),
    ("request-level", request_csv(), "r.csv", "RJ1", ACCEPT, None),
    (
        "request-level with coded variants",
        request_csv(
            row2={"outcome": "Approved", "escalated": "N"},
            row3={"outcome": "Rejected", "decline_reason": "Burden of additional costs"},
        ),
        "r.csv",
        "RJ1",
        ACCEPT,
        None,
    ),
    # --- file-level refusals ---
    ("empty file", b"", "a.csv", "RJ1", "empty-file", None),
    (
        "header only",
        csv_bytes([], columns=list(SUMMARY_COLUMNS)),
        "a.csv",
        None,
        "empty-file",
        None,
    ),
    (
        "HTML page served instead of data",
        b"<!DOCTYPE html>\n<html><head><title>Flexible working</title></head><body>"
        b"<a href='data.csv'>Download</a></body></html>",
        "a.csv",
        "RJ1",
        "html-page",
        None,
    ),
    ("a PDF", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a.pdf", None, "not-csv-or-xlsx", None),
    (
        "old xls",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100,
        "a.xls",
        None,
        "not-csv-or-xlsx",
        None,
    ),
    ("damaged xlsx", b"PK\x03\x04" + b"garbage" * 20, "a.xlsx", None, "unreadable-xlsx", None),
    ("undecodable bytes", summary_csv() + b"\x81\x8d\x90\n", "a.csv", None, "undecodable", None),
    (
        "missing columns",
        csv_bytes(summary_rows(), columns=[c for c in SUMMARY_COLUMNS if c != "pending"]),
        "a.csv",
        "RJ1",
        "missing-columns",
        None,
    ),
    ("request-level with names", request_csv("Surname"), "r.csv", "RJ1", "personal-data", None),
    ("with date of birth", request_csv("Date of birth"), "r.csv", "RJ1", "personal-data", None),
    ("with staff number", request_csv("Assignment Number"), "r.csv", None, "personal-data", None),
    # --- row-level rules, summary form ---
    (
        "non-integer",
        summary_csv(row3={"declined_costs": "0.5"}),
        "a.csv",
        "RJ1",
        "whole-number",
        [3],
    ),
    ("text in a count", summary_csv(row4={"appeals": "n/a"}), "a.csv", "RJ1", "whole-number", [4]),
    (
        "negative count",
        summary_csv(row2={"withdrawn": -1, "pending": 2}),
        "a.csv",
        "RJ1",
        "not-negative",
        [2],
    ),
    (
        "outcomes do not sum",
        summary_csv(row3={"requests_received": 11}),
        "a.csv",
        "RJ1",
        "outcomes-sum",
        [3],
    ),
    (
        "reasons do not sum",
        summary_csv(row4={"declined_other": 1}),
        "a.csv",
        "RJ1",
        "decline-reasons-sum",
        [4],
    ),
    (
        "more upheld than appeals",
        summary_csv(row2={"appeals_upheld": 2}),
        "a.csv",
        "RJ1",
        "appeals-upheld-within-appeals",
        [2],
    ),
    (
        "more decided in time than decided",
        summary_csv(row3={"decided_within_2_months": 10}),
        "a.csv",
        "RJ1",
        "decided-within-2-months-within-decided",
        [3],
    ),
    (
        "more escalated than received",
        summary_csv(row4={"escalated": 11}),
        "a.csv",
        "RJ1",
        "escalated-within-received",
        [4],
    ),
    (
        "unknown staff group",
        summary_csv(row3={"staff_group": "Porters"}),
        "a.csv",
        "RJ1",
        "known-staff-group",
        [3],
    ),
    (
        "reversed period",
        summary_csv(row2={"period_start": "2024-06-30", "period_end": "2024-04-01"}),
        "a.csv",
        "RJ1",
        "period-order",
        [2],
    ),
    (
        "irregular period",
        summary_csv(row4={"period_start": "2024-04-01", "period_end": "2024-05-15"}),
        "a.csv",
        "RJ1",
        "regular-period",
        [4],
    ),
    (
        "quarter not starting Jan/Apr/Jul/Oct",
        summary_csv(row4={"period_start": "2024-05-01", "period_end": "2024-07-31"}),
        "a.csv",
        "RJ1",
        "regular-period",
        [4],
    ),
    (
        "future period",
        summary_csv(row3={"period_start": "2025-01-01", "period_end": "2025-03-31"}),
        "a.csv",
        "RJ1",
        "period-not-future",
        [3],
    ),
    (
        "unreadable date",
        summary_csv(row2={"period_end": "June"}),
        "a.csv",
        "RJ1",
        "valid-date",
        [2],
    ),
    (
        "duplicate key",
        summary_csv(row4={"staff_group": "Nurses and health visitors"}),
        "a.csv",
        "RJ1",
        "unique-key",
        [3, 4],
    ),
    (
        "another trust's file",
        summary_csv(**{f"row{n}": {"org_code": "RJ2"} for n in (2, 3, 4)}),
        "a.csv",
        "RJ1",
        "org-matches",
        [2, 3, 4],
    ),
    (
        "not an ODS code",
        summary_csv(row2={"org_code": "Guy's"}),
        "a.csv",
        None,
        "org-code-format",
        [2],
    ),
    # --- row-level rules, request-level form ---
    (
        "decision before receipt",
        request_csv(row3={"decision_date": "2024-05-01"}),
        "r.csv",
        "RJ1",
        "decision-not-before-receipt",
        [3],
    ),
    (
        "unknown outcome",
        request_csv(row2={"outcome": "maybe"}),
        "r.csv",
        "RJ1",
        "known-outcome",
        [2],
    ),
    (
        "decision without a date",
        request_csv(row2={"decision_date": ""}),
        "r.csv",
        "RJ1",
        "decision-date-required",
        [2],
    ),
    (
        "reason on an approved request",
        request_csv(row2={"decline_reason": "costs"}),
        "r.csv",
        "RJ1",
        "decline-reason-only-when-declined",
        [2],
    ),
    (
        "declined without reason",
        request_csv(row3={"decline_reason": ""}),
        "r.csv",
        "RJ1",
        "known-decline-reason",
        [3],
    ),
    (
        "reason not a code",
        request_csv(row3={"decline_reason": "budget"}),
        "r.csv",
        "RJ1",
        "known-decline-reason",
        [3],
    ),
    (
        "escalated not yes/no",
        request_csv(row2={"escalated": "maybe"}),
        "r.csv",
        "RJ1",
        "escalated-yes-no",
        [2],
    ),
    (
        "unknown appeal value",
        request_csv(row3={"appeal": "won"}),
        "r.csv",
        "RJ1",
        "known-appeal",
        [3],
    ),
    (
        "appeal on an approval",
        request_csv(row2={"appeal": "upheld"}),
        "r.csv",
        "RJ1",
        "appeal-only-when-declined",
        [2],
    ),
    (
        "repeated request id",
        request_csv(row4={"request_id": "FW-0001"}),
        "r.csv",
        "RJ1",
        "unique-request-id",
        [2, 4],
    ),
    (
        "received in the future",
        request_csv(row4={"received_date": "2025-02-01"}),
        "r.csv",
        "RJ1",
        "received-not-future",
        [4],
    ),
    (
        "whole staff as a group",
        request_csv(row2={"staff_group": "All staff groups"}),
        "r.csv",
        "RJ1",
        "known-staff-group",
        [2],
    ),
]


@pytest.fixture(scope="module")
def batch_verdicts():
    items = [(case, data, name, org) for case, data, name, org, *_ in CASES]
    return validate_many(items, today=TODAY)


def test_the_table_holds_at_least_25_distinct_files():
    assert len({data for _, data, *_ in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize(
    "case, expected, rows", [(c[0], c[4], c[5]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_verdict_and_reason(batch_verdicts, case, expected, rows):
    verdict = batch_verdicts[case]
    if expected == ACCEPT:
        assert verdict.accepted, verdict.lines()
        assert verdict.summary is not None and len(verdict.summary) > 0
        return
    assert not verdict.accepted
    assert verdict.summary is None
    failed = {f.rule: f for f in verdict.failures}
    assert expected in failed, verdict.lines()
    if rows is not None:
        assert sorted(set(failed[expected].rows_for(""))) == rows
    # a single, specific reason for a single mistake
    assert len(failed) == 1, verdict.lines()


def test_accepted_summary_is_typed_and_canonical(batch_verdicts):
    summary = batch_verdicts["header synonyms"].summary
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert str(summary["requests_received"].dtype) == "int64"
    assert summary["period_start"].iloc[0] == pd_timestamp("2024-04-01")
    assert set(summary["staff_group"]) >= {"Nurses & health visitors", "Central functions"}


def pd_timestamp(text):
    import pandas as pd

    return pd.Timestamp(text)


def test_request_level_file_arrives_aggregated(batch_verdicts):
    summary = batch_verdicts["request-level"].summary
    total = summary[summary["staff_group"] == "All staff groups"].iloc[0]
    assert (total["requests_received"], total["declined"], total["pending"]) == (3, 1, 1)
    assert total["declined_demand"] == 1 and total["appeals"] == 1
    # FW-0001: 3 Apr -> 1 May is within two months; FW-0002: 10 May -> 20 Jul is not
    assert total["decided_within_2_months"] == 1


def test_extra_column_is_warned_not_rejected(batch_verdicts):
    verdict = batch_verdicts["cp1252 with é and ’ in an extra column"]
    assert verdict.warnings == ["ignored extra columns: notes"]


def test_validate_many_gives_the_same_verdicts_as_one_by_one(batch_verdicts):
    # one file of each kind: accepted summary, accepted request-level, file-level refusal,
    # row-level summary rejection, row-level request-level rejection
    picked = [
        c
        for c in CASES
        if c[0]
        in {
            "plain summary",
            "request-level",
            "HTML page served instead of data",
            "outcomes do not sum",
            "decision before receipt",
            "another trust's file",
        }
    ]
    for case, data, name, org, *_ in picked:
        alone = validate_publication(data, name, org=org, today=TODAY)
        batched = batch_verdicts[case]
        assert alone.accepted == batched.accepted, case
        assert alone.lines() == batched.lines(), case
        assert alone.warnings == batched.warnings, case


def test_report_is_json_with_rules_rows_and_example_rows(batch_verdicts):
    report = batch_verdicts["outcomes do not sum"].report()
    json.dumps(report)  # the site stores it as JSON
    (failure,) = report["failures"]
    assert failure["rule"] == "outcomes-sum" and failure["rows"] == [3]
    (example,) = failure["example_rows"]
    assert example["row"] == 3 and example["requests_received"] == "11"


def test_line_names_rule_column_and_rows(batch_verdicts):
    (line,) = batch_verdicts["negative count"].lines()
    assert line.startswith("not-negative: column withdrawn:")
    assert line.endswith("(row 2)")


# --- the command ----------------------------------------------------------------------------


def test_cli_accepts_a_good_file(tmp_path, capsys):
    path = tmp_path / "ok.csv"
    path.write_bytes(summary_csv())
    assert main([str(path), "--org", "RJ1", "--today", "2025-01-15"]) == 0
    assert capsys.readouterr().out.startswith("accepted: 3 rows, form summary")


def test_cli_rejects_with_one_line_per_failed_rule(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_bytes(summary_csv(row3={"requests_received": 11}, row4={"appeals_upheld": 2}))
    assert main([str(path), "--org", "R1F", "--today", "2025-01-15"]) == 1
    out = capsys.readouterr().out.splitlines()
    rule_lines = [line for line in out if not line.startswith("rejected:")]
    assert [line.split(":")[0] for line in rule_lines] == [
        "org-matches",
        "outcomes-sum",
        "appeals-upheld-within-appeals",
    ]
    assert "(rows 2, 3, 4)" in rule_lines[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["/no/such/file.csv"], "no such file"),
        ([], "the following arguments are required"),
        (["x.csv", "--today", "15/01/2025"], "--today must be YYYY-MM-DD"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_bytes(summary_csv())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# --- the 1 GiB zip bomb -------------------------------------------------------------------


def _deflate_repeated(prefix: bytes, chunk: bytes, times: int, suffix: bytes):
    """Raw deflate of prefix + chunk*times + suffix, built from one compressed chunk.

    A full flush resets the compressor, so the compressed chunk can be repeated as is:
    the test never holds or compresses the inflated data.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)
    body = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.compress(suffix) + comp.flush()
    crc = zlib.crc32(prefix)
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(suffix, crc)
    size = len(prefix) + len(chunk) * times + len(suffix)
    return head, body, times, tail, crc, size


def _write_xlsx_bomb(path: Path, inflated: int) -> None:
    small = {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxml'
        b'formats.org/package/2006/content-types"><Default Extension="xml" ContentType='
        b'"application/xml"/></Types>',
        "xl/workbook.xml": b'<?xml version="1.0"?><workbook/>',
    }
    row = b'<row r="2"><c t="inlineStr"><is><t>RJ1</t></is></c></row>'
    chunk = row * (1024 * 1024 // len(row))
    prefix = b'<?xml version="1.0"?><worksheet><sheetData>'
    suffix = b"</sheetData></worksheet>"
    head, body, times, tail, crc, size = _deflate_repeated(
        prefix, chunk, inflated // len(chunk), suffix
    )
    central, offset = [], 0
    with path.open("wb") as out:

        def member(name: bytes, crc: int, csize: int, usize: int, parts):
            nonlocal offset
            local = struct.pack(
                "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, csize, usize, len(name), 0
            )
            out.write(local + name)
            for part in parts:
                out.write(part)
            central.append(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    20,
                    20,
                    0,
                    8,
                    0,
                    0,
                    crc,
                    csize,
                    usize,
                    len(name),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )
                + name
            )
            offset += len(local) + len(name) + csize

        for name, content in small.items():
            comp = zlib.compressobj(9, zlib.DEFLATED, -15)
            packed = comp.compress(content) + comp.flush()
            member(name.encode(), zlib.crc32(content), len(packed), len(content), [packed])
        csize = len(head) + len(body) * times + len(tail)
        member(
            b"xl/worksheets/sheet1.xml",
            crc,
            csize,
            size,
            [head, *(body for _ in range(times)), tail],
        )
        directory = b"".join(central)
        out.write(directory)
        out.write(
            struct.pack(
                "<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(directory), offset, 0
            )
        )


def test_cli_refuses_a_1_gib_xlsx_bomb_quickly_with_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    _write_xlsx_bomb(bomb, 1024**3)
    assert bomb.stat().st_size < 5 * 1024 * 1024  # small on disk ...
    with __import__("zipfile").ZipFile(bomb) as archive:  # ... 1 GiB declared inside
        assert sum(m.file_size for m in archive.infolist()) >= 1024**3 - 2 * 1024 * 1024
    # Peak memory of the validating process itself: VmHWM belongs to the new program's address
    # space. (ru_maxrss is not usable here: Linux carries the parent's high-water mark across
    # fork and exec, so under a large pytest process it reports the parent's size.)
    script = textwrap.dedent(
        f"""
        import sys
        from flexbench.validate import main
        code = main([{str(bomb)!r}])
        with open("/proc/self/status") as status:
            hwm = next(line for line in status if line.startswith("VmHWM:"))
        print("maxrss_kb", hwm.split()[1])
        sys.exit(code)
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "too-large-inflated" in done.stdout
    maxrss_mb = int(done.stdout.split("maxrss_kb")[1].split()[0]) / 1024
    assert maxrss_mb < 500
    assert elapsed < 30


def test_gx_runs_split_by_rows_give_the_same_verdicts(batch_verdicts):
    # a batch checked in runs of at most 5 rows (about one file per run) says the same
    items = [(case, data, name, org) for case, data, name, org, *_ in CASES]
    small_runs = validate_many(items, today=TODAY, max_rows=5)
    for case, *_ in CASES:
        assert small_runs[case].accepted == batch_verdicts[case].accepted, case
        assert small_runs[case].lines() == batch_verdicts[case].lines(), case
        if batch_verdicts[case].summary is not None:
            assert small_runs[case].summary.equals(batch_verdicts[case].summary), case


# --- what `flexbench validate` says: one table row per message ------------------------------


def _notes_first_xlsx(columns=SUMMARY_COLUMNS):
    rows = summary_rows()
    table = [list(columns)] + [[r[c] for c in columns] for r in rows]
    notes = [["Flexible working figures"], ["See the Figures sheet"], list(SUMMARY_COLUMNS)[:2]]
    return xlsx_bytes({"Notes": notes, "Figures": table})


# (case, file bytes, file name, exit status, lines the output must hold)
MESSAGES = [
    (
        "a misspelt header is named with the column it is closest to",
        csv_bytes(summary_rows(), header=renamed_header(requests_received="requests_recieved")),
        "a.csv",
        1,
        [
            "missing column requests_received",
            "headers not in the standard: requests_recieved (did you mean requests_received?)",
        ],
    ),
    (
        "a misspelt optional header is named in the warning",
        csv_bytes(request_rows(), REQUEST_COLUMNS, header=[*REQUEST_COLUMNS[:-1], "flex_typ"]),
        "r.csv",
        0,
        ["warning: ignored extra columns: flex_typ (did you mean flex_type?)"],
    ),
    (
        "an outcomes sum shows its numbers",
        summary_csv(
            row2=dict(
                requests_received=15,
                approved_in_full=10,
                approved_with_changes=3,
                declined=0,
                withdrawn=1,
                pending=0,
                declined_costs=0,
                decided_within_2_months=13,
            )
        ),  # fmt: skip
        "a.csv",
        1,
        ["10 + 3 + 0 + 1 + 0 = 14, but requests_received is 15 (row 2)"],
    ),
    (
        "a decline-reasons sum on several rows shows each row",
        summary_csv(row3={"declined_other": 1}, row4={"declined_demand": 2}),
        "a.csv",
        1,
        [
            "row 3: 1 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 1 = 2, but declined is 1; "
            "row 4: 1 + 2 + 0 + 0 + 0 + 0 + 0 + 0 + 0 = 3, but declined is 1 (rows 3, 4)"
        ],
    ),
    (
        "an XLSX whose first sheet is notes: the data sheet is read and named",
        _notes_first_xlsx(),
        "a.xlsx",
        0,
        ["accepted: 3 rows, form summary, sheet Figures"],
    ),
    (
        "a refused XLSX names the sheet read, and each missing column once",
        _notes_first_xlsx([c for c in SUMMARY_COLUMNS if c != "pending"]),
        "a.xlsx",
        1,
        ["rejected: a.xlsx, sheet Figures: 1 rule failed", "missing column pending: the"],
    ),
    (
        "a US date shows its value and both readings",
        summary_csv(row2={"period_start": "04/01/2024", "period_end": "06/30/2024"}),
        "a.csv",
        1,
        [
            "unambiguous-date: column period_start+period_end:",
            "period_start 04/01/2024 could be 4 January 2024 or 1 April 2024 (row 2)",
            "period_end is 06/30/2024 (dates are read day first, as in the UK) (row 2)",
        ],
    ),
    (
        "an all-number date with nothing to say which way it reads is refused",
        request_csv(row2={"received_date": "03/04/2024", "decision_date": "02/05/2024"}),
        "r.csv",
        1,
        ["received_date 03/04/2024 could be 3 April 2024 or 4 March 2024"],
    ),
    (
        "all-number dates of a file that shows it writes the day first are UK dates",
        summary_csv(row2={"period_start": "01/04/2024", "period_end": "30/06/2024"}),
        "a.csv",
        0,
        ["accepted: 3 rows, form summary"],
    ),
    (
        "a count past the bound shows the value as written",
        summary_csv(row3={"requests_received": "99999999999999999999"}),
        "a.csv",
        1,
        [
            "count-within-bound: column requests_received: requests_received must be at most "
            "500,000 (as written: 99999999999999999999) (row 3)"
        ],
    ),
    (
        "a date before the standard's earliest shows the value",
        summary_csv(row4={"period_start": "1999-04-01", "period_end": "1999-06-30"}),
        "a.csv",
        1,
        [
            "date-in-range: column period_start: period_start must not be before 1 April 2003: "
            "period_start is 1999-04-01 (row 4)"
        ],
    ),
    (
        "a decision in the future",
        request_csv(row3={"decision_date": "2031-01-01"}),
        "r.csv",
        1,
        ["decision-not-future: column decision_date: decision_date must not be in the future"],
    ),
    (
        "a decision more than a year after its quarter",
        request_csv(row2={"received_date": "2023-04-03", "decision_date": "2024-08-01"}),
        "r.csv",
        1,
        [
            "decision-within-window: column decision_date: decision_date must be within 12 "
            "months of the end of the quarter the request was received in (row 2)"
        ],
    ),
    (
        "a personal-data column in a summary file",
        csv_bytes(
            [dict(r, n="x") for r in summary_rows()],
            columns=[*SUMMARY_COLUMNS, "n"],
            header=[*SUMMARY_COLUMNS, "Staff No."],
        ),
        "a.csv",
        1,
        ["personal-data: column Staff No.: the file carries personal data (Staff No.)"],
    ),
]


@pytest.mark.parametrize(
    "case, data, name, status, expected", MESSAGES, ids=[m[0] for m in MESSAGES]
)
def test_validate_message(tmp_path, capsys, case, data, name, status, expected):
    path = tmp_path / name
    path.write_bytes(data)
    assert main([str(path), "--org", "RJ1", "--today", "2025-01-15"]) == status
    out = capsys.readouterr().out
    for line in expected:
        assert line in out, out
    for column in SUMMARY_COLUMNS:  # no column listed twice
        assert out.count(f"missing column {column}") <= 1


def test_headcount_bound_refuses_more_requests_than_ten_per_head(tmp_path, capsys):
    path = tmp_path / "a.csv"
    path.write_bytes(summary_csv(row2={"requests_received": 25, "approved_in_full": 21}))
    argv = [str(path), "--org", "RJ1", "--today", "2025-01-15", "--headcount"]
    assert main([*argv, "2"]) == 1  # 25 requests from 2 staff: more than 10 per head
    out = capsys.readouterr().out
    assert "requests-within-headcount: column requests_received" in out and "(row 2)" in out
    assert main([*argv, "3"]) == 0  # 3 staff may make up to 30


def test_in_a_batch_the_headcount_bound_holds_for_each_trust_whose_headcount_is_known():
    # Files of trusts with and without a known headcount validated together (as the pipeline
    # does): the known ones are held to it (they were all let through).
    data = summary_csv(row2={"requests_received": 25, "approved_in_full": 21})
    items = [
        (org, data.replace(b"RJ1", org.encode()), f"{org}.csv", org)
        for org in ("RAA", "RBB", "RCC")
    ]
    verdicts = validate_many(items, today=date(2025, 1, 15), headcounts={"RAA": 2, "RCC": 3})
    assert not verdicts["RAA"].accepted
    assert any("requests-within-headcount" in line for line in verdicts["RAA"].lines())
    assert verdicts["RBB"].accepted and verdicts["RCC"].accepted


def test_internal_error_is_exit_3_with_one_line_naming_the_log(tmp_path, capsys, monkeypatch):
    log = tmp_path / "errors.log"
    monkeypatch.setenv("FLEXBENCH_VALIDATE_LOG", str(log))

    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not a verdict")

    monkeypatch.setattr("flexbench.validate.validate_publication", broken)
    path = tmp_path / "a.csv"
    path.write_bytes(summary_csv())
    assert main([str(path)]) == 3
    err = capsys.readouterr().err
    assert err.strip() == f"flexbench validate: internal error (RuntimeError); details in {log}"
    assert "Traceback" in log.read_text() and "a bug, not a verdict" in log.read_text()


# --- the batch read by DuckDB ---------------------------------------------------------------

_PLAIN = summary_csv()
_LINES = _PLAIN.decode().replace("\r\n", "\n").rstrip("\n").split("\n")
_QUOTED = _LINES[0] + "\n" + _LINES[1].replace("All staff groups", '"All staff groups"') + "\n"

#: Files the batch reader reads (the same frame as read_publication), and files it must leave
#: to read_publication because DuckDB would not read them as the csv module does.
READ_BY_DUCKDB = {
    "plain": _PLAIN,
    "CRLF and BOM": b"\xef\xbb\xbf" + "\r\n".join(_LINES).encode() + b"\r\n",
    "semicolons": "\n".join(line.replace(",", ";") for line in _LINES).encode(),
    "quoted cell and spaces around cells": _QUOTED.replace(",10,", ",  10 ,").encode(),
    "a row of empty cells (dropped, numbering kept)": (
        "\n".join([_LINES[0], "," * 22, *_LINES[1:]]).encode()
    ),
    "blank lines at the end only": _PLAIN + b"\n\n\n",
}
LEFT_TO_READ_PUBLICATION = {
    "a blank line between rows": "\n".join([_LINES[0], _LINES[1], "", _LINES[2]]).encode(),
    "a line break inside quotes": "\n".join(
        [_LINES[0], _LINES[1].replace("All staff groups", '"All staff\ngroups"')]
    ).encode(),
    "a short row": "\n".join([_LINES[0], _LINES[1], "RJ1,2024-04-01"]).encode(),
    "a long row": "\n".join([_LINES[0], _LINES[1] + ",extra"]).encode(),
    "a tab in a cell": "\n".join([_LINES[0], _LINES[1].replace(",10,", ",\t10,")]).encode(),
    "Windows-1252": "\n".join([_LINES[0] + ",notes", _LINES[1] + ",café"]).encode("cp1252"),
    "a title above the header": ("Flexible working 2024\n" + "\n".join(_LINES)).encode(),
    "a quote inside a cell": "\n".join([_LINES[0], _LINES[1].replace("All", 'A"ll')]).encode(),
    "a bare CR": "\r".join(_LINES).encode(),
}


@pytest.mark.parametrize("read_batch_rows", [50_000, 3])  # 3: each file over several batches
@pytest.mark.parametrize("threads", [None, 1])  # 1: as a worker of the validation pool reads
def test_duckdb_reads_a_batch_as_read_publication_reads_each_file(
    read_batch_rows, threads, monkeypatch
):
    from flexbench import validate
    from flexbench.validate import read_declared
    from transforms.publications import read_publication

    monkeypatch.setattr(validate, "READ_BATCH_ROWS", read_batch_rows)
    monkeypatch.setattr(validate, "READ_THREADS", threads)

    files = {**READ_BY_DUCKDB, **LEFT_TO_READ_PUBLICATION}
    items = [(name, data, f"{i}.csv", "RJ1") for i, (name, data) in enumerate(files.items())]
    read = {items[n][0]: p for n, p in read_declared(items).items()}
    assert set(read) == set(READ_BY_DUCKDB)
    for name, publication in read.items():
        alone = read_publication(files[name], "x.csv")
        assert (publication.form, publication.warnings) == (alone.form, alone.warnings), name
        assert publication.frame.equals(alone.frame), name
        for column in alone.frame.columns:  # text stays text, a blank stays None
            assert list(map(type, publication.frame[column])) == list(
                map(type, alone.frame[column])
            ), (name, column)
    empties = read["a row of empty cells (dropped, numbering kept)"].frame
    assert list(empties["_row"]) == [3, 4, 5]


def test_a_batch_read_by_duckdb_holds_each_repeated_cell_text_once():
    # A batch of N=10 is about a million rows: a string object per cell (about 55 bytes
    # each) was most of a validation worker's memory. Equal cells share one string.
    from flexbench.validate import read_declared

    items = [(i, _PLAIN, f"{i}.csv", "RJ1") for i in range(10)]
    read = read_declared(items)
    assert len(read) == 10
    codes = [c for p in read.values() for c in p.frame["org_code"]]
    assert codes == ["RJ1"] * len(codes) and len(codes) > 10
    assert len({id(c) for c in codes}) == 1
    assert read[0].frame.equals(read[9].frame)


def test_a_batch_gives_the_verdicts_files_get_one_by_one_duckdb_or_not():
    files = {**READ_BY_DUCKDB, **LEFT_TO_READ_PUBLICATION}
    items = [(name, data, "f.csv", "RJ1") for name, data in files.items()]
    together = validate_many(items, today=TODAY)
    for name, data, filename, org in items:
        alone = validate_publication(data, filename, org, today=TODAY)
        assert together[name].report() == alone.report(), name
        if alone.accepted:
            assert together[name].summary.equals(alone.summary), name


_REQUEST_HEADER = (
    "org_code,request_id,received_date,decision_date,outcome,escalated,appeal,"
    "decline_reason,staff_group"
)
_EQUITY_HEADER = _REQUEST_HEADER + ",flex_type,sex,age_band,ethnic_group,disability,band"


def _request_file(*rows: str, header: str = _REQUEST_HEADER) -> bytes:
    return "\n".join([header, *rows]).encode()


REQUEST_LEVEL_BATCH = {
    "plain": request_csv(),
    "odd case and spacing": _request_file(
        " rj1 ,A1, 2024-04-03 ,2024-04-20, AGREED ,Y,,,nurses and health visitors",
        "RJ1,A2,3 April 2024,2024-06-30,Declined,yes,Upheld,Burden of additional costs,"
        "CENTRAL FUNCTIONS",
        "rj1,A3,2024-04-30,2024-07-01,declined,N,not upheld,Insufficient work,Central functions ",
    ),
    "blank cells": _request_file(
        "RJ1,B1,2024-05-01,,pending,no,,,Central functions",
        "RJ1,B2,2024-05-02,,withdrawn,no,,,Central functions",
    ),
    "a quarter not yet over": _request_file(
        "RJ1,C1,2024-12-31,2025-01-10,approved_in_full,no,none,,Central functions",
        "RJ1,C2,2025-01-05,,pending,no,none,,Central functions",  # Jan-Mar 2025: left out
    ),
    "every request in a quarter not yet over": _request_file(
        "RJ1,G1,2025-01-02,,pending,no,none,,Central functions",
    ),
    "a header and no requests": _request_file(),
    "two months to the day, at a month's end": _request_file(
        "RJ1,D1,2024-10-31,2024-12-31,approved_with_changes,no,none,,Central functions",
        "RJ1,D2,2024-10-31,2025-01-01,approved_in_full,no,none,,Central functions",
    ),
    "equity columns, some 'Not stated'": _request_file(
        "RJ1,E1,2024-04-03,2024-04-20,approved_in_full,no,none,,Central functions,"
        "part_time,Not stated,25-34,,Disabled,Band 5",
        "RJ1,E2,2024-04-04,2024-04-21,declined,no,pending,costs,Central functions,,F,,White,No,",
        header=_EQUITY_HEADER,
    ),
    "a spreadsheet": xlsx_bytes(
        {
            "Requests": [
                _REQUEST_HEADER.split(","),
                [
                    "RJ1",
                    7,
                    date(2024, 4, 3),
                    date(2024, 4, 20),
                    "approved_in_full",
                    "no",
                    None,
                    None,
                    "Central functions",
                ],
                [
                    "RJ1",
                    8,
                    date(2024, 7, 3),
                    None,
                    "pending",
                    "no",
                    "none",
                    None,
                    "Nurses & health visitors",
                ],
            ]  # fmt: skip
        }
    ),
    "decision before receipt": _request_file(
        "RJ1,F1,2024-04-03,2024-04-01,approved_in_full,no,none,,Central functions",
    ),
}


def test_a_batch_aggregates_request_level_files_as_each_alone_is_aggregated():
    # A batch's request-level files are aggregated by DuckDB, a file alone by pandas: the
    # same summary rows (typed alike), warnings and reports, however the file is written.
    items = [
        (name, data, "f.xlsx" if name == "a spreadsheet" else "f.csv", "RJ1")
        for name, data in REQUEST_LEVEL_BATCH.items()
    ]
    together = validate_many(items, today=TODAY)
    for name, data, filename, org in items:
        alone = validate_publication(data, filename, org, today=TODAY)
        assert together[name].report() == alone.report(), name
        if alone.accepted:
            pd_testing().assert_frame_equal(together[name].summary, alone.summary, obj=name)
    assert not together["decision before receipt"].accepted
    late = together["a quarter not yet over"]
    assert late.warnings == [
        "1 request(s) received in a quarter not yet over are left out of the summary until it ends"
    ]
    assert list(late.summary["requests_received"]) == [1, 1]  # all staff groups, one group
    odd = together["odd case and spacing"].summary.set_index("staff_group")
    total = odd.loc["All staff groups"]
    assert (total["requests_received"], total["approved_in_full"], total["declined"]) == (3, 1, 2)
    assert (total["appeals"], total["appeals_upheld"], total["escalated"]) == (2, 1, 2)
    assert (total["declined_costs"], total["declined_insufficient_work"]) == (1, 1)
    assert total["decided_within_2_months"] == 1  # 3 Apr -> 30 Jun, 30 Apr -> 1 Jul: late
    assert set(odd.index) == {"All staff groups", "Nurses & health visitors", "Central functions"}
    assert together["every request in a quarter not yet over"].summary.empty
    on_the_day = together["two months to the day, at a month's end"].summary.iloc[0]
    assert on_the_day["decided_within_2_months"] == 1


def pd_testing():
    import pandas as pd

    return pd.testing
