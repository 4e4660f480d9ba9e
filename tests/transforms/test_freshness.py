"""Freshness of each source (transforms/freshness.py): last success, age, failed last attempt."""

from __future__ import annotations

import pandas as pd

from transforms.freshness import SOURCES, source_freshness

NOW = pd.Timestamp("2026-11-30 06:00", tz="UTC")


def at(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


REFERENCE_LOADS = pd.DataFrame(
    [
        # (source, url, fetched_at, loaded_at, status, reasons)
        ("ods_trusts", "https://ods/etr", at("2026-11-01"), at("2026-11-01"), "loaded", None),
        ("ods_trusts", "https://ods/etr", at("2026-11-29"), at("2026-11-29"), "unchanged", None),
        # the 2024 survey loaded once; the 2025 one was fetched and rejected since
        ("staff_survey", "https://nss/24.xlsx", at("2026-10-01"), at("2026-10-01"), "loaded", None),
        ("staff_survey", "https://nss/25.xlsx", at("2026-11-29"), at("2026-11-29"), "rejected",
         "'Q4d' not found on row 1"),
        # workforce: failed, then fetched fine: its last attempt succeeded
        ("workforce", "https://wf/nov.csv", at("2026-11-20"), at("2026-11-20"), "fetch_failed",
         "HTTP 503"),
        ("workforce", "https://wf/nov.csv", at("2026-11-28"), at("2026-11-28"), "loaded",
         "2 rows quarantined"),
    ],
    columns=["source", "url", "fetched_at", "loaded_at", "status", "reasons"],
)  # fmt: skip

PLEDGE_LOADS = pd.DataFrame(
    [
        (at("2026-11-10"), at("2026-11-10"), "loaded", None),
        (at("2026-11-29"), None, "fetch_failed", "https://pledge/feed: unreachable"),
    ],
    columns=["loaded_at", "fetched_at", "status", "reasons"],
)

PUBLICATIONS = pd.DataFrame(
    [
        ("https://t1/flex.csv", at("2026-11-29"), "accepted", None),
        ("https://t2/flex.csv", at("2026-11-29"), "rejected", "outcomes-sum"),
        ("https://t3/flex.csv", at("2026-11-20"), "unchanged", None),
        ("https://t3/flex.csv", at("2026-11-29"), "fetch_failed", "HTTP 404"),
    ],
    columns=["url", "fetched_at", "status", "reasons"],
)


def test_each_source_gets_its_last_success_its_age_and_what_failed_last():
    got = source_freshness(REFERENCE_LOADS, PLEDGE_LOADS, PUBLICATIONS, NOW).set_index("source")

    assert list(got.index) == list(SOURCES)
    # An unchanged file is a success: ODS was current on 29 November (1 day before NOW).
    assert got.at["ods_trusts", "last_success_at"] == at("2026-11-29")
    assert got.at["ods_trusts", "age_days"] == 1
    assert not got.at["ods_trusts", "last_attempt_failed"]
    # One survey year rejected on its last attempt: the source says so, naming the file.
    assert got.at["staff_survey", "last_success_at"] == at("2026-10-01")
    assert got.at["staff_survey", "last_attempt_failed"]
    assert "https://nss/25.xlsx" in got.at["staff_survey", "failure"]
    assert "'Q4d' not found" in got.at["staff_survey", "failure"]
    # An earlier failure followed by a load is not a failure now.
    assert not got.at["workforce", "last_attempt_failed"]
    assert got.at["workforce", "age_days"] == 2
    # The pledge feed's last attempt failed: its last success is the load before.
    assert got.at["pledge_signups", "last_attempt_failed"]
    assert got.at["pledge_signups", "last_success_at"] == at("2026-11-10")
    assert "unreachable" in got.at["pledge_signups", "failure"]
    # A rejected publication was fetched; one of three URLs failed its last fetch.
    assert got.at["publications", "last_success_at"] == at("2026-11-29")
    assert got.at["publications", "failure"] == ("the last fetch of 1 of 3 publication URLs failed")


def test_a_source_never_fetched_says_never():
    empty = source_freshness(
        REFERENCE_LOADS.iloc[0:0],
        PLEDGE_LOADS.iloc[0:0],
        PUBLICATIONS.iloc[0:0],
        NOW,
    )

    assert empty["last_success_at"].isna().all()
    assert empty["age_days"].isna().all()
    assert not empty["last_attempt_failed"].any()
