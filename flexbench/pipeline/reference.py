"""Reference data: ODS trusts, NHS Staff Survey, NHS Workforce Statistics (the reference DAG).

Each source is fetched and landed unchanged, parsed from its real published format, validated
by its GX suite, and loaded in one transaction. Files fail row by row (docs/pipeline.md,
"Reference files: row by row"): a row that cannot be read or breaks a rule is quarantined in
``audit.reference_quarantine`` with its reasons and the other rows load. A source that fails
as a whole (unreachable, a structural change upstream, too few rows against its last loaded
edition) keeps its last good data; the load reports what went wrong and the task fails once
the others are loaded, naming the source and the problem.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from flexbench.fetch import FetchPolicy, fetch_to_landing
from flexbench.settings import Settings, SettingsError

log = logging.getLogger(__name__)


class ReferenceLoadError(RuntimeError):
    """One or more reference sources could not be loaded (the previous data was kept)."""


def _entries(settings: Settings) -> list[dict[str, Any]]:
    """The reference sources of the registry, as (source, url, year) entries."""
    s = settings.sources
    out = []
    ods = s.get("ods_trusts")
    if not ods or not ods.get("url"):
        raise SettingsError("sources file has no ods_trusts url")
    out.append({"source": "ods_trusts", "url": ods["url"]})
    survey = s.get("staff_survey") or []
    for item in survey if isinstance(survey, list) else [survey]:
        out.append({"source": "staff_survey", "url": item["url"], "year": int(item["year"])})
    workforce = s.get("workforce") or []
    for item in workforce if isinstance(workforce, list) else [workforce]:
        out.append({"source": "workforce", "url": item["url"]})
    return out


def fetch(settings: Settings) -> list[dict[str, Any]]:
    pol = FetchPolicy(allow_local=settings.allow_local_urls)
    results = []
    for entry in _entries(settings):
        res = fetch_to_landing(entry["source"], entry["url"], settings.landing_dir, pol)
        results.append({**entry, **res.to_dict()})
        log.info("%s %s: %s", entry["source"], entry["url"], res.status)
    return results


def _parse(item: dict[str, Any]):
    """Parse one landed reference file; returns (frame, rules, suite_name)."""
    from expectations import reference as suites
    from transforms import ods, staff_survey, workforce

    data = Path(item["path"]).read_bytes()
    if item["source"] == "ods_trusts":
        return ods.parse_etr(data, _file_name(item["url"])), suites.ODS_RULES
    if item["source"] == "staff_survey":
        return staff_survey.parse_staff_survey(data, item["year"]), suites.STAFF_SURVEY_RULES
    return workforce.parse_workforce(data), suites.WORKFORCE_RULES


def _file_name(url: str) -> str:
    """The published file's name, from the URL's path (query strings left out)."""
    return Path(unquote(urlparse(url).path)).name or url


_RAW = {
    "ods_trusts": "raw.ods_trusts",
    "staff_survey": "raw.staff_survey",
    "workforce": "raw.workforce",
}


def load(
    settings: Settings, fetched: list[dict[str, Any]], as_of: date | None = None
) -> dict[str, Any]:
    """Parse, validate and load every fetched reference file; rebuild the staging models.

    Returns a summary (per source: status and rows) and the coverage check. Raises
    ReferenceLoadError at the end when any source failed (after loading the good ones).
    """
    import pandas as pd

    import warehouse
    from expectations.core import ROW_COLUMN, run_rules
    from expectations.reference import RECORD_KEYS
    from transforms.reference_quality import (
        coverage_summary,
        coverage_text,
        split_quarantine,
        too_few_rows,
    )
    from transforms.staff_survey import combine_split_units

    loaded_at = pd.Timestamp(datetime.now(UTC))
    con = warehouse.connect(settings.warehouse_path)
    problems, summary, audit, quarantine = [], [], [], []
    try:
        warehouse.apply_schema(con)
        done = {
            (src, sha)
            for src, sha in con.execute(
                "select source, sha256 from audit.reference_loads where status = 'loaded'"
            ).fetchall()
        }
        last_rows = _last_edition_rows(con)
        # ODS first: the survey needs the ODS codes to combine split units.
        order = {"ods_trusts": 0, "workforce": 1, "staff_survey": 2}
        frames: dict[str, list] = {}
        for item in sorted(fetched, key=lambda i: order[i["source"]]):
            row = {
                "source": item["source"],
                "url": item["url"],
                "sha256": item.get("sha256"),
                "fetched_at": item["fetched_at"],
                "loaded_at": loaded_at,
                "rows": None,
                "reasons": None,
            }
            if item["status"] == "failed":
                problems.append(f"{item['source']}: {item['error']} (previous data kept)")
                audit.append({**row, "status": "fetch_failed", "reasons": item["error"]})
                continue
            if (item["source"], item["sha256"]) in done:
                audit.append({**row, "status": "unchanged"})
                continue
            name = _file_name(item["url"])
            try:
                frame, rules = _parse(item)
                if item["source"] == "staff_survey":
                    codes = _ods_codes(con) | {
                        code for ods, _ in frames.get("ods_trusts", []) for code in ods["org_code"]
                    }
                    frame = combine_split_units(frame, codes)
                checked = frame.reset_index(drop=True).copy()
                if ROW_COLUMN not in checked:
                    checked[ROW_COLUMN] = range(1, len(checked) + 1)
                failures = run_rules(checked, rules, f"reference_{item['source']}")
            except ValueError as exc:  # SchemaChangeError is a ValueError: the file changed
                problems.append(f"{item['source']} ({name}): {exc} (previous data kept)")
                audit.append({**row, "status": "rejected", "reasons": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - one source's failure keeps the others
                log.exception("%s (%s) could not be read", item["source"], name)
                reason = f"could not be read ({type(exc).__name__}: {exc})"
                problems.append(f"{item['source']} ({name}): {reason} (previous data kept)")
                audit.append({**row, "status": "rejected", "reasons": reason})
                continue
            kept, held, structural = split_quarantine(
                checked, failures, RECORD_KEYS[item["source"]]
            )
            # Quarantined rows are never loaded; a rule the file breaks as a whole, or too few
            # rows left against the source's last loaded edition, rejects the file.
            few = too_few_rows(len(kept), last_rows.get(item["source"]))
            if structural or few:
                text = "; ".join([f.line() for f in structural] + ([few] if few else []))
                if len(held):
                    text += f" ({len(held)} rows broke a rule: {_first_reasons(held)})"
                problems.append(
                    f"{item['source']} ({name}): failed validation: {text} (previous data kept)"
                )
                audit.append({**row, "status": "rejected", "reasons": text})
                continue
            reasons = None
            if len(held):
                reasons = (
                    f"{len(held)} rows quarantined (audit.reference_quarantine): "
                    f"{_first_reasons(held)}"
                )
                log.warning("%s (%s): %s", item["source"], name, reasons)
                quarantine.append(
                    held.assign(
                        source=item["source"],
                        url=item["url"],
                        sha256=item["sha256"],
                        fetched_at=item["fetched_at"],
                        loaded_at=loaded_at,
                    )
                )
            kept = kept.drop(columns=[ROW_COLUMN], errors="ignore")
            last_rows[item["source"]] = len(kept)
            # The sha goes with the rows so a reload of the same file is recognised.
            frames.setdefault(item["source"], []).append((kept, item["sha256"]))
            audit.append(
                {
                    **row,
                    "status": "loaded",
                    "rows": len(kept),
                    "reasons": reasons,
                    "quarantined": len(held),
                }
            )
        with warehouse.transaction(con):
            for source, dfs in frames.items():
                table = _RAW[source]
                cols = [
                    c
                    for (c,) in con.execute(
                        "select column_name from information_schema.columns "
                        "where table_schema = ? and table_name = ? order by ordinal_position",
                        table.split("."),
                    ).fetchall()
                ]
                for df, sha in dfs:
                    df = df.copy()
                    df["sha256"] = sha
                    df["loaded_at"] = loaded_at
                    df = df[[c for c in cols if c in df.columns]]
                    con.register("ref_df", df)
                    con.execute(f"delete from {table} where sha256 = ?", [sha])
                    con.execute(f"insert into {table} by name select * from ref_df")
                    con.unregister("ref_df")
            audit_df = pd.DataFrame(audit).drop(columns=["quarantined"], errors="ignore")
            if not audit_df.empty:
                audit_df["fetched_at"] = pd.to_datetime(audit_df["fetched_at"], utc=True)
                con.register("audit_df", audit_df)
                con.execute("insert into audit.reference_loads by name select * from audit_df")
                con.unregister("audit_df")
            if quarantine:
                held_df = pd.concat(quarantine, ignore_index=True)
                held_df["fetched_at"] = pd.to_datetime(held_df["fetched_at"], utc=True)
                con.register("held_df", held_df)
                con.execute("insert into audit.reference_quarantine by name select * from held_df")
                con.unregister("held_df")
            warehouse.build_layers_named(
                con,
                [
                    "staging.ods_trusts",
                    "staging.ods_trust_names",
                    "staging.staff_survey",
                    "staging.workforce",
                ],
            )
            coverage = _coverage(con, coverage_summary, as_of or date.today())
            con.register("coverage_df", coverage)
            con.execute(
                "create or replace table audit.reference_coverage as select * from coverage_df"
            )
        log.info("reference coverage: %s", coverage_text(coverage))
        write_headcounts(settings, con)
        for a in audit:
            summary.append(
                {
                    "source": a["source"],
                    "status": a["status"],
                    "rows": a["rows"],
                    "quarantined": a.get("quarantined", 0),
                }
            )
    finally:
        con.close()
    if problems:
        raise ReferenceLoadError("; ".join(problems))
    return {"sources": summary, "coverage_issues": int(len(coverage))}


#: Where the reference load leaves each trust's headcount for the publications' validation
#: (rule "requests-within-headcount"), under the data folder: validation never opens the
#: warehouse, which another task may be writing.
HEADCOUNTS_FILE = Path("staged") / "reference" / "headcounts.json"


def headcounts_path(settings: Settings) -> Path:
    return settings.data_dir / HEADCOUNTS_FILE


def write_headcounts(settings: Settings, con) -> dict[str, int]:
    """Each trust's headcount (all staff groups) as NHS Workforce Statistics gives it, the
    largest of the loaded periods (a bound on requests must not reject a trust that has
    shrunk), written to :func:`headcounts_path` for the publications' validation. Written
    whole or not at all (a temporary file renamed). Returns the mapping."""
    rows = con.execute(
        "select org_code, max(headcount) from staging.workforce "
        "where staff_group = 'All staff groups' and headcount > 0 group by org_code"
    ).fetchall()
    counts = {str(org).upper(): int(n) for org, n in sorted(rows)}
    periods = [p for (p,) in con.execute(
        "select distinct period from staging.workforce order by period"
    ).fetchall()]  # fmt: skip
    path = headcounts_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"periods": periods, "headcounts": counts}, indent=1))
    tmp.replace(path)
    return counts


def read_headcounts(settings: Settings) -> dict[str, int]:
    """The headcounts the last reference load wrote ({} before any: the rule then cannot be
    checked, and only the absolute bound on a count holds)."""
    path = headcounts_path(settings)
    try:
        return {k: int(v) for k, v in json.loads(path.read_text())["headcounts"].items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReferenceLoadError(
            f"{path} cannot be read ({exc}); the next reference load writes it again"
        ) from None


def _last_edition_rows(con) -> dict[str, int]:
    """Rows loaded from the last loaded edition of each source (the too-few-rows rule)."""
    rows = con.execute(
        "select source, rows from audit.reference_loads where status = 'loaded' "
        "and rows is not null "
        "qualify row_number() over (partition by source order by loaded_at desc) = 1"
    ).fetchall()
    return {source: int(n) for source, n in rows}


def _first_reasons(held, shown: int = 5) -> str:
    """The first quarantined rows, in one line: 'row 7 (RAA): reason; …'."""
    parts = [
        f"row {r.row_number} ({r.record_key}): {r.reasons}"
        for r in held.head(shown).itertuples(index=False)
    ]
    more = f"; and {len(held) - shown} more" if len(held) > shown else ""
    return "; ".join(parts) + more


def _ods_codes(con) -> set[str]:
    """Every ODS code in the warehouse (open or closed), for combining split survey units."""
    import warehouse

    if not warehouse.table_exists(con, "staging", "ods_trusts"):
        return set()
    return {c for (c,) in con.execute("select org_code from staging.ods_trusts").fetchall()}


def _coverage(con, coverage_summary, as_of: date):
    """Trusts open on the as-of date missing from the survey or workforce, and the reverse."""
    ods = con.execute(
        "select org_code, name from staging.ods_trusts "
        "where region_code like 'Y%' and (close_date is null or close_date >= ?) "
        "and (open_date is null or open_date <= ?)",
        [as_of, as_of],
    ).df()
    survey = con.execute(
        "select * from staging.staff_survey where survey_year = "
        "(select max(survey_year) from staging.staff_survey)"
    ).df()
    workforce = con.execute(
        "select * from staging.workforce where period = (select max(period) from staging.workforce)"
    ).df()
    return coverage_summary(ods, survey, workforce)
