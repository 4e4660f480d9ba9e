"""NHS Workforce Statistics: staff in post and peer groups per organisation and staff group.

The source is the monthly "Turnover benchmarking 2. Staff group and organisation" CSV: one
row per PERIOD × TYPE × organisation × staff group with headcount (HC) and FTE, and the
organisation's NHS England region, ICS (integrated care board: code and name), CLUSTER_GROUP
and BENCHMARK_GROUP. Columns are read by name: a later edition that adds a column or changes
their order reads the same.

Rules implemented here (docs/methodology.md, "Peer groups"):

* Staff in post is the TYPE "Denominator at end of period" row; the other three TYPEs
  (start-of-period denominator, joiners, leavers) are recognised and left out.
* Every staff group is kept, "All staff groups" and "Unknown classification" included.
* The peer group of a trust is its BENCHMARK_GROUP (e.g. "Acute - Teaching"); the coarser
  CLUSTER_GROUP (e.g. "Acute") is kept beside it.

A missing column, or a TYPE the parser does not know, raises
:class:`~transforms.reference_quality.SchemaChangeError` naming it: the publication changed
and the mapping needs a person to look at it. A value that cannot be read on a row (HC or FTE
not a number, a PERIOD not in the published form) is noted in the row's ``_problem`` and the
row is quarantined by the load, unless most of the column is unreadable (then the column
changed: SchemaChangeError). A staff group not in :data:`KNOWN_STAFF_GROUPS` is kept as
published; the suite's ``workforce-staff-group-known`` rule quarantines its rows.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import re

import pandas as pd

from transforms.reference_quality import (
    PROBLEM_COLUMN,
    SchemaChangeError,
    check_column_type,
    note_problem,
)

SOURCE_COLUMNS = [
    "PERIOD",
    "TYPE",
    "NHSE_REGION_CODE",
    "NHSE_REGION_NAME",
    "ICS_CODE",
    "ICS_NAME",
    "REPORTING_ORG_NAME",
    "REPORTING_ORG_CODE",
    "CLUSTER_GROUP",
    "BENCHMARK_GROUP",
    "STAFF_GROUP_1_NAME",
    "HC",
    "FTE",
]

STAFF_IN_POST_TYPE = "Denominator at end of period"
KNOWN_TYPES = (
    "Denominator at start of period",
    STAFF_IN_POST_TYPE,
    "Joiners",
    "Leavers",
)

#: The staff groups (STAFF_GROUP_1_NAME) of NHS Workforce Statistics, as published in the
#: Nov-25 file. A group not listed here is a schema change: it must be added deliberately.
KNOWN_STAFF_GROUPS = (
    "All staff groups",
    "HCHS Doctors (exc. Resident doctors and equivalents)",
    "Nurses & health visitors",
    "Midwives",
    "Ambulance staff",
    "Scientific, therapeutic & technical staff",
    "Support to doctors, nurses & midwives",
    "Support to ambulance staff",
    "Support to ST&T staff",
    "Central functions",
    "Hotel, property & estates",
    "Senior managers",
    "Managers",
    "Unknown classification",
)
ALL_STAFF_GROUPS = "All staff groups"

WORKFORCE_COLUMNS = [
    "org_code",
    "org_name",
    "period",
    "period_end",
    "staff_group",
    "headcount",
    "fte",
    "benchmark_group",
    "cluster_group",
    "region_code",
    "ics_code",
    "ics_name",
]

_RENAME = {
    "REPORTING_ORG_CODE": "org_code",
    "REPORTING_ORG_NAME": "org_name",
    "PERIOD": "period",
    "STAFF_GROUP_1_NAME": "staff_group",
    "HC": "headcount",
    "FTE": "fte",
    "BENCHMARK_GROUP": "benchmark_group",
    "CLUSTER_GROUP": "cluster_group",
    "NHSE_REGION_CODE": "region_code",
    "ICS_CODE": "ics_code",
    "ICS_NAME": "ics_name",
}

_PERIOD = re.compile(r"^\s*(\d{6})(?:\s+to\s+(\d{6}))?\s*$")


def period_end_of(period: str) -> dt.date:
    """Last day of the last month of a workforce PERIOD ("202510 to 202511" → 2025-11-30).

    Raises
    ------
    SchemaChangeError
        The period is not "YYYYMM" or "YYYYMM to YYYYMM".
    """
    match = _PERIOD.match(period)
    if not match:
        raise SchemaChangeError(
            f"workforce PERIOD {period!r} is not 'YYYYMM to YYYYMM' as published"
        )
    last = match.group(2) or match.group(1)
    year, month = int(last[:4]), int(last[4:])
    if not 1 <= month <= 12:
        raise SchemaChangeError(f"workforce PERIOD {period!r} has month {month}")
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _decode(data: bytes) -> str:
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<") or b"<html" in head:
        raise SchemaChangeError("workforce file looks like an HTML page, not the CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")


def parse_workforce(data: bytes) -> pd.DataFrame:
    """Parse a Workforce Statistics staff group and organisation CSV into staff in post.

    Implements "Staff in post = TYPE 'Denominator at end of period'" and "the peer group of
    a trust is its BENCHMARK_GROUP" (docs/methodology.md, "Peer groups").

    Parameters
    ----------
    data : bytes
        The CSV as fetched, unchanged.

    Returns
    -------
    DataFrame
        One row per organisation × period × staff group: ``org_code``, ``org_name``,
        ``period`` (as published, e.g. "202510 to 202511"), ``period_end`` (datetime64, last
        day of the last month), ``staff_group``, ``headcount`` (Int64), ``fte`` (float),
        ``benchmark_group`` (the peer group), ``cluster_group``, ``region_code``,
        ``ics_code`` and ``ics_name`` (the integrated care board's code and name, as that
        edition publishes them), and ``_row`` (line number in the file, header = 1, for reports).

        ``_problem`` notes why a row's value could not be read (None when it could).

    Raises
    ------
    SchemaChangeError
        A published column is missing or renamed, a TYPE is unknown, most of PERIOD, HC
        or FTE cannot be read, or the content is HTML.
    """
    text = _decode(data)
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    raw.columns = [c.strip() for c in raw.columns]
    missing = [c for c in SOURCE_COLUMNS if c not in raw.columns]
    if missing:
        unexpected = [c for c in raw.columns if c not in SOURCE_COLUMNS]
        hint = f"; columns not known: {unexpected}" if unexpected else ""
        raise SchemaChangeError(f"workforce CSV lacks columns {missing}{hint}")
    raw = raw.apply(lambda s: s.str.strip())
    raw["_row"] = range(2, len(raw) + 2)

    # TYPE says which rows are staff in post: an unknown TYPE changes how the file is read.
    unknown_types = sorted(set(raw["TYPE"]) - set(KNOWN_TYPES))
    if unknown_types:
        raise SchemaChangeError(f"workforce CSV has unknown TYPE values {unknown_types}")

    staff = raw[raw["TYPE"] == STAFF_IN_POST_TYPE]
    out = staff.rename(columns=_RENAME)[[*_RENAME.values(), "_row"]].copy()
    out[PROBLEM_COLUMN] = pd.Series(None, index=out.index, dtype="object")
    ends = {}
    for period in out["period"].unique():
        try:
            ends[period] = period_end_of(period)
        except SchemaChangeError:
            ends[period] = None
    bad_period = out["period"].map(ends).isna()
    check_column_type(bad_period, out["period"] != "", "workforce CSV: PERIOD", out["period"])
    note_problem(out, bad_period, "PERIOD is not 'YYYYMM to YYYYMM' as published")
    out["period_end"] = pd.to_datetime(out["period"].map(ends)).astype("datetime64[s]")
    for col, source, kind in (("headcount", "HC", "Int64"), ("fte", "FTE", "float64")):
        values = pd.to_numeric(out[col].replace("", None), errors="coerce")
        bad = values.isna() & (out[col] != "")
        check_column_type(bad, out[col] != "", f"workforce CSV: {source}", out[col])
        note_problem(out, bad, f"{source} is not a number")
        out[col] = values.astype(kind)
    for col in ("org_code", "org_name", "ics_code", "ics_name", "benchmark_group", "cluster_group"):
        out[col] = out[col].replace("", None)
    out["region_code"] = out["region_code"].replace("", None)
    return out[[*WORKFORCE_COLUMNS, "_row", PROBLEM_COLUMN]].reset_index(drop=True)
