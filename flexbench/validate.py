"""Check trust publications against the Flex Data Standard: ``flexbench validate``.

The same code serves the command a trust runs before publishing and the publications
pipeline: :func:`validate_publication` checks one file, :func:`validate_many` checks many in
one GX run per form (GX's fixed cost is paid once, not per file) and gives the same verdicts.
A verdict says whether the file is accepted, and if not which rules failed on which rows,
in words a trust HR lead can act on. Never needs the network or the warehouse.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Hashable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from expectations import core as gx_core
from expectations.core import FILE_COLUMN, RuleFailure
from expectations.publications import (
    REQUEST_LEVEL_RULES,
    SUMMARY_RULES,
    explain_failure,
    request_level_check_frame,
    summary_check_frame,
)
from transforms.publications import (
    COUNT_COLUMNS,
    MAX_DOWNLOAD_BYTES,
    REQUEST_LEVEL_COLUMNS,
    REQUESTS_PER_HEAD,
    ROW_COLUMN,
    SUMMARY_COLUMNS,
    CsvPlan,
    ParsedPublication,
    PublicationError,
    aggregate_requests,
    csv_plan,
    period_of,
    publication_from_cells,
    read_publication,
)

FILE_LEVEL_COLUMN = "(file)"
EXAMPLE_ROWS = 3


@dataclass
class Verdict:
    """The outcome of checking one publication.

    Attributes
    ----------
    accepted : bool
        True when the file keeps every rule of the standard.
    form : str or None
        ``"summary"`` or ``"request_level"``; None when the file could not be read.
    summary : pandas.DataFrame or None
        Accepted rows in the summary form (columns ``SUMMARY_COLUMNS``; counts int64,
        periods datetime64 at midnight); a request-level file is already aggregated.
        None when rejected.
    failures : list of RuleFailure
        The failed rules, with the rows (as numbered in the file, header = row 1) under
        the key ``""``.
    warnings : list of str
        Things tolerated but worth fixing (extra columns ignored, ...).
    rows : int
        Data rows read from the file.
    sheet : str or None
        The worksheet read, for an XLSX.
    """

    accepted: bool
    form: str | None
    summary: pd.DataFrame | None
    failures: list[RuleFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: int = 0
    sheet: str | None = None
    read_frame: pd.DataFrame | None = field(default=None, repr=False)

    def lines(self) -> list[str]:
        """One line per failed rule: the rule, the column, the rows."""
        return [f.line() for f in self.failures]

    def report(self) -> dict[str, Any]:
        """The validation report as plain JSON-able data (the site shows it).

        Keys: ``accepted``, ``form``, ``sheet``, ``rows``, ``warnings`` and ``failures``, a
        list of ``{rule, column, description, rows, example_rows}`` where ``example_rows``
        holds up to three failing rows as read from the file (the columns concerned).
        """
        return {
            "accepted": self.accepted,
            "form": self.form,
            "sheet": self.sheet,
            "rows": self.rows,
            "warnings": list(self.warnings),
            "failures": [
                {
                    "rule": f.rule,
                    "column": f.column,
                    "description": f.description,
                    "rows": sorted(set(f.rows_for(""))),
                    "example_rows": self._examples(f),
                }
                for f in self.failures
            ],
        }

    def _examples(self, failure: RuleFailure) -> list[dict[str, Any]]:
        frame = self.read_frame
        rows = sorted(set(failure.rows_for("")))[:EXAMPLE_ROWS]
        if frame is None or not rows:
            return []
        names = failure.column.replace(" vs ", "+").split("+")
        columns = [c for c in names if c in frame.columns]
        picked = frame[frame[ROW_COLUMN].isin(rows)]
        return [
            {"row": int(r[ROW_COLUMN]), **{c: _plain(r[c]) for c in columns}}
            for _, r in picked.iterrows()
        ]


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _rejected(error: PublicationError) -> Verdict:
    return Verdict(
        accepted=False,
        form=None,
        summary=None,
        failures=[RuleFailure(error.rule, error.column, str(error), {})],
        sheet=getattr(error, "sheet", None),
    )


def validate_publication(
    data: bytes,
    filename: str,
    org: str | None = None,
    today: date | None = None,
    headcount: int | None = None,
) -> Verdict:
    """Check one publication file against the Flex Data Standard v1.

    Parameters
    ----------
    data : bytes
        The file as downloaded (CSV or XLSX).
    filename : str
        Its name, for messages.
    org : str, optional
        ODS code of the trust that should have published it (rule "org-matches").
    today : datetime.date, optional
        Reference date for the "not in the future" rules; default today.
    headcount : int, optional
        The trust's headcount, when known (rule "requests-within-headcount").
    """
    headcounts = {org: headcount} if org and headcount else None  # keys read upper-cased
    return validate_many([(0, data, filename, org)], today=today, headcounts=headcounts)[0]


def validate_many(
    items: Sequence[tuple[Hashable, bytes, str, str | None]],
    today: date | None = None,
    period: str = "quarter",
    max_rows: int | None = None,
    headcounts: Mapping[str, int] | None = None,
    paths: Mapping[Hashable, str | Path] | None = None,
) -> dict[Hashable, Verdict]:
    """Check many publications with one GX run per form; same verdicts as one by one.

    Parameters
    ----------
    items : sequence of (file_id, data, filename, org)
        ``org`` is the ODS code expected in the file, or None.
    today : datetime.date, optional
        Reference date for the "not in the future" rules; default today.
    period : str
        Reporting period request-level files are aggregated to (see
        ``transforms.publications.period_of``); quarters by default.
    max_rows : int, optional
        Rows per GX run at most (default :data:`MAX_ROWS_PER_RUN`): the files of a form
        are checked together in runs of up to this many rows, so a big batch costs a few
        GX runs and bounded memory, whatever its number of files.
    headcounts : mapping, optional
        ODS code -> the trust's headcount (NHS Workforce Statistics), where known: a summary
        row may not claim more than ``REQUESTS_PER_HEAD`` requests per head (rule
        "requests-within-headcount"). Without it only the absolute bound ``MAX_COUNT`` holds.
    paths : mapping, optional
        file_id -> a file on disk holding exactly that item's bytes (the landing zone's
        copy): the CSV files DuckDB reads (:func:`read_declared`) are read from there
        rather than from a temporary copy.

    Returns
    -------
    dict
        file_id -> :class:`Verdict`. A file that cannot be read is rejected on its own; it
        never affects the others.
    """
    today = today or date.today()
    max_rows = max_rows or MAX_ROWS_PER_RUN
    heads = {str(k).strip().upper(): v for k, v in (headcounts or {}).items()}
    verdicts: dict[Hashable, Verdict] = {}
    parsed: dict[str, tuple[Hashable, ParsedPublication, str | None]] = {}
    # A batch is read, and its request-level files aggregated, by DuckDB; a file or a few
    # are read and aggregated by pandas alone, without importing DuckDB (the same rows).
    in_sql = len(items) >= DECLARED_READ_MIN_FILES
    declared = read_declared(items, paths) if in_sql else {}
    for number, (file_id, data, filename, org) in enumerate(items):
        publication = declared.get(number)
        if publication is None:
            try:
                publication = read_publication(data, filename)
            except PublicationError as error:
                verdicts[file_id] = _rejected(error)
                continue
        parsed[str(number)] = (file_id, publication, org)

    for form, rules, build in (
        ("summary", SUMMARY_RULES, summary_check_frame),
        ("request_level", REQUEST_LEVEL_RULES, request_level_check_frame),
    ):
        keys = [k for k, (_, p, _) in parsed.items() if p.form == form]
        for run in _runs_by_rows(keys, parsed, max_rows):
            verdicts.update(
                _check_run(run, parsed, form, rules, build, today, period, heads, in_sql)
            )
            release_freed_memory()  # the run's check frame
    return {file_id: verdicts[file_id] for file_id, *_ in items}


#: Files in a batch from which the CSV files are read by DuckDB (:func:`read_declared`):
#: fewer are read by :func:`read_publication` alone, which needs no DuckDB import.
DECLARED_READ_MIN_FILES = 8

#: DuckDB threads of :func:`read_declared` (None: DuckDB's default, one per core). A process
#: that is one of several validation workers sharing the cores
#: (``flexbench.pipeline.publications.ValidationPool``) reads with one: the same rows for
#: about 10% less CPU (0.76 -> 0.68 CPU-s for a group of 193 N=10 files), the other cores
#: being busy with the other workers anyway.
READ_THREADS: int | None = None


def read_declared(
    items: Sequence[tuple[Hashable, bytes, str, str | None]],
    paths: Mapping[Hashable, str | Path] | None = None,
) -> dict[int, ParsedPublication]:
    """The CSV files of a batch read by DuckDB with declared columns, all at once.

    Each file's header is read and matched in Python, as :func:`read_publication` does
    (:func:`transforms.publications.csv_plan`); the files whose rows DuckDB reads exactly as
    the ``csv`` module does (plain ASCII, one line per row, header on the first line, every
    row as many cells as the header) are then read by one ``read_csv`` per (delimiter,
    number of cells), no sniffing: every column VARCHAR under a declared name, each cell
    trimmed in SQL. Returns item position -> :class:`ParsedPublication`, the same frame
    :func:`read_publication` gives; a file left out (XLSX, another encoding, a ragged or
    multi-line row, a file DuckDB refuses, ...) is read by :func:`read_publication`.
    """
    plans: dict[int, CsvPlan] = {}
    for number, (_, data, filename, _) in enumerate(items):
        plan = csv_plan(data, filename)
        if plan is not None:
            plans[number] = plan
    if not plans:
        return {}
    import tempfile

    out: dict[int, ParsedPublication] = {}
    with tempfile.TemporaryDirectory(prefix="flexbench-read-") as tmp:
        files: dict[int, str] = {}
        for number in plans:
            file_id, data = items[number][0], items[number][1]
            given = (paths or {}).get(file_id)
            if given is not None and Path(given).is_file():
                files[number] = str(Path(given).resolve())
            else:
                files[number] = str(Path(tmp) / f"{number}.csv")
                Path(files[number]).write_bytes(data)
        shapes: dict[tuple[str, int], list[int]] = {}
        for number, plan in plans.items():
            shapes.setdefault((plan.delimiter, plan.fields), []).append(number)
        with scratch_duckdb() as con:
            for (delimiter, fields), numbers in shapes.items():
                out.update(_read_shape(con, delimiter, fields, numbers, plans, files))
    release_freed_memory()
    return out


@contextmanager
def scratch_duckdb():
    """An in-memory DuckDB connection for a batch's reading and counting (no progress bar;
    :data:`READ_THREADS` threads where set), closed after the block."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("set enable_progress_bar = false")
        if READ_THREADS:
            con.execute(f"set threads = {int(READ_THREADS)}")
        yield con
    finally:
        con.close()


