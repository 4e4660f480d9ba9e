"""Fuzzing `flexbench validate`: hostile and broken files never crash it or slip through.

Hypothesis mutates the templates and the table-driven corpus of ``test_validate.py``: cells
replaced by huge, negative or odd numbers, dates outside the standard's range, ambiguous and
odd Unicode text; headers renamed to personal data (with look-alike letters); bytes flipped,
inserted or cut off; XLSX parts broken inside a sound zip; XLSX cells holding values no
spreadsheet should. The example budget is fixed and the generation derandomised, so a run
is bounded and repeatable: at least ``MIN_FILES`` files per run, checked in-process in
batches (as the pipeline checks them), a few through the command in a subprocess.

For every generated file:

- no exception escapes (a traceback), and the command exits 0 or 1;
- an accepted file holds no count outside 0..MAX_COUNT, no period or date outside
  EARLIEST_DATE..as-of date, and was not given a personal-data column;
- a file into which a known-bad value was put (a count past the bound, a date outside the
  range, a personal-data header, a decision in the future or past the decision window) is
  rejected.

``REPRODUCERS`` keeps the minimal files that once crashed the validator or were accepted
when they should not have been, each with the rule that must now refuse it.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import zipfile
from datetime import date, datetime

import openpyxl
import pandas as pd
import pytest
import test_validate as corpus  # the table-driven corpus (same folder)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from flexbench.validate import main, validate_many
from transforms.publications import (
    COUNT_COLUMNS,
    EARLIEST_DATE,
    MAX_COUNT,
    PERSONAL_DATA_HEADERS,
    SUMMARY_COLUMNS,
)

TODAY = corpus.TODAY
REPO = corpus.REPO
MIN_FILES = 300

FUZZ = settings(
    derandomize=True,
    database=None,
    # No shrinking: a list of files shrinks slowly; the failing file itself is in the message.
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- seeds: the templates and the corpus ----------------------------------------------------

WORKED_EXAMPLE = (REPO / "docs" / "templates" / "worked-example-summary.csv").read_bytes()
SEEDS_CSV = [  # (bytes, org, form)
    (WORKED_EXAMPLE, "RXX", "summary"),
    (corpus.summary_csv(), "RJ1", "summary"),
    (corpus.request_csv(), "RJ1", "request_level"),
]
XLSX_TEMPLATE = corpus.filled_xlsx_template()
CORPUS = [(data, org) for _, data, _, org, *_ in corpus.CASES] + [(XLSX_TEMPLATE, "RXX")]
DATE_COLUMNS = {
    "summary": ("period_start", "period_end"),
    "request_level": ("received_date", "decision_date"),
}

GENERATED: list[str] = []  # one entry per generated file, for the MIN_FILES check


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


# --- value strategies -----------------------------------------------------------------------

over_bound = st.integers(min_value=MAX_COUNT + 1, max_value=10**400)
count_text = st.one_of(
    over_bound.map(str),
    over_bound.map(lambda n: f"{n:,}"),  # thousands separators
    over_bound.map(lambda n: f"+{n}.000"),
    over_bound.map(lambda n: "000" + str(n)),
    over_bound.map(lambda n: str(n).translate(str.maketrans("0123456789", "０１２３４５６７８９"))),
)
negative_text = st.integers(max_value=-1, min_value=-(10**30)).map(str)
odd_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1e20", "inf", "-0", "NaN", "1_000", "٣", "0x10", "12.5", " ", "\x00", "''"]),
)
early_date = st.dates(min_value=date(1, 1, 1), max_value=date(2003, 3, 31))
late_date = st.dates(min_value=date(2025, 1, 16), max_value=date(9999, 12, 31))
date_text = st.sampled_from(["{:%Y-%m-%d}", "{:%d/%m/%Y}", "{:%d %B %Y}", "{:%Y%m%d}"])
LOOKALIKES = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "N": "Ｎ"})
personal_header = st.tuples(
    st.sampled_from(PERSONAL_DATA_HEADERS),
    st.sampled_from([str, str.upper, str.lower, lambda h: h.translate(LOOKALIKES)]),
    st.sampled_from(["{}", "{}.", " {} ", "{}:", "{} (ESR)"]),
).map(lambda t: t[2].format(t[1](t[0])))


@st.composite
def csv_mutation(draw):
    """One CSV seed with one change, and what a correct validator must make of it."""
    data, org, form = draw(st.sampled_from(SEEDS_CSV))
    rows = _rows(data)
    header, body = rows[0], rows[1:]
    r = draw(st.integers(0, len(body) - 1))
    kinds = ["noise", "early_date", "late_date", "personal", "ambiguous"]
    if form == "summary":
        kinds += ["count_over", "negative"]
    else:
        kinds += ["decision_late"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("count_over", "negative"):
        column = draw(st.sampled_from(COUNT_COLUMNS))
        value = draw(count_text if kind == "count_over" else negative_text)
        body[r][header.index(column)] = value
    elif kind in ("early_date", "late_date"):
        column = draw(st.sampled_from(DATE_COLUMNS[form]))
        day = draw(early_date if kind == "early_date" else late_date)
        body[r][header.index(column)] = draw(date_text).format(day)
    elif kind == "decision_late":  # decided before the as-of date, over a year after its quarter
        day = draw(st.dates(min_value=date(2024, 7, 1), max_value=TODAY))
        body[r][header.index("decision_date")] = f"{day:%Y-%m-%d}"
        body[r][header.index("received_date")] = "2023-04-03"
    elif kind == "personal":
        name, value = draw(personal_header), draw(st.sampled_from(["x", "", "A. Smith"]))
        at = draw(st.integers(0, len(header)))
        header.insert(at, name)
        for row in body:
            row.insert(at, value)
    elif kind == "ambiguous":
        column = draw(st.sampled_from(DATE_COLUMNS[form]))
        a, b = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        body[r][header.index(column)] = f"{a:02d}/{b:02d}/2024"
        kind = "noise"  # may be read as a UK date when the file shows day-first elsewhere
    else:
        column = draw(st.sampled_from(header))
        body[r][header.index(column)] = draw(odd_text)
    return _csv([header, *body]), org, kind


@st.composite
def byte_mutation(draw):
    """A corpus file (CSV or XLSX) with bytes flipped, inserted or cut off."""
    data, org = draw(st.sampled_from(CORPUS))
    data = bytearray(data)
    how = draw(st.sampled_from(["flip", "truncate", "insert"]))
    if not data:
        return bytes(draw(st.binary(max_size=64))), org
    if how == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))]), org
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        if how == "flip":
            data[at] ^= draw(st.integers(1, 255))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data), org


def _rezip(data: bytes, change) -> bytes:
    """The XLSX with each part passed through ``change(name, bytes)``, zipped soundly."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item.filename, change(item.filename, source.read(item.filename)))
    return out.getvalue()


