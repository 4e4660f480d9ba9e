"""Pledge sign-ups: fetch → land redacted → validate → match → load with history (the pledge DAG).

The "Get Ahead on Flex" sign-up service serves sign-ups as paginated JSON or a CSV export
(docs/pledge-matching.md). The rules are documented in docs/pledge-matching.md and implemented in
:mod:`transforms.pledge` (P1–P4) and :mod:`expectations.pledge`; this module does the I/O:

- :func:`fetch` reads every page (follows ``next`` until null, rule P2) through
  :func:`flexbench.fetch.get_bytes`, so the fetch safety rules and the retries on 5xx and
  timeouts apply; each page is redacted (rule P1) *before* it is landed, and the redacted
  sign-ups are staged as one JSON file for the load task. The original bytes are never
  written to disk or logged.
- :func:`load` validates the sign-ups (GX suite ``pledge_signups``), matches them to ODS trusts
  (rule P3), adds the snapshot to the history (rule P4) and writes
  ``raw.pledge_signups_history``, ``staging.pledge_signups``, ``audit.pledge_review`` and
  ``audit.pledge_loads`` in one transaction; then it exports the data URLs of matched, signed
  sign-ups to the publications registry (``data/registry/pledge_data_urls.csv``).

Pipeline rules (docs/pledge-matching.md, "The pledge pipeline"):

- a failed fetch changes nothing but ``audit.pledge_loads``: the previous state is kept, and
  the load fails with the reason so the run shows it;
- a sign-up that fails a check on one of its evidence fields (action plan link, data link,
  managers trained %) is loaded without that value, and goes to the review list with the check
  it failed: the pledge itself still counts;
- a sign-up that fails any other check (no id, no organisation, unknown status, unreadable
  dates) is not loaded this time (its previous state, if any, stays current) and goes to the
  review list with the check it failed;
- every current sign-up is matched again on each load (a new override or a new ODS list can
  change a match; the change is a new state in the history);
- matching is to English trusts (ODS national grouping ``Y…``) open on the load date; former
  and closed trusts' names are compared too, so a name shared by a closed trust and its
  successor is ambiguous (review), and a sign-up matching only a closed trust goes to review.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import warehouse
from flexbench.fetch import FetchError, FetchPolicy, get_bytes, land_bytes, now_utc
from flexbench.settings import PROJECT_ROOT, Settings, SettingsError

log = logging.getLogger(__name__)

SOURCE = "pledge_signups"
STAGED_DIR = Path("staged") / "pledge"
REGISTRY_FILE = Path("registry") / "pledge_data_urls.csv"  # read by pipeline.publications
OVERRIDES_FILE = "pledge_overrides.csv"

REASON_CLOSED_TRUST = "matches a closed trust"
REASON_FAILED_CHECK = "failed check"

#: Checks on one evidence field: a failing value is not kept, the sign-up still is.
FIELD_CHECKS: dict[str, str] = {
    "action-plan-url-web-address": "action_plan_url",
    "data-url-web-address": "data_url",
    "managers-trained-percentage": "managers_trained_pct",
}


class PledgeLoadError(RuntimeError):
    """The sign-ups could not be loaded this run; the warehouse keeps the previous state."""


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


def feed_url(settings: Settings) -> str:
    """The sign-up feed's URL from the sources registry (``pledge_signups: {url: ...}``)."""
    spec = settings.sources.get(SOURCE)
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not url or not isinstance(url, str):
        raise SettingsError("sources file has no pledge_signups url")
    return url.strip()


def overrides_path(settings: Settings) -> Path:
    """The reviewed-matches file: ``pledge_overrides:`` in the sources file (relative to it),
    else ``pledge_overrides.csv`` at the project root."""
    given = settings.sources.get("pledge_overrides")
    if given:
        path = Path(str(given)).expanduser()
        return path if path.is_absolute() else settings.sources_path.parent / path
    return PROJECT_ROOT / OVERRIDES_FILE


# ---------------------------------------------------------------------------
# Fetch
# ---------------------------------------------------------------------------