def release_freed_memory() -> None:
    """Give back to the system the memory freed but still held by the allocators: Arrow's
    pool (the text DuckDB handed over; pandas' ``str`` columns are Arrow-backed) and glibc's
    heap (numpy arrays). Without it a batch's next step grows on top of the memory the last
    one freed (about 90 MB after the check of 97 request-level files at N=10). A few
    milliseconds; no garbage collection."""
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    _malloc_trim()


def _malloc_trim() -> None:
    trim = _malloc_trim_function()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim_function():
    """glibc's ``malloc_trim``, looked up once a process (the lookup asks ``ldconfig``);
    None where there is none (another C library)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _read_shape(con, delimiter, fields, numbers, plans, files) -> dict[int, ParsedPublication]:
    """One ``read_csv`` of the files ``numbers`` (same delimiter and cells per row); a
    group DuckDB refuses is read again in halves, and a file it refuses alone is left out
    (for :func:`read_publication`)."""
    names = [f"c{i}" for i in range(fields)]
    wanted = sorted({p for n in numbers for p in plans[n].layout.columns.values()})
    trimmed = {i: f"nullif(trim(c{i}), '')" for i in range(fields)}
    sql = (
        f"select filename, coalesce({', '.join(trimmed.values())}) is null as _blank, "
        + ", ".join(f"{trimmed[i]} as c{i}" for i in wanted)
        + " from read_csv(?, auto_detect = false, header = true, skip = 0, delim = ?, "
        "quote = '\"', escape = '\"', comment = '', strict_mode = true, "
        "null_padding = false, ignore_errors = false, filename = true, columns = {"
        + ", ".join(f"'{n}': 'VARCHAR'" for n in names)
        + "})"
    )
    read = ("filename", *(f"c{i}" for i in wanted))
    try:
        # Streamed in record batches, each turned into cells at once: the whole result,
        # as DuckDB's and then as Arrow's, is never held.
        reader = con.sql(sql, params=[[files[n] for n in numbers], delimiter]).to_arrow_reader(
            READ_BATCH_ROWS
        )
        parts: list[list[np.ndarray]] = [[] for _ in range(len(read) + 1)]
        seen: list[dict] = [{} for _ in read]
        for batch in reader:
            parts[0].append(batch.column("_blank").to_numpy(zero_copy_only=False))
            for i, c in enumerate(read):
                parts[i + 1].append(_cells(batch.column(c), seen[i]))
        del reader
    except (duckdb_error(), OSError):  # a refusal while streaming comes as an OSError
        if len(numbers) == 1:
            return {}
        # Halves read apart, so one odd file costs a few reads, not one read per file.
        half = len(numbers) // 2
        return {
            **_read_shape(con, delimiter, fields, numbers[:half], plans, files),
            **_read_shape(con, delimiter, fields, numbers[half:], plans, files),
        }
    blank, filenames, *values = (
        np.concatenate(p) if p else np.array([], dtype=object if i else bool)
        for i, p in enumerate(parts)
    )
    cells = dict(zip(wanted, values, strict=True))
    # Rows come file by file, in the order of the list, each file's in its order
    # (DuckDB keeps insertion order): a file is the run of rows carrying its name.
    starts = np.flatnonzero(np.r_[True, filenames[1:] != filenames[:-1]]) if len(filenames) else []
    ends = [*starts[1:], len(filenames)]
    bounds = dict(zip(filenames[starts], zip(starts, ends, strict=True), strict=True))
    out = {}
    if len(bounds) != len(set(filenames)):
        return out  # not one run per file: read by read_publication
    for n in numbers:
        plan = plans[n]
        start, end = bounds.get(files[n], (0, 0))
        if end - start != plan.rows:
            continue  # a quoted line break (or a row DuckDB skipped): read_publication
        columns = {c: cells[p][start:end] for c, p in plan.layout.columns.items()}
        publication = publication_from_cells(plan, columns, blank[start:end])
        if publication is not None:
            out[n] = publication
    return out


#: Rows of a DuckDB read turned into cells at a time (:func:`_read_shape`).
READ_BATCH_ROWS = 50_000


def _cells(column, seen: dict) -> np.ndarray:
    """A text column read by DuckDB (Arrow) -> its cells as a numpy object array (str, or
    None where null), one Python string per distinct value, shared by every row holding it
    (``seen`` holds the strings of the column's earlier batches, so they are shared too).

    The cells are the ones ``to_numpy`` gives, but a string per cell would cost about 55
    bytes per cell where a shared one costs a pointer: most columns of a publication repeat
    a few values (trust, staff group, outcome, dates, small counts).
    """
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    distinct = np.empty(len(encoded.dictionary) + 1, dtype=object)  # the last one: null
    values = encoded.dictionary.to_pylist()
    if 2 * len(values) <= len(column):  # values that repeat (not request_id: each its own)
        values = [seen.setdefault(v, v) for v in values]
    distinct[:-1] = values
    indices = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return distinct[indices]


def duckdb_error() -> type[Exception]:
    """DuckDB's base error (imported with DuckDB, so only when it is used)."""
    import duckdb

    return duckdb.Error


#: Rows checked in one GX run at most: files are grouped into runs of up to this many rows
#: (GX's fixed cost is paid per run; memory grows with the run's rows).
MAX_ROWS_PER_RUN = 400_000


def _runs_by_rows(keys: list[str], parsed: dict, max_rows: int) -> list[list[str]]:
    """Group files (in order) into GX runs of at most ``max_rows`` rows (a bigger file alone)."""
    runs: list[list[str]] = []
    rows = 0
    for k in keys:
        n = len(parsed[k][1].frame)
        if not runs or rows + n > max_rows:
            runs.append([])
            rows = 0
        runs[-1].append(k)
        rows += n
    return runs


def _batch_frame(keys: list[str], parsed: dict) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """The files' frames as read, one below the other, with each row's file and trust."""
    frames = [parsed[k][1].frame for k in keys]
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    filled = []
    for f in frames:
        missing = [c for c in columns if c not in f.columns]
        if missing:  # e.g. an optional request-level column: blank (None), never NaN
            f = f.assign(
                **{c: pd.Series([None] * len(f), index=f.index, dtype=object) for c in missing}
            )
        # A frame already in the batch's columns and order is concatenated as it is (a
        # selection would copy every column of it first).
        filled.append(f if list(f.columns) == columns else f[columns])
    frame = (
        pd.concat(filled, ignore_index=True)
        if len(filled) > 1
        else filled[0].reset_index(drop=True)
    )
    lengths = [len(f) for f in frames]
    files = pd.Series(np.repeat(np.array(keys, dtype=object), lengths), dtype=object)
    orgs = pd.Series(
        np.repeat(np.array([parsed[k][2] for k in keys], dtype=object), lengths), dtype=object
    )
    return frame, files, orgs


def _check_run(
    keys: list[str],
    parsed: dict,
    form: str,
    rules,
    build,
    today: date,
    period: str,
    headcounts: Mapping[str, int],
    in_sql: bool = False,
) -> dict[Hashable, Verdict]:
    """One GX run over the files ``keys`` of one form: check frame built once for them all
    (``in_sql``: see :func:`_summaries`)."""
    frame, files, orgs = _batch_frame(keys, parsed)
    # Each file's headcount looked up once (Series.map over one value per file gives the
    # values, and dtype, the map over every row gave), then repeated over its rows.
    file_orgs = pd.Series([parsed[k][2] for k in keys], dtype=object)
    looked_up = file_orgs.map(lambda o: headcounts.get(str(o).strip().upper()) if o else None)
    lengths = [len(parsed[k][1].frame) for k in keys]
    heads = pd.Series(np.repeat(looked_up.astype(object).to_numpy(), lengths), dtype=object)
    check = build(frame, orgs, today, files, heads)
    del frame
    failures = gx_core.run_rules(check, rules, f"publications_{form}")
    per_file = gx_core.failures_by_file([f for f in failures if f.rows])
    # A rule that failed without naming rows cannot be pinned on one file: every file
    # of the run is rejected with it rather than any being accepted unchecked.
    unplaced = [f for f in failures if not f.rows]
    order = [r.name for r in rules]
    positions = check.groupby(FILE_COLUMN, sort=False).indices
    verdicts: dict[Hashable, Verdict] = {}
    accepted: list[str] = []
    for k in keys:
        file_id, publication, _ = parsed[k]
        found = [
            RuleFailure(f.rule, f.column, f.description, {"": f.rows_for(k)}, f.examples)
            for f in per_file.get(k, [])
        ] + [RuleFailure(f.rule, f.column, f.description, {}, f.examples) for f in unplaced]
        found.sort(key=lambda f: order.index(f.rule))
        if found:
            own = check.iloc[positions[k]]
            found = [g for f in found for g in explain_failure(f, own, publication.frame)]
        verdicts[file_id] = Verdict(
            accepted=not found,
            form=form,
            summary=None,
            failures=found,
            warnings=list(publication.warnings),
            rows=len(publication.frame),
            sheet=publication.sheet,
            read_frame=publication.frame,
        )
        if not found:
            accepted.append(k)
    if accepted:
        rows = np.sort(np.concatenate([positions[k] for k in accepted]))
        warnings = {k: verdicts[parsed[k][0]].warnings for k in accepted}
        # Only the file and the form's columns go on (not the rules' helper columns), and
        # the check frame is let go before the summaries are counted.
        data = REQUEST_LEVEL_COLUMNS if form == "request_level" else SUMMARY_COLUMNS
        kept = check[[FILE_COLUMN, *(c for c in data if c in check.columns)]]
        whole = len(rows) == len(check)
        del check
        release_freed_memory()
        summaries = _summaries(
            kept if whole else kept.iloc[rows], form, today, period, warnings, in_sql
        )
        for k in accepted:
            verdicts[parsed[k][0]].summary = summaries[k]
    return verdicts


def _summaries(
    check: pd.DataFrame,
    form: str,
    today: date,
    period: str,
    warnings: dict[str, list[str]],
    in_sql: bool = False,
) -> dict[str, pd.DataFrame]:
    """Accepted rows in the typed summary form, per file (request-level files aggregated).

    ``check`` holds the accepted files' rows of one run; ``warnings`` (file -> its verdict's
    warnings) is added to for requests left out because their period is not over.
    ``in_sql``: request-level rows are aggregated by DuckDB (:func:`_aggregate_in_sql`), as
    for a batch read by :func:`read_declared`; else by pandas
    (``transforms.publications.aggregate_requests``), the same rows without importing
    DuckDB (``flexbench validate`` of one file).
    """
    if form == "summary":
        out = check[[FILE_COLUMN, *SUMMARY_COLUMNS]].copy()
    else:
        if in_sql:
            out, left_out = _aggregate_in_sql(check, today, period)
        else:
            _, period_end = period_of(check["received_date"], period)
            ongoing = (period_end > pd.Timestamp(today)).to_numpy()
            left_out = pd.Series(ongoing).groupby(check[FILE_COLUMN].to_numpy()).sum()
            out = aggregate_requests(check[~ongoing], period=period, by=(FILE_COLUMN,))
        for k, n in left_out.items():
            if n:
                warnings[k].append(
                    f"{int(n)} request(s) received in a {period.replace('_', ' ')} "
                    "not yet over are left out of the summary until it ends"
                )
    out[list(COUNT_COLUMNS)] = out[list(COUNT_COLUMNS)].astype("int64")
    for c in ("period_start", "period_end"):
        out[c] = pd.to_datetime(out[c]).dt.normalize()
    out["org_code"] = out["org_code"].astype(str)
    out["staff_group"] = out["staff_group"].astype(str)
    parts = _split_by_file(out)
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in SUMMARY_COLUMNS})
    return {k: parts.get(k, empty.copy()) for k in warnings}


