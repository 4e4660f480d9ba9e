"""The site's XLSX writer (flexbench/site/workbook.py): every file holds what openpyxl's
write-only workbook would hold, part for part, the save time in docProps/core.xml aside."""

from __future__ import annotations

import re
import sys
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from flexbench.site import workbook  # noqa: E402

_SAVED_AT = re.compile(rb"<dcterms:(created|modified)[^>]*>[^<]*</dcterms:\1>")

CASES = {
    # text, numbers (openpyxl's %.16g, big integers too), booleans, empty text, missing cells
    "values": [
        (
            "card",
            [
                ["code", "n", "rate"],
                ["RXX", 1155, 0.903],
                [None, True, False],
                ["", -3, 1e-07],
                ["x", 12345678901234567, 0.1 + 0.2],
            ],
        ),
    ],
    # text kept as written: markup characters escaped, spaces at either end preserved
    "text": [("t", [["a&b<c>\"'", " lead", "trail ", "  ", "a\nb\tc\rd", "ü €", "'=1"]])],
    # dates as serial numbers with the date style, in some sheets only
    "dates": [
        ("one", [["d", "n"], [date(2026, 1, 31), 3]]),
        ("two", [["s"], ["x"]]),
        ("three", [["d"], [date(1900, 1, 1)]]),
    ],
    # a row with no value at all
    "empty row": [("r", [["a", "b"], [None, None], ["z", None]])],
    # what only openpyxl writes: a formula, an error code, a datetime, a NaN
    "formula": [("u", [["a"], ["=SUM(A1)"]])],
    "error code": [("u", [["a"], ["#N/A"]])],
    "datetime": [("u", [["a"], [datetime(2026, 1, 1, 12, 0)]])],
    "nan": [("u", [["a"], [float("nan")]])],
}


def _parts(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as z:
        return [
            (n, _SAVED_AT.sub(b"", z.read(n)) if n == "docProps/core.xml" else z.read(n))
            for n in z.namelist()
        ]


@pytest.mark.parametrize("case", list(CASES))
def test_workbook_holds_what_openpyxl_writes(case, tmp_path):
    sheets = CASES[case]
    ours, theirs = tmp_path / "ours.xlsx", tmp_path / "openpyxl.xlsx"
    workbook.write_workbook(ours, sheets)
    workbook._openpyxl(theirs, sheets)
    assert _parts(ours) == _parts(theirs)


def test_a_sheet_title_openpyxl_refuses_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Invalid character"):
        workbook.write_workbook(tmp_path / "x.xlsx", [("a/b", [["x"]])])


def test_rows_several_workbooks_hold_are_the_same_in_each(tmp_path):
    # a peer group's rows, kept (and deflated) once, in the workbooks of two of its trusts
    shared = workbook.SheetRows([["code", "rate"], ["RXX", 0.5], ["RYY", None]])
    for i, own in enumerate(("first", "second")):
        sheets = [("card", [["code"], [own]]), ("peers", shared)]
        ours, theirs = tmp_path / f"ours{i}.xlsx", tmp_path / f"openpyxl{i}.xlsx"
        workbook.write_workbook(ours, sheets)
        workbook._openpyxl(theirs, sheets)
        assert _parts(ours) == _parts(theirs)


@pytest.mark.parametrize("formula", [False, True])
def test_rows_cut_from_a_table_hold_its_cells(formula, tmp_path):
    # rows of a table's values (numpy scalars, NaN and NA as the table holds them), a cell
    # each as extract._cell makes it; a formula among them leaves the workbook to openpyxl
    import numpy as np
    import pandas as pd

    from flexbench import extract

    values = np.array(
        [
            ["RXX", np.float64(0.5), pd.NA, np.int64(7), True],
            ["RYY", float("nan"), None, np.int64(-1), np.bool_(False)],
            ["RZZ", 1.25, "=1+1" if formula else "x", 3, False],
        ],
        dtype=object,
    )
    header = ["code", "rate", "note", "n", "flag"]
    rows = workbook.TableRows(header, values, [2, 0], extract._cell)
    cells = [header] + [[extract._cell(v) for v in values[i]] for i in (2, 0)]
    ours, theirs = tmp_path / "ours.xlsx", tmp_path / "openpyxl.xlsx"
    workbook.write_workbook(ours, [("cut", rows)])
    workbook._openpyxl(theirs, [("cut", cells)])
    assert _parts(ours) == _parts(theirs)
