"""What to do about each failed rule, in words a trust HR lead can act on.

The rules themselves are described in docs/flex-data-standard.md ("The rules"); a row rule's
description already says what the row must satisfy, so its advice points at the rows. A rule
about the whole file gets a sentence of its own.
"""

from __future__ import annotations

from typing import Any

FILE_ADVICE = {
    "empty-file": "Save the sheet with its header and at least one data row.",
    "html-page": "You uploaded a web page. Upload the CSV or XLSX file itself.",
    "not-csv-or-xlsx": "Save the sheet as CSV (UTF-8) or as an Excel workbook (.xlsx); "
    "old .xls files, PDFs and other formats cannot be checked.",
    "undecodable": 'Save the file again as "CSV UTF-8" from your spreadsheet program.',
    "unreadable-xlsx": "The workbook is damaged. Open it in your spreadsheet program, "
    "save it again as .xlsx, and check it again.",
    "too-large": "A publication is much smaller than this: remove other sheets, images "
    "and unused rows, or save it as CSV.",
    "too-large-inflated": "The workbook unpacks to far more data than a publication needs: "
    "remove other sheets, images and formatting, or save it as CSV.",
    "too-many-rows": "Remove blank or unrelated rows; a summary has one row per period "
    "and staff group.",
    "missing-columns": "Add the missing columns with the standard's names; the templates "
    "below have every column in order.",
    "duplicate-columns": "Keep one of the two columns and delete the other.",
    "personal-data": "Delete the columns that identify people before you publish. "
    "The request-level form never holds names or staff numbers.",
}

ROW_ADVICE = "Correct the rows listed ({description}), then check the file again."
DEFAULT_ADVICE = "Correct the file as described, then check it again."


def advise(report: dict[str, Any]) -> dict[str, Any]:
    """The validation report (``Verdict.report()``) with an ``advice`` for each failure."""
    for failure in report.get("failures", []):
        rule = failure["rule"]
        if rule in FILE_ADVICE:
            failure["advice"] = FILE_ADVICE[rule]
        elif failure.get("rows"):
            failure["advice"] = ROW_ADVICE.format(description=failure["description"])
        else:
            failure["advice"] = DEFAULT_ADVICE
    return report