def _aggregate_in_sql(
    check: pd.DataFrame, today: date, period: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Request-level rows of a run (typed, as in the check frame) -> their summary rows
    (``aggregate_requests`` with ``by=(FILE_COLUMN,)``) and the requests left out per file
    (their period not over on ``today``), counted by DuckDB
    (``transforms.publications.request_summary_sql``)."""

    from transforms.publications import (
        request_codes,
        request_ongoing_sql,
        request_summary_sql,
        summary_from_counts,
    )

    codes = request_codes(check, check[FILE_COLUMN].to_numpy(dtype=object))
    with scratch_duckdb() as con:
        con.register("requests", codes.table)
        counts = con.execute(request_summary_sql(codes, today, period)).df()
        ongoing = con.execute(request_ongoing_sql(today, period)).fetchall()
    out = summary_from_counts(counts, codes).rename(columns={"file": FILE_COLUMN})
    left_out = {codes.labels["file"][f]: n for f, n in ongoing}
    return out, left_out


def _split_by_file(out: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rows of each file (columns ``SUMMARY_COLUMNS``, index from 0), as a groupby on the
    file gives them; a file's rows come one after another here, so each is a slice."""
    files = out[FILE_COLUMN].to_numpy(dtype=object)
    table = out[list(SUMMARY_COLUMNS)]
    if not len(files):
        return {}
    starts = np.flatnonzero(np.r_[True, files[1:] != files[:-1]])
    if len(starts) != len(set(files)):  # not one run per file
        return {
            k: part[list(SUMMARY_COLUMNS)].reset_index(drop=True)
            for k, part in out.groupby(FILE_COLUMN, sort=False)
        }
    ends = [*starts[1:], len(files)]
    return {
        files[a]: table.iloc[a:b].reset_index(drop=True) for a, b in zip(starts, ends, strict=True)
    }


def check_file(
    path: Path,
    org: str | None = None,
    today: date | None = None,
    name: str | None = None,
    headcount: int | None = None,
) -> Verdict:
    """Check a publication saved on disk: what ``flexbench validate`` and ``flexbench serve``
    both run (:meth:`Verdict.report` is the structured report).

    A file past the size limit (docs/flex-data-standard.md, "Files flexbench accepts") is
    refused without being read into memory. ``name`` is the file's name for messages
    (default: the path's); raises OSError when the file cannot be read.
    """
    name = name or path.name
    size = path.stat().st_size
    if size > MAX_DOWNLOAD_BYTES:
        return _rejected(
            PublicationError(
                "too-large",
                f"{name} is {size:,} bytes; a publication may be at most "
                f"{MAX_DOWNLOAD_BYTES:,} bytes",
            )
        )
    return validate_publication(path.read_bytes(), name, org, today, headcount)


# --- the command --------------------------------------------------------------------------


#: Exit statuses of ``flexbench validate`` (docs/flex-data-standard.md, "Check a file").
EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
#: Where an internal error's traceback goes (one line on stderr points here).
ERROR_LOG_NAME = "flexbench-validate-errors.log"


def error_log_path() -> Path:
    """The internal-error log: ``$FLEXBENCH_VALIDATE_LOG``, else a file in the temp folder."""
    import os
    import tempfile

    return Path(
        os.environ.get("FLEXBENCH_VALIDATE_LOG") or Path(tempfile.gettempdir()) / ERROR_LOG_NAME
    )


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, no usage dump
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flexbench validate",
        description="Check a flexible working publication (CSV or XLSX) against the Flex "
        "Data Standard v1. Exit 0 accepted, 1 rejected, 2 usage error, 3 internal error "
        f"(details in {error_log_path()}).",
    )
    parser.add_argument("file", help="the publication file, CSV or XLSX")
    parser.add_argument("--org", help="ODS code of the publishing trust, e.g. RJ1")
    parser.add_argument(
        "--today", help="reference date for the 'not in the future' rules (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--headcount",
        type=int,
        help="the trust's headcount, to hold requests_received to "
        f"{REQUESTS_PER_HEAD} per head (needs --org)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``flexbench validate FILE [--org CODE] [--today YYYY-MM-DD] [--headcount N]``.

    Prints ``accepted: N rows, form F`` (and any warnings) and returns 0, or one line per
    failed rule and returns 1; a usage error is one line on stderr and returns 2. Anything
    else that goes wrong is an internal error: one line on stderr naming the log that holds
    the traceback, and 3. Whatever the file holds, no other status and no traceback.
    """
    try:
        return _main(argv)
    except Exception as exc:  # noqa: BLE001 - the documented exit 3, never a traceback
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    import traceback

    log = error_log_path()
    try:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"--- flexbench validate {sys.argv[1:]!r}\n")
            fh.write("".join(traceback.format_exception(exc)))
        where = f"details in {log}"
    except OSError:
        where = "the log could not be written"
    print(f"flexbench validate: internal error ({type(exc).__name__}); {where}", file=sys.stderr)
    return EXIT_INTERNAL


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _parser().parse_args(argv)
        today = date.fromisoformat(args.today) if args.today else None
    except _UsageError as exc:
        print(f"flexbench validate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError:
        print(f"flexbench validate: --today must be YYYY-MM-DD, not {args.today}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if args.headcount is not None and (args.headcount <= 0 or not args.org):
        print("flexbench validate: --headcount needs --org and a number above 0", file=sys.stderr)
        return EXIT_USAGE
    path = Path(args.file)
    if not path.is_file():
        print(f"flexbench validate: no such file: {path}", file=sys.stderr)
        return EXIT_USAGE
    try:
        verdict = check_file(path, args.org, today, headcount=args.headcount)
    except OSError as exc:
        print(f"flexbench validate: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    sheet = f", sheet {verdict.sheet}" if verdict.sheet else ""
    if verdict.accepted:
        extra = ""
        if verdict.form == "request_level" and verdict.summary is not None:
            extra = f", aggregated to {len(verdict.summary)} summary rows"
        print(f"accepted: {verdict.rows} rows, form {verdict.form}{sheet}{extra}")
    else:
        n = len(verdict.failures)
        print(f"rejected: {path.name}{sheet}: {n} rule{'s' if n != 1 else ''} failed")
        for line in verdict.lines():
            print(line)
    for warning in verdict.warnings:
        print(f"warning: {warning}")
    return EXIT_ACCEPTED if verdict.accepted else EXIT_REJECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