def _get(url: str, policy: FetchPolicy) -> tuple[int, dict[str, str], bytes]:
    """GET under the fetch safety rules (retries included); an HTTP error is a FetchError."""
    status, headers, body = get_bytes(url, policy)
    if status >= 400:
        raise FetchError(f"{url}: HTTP {status}")
    return status, headers, body


def _is_csv(url: str, headers: dict[str, str]) -> bool:
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "").lower()
    return path.endswith(".csv") or "csv" in ctype


def _provenance(url: str, fetched_at: str, status: int, headers: dict[str, str]) -> dict:
    h = {k.lower(): v for k, v in headers.items()}
    return {
        "source": SOURCE,
        "url": url,
        "fetched_at": fetched_at,
        "http_status": status,
        "etag": h.get("etag"),
        "last_modified": h.get("last-modified"),
        "redacted": True,  # rule P1: the landing copy has no personal data
    }


def fetch(settings: Settings) -> dict[str, Any]:
    """Fetch the sign-up feed, land every page redacted, stage the sign-ups (rules P1, P2).

    Parameters
    ----------
    settings : Settings
        ``sources["pledge_signups"]["url"]``: the first page of the paginated JSON feed, or the
        CSV export (a URL ending ``.csv`` or served as ``text/csv``).

    Returns
    -------
    dict
        JSON-able: ``status`` ("fetched" | "failed"), ``url``, ``format`` ("json" | "csv"),
        ``fetched_at``, ``pages`` (pages read), ``landed`` (paths of the redacted landing
        copies), ``records_path`` (the staged, redacted sign-ups, JSON, under
        ``data/staged/pledge/``; None when failed), ``signups`` and ``error`` (None when
        fetched). Never raises for a fetch problem.
    """
    from transforms.pledge import (
        FeedError,
        iter_feed,
        parse_csv_export,
        redact_csv_export,
        redact_feed_page,
    )

    url = feed_url(settings)
    policy = FetchPolicy(allow_local=settings.allow_local_urls)
    landed: list[str] = []
    pages = 0
    fetched_at = now_utc()
    out: dict[str, Any] = {"url": url, "fetched_at": fetched_at, "format": None}

    def land(body: bytes, ext: str, page_url: str, status: int, headers: dict) -> None:
        _, path = land_bytes(
            settings.landing_dir,
            SOURCE,
            body,
            ext,
            _provenance(page_url, now_utc(), status, headers),
        )
        landed.append(str(path))

    try:
        status, headers, body = _get(url, policy)
        if _is_csv(url, headers):
            out["format"] = "csv"
            redacted = redact_csv_export(body)
            del body  # only the redacted copy goes further
            land(redacted, "csv", url, status, headers)
            pages = 1
            records = parse_csv_export(redacted)
        else:
            out["format"] = "json"
            first: list[tuple[int, dict, bytes]] = [(status, headers, body)]
            del body

            def get_json(page_url: str) -> Any:
                nonlocal pages
                if first and page_url == url:
                    page_status, page_headers, raw = first.pop()
                else:
                    page_status, page_headers, raw = _get(page_url, policy)
                redacted = redact_feed_page(raw)  # P1 before landing
                del raw
                land(redacted, "json", page_url, page_status, page_headers)
                pages += 1
                return json.loads(redacted)

            records = iter_feed(url, get_json)
    except (FetchError, FeedError, ValueError) as exc:
        # The messages name URLs and positions only, never the content of a page.
        log.warning("pledge sign-ups: fetch failed after %d page(s): %s", pages, exc)
        return {
            **out,
            "status": "failed",
            "pages": pages,
            "landed": landed,
            "records_path": None,
            "signups": 0,
            "error": str(exc),
        }

    records_path = _stage_records(settings, records, {**out, "pages": pages})
    log.info(
        "pledge sign-ups: %d sign-up(s) from %d page(s) of %s (%s), landed redacted",
        len(records),
        pages,
        url,
        out["format"],
    )
    return {
        **out,
        "status": "fetched",
        "pages": pages,
        "landed": landed,
        "records_path": str(records_path),
        "signups": len(records),
        "error": None,
    }


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _stage_records(settings: Settings, records: list[dict], meta: dict) -> Path:
    """Write the redacted sign-ups for the load task (content-addressed: reruns are idempotent)."""
    body = json.dumps(records, ensure_ascii=False, sort_keys=True, default=str)
    sha = hashlib.sha256(body.encode("utf-8")).hexdigest()
    path = settings.data_dir / STAGED_DIR / f"signups-{sha[:24]}.json"
    doc = {**meta, "sha256": sha, "records": records}
    _write_atomic(path, json.dumps(doc, ensure_ascii=False, indent=1, default=str).encode())
    return path


