"""The standard in machine-readable form: the Table Schemas beside the templates stay in step
with the GX suites, and mean what the validator does."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from expectations.publications import TABLE_SCHEMA_FILES, table_schema
from flexbench.validate import validate_many
from transforms.publications import (
    COUNT_COLUMNS,
    DECLINE_REASONS,
    EARLIEST_DATE,
    MAX_COUNT,
    OUTCOMES,
    REQUEST_LEVEL_COLUMNS,
    STAFF_GROUPS,
    SUMMARY_COLUMNS,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "docs" / "templates"
TODAY = date(2025, 1, 15)


def published(form: str) -> dict:
    return json.loads((TEMPLATES / TABLE_SCHEMA_FILES[form]).read_text(encoding="utf-8"))


def fields(form: str) -> dict[str, dict]:
    return {f["name"]: f for f in published(form)["fields"]}


@pytest.mark.parametrize("form", ["summary", "request_level"])
def test_published_schema_is_the_one_the_suite_gives(form):
    # Fails when a rule changes and docs/templates/make_templates.py was not run again.
    assert published(form) == table_schema(form)


@pytest.mark.parametrize(
    "form, columns", [("summary", SUMMARY_COLUMNS), ("request_level", REQUEST_LEVEL_COLUMNS)]
)
def test_schema_names_every_column_in_order_with_table_schema_types(form, columns):
    schema = published(form)
    assert [f["name"] for f in schema["fields"]] == list(columns)
    assert {f["type"] for f in schema["fields"]} <= {"string", "integer", "date"}
    assert schema["missingValues"] == [""]


def test_summary_schema_types_requirements_bounds_and_enums():
    f = fields("summary")
    for c in COUNT_COLUMNS:
        assert f[c]["type"] == "integer"
        assert f[c]["constraints"] == {"required": True, "minimum": 0, "maximum": MAX_COUNT}
    for c in ("period_start", "period_end"):
        assert f[c]["type"] == "date" and f[c]["constraints"]["required"]
    assert f["period_start"]["constraints"]["minimum"] == EARLIEST_DATE.isoformat()
    assert f["staff_group"]["constraints"] == {"required": True, "enum": list(STAFF_GROUPS)}
    assert f["org_code"]["constraints"] == {"required": True, "pattern": "[A-Z0-9]{3,5}"}
    schema = published("summary")
    assert schema["primaryKey"] == ["org_code", "period_start", "period_end", "staff_group"]
    # rules across columns or rows are listed by id, not lost
    listed = {r["rule"] for r in schema["flexbench:rules"]}
    assert {"outcomes-sum", "decline-reasons-sum", "period-not-future"} <= listed


def test_request_level_schema_types_requirements_and_enums():
    f = fields("request_level")
    required = {c for c, x in f.items() if x.get("constraints", {}).get("required")}
    assert required == {
        "org_code", "request_id", "received_date", "outcome", "escalated", "staff_group"
    }  # fmt: skip
    assert f["outcome"]["constraints"]["enum"] == list(OUTCOMES)
    assert f["decline_reason"]["constraints"]["enum"] == list(DECLINE_REASONS)
    assert f["escalated"]["constraints"]["enum"] == ["yes", "no"]
    assert f["decision_date"]["type"] == "date"
    assert f["received_date"]["constraints"]["minimum"] == EARLIEST_DATE.isoformat()
    assert published("request_level")["primaryKey"] == ["request_id"]


def _summary_file(**row) -> bytes:
    counts = dict(
        requests_received=10, approved_in_full=6, approved_with_changes=2, declined=1,
        withdrawn=0, pending=1, escalated=1, appeals=1, appeals_upheld=0,
        decided_within_2_months=9, declined_costs=1,
    )  # fmt: skip
    values = dict(
        org_code="RJ1", period_start="2024-04-01", period_end="2024-06-30",
        staff_group="All staff groups", **counts,
    )  # fmt: skip
    values.update(row)
    cells = [str(values.get(c, 0)) for c in SUMMARY_COLUMNS]
    return (",".join(SUMMARY_COLUMNS) + "\n" + ",".join(cells) + "\n").encode()


def test_the_schema_bounds_are_where_the_validator_draws_the_line():
    f = fields("summary")
    top = f["requests_received"]["constraints"]["maximum"]
    first = date.fromisoformat(f["period_start"]["constraints"]["minimum"])
    files = {
        "at the maximum": _summary_file(requests_received=top, approved_in_full=top - 4),
        "past the maximum": _summary_file(requests_received=top + 1, approved_in_full=top - 3),
        "first quarter": _summary_file(period_start=f"{first}", period_end="2003-06-30"),
        "quarter before": _summary_file(period_start="2003-01-01", period_end="2003-03-31"),
    }
    verdicts = validate_many([(k, v, "s.csv", "RJ1") for k, v in files.items()], today=TODAY)
    assert verdicts["at the maximum"].accepted, verdicts["at the maximum"].lines()
    assert [f.rule for f in verdicts["past the maximum"].failures] == ["count-within-bound"]
    assert verdicts["first quarter"].accepted, verdicts["first quarter"].lines()
    assert [f.rule for f in verdicts["quarter before"].failures] == ["date-in-range"]
