"""Build the Flex Data Standard templates in this folder (CSV and XLSX).

Run from the repository root:  .venv/bin/python docs/templates/make_templates.py
The column lists come from transforms.publications, so the templates always match what
`flexbench validate` checks; the Table Schemas (flex-*.schema.json) are read off the GX
suites in expectations/publications.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
from openpyxl.styles import Font
from openpyxl.worksheet.datavalidation import DataValidation

from expectations.publications import TABLE_SCHEMA_FILES, table_schema
from transforms.equity import DIMENSIONS, REFERENCE_GROUPS
from transforms.publications import (
    BREAKDOWN_COLUMNS,
    DECLINE_REASONS,
    MAX_COUNT,
    REQUEST_LEVEL_COLUMNS,
    STAFF_GROUPS,
    SUMMARY_COLUMNS,
)

HERE = Path(__file__).resolve().parent

NOTES = [
    ("org_code", "ODS code of your trust, e.g. RJ1"),
    (
        "period_start, period_end",
        "a calendar month, a quarter or a financial year (1 April-31 March), as dates YYYY-MM-DD",
    ),
    (
        "staff_group",
        "an NHS Workforce Statistics staff group (see the list sheet) or All staff groups",
    ),
    ("requests_received", "formal flexible working requests received in the period"),
    (
        "approved_in_full ... pending",
        "what happened to them; these five add up to requests_received",
    ),
    ("escalated", "requests taken to the escalation stage"),
    (
        "appeals, appeals_upheld",
        "appeals lodged against a decline, and those decided for the employee",
    ),
    (
        "decided_within_2_months",
        "decisions (including any appeal) within two calendar months of receipt",
    ),
    (
        "declined_*",
        "declines by ground: the eight statutory grounds, then other; these "
        "nine add up to declined",
    ),
    (
        "",
        "Counts are whole numbers; write 0, never leave a blank. Check the file with: "
        "flexbench validate FILE --org YOUR_CODE. Full standard: docs/flex-data-standard.md",
    ),
]


def write_csv(path: Path, columns) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerow(columns)


def write_xlsx(path: Path) -> None:
    book = openpyxl.Workbook()
    data = book.active
    data.title = "data"
    data.append(list(SUMMARY_COLUMNS))
    for cell in data[1]:
        cell.font = Font(bold=True)
        data.column_dimensions[cell.column_letter].width = max(14, len(cell.value) + 2)
    data.freeze_panes = "A2"
    groups = book.create_sheet("staff groups")
    for group in STAFF_GROUPS:
        groups.append([group])
    choose = DataValidation(
        type="list", formula1=f"='staff groups'!$A$1:$A${len(STAFF_GROUPS)}", allow_blank=True
    )
    data.add_data_validation(choose)
    choose.add("D2:D1000")
    whole = DataValidation(type="whole", operator="between", formula1="0", formula2=str(MAX_COUNT))
    data.add_data_validation(whole)
    whole.add(f"E2:{data.cell(row=1, column=len(SUMMARY_COLUMNS)).column_letter}1000")
    notes = book.create_sheet("notes")
    notes.append(["column", "what to put in it"])
    for row in NOTES:
        notes.append(list(row))
    notes.append(["decline grounds", ", ".join(DECLINE_REASONS)])
    notes.column_dimensions["A"].width = 30
    notes.column_dimensions["B"].width = 100
    book.save(path)


def write_breakdown_csv(path: Path) -> None:
    """The breakdown form: its header and one example row per dimension (a reference group)."""
    rows = [
        ["RJ1", "2025-04-01", "2025-06-30", d, REFERENCE_GROUPS[d], 0, 0, 0, 0, 0, 0]
        for d in DIMENSIONS
    ]
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(BREAKDOWN_COLUMNS)
        writer.writerows(rows)


def write_table_schemas(folder: Path = HERE) -> None:
    """The Frictionless Table Schema of each form, read off its GX suite."""
    for form, name in TABLE_SCHEMA_FILES.items():
        text = json.dumps(table_schema(form), indent=2, ensure_ascii=False)
        (folder / name).write_text(text + "\n", encoding="utf-8")


def main() -> None:
    write_csv(HERE / "flex-summary-template.csv", SUMMARY_COLUMNS)
    write_csv(HERE / "flex-request-level-template.csv", REQUEST_LEVEL_COLUMNS)
    write_breakdown_csv(HERE / "flex-breakdown-template.csv")
    write_xlsx(HERE / "flex-summary-template.xlsx")
    write_table_schemas()


if __name__ == "__main__":
    main()