# ---------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------


def _ods_frames(con, on: Any):
    """Open English trusts on date ``on``, every English trust, and every name they have had."""
    if not warehouse.table_exists(con, "staging", "ods_trusts"):
        raise PledgeLoadError(
            "pledge sign-ups: staging.ods_trusts is missing; load the reference data first "
            "(previous state kept)"
        )
    english = con.execute(
        "select org_code, name, open_date, close_date from staging.ods_trusts "
        "where region_code like 'Y%'"
    ).df()
    open_now = con.execute(
        "select org_code, name from staging.ods_trusts where region_code like 'Y%' "
        "and (open_date is null or open_date <= ?) and (close_date is null or close_date >= ?)",
        [on, on],
    ).df()
    names = english[["org_code", "name"]]
    if warehouse.table_exists(con, "staging", "ods_trust_names"):
        former = con.execute(
            "select n.org_code, n.name from staging.ods_trust_names as n "
            "join staging.ods_trusts as t using (org_code) where t.region_code like 'Y%'"
        ).df()
        names = former
    return open_now, english, names


def _match(snapshot, open_trusts, english, names, overrides):
    """Rule P3 over the snapshot, plus the pipeline's closed-trust rule (module docstring)."""
    import pandas as pd

    from transforms.pledge import match_signups

    matched, review = match_signups(snapshot, open_trusts, names, overrides)
    open_codes = set(open_trusts["org_code"])
    all_names = dict(zip(english["org_code"], english["name"], strict=True))
    closed = matched["org_code"].notna() & ~matched["org_code"].isin(open_codes)
    extra = []
    for i in matched.index[closed]:
        code = matched.at[i, "org_code"]
        extra.append(
            {
                "signup_id": matched.at[i, "signup_id"],
                "organisation_name": matched.at[i, "organisation_name"],
                "ods_code_given": matched.at[i, "ods_code_given"],
                "reason": REASON_CLOSED_TRUST,
                "candidates": f"{code} {all_names.get(code, '')} (closed)".replace("  ", " "),
            }
        )
        matched.at[i, "org_code"] = None
        matched.at[i, "match_method"] = None

    def named(candidates: Any) -> Any:
        # match_signups names only open trusts; name the closed ones too, marked as such.
        if not isinstance(candidates, str) or not candidates:
            return candidates
        parts = []
        for part in candidates.split("; "):
            code = part.strip()
            if code in all_names and code not in open_codes:
                part = f"{code} {all_names[code]} (closed)"
            parts.append(part)
        return "; ".join(parts)

    review["candidates"] = review["candidates"].map(named)
    if extra:
        review = pd.concat([review, pd.DataFrame(extra)], ignore_index=True)
    return matched, review


def _read_history(con):
    df = con.execute("select * from raw.pledge_signups_history").df()
    return None if df.empty else df


def _failed_rows(frame, failures) -> dict[int, list[str]]:
    """Row number (``_row``) → the checks that row failed."""
    failed: dict[int, list[str]] = {}
    for f in failures:
        rows = sorted({r for rs in f.rows.values() for r in rs})
        if not rows:
            raise PledgeLoadError(
                f"pledge sign-ups: the feed as a whole fails {f.line()} (previous state kept)"
            )
        for r in rows:
            failed.setdefault(r, []).append(f.rule)
    return failed


