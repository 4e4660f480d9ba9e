"""The pledge sign-ups GX suite names the rule and the sign-up that breaks it."""

from __future__ import annotations

import pandas as pd
import pytest

from expectations.pledge import PLEDGE_RULES, validate_signups
from transforms.pledge import signups_frame


def signup(sid: str, **fields) -> dict:
    record = {
        "id": sid,
        "organisation_name": "Guy's and St Thomas' NHS Foundation Trust",
        "signed_at": "2024-05-01T09:00:00Z",
        "status": "signed",
        "updated_at": "2024-05-02T09:00:00Z",
        "managers_trained_pct": 40,
        "action_plan_url": "https://example.nhs.uk/plan",
        "data_url": "http://127.0.0.1:8000/rj1.csv",  # loopback, as in the demo
    }
    record.update(fields)
    return record


def test_a_clean_feed_passes_every_rule():
    df = signups_frame([signup("a"), signup("b", status="withdrawn", managers_trained_pct=None)])
    assert validate_signups(df) == []


def test_rule_names_are_unique():
    names = [r.name for r in PLEDGE_RULES]
    assert len(names) == len(set(names))


# each case: one broken sign-up (the second of three), the rule it breaks
CASES = [
    ({"id": None}, "signup-id-present"),
    ({"organisation_name": "  "}, "organisation-name-present"),
    ({"status": "pending"}, "status-known"),
    ({"status": None}, "status-present"),
    ({"signed_at": "not a date"}, "signed-at-present"),
    ({"updated_at": None}, "updated-at-present"),
    ({"updated_at": "2024-04-30T09:00:00Z"}, "updated-not-before-signed"),
    ({"managers_trained_pct": 140}, "managers-trained-percentage"),
    ({"managers_trained_pct": -1}, "managers-trained-percentage"),
    ({"action_plan_url": "www.example.nhs.uk/plan"}, "action-plan-url-web-address"),
    ({"data_url": "ftp://example.nhs.uk/data.csv"}, "data-url-web-address"),
    ({"data_url": "https://example.nhs.uk/my data.csv"}, "data-url-web-address"),
    # the host part read differently by different readers: refused, as the fetch refuses it
    ({"data_url": "https://10.0.0.1\\@example.org/x.csv"}, "data-url-web-address"),
    ({"data_url": "https://example.org@10.0.0.1/x.csv"}, "data-url-web-address"),
    ({"data_url": "https://example.org/x\\..\\y.csv"}, "data-url-web-address"),
]


@pytest.fixture(scope="module")
def failures_by_case() -> dict[str, dict[str, list[int]]]:
    """Every case validated in one GX run (one ``_file`` per case): rule -> rows, per case."""
    frames = []
    for i, (broken, _) in enumerate(CASES):
        df = signups_frame([signup(f"{i}-a"), signup(f"{i}-b", **broken), signup(f"{i}-c")])
        df["_file"] = str(i)
        df["_row"] = [1, 2, 3]
        frames.append(df)
    out: dict[str, dict[str, list[int]]] = {str(i): {} for i in range(len(CASES))}
    for failure in validate_signups(pd.concat(frames, ignore_index=True)):
        for case, rows in failure.rows.items():
            out[case][failure.rule] = sorted(rows)
    return out


@pytest.mark.parametrize("case", range(len(CASES)), ids=[r for _, r in CASES])
def test_a_broken_sign_up_fails_its_rule_on_its_row(failures_by_case, case):
    _, rule = CASES[case]
    assert failures_by_case[str(case)] == {rule: [2]}


def test_a_sign_up_repeated_in_a_snapshot_fails_uniqueness_on_both_rows():
    df = signups_frame([signup("a"), signup("b"), signup("a")])
    failures = {f.rule: f for f in validate_signups(df)}
    assert list(failures) == ["signup-id-unique"]
    assert failures["signup-id-unique"].rows_for("") == [1, 3]
