"""How fresh each source is: its last successful fetch, and whether its last attempt failed.

Sources are independent (docs/pipeline.md, "Failure handling"): a failed source keeps its
previous data and the benchmark is built from what is there. So a reader of the benchmark
needs to know how old each source's data is, and which source failed its last attempt. This
module says it from the audit tables, one row per source; ``flexbench status`` shows it.

Rules (docs/pipeline.md, "Freshness of each source"):

FRESH-1  A source's last success is the fetch time of its latest attempt that got its data:
         a reference file ``loaded`` (rows quarantined or not) or ``unchanged``; the pledge
         feed ``loaded``; a trust's publication fetched (``accepted``, ``rejected`` or
         ``unchanged``: a rejected file was fetched, its content is the trust's problem).
FRESH-2  A source with several files (Staff Survey years, Workforce files, every trust's
         publication) failed its last attempt when the latest attempt of any of its files
         failed (``fetch_failed``, or a reference file ``rejected``); the failures are named
         (a reference file by its URL and reason; publications as a count of trusts).
FRESH-3  The age of a source is whole days from its last success to ``now``.
"""

from __future__ import annotations

import pandas as pd

SOURCES = ("ods_trusts", "staff_survey", "workforce", "pledge_signups", "publications")
REFERENCE_SOURCES = ("ods_trusts", "staff_survey", "workforce")
FRESHNESS_COLUMNS = [
    "source",
    "last_success_at",
    "age_days",
    "last_attempt_at",
    "last_attempt_failed",
    "failure",
]

_REFERENCE_SUCCESS = {"loaded", "unchanged"}
_PUBLICATION_SUCCESS = {"accepted", "rejected", "unchanged"}


def _utc(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="object"), utc=True)


def _latest_per(frame: pd.DataFrame, key: str, order: str) -> pd.DataFrame:
    return frame.sort_values(order).groupby(key, sort=False).tail(1)


def _row(source, success, attempt, failure, now) -> dict:
    age = None if success is None or pd.isna(success) else int((now - success).days)
    return {
        "source": source,
        "last_success_at": success,
        "age_days": age,
        "last_attempt_at": attempt,
        "last_attempt_failed": failure is not None,
        "failure": failure,
    }


def source_freshness(
    reference_loads: pd.DataFrame,
    pledge_loads: pd.DataFrame,
    publication_files: pd.DataFrame,
    now: pd.Timestamp,
) -> pd.DataFrame:
    """One row per source: last success, its age, and the failure of the last attempt.

    Implements FRESH-1 to FRESH-3 (module docstring).

    Parameters
    ----------
    reference_loads : DataFrame
        ``audit.reference_loads`` (source, url, fetched_at, loaded_at, status, reasons).
    pledge_loads : DataFrame
        ``audit.pledge_loads`` (loaded_at, fetched_at, status, reasons).
    publication_files : DataFrame
        ``audit.publication_files`` (url, fetched_at, status, reasons).
    now : Timestamp
        The time the ages are counted to (tz-aware).

    Returns
    -------
    DataFrame
        :data:`FRESHNESS_COLUMNS`, one row per source of :data:`SOURCES`, in that order:
        ``last_success_at`` (UTC, NaT when never), ``age_days`` (whole days, None when
        never), ``last_attempt_at``, ``last_attempt_failed`` (bool) and ``failure`` (what
        failed, one line; None when the last attempt of every file succeeded).
    """
    now = pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    rows = []

    ref = reference_loads.copy()
    for col in ("fetched_at", "loaded_at"):
        ref[col] = _utc(ref[col]) if len(ref) else pd.Series(dtype="datetime64[ns, UTC]")
    for source in REFERENCE_SOURCES:
        mine = ref[ref["source"] == source]
        ok = mine[mine["status"].isin(_REFERENCE_SUCCESS)]
        success = ok["fetched_at"].max() if len(ok) else None
        attempt = mine["loaded_at"].max() if len(mine) else None
        last = _latest_per(mine, "url", "loaded_at")
        bad = last[~last["status"].isin(_REFERENCE_SUCCESS)]
        failure = None
        if len(bad):
            failure = "; ".join(
                f"{r.status.replace('_', ' ')}: {r.url}: {r.reasons or 'no reason recorded'}"
                for r in bad.itertuples(index=False)
            )
        rows.append(_row(source, success, attempt, failure, now))

    pledge = pledge_loads.copy()
    if len(pledge):
        pledge["fetched_at"] = _utc(pledge["fetched_at"])
        pledge["loaded_at"] = _utc(pledge["loaded_at"])
        ok = pledge[pledge["status"] == "loaded"]
        last = pledge.sort_values("loaded_at").iloc[-1]
        failure = None
        if last["status"] != "loaded":
            failure = f"{str(last['status']).replace('_', ' ')}: {last['reasons'] or ''}".strip()
        rows.append(
            _row(
                "pledge_signups",
                ok["fetched_at"].max() if len(ok) else None,
                last["loaded_at"],
                failure,
                now,
            )
        )
    else:
        rows.append(_row("pledge_signups", None, None, None, now))

    pubs = publication_files.copy()
    if len(pubs):
        pubs["fetched_at"] = _utc(pubs["fetched_at"])
        ok = pubs[pubs["status"].isin(_PUBLICATION_SUCCESS)]
        last = _latest_per(pubs, "url", "fetched_at")
        failed = int((last["status"] == "fetch_failed").sum())
        failure = None
        if failed:
            failure = f"the last fetch of {failed} of {len(last)} publication URLs failed"
        rows.append(
            _row(
                "publications",
                ok["fetched_at"].max() if len(ok) else None,
                pubs["fetched_at"].max(),
                failure,
                now,
            )
        )
    else:
        rows.append(_row("publications", None, None, None, now))
    out = pd.DataFrame(rows, columns=FRESHNESS_COLUMNS)
    out["age_days"] = out["age_days"].astype("Int64")
    return out