def load(settings: Settings, fetched: dict[str, Any], loaded_at: Any = None) -> dict[str, int]:
    """Validate, match and load a fetched snapshot of the sign-ups, keeping history (P2–P4).

    Parameters
    ----------
    settings : Settings
        Warehouse path, data directory and sources (``pledge_overrides:`` optional).
    fetched : dict
        What :func:`fetch` returned.
    loaded_at : timestamp-like, optional
        When this snapshot is loaded (``valid_from`` of new states); default now (UTC).

    Returns
    -------
    dict
        Counts of current sign-ups after the load: ``signups``, ``matched`` (with an
        org_code), ``review`` (rows on the review list), ``withdrawn``, and ``rejected``
        (sign-ups in the feed that failed a check other than on an evidence field, and were
        not loaded this time).

    Raises
    ------
    PledgeLoadError
        The fetch failed, the ODS reference data is missing, or the whole feed fails a check:
        nothing but the ``audit.pledge_loads`` row is written; the previous state is kept.
    ValueError
        The overrides file is malformed (the reason names the row).
    """
    import pandas as pd

    from expectations.core import ROW_COLUMN
    from expectations.pledge import validate_signups
    from transforms.pledge import (
        SIGNUP_COLUMNS,
        apply_snapshot,
        current_state,
        parse_overrides,
        signups_frame,
    )

    loaded = pd.Timestamp(loaded_at if loaded_at is not None else datetime.now(UTC))
    loaded = loaded.tz_localize("UTC") if loaded.tzinfo is None else loaded.tz_convert("UTC")
    con = warehouse.connect(settings.warehouse_path)
    try:
        warehouse.apply_schema(con)
        if fetched.get("status") != "fetched" or not fetched.get("records_path"):
            reason = fetched.get("error") or "the sign-up feed was not fetched"
            _record_load(con, loaded, fetched, "fetch_failed", reasons=reason)
            raise PledgeLoadError(f"pledge sign-ups: {reason} (previous state kept)")

        doc = json.loads(Path(fetched["records_path"]).read_text(encoding="utf-8"))
        frame = signups_frame(doc["records"])
        frame[ROW_COLUMN] = range(1, len(frame) + 1)
        failures = validate_signups(frame)
        for f in failures:
            log.warning("pledge sign-ups: %s", f.line())
        failed = _failed_rows(frame, failures)
        for row, checks in failed.items():
            for check in checks:
                if check in FIELD_CHECKS:
                    frame.loc[frame[ROW_COLUMN] == row, FIELD_CHECKS[check]] = None
        bad = frame[ROW_COLUMN].isin(
            [r for r, checks in failed.items() if any(c not in FIELD_CHECKS for c in checks)]
        )
        valid = frame[~bad].drop(columns=[ROW_COLUMN])
        rejected = frame[bad]
        flagged = frame[frame[ROW_COLUMN].isin(list(failed))]

        history = _read_history(con)
        # Current sign-ups absent from this snapshot (or failing a check) keep their state but
        # are matched again with everything else.
        carried = None
        if history is not None:
            current = current_state(history)
            carried = current[~current["signup_id"].isin(set(valid["signup_id"]))]
            carried = carried[list(SIGNUP_COLUMNS)].copy()
            for col in ("signed_at", "updated_at"):
                carried[col] = pd.to_datetime(carried[col], utc=True)
            carried["board_review_date"] = [
                None if pd.isna(d) else pd.Timestamp(d).date() for d in carried["board_review_date"]
            ]
        snapshot = valid
        if carried is not None and len(carried):
            snapshot = pd.concat([valid, carried], ignore_index=True)

        path = overrides_path(settings)
        overrides = parse_overrides(path.read_bytes()) if path.exists() else None
        open_trusts, english, names = _ods_frames(con, loaded.date())
        matched, review = _match(snapshot, open_trusts, english, names, overrides)
        review = _with_failed_checks(review, _failed_review(flagged, failed))
        review["listed_at"] = loaded

        new_history = apply_snapshot(history, matched, loaded)
        now_current = current_state(new_history)
        counts = {
            "signups": int(len(now_current)),
            "matched": int(now_current["org_code"].notna().sum()),
            "review": int(len(review)),
            "withdrawn": int((now_current["status"] == "withdrawn").sum()),
            "rejected": int(len(rejected)),
        }
        new_history = new_history.copy()
        new_history["board_review_date"] = pd.to_datetime(new_history["board_review_date"])
        with warehouse.transaction(con):
            con.register("pledge_history_df", new_history)
            con.execute("delete from raw.pledge_signups_history")
            con.execute(
                "insert into raw.pledge_signups_history by name "
                "select * replace (cast(board_review_date as date) as board_review_date) "
                "from pledge_history_df"
            )
            con.unregister("pledge_history_df")
            warehouse.build_layers_named(con, ["staging.pledge_signups"])
            con.register("pledge_review_df", review)
            con.execute("delete from audit.pledge_review")
            con.execute("insert into audit.pledge_review by name select * from pledge_review_df")
            con.unregister("pledge_review_df")
            _record_load(con, loaded, fetched, "loaded", counts=counts)
        _export_registry(con, settings)
        log.info(
            "pledge sign-ups loaded: %(signups)d current, %(matched)d matched, "
            "%(review)d on the review list, %(withdrawn)d withdrawn, %(rejected)d failed a check",
            counts,
        )
        for row in review.itertuples(index=False):
            log.info(
                "pledge review: %s %r: %s%s",
                row.signup_id,
                row.organisation_name,
                row.reason,
                f" (candidates: {row.candidates})" if row.candidates else "",
            )
        return counts
    finally:
        con.close()


