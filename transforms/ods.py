"""ODS NHS trusts (the ``etr`` file): parse, pick the benchmark population, merge versions.

The ODS ``etr`` file lists NHS trusts in England and Wales, open and closed. It has no
header and 27 columns; the ones the benchmark uses are (1-based, as documented by ODS):

== ============================================================
 1 organisation code
 2 name
 3 national grouping: NHS England region (Y56–Y63), or W… for Wales
 4 high-level health geography: the ICB
10 postcode
11 open date (YYYYMMDD)
12 close date (YYYYMMDD, blank while open)
24 GOR code: the government office region, A–K for England's regions, W for Wales
== ============================================================

Assumptions (numbered in the project's assumptions log style; cited where implemented):

ODS-1  A close date is the last day the trust existed (inclusive). Successors open the next
       day in the real file (e.g. RAP and RRP close 2024-10-31, G6V2S opens 2024-11-01).
ODS-2  A trust belongs to the benchmark population of a window when it is English (national
       grouping starting ``Y``) and open for at least one day of the window. A trust that
       opens or closes inside the window is included and flagged ``part_window=True`` with
       the number of days it was open in the window, so metrics can be read knowing it
       published for part of the window only; predecessor and successor of a merger both
       appear. Quality: good (ODS dates are authoritative). Impact: medium near mergers.
ODS-4  The country of a trust comes from its national grouping (Y… England, W… Wales); where
       the grouping is empty (later editions leave it, and the health geography, empty for
       some Welsh trusts), from the GOR code in column 24 (A–K England, W Wales). Quality:
       good. Impact: high (it decides who is in the English population). An English trust
       without a region is not loaded from that file (its previous record is kept).
ODS-3  A newer etr file is the truth for every trust it lists (name, region, ICB, dates). A
       trust absent from the newer file is kept as last seen (flag ``in_latest_file=False``),
       never deleted. The first name known for a trust is taken as valid from its open date;
       a changed name is valid from the ``as_of`` date of the file that first shows it.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pandas as pd

from transforms.reference_quality import (
    PROBLEM_COLUMN,
    SchemaChangeError,
    check_column_type,
    note_problem,
)

ETR_COLUMN_COUNT = 27
# 0-based positions of the used columns in the headerless file.
ETR_POSITIONS = {
    "org_code": 0,
    "name": 1,
    "region_code": 2,
    "icb_code": 3,
    "postcode": 9,
    "open_date": 10,
    "close_date": 11,
    "gor_code": 23,
}
#: GOR codes (column 24) of England's regions and of Wales (ODS-4).
ENGLISH_GOR_CODES = frozenset("ABCDEFGHJK")
WELSH_GOR_CODE = "W"
ODS_COLUMNS = [
    "org_code",
    "name",
    "region_code",
    "icb_code",
    "postcode",
    "open_date",
    "close_date",
    "country",
    "gor_code",
]
HISTORY_COLUMNS = ["org_code", "name", "valid_from", "valid_to"]


def _etr_text(data: bytes, filename: str) -> str:
    if filename.lower().endswith(".zip") or data[:2] == b"PK":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise SchemaChangeError(f"{filename}: not a readable zip archive ({exc})") from exc
        csvs = [n for n in archive.namelist() if n.lower().endswith(".csv")]
        named = [n for n in csvs if n.lower().rsplit("/", 1)[-1] == "etr.csv"]
        members = named or csvs
        if len(members) != 1:
            raise SchemaChangeError(
                f"{filename}: expected one etr.csv inside the zip, found {sorted(csvs) or 'none'}"
            )
        data = archive.read(members[0])
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<") or b"<html" in head:
        raise SchemaChangeError(f"{filename}: looks like an HTML page, not the etr CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # the real file is latin-1/ASCII


def _parse_yyyymmdd(out: pd.DataFrame, column: str, label: str, filename: str) -> None:
    """Read ``out[column]`` as YYYYMMDD dates in place. A date that cannot be read is left
    blank and noted as a problem of its row (quarantined); when most of the column cannot be
    read, the column has moved: :class:`SchemaChangeError`."""
    values = out[column]
    blank = values.str.strip() == ""
    parsed = pd.to_datetime(values.where(~blank), format="%Y%m%d", errors="coerce")
    bad = parsed.isna() & ~blank
    check_column_type(bad, ~blank, f"{filename}: {label}", values)
    for i in out.index[bad]:
        note_problem(out, bad & (out.index == i), f"{label} {values[i]!r} is not a YYYYMMDD date")
    out[column] = parsed.astype("datetime64[s]")


def country_of(region_code: pd.Series, gor_code: pd.Series) -> pd.Series:
    """England, Wales or Other, from the national grouping, else the GOR code (ODS-4)."""
    region = region_code.fillna("").str.upper()
    gor = gor_code.fillna("").str.upper()
    country = pd.Series("Other", index=region.index, dtype="str")
    from_gor = region == ""
    country[region.str.startswith("Y")] = "England"
    country[region.str.startswith("W")] = "Wales"
    country[from_gor & gor.isin(ENGLISH_GOR_CODES)] = "England"
    country[from_gor & (gor == WELSH_GOR_CODE)] = "Wales"
    return country


def parse_etr(data: bytes, filename: str) -> pd.DataFrame:
    """Parse the ODS ``etr`` file (``etr.csv``, or ``etr.zip`` holding it) into trust rows.

    Parameters
    ----------
    data : bytes
        The file as fetched, unchanged.
    filename : str
        Its name; ``*.zip`` (or zip content) is opened and its ``etr.csv`` read.

    Returns
    -------
    DataFrame
        One row per ODS code: ``org_code``, ``name``, ``region_code``, ``icb_code``,
        ``postcode``, ``open_date`` (datetime64, day), ``close_date`` (NaT while open),
        ``country`` (``"England"`` for national grouping Y…, ``"Wales"`` for W…; where
        the grouping is empty, from the GOR code; ``"Other"`` otherwise: ODS-4),
        ``gor_code``, ``_row`` (line number in the file, for reports) and ``_problem``
        (why a value of the row could not be read, e.g. a date not in YYYYMMDD; None
        when it could: the row is then quarantined by the load). Blank cells are None.
        Closed trusts are kept.

    Raises
    ------
    SchemaChangeError
        The file is not a 27-column headerless CSV (e.g. an HTML error page, a header row,
        a column added or dropped), or most of a date column is not YYYYMMDD.
    """
    text = _etr_text(data, filename)
    raw = pd.read_csv(
        io.StringIO(text),
        header=None,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=True,
        engine="python",
    )
    if raw.shape[1] != ETR_COLUMN_COUNT:
        raise SchemaChangeError(
            f"{filename}: etr has {raw.shape[1]} columns, expected {ETR_COLUMN_COUNT} "
            "(headerless ODS format)"
        )
    if raw.empty:
        raise SchemaChangeError(f"{filename}: etr has no rows")
    first = raw.iloc[0, ETR_POSITIONS["open_date"]].strip()
    if not first.isdigit():
        raise SchemaChangeError(
            f"{filename}: row 1 column 11 is {first!r}, not an open date: "
            "the file seems to have a header row, which etr never has"
        )
    raw = raw.map(str.strip)
    out = pd.DataFrame({col: raw[pos] for col, pos in ETR_POSITIONS.items()})
    out[PROBLEM_COLUMN] = pd.Series(None, index=out.index, dtype="object")
    _parse_yyyymmdd(out, "open_date", "open date (column 11)", filename)
    _parse_yyyymmdd(out, "close_date", "close date (column 12)", filename)
    for col in ("org_code", "name", "region_code", "icb_code", "postcode", "gor_code"):
        out[col] = out[col].replace("", None)
    out["country"] = country_of(out["region_code"], out["gor_code"])
    out["_row"] = range(1, len(out) + 1)
    return out[[*ODS_COLUMNS, "_row", PROBLEM_COLUMN]].reset_index(drop=True)


def _as_timestamp(value: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def benchmark_population(
    ods_df: pd.DataFrame,
    period_start: dt.date | str | pd.Timestamp,
    period_end: dt.date | str | pd.Timestamp,
) -> pd.DataFrame:
    """English NHS trusts open for at least one day of the window (the benchmark population).

    Implements docs/methodology.md ("Population"): English NHS trusts open in the period, with
    assumptions ODS-1 (close date inclusive) and ODS-2 (open for any part of the window,
    flagged ``part_window``).

    Parameters
    ----------
    ods_df : DataFrame
        Output of :func:`parse_etr` (or the ``current`` frame of :func:`merge_etr`).
    period_start, period_end : date-like
        First and last day of the window, both inclusive.

    Returns
    -------
    DataFrame
        The ODS rows of the population, sorted by ``org_code``, plus ``part_window`` (bool:
        opened after ``period_start`` or closed before ``period_end``) and
        ``days_in_window`` (int: days open within the window). Welsh trusts and trusts
        closed before the window or opened after it are excluded.
    """
    start, end = _as_timestamp(period_start), _as_timestamp(period_end)
    if end < start:
        raise ValueError(f"period_end {end.date()} is before period_start {start.date()}")
    opened = ods_df["open_date"]
    closed = ods_df["close_date"]
    english = ods_df["country"] == "England"
    # ODS-2: any overlap between [open, close] and [start, end]; ODS-1: close inclusive.
    overlaps = (opened.isna() | (opened <= end)) & (closed.isna() | (closed >= start))
    pop = ods_df[english & overlaps].copy()
    first_day = pop["open_date"].where(pop["open_date"] > start, start).fillna(start)
    last_day = pop["close_date"].where(pop["close_date"] < end, end).fillna(end)
    pop["part_window"] = (first_day > start) | (last_day < end)
    pop["days_in_window"] = ((last_day - first_day).dt.days + 1).astype("int64")
    return pop.sort_values("org_code", ignore_index=True)


def merge_etr(
    previous: pd.DataFrame | None,
    new: pd.DataFrame,
    as_of: dt.date | str | pd.Timestamp,
    previous_history: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Update the known trusts with a newer etr file without losing history (ODS-3).

    Parameters
    ----------
    previous : DataFrame or None
        The current trusts before this file (output of an earlier call, or of
        :func:`parse_etr`); ``None`` on the first load.
    new : DataFrame
        The newer file, parsed by :func:`parse_etr`.
    as_of : date-like
        The date the newer file describes (e.g. its publication date); a changed name is
        valid from this day.
    previous_history : DataFrame, optional
        The names history returned by the earlier call; built from ``previous`` when absent.

    Returns
    -------
    current : DataFrame
        One row per ODS code ever seen: the newer file's values for the trusts it lists, the
        last seen values for the others, with ``in_latest_file`` (bool) and ``last_seen``
        (the ``as_of`` of the latest file listing the trust). Sorted by ``org_code``.
    names_history : DataFrame
        ``org_code``, ``name``, ``valid_from``, ``valid_to`` (NaT for the current name); one
        row per name a trust has had. Merging the same file twice changes nothing.
    """
    as_of_ts = _as_timestamp(as_of)
    base_cols = [c for c in ODS_COLUMNS if c in new.columns]
    fresh = new[base_cols].copy()
    fresh["in_latest_file"] = True
    fresh["last_seen"] = as_of_ts
    fresh["last_seen"] = fresh["last_seen"].astype("datetime64[s]")

    if previous is None or previous.empty:
        current = fresh
        history = _initial_history(fresh)
    else:
        prev = previous.copy()
        if "last_seen" not in prev.columns:
            prev["last_seen"] = pd.NaT
        prev["last_seen"] = prev["last_seen"].astype("datetime64[s]")
        kept = prev[~prev["org_code"].isin(fresh["org_code"])]
        kept = kept.assign(in_latest_file=False).reindex(columns=fresh.columns)
        current = pd.concat([fresh, kept], ignore_index=True)
        history = (
            previous_history.copy() if previous_history is not None else _initial_history(prev)
        )
        history = _update_history(history, fresh, as_of_ts)
    current = current.sort_values("org_code", ignore_index=True)
    current["in_latest_file"] = current["in_latest_file"].astype(bool)
    return current, history