XML_DAMAGE = [
    lambda x: x[: len(x) // 2],  # cut mid-element
    lambda x: x.replace(b"<c ", b'<c foo="bar" ', 3),  # unknown attribute
    lambda x: x.replace(b' r="A2"', b' r="!!"', 1),  # bad cell reference
    lambda x: x.replace(b"<v>", b"<v>x", 2),  # text in a number cell
    lambda x: x.replace(b' t="s"', b' t="zz"', 2),  # unknown cell type
    lambda x: x.replace(b"<row ", b'<row spans="1:99999999999" ', 2),
    lambda x: x.replace(b"<sheetData>", b"<sheetData><!DOCTYPE x [<!ENTITY a 'b'>]>", 1),
    lambda x: x.replace(b"<v>", b"<v>1e400", 1),
    lambda x: x.replace(b"</row>", b"", 1),
    lambda x: x.replace(b"<si>", b"<si><t>", 1),
]


@st.composite
def xlsx_mutation(draw):
    """The filled XLSX template broken inside a sound zip, or holding odd cell values."""
    if draw(st.booleans()):
        part = draw(st.sampled_from(["xl/worksheets/sheet1.xml", "xl/workbook.xml", "xl/styles.xml",
                                     "xl/sharedStrings.xml", "[Content_Types].xml"]))  # fmt: skip
        damage = draw(st.sampled_from(XML_DAMAGE))
        return _rezip(XLSX_TEMPLATE, lambda n, x: damage(x) if n == part else x), "RXX", "noise"
    book = openpyxl.load_workbook(io.BytesIO(XLSX_TEMPLATE))
    sheet = book["data"]
    header = [c.value for c in sheet[1]]
    row = draw(st.integers(2, sheet.max_row))
    kind = draw(st.sampled_from(["count_over", "early_date", "late_date", "noise"]))
    if kind == "count_over":
        column = draw(st.sampled_from(COUNT_COLUMNS))
        value = draw(st.one_of(st.integers(MAX_COUNT + 1, 2**63 - 1), st.just(1e20)))
    elif kind in ("early_date", "late_date"):
        column = draw(st.sampled_from(("period_start", "period_end")))
        day = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2003, 3, 31)))
        if kind == "late_date":
            day = draw(late_date)
        value = datetime.combine(day, datetime.min.time())
    else:
        column = draw(st.sampled_from(header))
        value = draw(st.one_of(st.floats(allow_nan=False), st.booleans(), odd_text))
    if isinstance(value, str):  # characters XML cannot hold: openpyxl refuses to write them
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    sheet.cell(row=row, column=header.index(column) + 1, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue(), "RXX", kind


# --- the oracle -------------------------------------------------------------------------------


def _check(items: list[tuple[bytes, str | None, str]], label: str) -> None:
    """Validate ``items`` (data, org, kind) in one batch, as the pipeline does, and hold
    every verdict to the invariants in this module's docstring."""
    GENERATED.extend(f"{label}-{i}" for i in range(len(items)))
    batch = [(i, data, "fuzzed.xlsx" if data[:2] == b"PK" else "fuzzed.csv", org)
             for i, (data, org, _) in enumerate(items)]  # fmt: skip
    verdicts = validate_many(batch, today=TODAY)  # an exception here is a crash
    for i, (_, _, kind) in enumerate(items):
        verdict = verdicts[i]
        shown = f"{kind}: {items[i][0][:600]!r} -> {verdict.lines() or 'accepted'}"
        if kind not in ("noise", None):
            assert not verdict.accepted, shown
        if verdict.accepted:
            _assert_within_bounds(verdict.summary, shown)
        else:
            assert verdict.failures and all(f.rule for f in verdict.failures)


def _assert_within_bounds(summary: pd.DataFrame, shown: str) -> None:
    counts = summary[list(COUNT_COLUMNS)]
    assert ((counts >= 0) & (counts <= MAX_COUNT)).all().all(), shown
    assert (summary["period_start"] >= pd.Timestamp(EARLIEST_DATE)).all(), shown
    assert (summary["period_end"] <= pd.Timestamp(TODAY)).all(), shown


@settings(FUZZ, max_examples=5)
@given(st.lists(csv_mutation(), min_size=40, max_size=40))
def test_fuzzed_csv_cells_and_headers(files):
    _check(files, "csv")


@settings(FUZZ, max_examples=4)
@given(st.lists(byte_mutation(), min_size=25, max_size=25))
def test_fuzzed_bytes_of_the_corpus(files):
    _check([(data, org, None) for data, org in files], "bytes")


@settings(FUZZ, max_examples=2)
@given(st.lists(xlsx_mutation(), min_size=16, max_size=16))
def test_fuzzed_xlsx_parts_and_cells(files):
    _check(files, "xlsx")


@settings(FUZZ, max_examples=2)
@given(st.one_of(byte_mutation().map(lambda t: t[0]), xlsx_mutation().map(lambda t: t[0])))
def test_fuzzed_files_through_the_command(tmp_path_factory, data):
    """The command itself, in a fresh process: exit 0 or 1, and never a traceback."""
    GENERATED.append("command")
    path = tmp_path_factory.mktemp("fuzz") / ("f.xlsx" if data[:2] == b"PK" else "f.csv")
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "flexbench.cli", "validate", str(path), "--today", "2025-01-15"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_every_run_checks_at_least_min_files():
    """The budget above makes MIN_FILES files; a filter or a change that quietly drops
    examples shows here. Runs after the fuzz tests in file order."""
    ran = {g.split("-")[0] for g in GENERATED}
    if ran != {"csv", "bytes", "xlsx", "command"}:
        pytest.skip("run with the whole module to count the generated files")
    assert len(GENERATED) >= MIN_FILES


def test_the_seeds_are_accepted():
    """The oracle is not vacuous: unmutated seeds pass, so a rejection above is the mutation's."""
    items = [(i, data, "s.csv", org) for i, (data, org, _) in enumerate(SEEDS_CSV)]
    items.append((len(items), XLSX_TEMPLATE, "s.xlsx", "RXX"))
    verdicts = validate_many(items, today=TODAY)
    assert all(v.accepted for v in verdicts.values()), [v.lines() for v in verdicts.values()]


# --- reproducers: minimal files that once crashed the validator or slipped through ------------


def _summary(**cells) -> bytes:
    return corpus.summary_csv(row2=cells)


def _xlsx_part(part: str, damage) -> bytes:
    return _rezip(XLSX_TEMPLATE, lambda n, x: damage(x) if n == part else x)


def _corrupt_deflate() -> bytes:
    data = bytearray(XLSX_TEMPLATE)
    info = zipfile.ZipFile(io.BytesIO(XLSX_TEMPLATE)).getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for k in range(start + 10, start + info.compress_size - 10, 7):
        data[k] ^= 0xA5  # the deflate stream broken, the zip directory intact
    return bytes(data)


def _xlsx_cell(column: str, value) -> bytes:
    book = openpyxl.load_workbook(io.BytesIO(XLSX_TEMPLATE))
    header = [c.value for c in book["data"][1]]
    book["data"].cell(row=2, column=header.index(column) + 1, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _entity_bomb(sheet: bytes) -> bytes:
    """The sheet with a DTD whose entities expand ten-fold nine times (10**9 characters),
    one of them used in a cell."""
    entities = [b'<!ENTITY e0 "aaaaaaaaaa">']
    for level in range(1, 9):
        entities.append(f'<!ENTITY e{level} "{f"&e{level - 1};" * 10}">'.encode())
    body = sheet[sheet.find(b"<worksheet") :].replace(b"<t>RXX</t>", b"<t>&e8;</t>", 1)
    return b'<?xml version="1.0"?><!DOCTYPE worksheet [' + b"".join(entities) + b"]>" + body


SUMMARY_HEADER = list(SUMMARY_COLUMNS)
# (case, file bytes, --org, the rule that must refuse it)
REPRODUCERS = [
    ("corrupt deflate stream in an XLSX", _corrupt_deflate(), "RXX", "unreadable-xlsx"),
    (
        "broken sheet XML",
        _xlsx_part("xl/worksheets/sheet1.xml", lambda x: x[: len(x) // 2]),
        "RXX",
        "unreadable-xlsx",
    ),
    (
        "bad cell reference in the sheet",
        _xlsx_part("xl/worksheets/sheet1.xml", lambda x: x.replace(b' r="A2"', b' r="!!"', 1)),
        "RXX",
        "unreadable-xlsx",
    ),
    (  # the header cell's text is lost: the column it named is missing
        "unknown cell type",
        _xlsx_part(
            "xl/worksheets/sheet1.xml", lambda x: x.replace(b' t="inlineStr"', b' t="zz"', 1)
        ),
        "RXX",
        "missing-columns",
    ),
    ("a 309-digit count", _summary(requests_received="9" * 309), "RJ1", "count-within-bound"),
    ("a 5000-digit count", _summary(appeals="7" * 5000), "RJ1", "count-within-bound"),
    (
        "99999999999999999999 requests",
        _summary(requests_received="99999999999999999999"),
        "RJ1",
        "count-within-bound",
    ),
    (
        "sums off by 1,000 on huge numbers",
        _summary(requests_received=10**17 + 1006, approved_in_full=10**17),
        "RJ1",
        "count-within-bound",
    ),
    ("an XLSX count of 1e20", _xlsx_cell("requests_received", 1e20), "RXX", "count-within-bound"),
    (
        "a period in the year 1",
        _summary(period_start="0001-01-01", period_end="0001-03-31"),
        "RJ1",
        "date-in-range",
    ),
    (
        "a period before the right began",
        _summary(period_start="2001-04-01", period_end="2001-06-30"),
        "RJ1",
        "date-in-range",
    ),
    (
        "an XLSX period in 1900",
        _xlsx_cell("period_start", datetime(1900, 4, 1)),
        "RXX",
        "date-in-range",
    ),
    (
        "a decision dated 9999-12-31",
        corpus.request_csv(row2={"decision_date": "9999-12-31"}),
        "RJ1",
        "decision-not-future",
    ),
    (
        "a decision two years after its quarter",
        corpus.request_csv(row2={"received_date": "2022-04-04", "decision_date": "2024-06-03"}),
        "RJ1",
        "decision-within-window",
    ),
    (
        "an XLSX date cell in the year 1",
        _xlsx_part(
            "xl/worksheets/sheet1.xml",
            lambda x: x.replace(
                b'<c r="B2" t="inlineStr"><is><t>2024-04-01</t></is></c>',
                b'<c r="B2" t="d"><v>0001-01-01T00:00:00</v></c>',
            ),
        ),
        "RXX",
        "date-in-range",
    ),
    (
        "an XLSX number cell of 1e400",
        _xlsx_part(
            "xl/worksheets/sheet1.xml",
            lambda x: x.replace(b'<c r="E2" t="n"><v>120</v></c>', b'<c r="E2"><v>1e400</v></c>'),
        ),
        "RXX",
        "whole-number",
    ),
    (
        "entity expansion (billion laughs) in the sheet",
        _xlsx_part(
            "xl/worksheets/sheet1.xml",
            _entity_bomb,
        ),
        "RXX",
        "unreadable-xlsx",
    ),
    ("a Cyrillic а in Name", corpus.request_csv("Nаme"), "RJ1", "personal-data"),
    ("Pay no.", corpus.request_csv("Pay no."), "RJ1", "personal-data"),
    (
        "Employee name in a summary file",
        corpus.csv_bytes(
            [dict(r, e="x") for r in corpus.summary_rows()],
            columns=[*SUMMARY_HEADER, "e"],
            header=[*SUMMARY_HEADER, "Employee name"],
        ),
        "RJ1",
        "personal-data",
    ),
    (  # found by this suite: a qualifier in brackets hid the header
        "Employee (ESR) with look-alike letters in a summary file",
        corpus.csv_bytes(
            [dict(r, e="x") for r in corpus.summary_rows()],
            columns=[*SUMMARY_HEADER, "e"],
            header=[*SUMMARY_HEADER, "Emрlоyее (ESR)"],
        ),
        "RJ1",
        "personal-data",
    ),
    (
        "full-width letters in NI Number",
        corpus.request_csv("ＮＩ Ｎｕｍｂｅｒ"),
        "RJ1",
        "personal-data",
    ),
    (
        "a US date",
        _summary(period_start="04/01/2024", period_end="06/30/2024"),
        "RJ1",
        "unambiguous-date",
    ),
]


@pytest.fixture(scope="module")
def reproducer_verdicts():
    items = [(case, data, "r.xlsx" if data[:2] == b"PK" else "r.csv", org)
             for case, data, org, _ in REPRODUCERS]  # fmt: skip
    return validate_many(items, today=TODAY)


@pytest.mark.parametrize(
    "case, rule", [(c[0], c[3]) for c in REPRODUCERS], ids=[c[0] for c in REPRODUCERS]
)
def test_reproducer_is_refused_for_the_right_reason(reproducer_verdicts, case, rule):
    verdict = reproducer_verdicts[case]
    assert not verdict.accepted
    assert rule in {f.rule for f in verdict.failures}, verdict.lines()


@pytest.mark.parametrize("case", ["corrupt deflate stream in an XLSX", "a 309-digit count"])
def test_reproducer_through_the_command_exits_1_without_a_traceback(tmp_path, capsys, case):
    data = next(c[1] for c in REPRODUCERS if c[0] == case)
    path = tmp_path / ("r.xlsx" if data[:2] == b"PK" else "r.csv")
    path.write_bytes(data)
    assert main([str(path), "--today", "2025-01-15"]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert out.out.startswith("rejected:")