def _failed_review(flagged, failed: dict[int, list[str]]):
    """Review rows for sign-ups that failed a check of the suite, naming the checks."""
    import pandas as pd

    from expectations.core import ROW_COLUMN
    from transforms.pledge import REVIEW_COLUMNS

    rows = [
        {
            "signup_id": r["signup_id"],
            "organisation_name": r["organisation_name"],
            "ods_code_given": r["ods_code_given"],
            "reason": f"{REASON_FAILED_CHECK}: "
            + ", ".join(
                f"{c} (value not kept)" if c in FIELD_CHECKS else c
                for c in failed[int(r[ROW_COLUMN])]
            ),
            "candidates": "",
        }
        for _, r in flagged.iterrows()
    ]
    return pd.DataFrame(rows, columns=list(REVIEW_COLUMNS))


def _with_failed_checks(review, failed_review):
    """One review row per sign-up: a failed check is added to the reason of a sign-up already
    under review for its match."""
    import pandas as pd

    review = review.copy()
    extra = []
    for _, r in failed_review.iterrows():
        same = review["signup_id"].notna() & (review["signup_id"] == r["signup_id"])
        if pd.notna(r["signup_id"]) and same.any():
            review.loc[same, "reason"] = review.loc[same, "reason"] + "; " + r["reason"]
        else:
            extra.append(r)
    if extra:
        review = pd.concat([review, pd.DataFrame(extra)], ignore_index=True)
    return review


def _record_load(con, loaded, fetched: dict, status: str, counts=None, reasons=None) -> None:
    counts = counts or {}
    con.execute(
        "insert into audit.pledge_loads values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            loaded.to_pydatetime(),
            fetched.get("url"),
            fetched.get("fetched_at"),
            status,
            fetched.get("pages"),
            counts.get("signups"),
            counts.get("matched"),
            counts.get("review"),
            counts.get("withdrawn"),
            counts.get("rejected"),
            reasons,
        ],
    )


def _export_registry(con, settings: Settings) -> Path:
    """Write ``data/registry/pledge_data_urls.csv``: org_code,url of every matched, signed sign-up
    with a data_url (docs/pledge-matching.md). The publications pipeline fetches them under the
    same safety rules as any URL."""
    rows = con.execute(
        "select distinct org_code, data_url from staging.pledge_signups "
        "where org_code is not null and status = 'signed' and data_url is not null "
        "order by org_code, data_url"
    ).fetchall()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["org_code", "url"])
    writer.writerows(rows)
    path = settings.data_dir / REGISTRY_FILE
    _write_atomic(path, buf.getvalue().encode("utf-8"))
    return path