def _initial_history(trusts: pd.DataFrame) -> pd.DataFrame:
    # ODS-3: the first name we know is taken as valid from the trust's open date.
    hist = pd.DataFrame(
        {
            "org_code": trusts["org_code"].to_numpy(),
            "name": trusts["name"].to_numpy(),
            "valid_from": trusts["open_date"].astype("datetime64[s]").to_numpy(),
            "valid_to": pd.Series(pd.NaT, index=trusts.index, dtype="datetime64[s]").to_numpy(),
        }
    )
    return _sorted_history(hist)


def _update_history(history: pd.DataFrame, fresh: pd.DataFrame, as_of: pd.Timestamp):
    history = history.copy()
    history["valid_from"] = history["valid_from"].astype("datetime64[s]")
    history["valid_to"] = history["valid_to"].astype("datetime64[s]")
    open_rows = history["valid_to"].isna()
    current_name = history[open_rows].set_index("org_code")["name"]
    additions = []
    for code, name, opened in fresh[["org_code", "name", "open_date"]].itertuples(index=False):
        if code not in current_name.index:
            # A trust seen for the first time: its name is valid from its open date (ODS-3).
            additions.append({"org_code": code, "name": name, "valid_from": opened})
        elif current_name[code] != name:
            close = open_rows & (history["org_code"] == code)
            history.loc[close, "valid_to"] = as_of - pd.Timedelta(days=1)
            additions.append({"org_code": code, "name": name, "valid_from": as_of})
    if additions:
        add = pd.DataFrame(additions)
        add["valid_from"] = add["valid_from"].astype("datetime64[s]")
        add["valid_to"] = pd.Series(pd.NaT, index=add.index, dtype="datetime64[s]")
        history = pd.concat([history, add[HISTORY_COLUMNS]], ignore_index=True)
    return _sorted_history(history)


def _sorted_history(history: pd.DataFrame) -> pd.DataFrame:
    history = history[HISTORY_COLUMNS].copy()
    history["org_code"] = history["org_code"].astype("str")
    history["name"] = history["name"].astype("str")
    return history.sort_values(["org_code", "valid_from"], ignore_index=True, na_position="first")
