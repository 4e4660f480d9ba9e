"""The GX suite of the breakdown form (docs/flex-data-standard.md, "Breakdown form")."""

from __future__ import annotations

from datetime import date

import pytest

from expectations.breakdown import check_breakdown

TODAY = date(2026, 1, 15)
HEADER = (
    "org_code,period_start,period_end,dimension,group_value,requests_received,"
    "approved_in_full,approved_with_changes,declined,withdrawn,pending"
)
GOOD = [
    "RAA,2025-04-01,2025-06-30,sex,Female,40,30,5,3,1,1",
    "RAA,2025-04-01,2025-06-30,Gender,M,10,6,2,2,0,0",
    "RAA,2025-04-01,2025-06-30,Ethnicity,Black or Black British,12,8,1,3,0,0",
    "RAA,2025-04-01,2025-06-30,ethnic_group_detailed,African,12,8,1,3,0,0",
    "RAA,2025-04-01,2025-06-30,Pay band,8a,5,5,0,0,0,0",
    "RAA,2025-04-01,2025-06-30,flex_type,Compressed hours,5,5,0,0,0,0",
    "RAA,2025-04-01,2025-06-30,disability,Not stated,2,2,0,0,0,0",
]


def _csv(rows: list[str], header: str = HEADER) -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode("utf-8-sig")


def test_a_valid_breakdown_is_accepted_with_groups_named_as_the_marts_name_them():
    verdict = check_breakdown(_csv(GOOD), "b.csv", "RAA", TODAY)
    assert verdict.accepted, verdict.lines()
    rows = verdict.rows.set_index(["dimension", "group_value"])
    assert rows.loc[("sex", "Male"), "requests_received"] == 10
    assert rows.loc[("ethnic_group_detailed", "Black: African"), "declined"] == 3
    assert rows.loc[("pay_band", "Band 8a"), "approved_in_full"] == 5
    assert rows.loc[("flex_type", "compressed_hours"), "requests_received"] == 5
    assert str(rows["requests_received"].dtype) == "int64"


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        ("RAA,2025-04-01,2025-06-30,sex,Female,41,30,5,3,1,1", "outcomes-sum"),
        ("RAA,2025-04-01,2025-06-30,religion,Christian,1,1,0,0,0,0", "known-dimension"),
        ("RAA,2025-04-01,2025-06-30,sex,Purple,1,1,0,0,0,0", "known-group"),
        ("RAA,2025-04-01,2025-06-30,age_band,60-69,1,1,0,0,0,0", "known-group"),
        ("RAA,2025-04-01,2025-06-30,sex,Female,1.5,1.5,0,0,0,0", "whole-number"),
        ("RAA,2025-04-01,2025-06-30,sex,Female,0,1,0,0,-1,0", "not-negative"),
        ("RAA,2025-04-01,2025-06-30,sex,Male,1,1,0,0,0,0", "unique-key"),  # Male twice
        ("RAA,2025-04-15,2025-06-30,sex,Female,1,1,0,0,0,0", "regular-period"),
        ("RAA,2026-01-01,2026-03-31,sex,Female,1,1,0,0,0,0", "period-not-future"),
        ("RBB,2025-04-01,2025-06-30,sex,Female,1,1,0,0,0,0", "org-matches"),
        ("RAA,,2025-06-30,sex,Female,1,1,0,0,0,0", "valid-date"),
    ],
)
def test_each_rule_names_the_row_that_breaks_it(row, rule):
    rows = [r for r in GOOD if not (",Female," in r and ",Female," in row)] + [row]
    verdict = check_breakdown(_csv(rows), "b.csv", "RAA", TODAY)
    assert not verdict.accepted
    failed = {f.rule: f.rows_for("") for f in verdict.failures}
    assert rule in failed, verdict.lines()
    assert len(rows) + 1 in failed[rule]  # the last row of the file (header is row 1)


def test_a_file_without_the_breakdown_columns_is_refused_with_the_missing_ones_named():
    header = HEADER.replace(",group_value", "")
    verdict = check_breakdown(_csv([r.rsplit(",", 0)[0] for r in GOOD], header), "b.csv")
    assert not verdict.accepted
    assert verdict.failures[0].rule == "missing-columns"
    assert "group_value" in verdict.failures[0].description
