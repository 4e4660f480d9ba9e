"""Public extracts of the benchmark (``flexbench extract``), read from the ``public`` layer only.

Every public output reads the warehouse through :func:`open_public`
(:func:`warehouse.connect_public`): a connection that holds the ``public.*`` tables and
nothing else, so the disclosure control applied once in the public layer
(docs/methodology.md, "Disclosure control") is all a reader ever sees. This module only reads
and formats:

- :func:`extract_table` - ``public.trust_window`` (one row per trust, the benchmark window) or
  ``public.trust_quarters`` (one row per trust and quarter, the numbers of
  ``marts.trust_trends``), filtered by region, peer group, trusts and period;
- :func:`write_extract` - CSV, XLSX (with a notes sheet) or Parquet, with a notes file beside
  CSV and Parquet (``<name>.notes.txt``) naming the method and what a reader can and cannot
  work out; every text cell a spreadsheet would run as a formula neutralised.

Only columns of the public tables are ever published; a column added to a mart reaches an
extract only when a public model publishes it. Analysts' marts are not suppressed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from transforms import disclosure
from transforms.benchmark import PROPORTIONS
from transforms.disclosure import SUPPRESSION_MARKER
from transforms.indicators import BY_COLUMN

FORMATS = ("csv", "xlsx", "parquet")

#: Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: Column of a public row naming the values withheld to protect confidentiality (";").
WITHHELD = "withheld"
#: Column of a public row naming the rates not published for too few requests (";").
TOO_FEW = "too_few"

#: The public tables an extract is made from: ``--by`` -> (table, start column, end column).
TABLES = {
    "window": ("trust_window", "window_start", "window_end"),
    "quarter": ("trust_quarters", "quarter_start", "quarter_end"),
}

#: The public rates and how each is worked out: the benchmark's proportions
#: (transforms.benchmark.PROPORTIONS) and the clinical split.
_RATE_WORDS = {
    **{p.name: f"{p.numerator} / {p.denominator}" for p in PROPORTIONS},
    "clinical_approval_rate": "clinical_approved / clinical_decided",
    "non_clinical_approval_rate": "non_clinical_approved / non_clinical_decided",
}

_REASONS = {
    "costs": "the burden of additional costs",
    "demand": "detrimental effect on ability to meet customer demand",
    "reorganise": "inability to reorganise work among existing staff",
    "recruit": "inability to recruit additional staff",
    "quality": "detrimental impact on quality",
    "performance": "detrimental impact on performance",
    "insufficient_work": "insufficiency of work during the periods the employee proposes to work",
    "structural_changes": "planned structural changes",
    "other": "a ground that is not one of the eight statutory grounds",
}

_ROUNDED = (
    f" Rounded to the nearest {disclosure.ROUND_TO}; 1 to {disclosure.MAX_SUPPRESSED_COUNT} "
    f"withheld ({SUPPRESSION_MARKER})."
)


def _rate_columns() -> dict[str, str]:
    out = {}
    for rate, words in _RATE_WORDS.items():
        indicator = BY_COLUMN.get(rate)
        lead = f"{indicator.definition} " if indicator else ""
        out[rate] = f"{lead}{words}, from the published counts, rounded to its precision."
        out[f"{rate}_lower95"] = (
            f"Lower 95% Wilson limit of {rate}, widened over the rounding, rounded down."
        )
        out[f"{rate}_upper95"] = (
            f"Upper 95% Wilson limit of {rate}, widened over the rounding, rounded up."
        )
        out[f"{rate}_status"] = (
            "published | too_few (published denominator under "
            f"{disclosure.MIN_RATE_DENOMINATOR}) | withheld (numerator withheld to protect "
            "confidentiality)."
        )
    return out


#: Every public column, with its definition (the notes sheet; docs/analysts.md says the same).
COLUMNS: dict[str, str] = {
    "org_code": "ODS code of the trust.",
    "name": "Name of the trust as in the ODS list.",
    "region_code": "NHS England region (ODS national grouping, Y56-Y63).",
    "region_name": "Name of the NHS England region.",
    "icb_code": "Integrated care board (ODS high-level health geography).",
    "icb_name": "Name of the integrated care board: its latest name in NHS Workforce Statistics "
    "(ICS_NAME), or its code with its region's name where no workforce file names it.",
    "peer_group": "Peer group: the NHS Workforce Statistics BENCHMARK_GROUP of the trust.",
    "cluster_group": "NHS Workforce Statistics CLUSTER_GROUP of the trust.",
    "window_start": "First day of the benchmark window.",
    "window_end": "Last day of the benchmark window.",
    "quarter": "Calendar quarter (YYYY-Qn).",
    "quarter_start": "First day of the quarter.",
    "quarter_end": "Last day of the quarter.",
    "data_as_of": "The date the benchmark was built as of.",
    "has_data": "Whether the trust has accepted data in the window.",
    "part_window": "Whether the trust opened or closed inside the window.",
    "months_covered": "Months covered by the trust's accepted publications.",
    "headcount": "Staff in post (headcount, NHS Workforce Statistics).",
    "requests_received": "Formal flexible working requests received." + _ROUNDED,
    "approved_in_full": "Requests approved in full." + _ROUNDED,
    "approved_with_changes": "Requests agreed with amendments, or a trial period." + _ROUNDED,
    "declined": "Requests declined." + _ROUNDED,
    "withdrawn": "Requests withdrawn." + _ROUNDED,
    "pending": "Requests undecided at the end of the period." + _ROUNDED,
    "approved": "approved_in_full + approved_with_changes." + _ROUNDED,
    "decided": "approved + declined: the denominator of the approval rate." + _ROUNDED,
    "escalated": "Requests taken to the escalation stage." + _ROUNDED,
    "not_agreed_first_stage": "Requests not agreed at the first stage, the escalation rate's "
    "denominator: the larger of escalated and declined as published (docs/methodology.md, A3).",
    "appeals": "Appeals lodged against a decline." + _ROUNDED,
    "appeals_upheld": "Appeals decided for the employee." + _ROUNDED,
    "decided_within_2_months": "Decisions (including any appeal) within two months." + _ROUNDED,
    **{f"declined_{r}": f"Declines on {w}." + _ROUNDED for r, w in _REASONS.items()},
    "clinical_approved": "Approved requests from clinical staff groups." + _ROUNDED,
    "clinical_decided": "Decided requests from clinical staff groups." + _ROUNDED,
    "non_clinical_approved": "Approved requests from non-clinical staff groups." + _ROUNDED,
    "non_clinical_decided": "Decided requests from non-clinical staff groups." + _ROUNDED,
    **_rate_columns(),
    "requests_per_100_staff": BY_COLUMN["requests_per_100_staff"].definition
    + " "
    + BY_COLUMN["requests_per_100_staff"].method,
    "requests_per_100_staff_status": "published | withheld (requests_received withheld to "
    "protect confidentiality); empty without staff in post or requests (quarter rows).",
    "peer_median_requests_per_100_staff": "Median of requests_per_100_staff in the peer group, "
    "excluding the trust itself.",
    "national_rank": "Rank of approval_rate among the trusts whose approval rate is published "
    "(1 = highest; ties share a rank).",
    "national_ranked": "Number of trusts ranked nationally.",
    "national_quartile": "Quartile of the national rank (1 = top quarter).",
    "peer_rank": "Rank of approval_rate within the peer group (as national_rank).",
    "peer_ranked": "Number of trusts ranked in the peer group.",
    "peer_quartile": "Quartile of the peer rank (1 = top quarter).",
    "rank_status": "ranked | too_few (under "
    f"{disclosure.MIN_RATE_DENOMINATOR} decided) | withheld (approval rate withheld).",
    "survey_year": "NHS Staff Survey year of the staff voice columns.",
    "q4d_pct_satisfied": "Staff Survey Q4d: % satisfied with opportunities for flexible working.",
    "q4d_pct_satisfied_peer_median": "Median of q4d_pct_satisfied in the peer group, "
    "excluding the trust itself.",
    "q6d_pct_agree": "Staff Survey Q6d: % who can approach their manager about flexible working.",
    "q6d_pct_agree_peer_median": "Median of q6d_pct_agree in the peer group, "
    "excluding the trust itself.",
    "we_work_flexibly_score": "People Promise element 'We work flexibly' (score 0-10).",
    "we_work_flexibly_score_peer_median": "Median of we_work_flexibly_score in the peer group, "
    "excluding the trust itself.",
    "staff_voice_below_peers": "Whether staff voice is significantly below the peer group.",
    WITHHELD: "Values of this row withheld to protect confidentiality (shown as "
    f"{SUPPRESSION_MARKER} in CSV and XLSX, empty in Parquet), separated by ';'.",
    TOO_FEW: f"Rates of this row not published: denominator under "
    f"{disclosure.MIN_RATE_DENOMINATOR} (empty in every format), separated by ';'.",
}


class ExtractError(Exception):
    """A problem the user can fix (bad filter, unknown format); shown as one line."""


# --------------------------------------------------------------------------------------------
# reading the public layer
# --------------------------------------------------------------------------------------------


def open_public(path: str | Path):
    """The connection every public output reads: ``public.*`` and nothing else."""
    import warehouse

    return warehouse.connect_public(path)


def has_table(con, table: str) -> bool:
    """Whether ``public.<table>`` exists (a warehouse built before the public layer has none)."""
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'public' and table_name = ?",
            [table],
        ).fetchone()[0]
    )


def query_frame(con, sql: str, params: list | None = None) -> pd.DataFrame:
    """A query's result as a DataFrame (DuckDB's conversion warns under pandas 3; hushed)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return con.execute(sql, params or []).df()


def read_public(con, table: str) -> pd.DataFrame:
    """All rows of ``public.<table>`` (dates as dates), or an empty frame when it is absent."""
    if not has_table(con, table):
        return pd.DataFrame()
    df = query_frame(con, f'select * from public."{table}"')
    for c in df.columns:
        if c.endswith(("_start", "_end")) or c in ("data_as_of", "as_of"):
            if pd.api.types.is_datetime64_any_dtype(df[c]):
                df[c] = df[c].dt.date
    return df


@dataclass(frozen=True)
class DataAsOf:
    """When the published numbers are from: the build's as-of date and benchmark window."""

    as_of: date | None
    window_start: date | None
    window_end: date | None
    built_at: datetime = field(default_factory=lambda: datetime.now().astimezone())

    def line(self) -> str:
        """The data-as-of line shown on every page and in every extract's notes."""
        if self.as_of is None:
            return "No benchmark has been built yet."
        return (
            f"Data as of {self.as_of:%-d %B %Y}; benchmark window {self.window_start:%-d %B %Y}"
            f" to {self.window_end:%-d %B %Y}."
        )


def data_as_of(con) -> DataAsOf:
    """The as-of date and window of the build (``public.build_info``)."""
    info = read_public(con, "build_info")
    if info.empty:
        return DataAsOf(None, None, None)
    r = info.iloc[0]
    return DataAsOf(*(_to_date(r[c]) for c in ("as_of", "window_start", "window_end")))


def _to_date(value) -> date | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def named(row, column: str, list_column: str = WITHHELD) -> bool:
    """Whether ``column`` is named in a row's ``withheld`` (or ``too_few``) list."""
    names = row.get(list_column) if hasattr(row, "get") else None
    return isinstance(names, str) and column in names.split(";")


# --------------------------------------------------------------------------------------------
# the extract
# --------------------------------------------------------------------------------------------


@dataclass
class ExtractFilter:
    """What to extract: ``by`` window or quarter, and optional filters (all must match)."""

    by: str = "window"
    regions: Sequence[str] = ()
    peer_groups: Sequence[str] = ()
    trusts: Sequence[str] = ()
    date_from: date | None = None
    date_to: date | None = None


def _split(values: Iterable[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v.strip() for item in values for v in str(item).split(",") if v.strip()]


def extract_table(con, filters: ExtractFilter | None = None) -> pd.DataFrame:
    """The public extract: one row per trust and window (or quarter), as published.

    Parameters
    ----------
    con : duckdb connection
        From :func:`open_public`.
    filters : ExtractFilter, optional
        ``by="window"`` gives the benchmark window (12 months), ``by="quarter"`` one row per
        calendar quarter; regions (codes), peer groups (case-insensitive), trusts (ODS codes)
        and ``date_from``/``date_to`` (periods lying wholly between them) narrow the rows.

    Returns
    -------
    pandas.DataFrame
        The columns of the public table, withheld values missing and named in ``withheld``.

    Raises
    ------
    ExtractError
        When there is no benchmark, or a filter names nothing that exists.
    """
    f = filters or ExtractFilter()
    if f.by not in TABLES:
        raise ExtractError(f"--by must be window or quarter, not {f.by!r}")
    trusts_table = read_public(con, "trust_window")
    if trusts_table.empty:
        raise ExtractError("the warehouse has no benchmark yet: run `flexbench run` first")
    table, start, end = TABLES[f.by]
    rows = trusts_table if f.by == "window" else read_public(con, table)

    regions = {r.upper() for r in _split(f.regions)}
    if regions:
        unknown = regions - set(trusts_table["region_code"].dropna())
        if unknown:
            raise ExtractError(f"no trusts in region {', '.join(sorted(unknown))}")
        rows = rows[rows["region_code"].isin(regions)]
    peers = {p.casefold() for p in _split(f.peer_groups)}
    if peers:
        known = {str(p).casefold() for p in trusts_table["peer_group"].dropna()}
        unknown = peers - known
        if unknown:
            raise ExtractError(
                f"unknown peer group {', '.join(sorted(unknown))}; peer groups are: "
                + "; ".join(sorted(set(trusts_table["peer_group"].dropna())))
            )
        rows = rows[rows["peer_group"].fillna("").str.casefold().isin(peers)]
    codes = {t.upper() for t in _split(f.trusts)}
    if codes:
        unknown = codes - set(trusts_table["org_code"])
        if unknown:
            raise ExtractError(f"not in the benchmark: {', '.join(sorted(unknown))}")
        rows = rows[rows["org_code"].isin(codes)]
    if f.date_from is not None:
        rows = rows[pd.to_datetime(rows[start]) >= pd.Timestamp(f.date_from)]
    if f.date_to is not None:
        rows = rows[pd.to_datetime(rows[end]) <= pd.Timestamp(f.date_to)]
    if f.by == "window" and rows.empty and (f.date_from or f.date_to):
        raise ExtractError(
            "the benchmark window is not between --from and --to; use --by quarter for "
            "quarterly rows"
        )
    rows = with_area_names(con, rows)
    return rows.sort_values(["org_code", start]).reset_index(drop=True)


def with_area_names(con, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``region_name`` beside ``region_code`` and ``icb_name`` beside
    ``icb_code``, as ``public.area_names`` names them (unchanged when it is absent)."""
    names = read_public(con, "area_names")
    if names.empty:
        return rows
    out = rows.copy()
    for kind, code_col, name_col in (
        ("region", "region_code", "region_name"),
        ("icb", "icb_code", "icb_name"),
    ):
        if code_col not in out or name_col in out:
            continue
        lookup = names[names["area_kind"] == kind].set_index("area_code")["area_name"]
        values = out[code_col].map(lookup).astype(object)
        out.insert(out.columns.get_loc(code_col) + 1, name_col, values)
    return out


def neutralise_formula(value):
    """Prefix a text cell a spreadsheet would run as a formula with a single quote.

    Cells starting ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's list)
    get a leading ``'``; numbers (including negative ones) and other text are unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


#: Rows from which :func:`neutralised` finds a text column's formulas with the string array's
#: own search rather than a loop over the values (a loop is quicker for the short ones).
_LONG_COLUMN = 1000


def neutralised(df: pd.DataFrame) -> pd.DataFrame:
    """Apply :func:`neutralise_formula` to every text cell of ``df`` (numbers untouched)."""
    out = df.copy()
    for i, dtype in enumerate(out.dtypes):
        if dtype == np.dtype(object) or pd.api.types.is_string_dtype(dtype):
            # a plain loop over the values (Series.map costs ~0.2 ms a column, and the site
            # writes hundreds of one-row frames of ~90 columns); the column becomes object
            # (text and missing values as they were)
            column = out.iloc[:, i]
            values = column.to_numpy(dtype=object)
            if len(values) >= _LONG_COLUMN and isinstance(dtype, pd.StringDtype):
                # a long text column: its cells to neutralise found by the string array itself
                # (every value of it is text or missing), the others kept as they are
                hit = column.str.startswith(FORMULA_PREFIXES).to_numpy(dtype=bool, na_value=False)
                values = values.copy()
                values[hit] = ["'" + v for v in values[hit]]
            else:
                values = [neutralise_formula(v) for v in values]
            out.isetitem(i, pd.Series(values, index=out.index, dtype=object))
    return out


def for_display(df: pd.DataFrame, marker: str = SUPPRESSION_MARKER) -> pd.DataFrame:
    """Withheld values read ``marker`` (the ONS marker); everything else as published."""
    out = df.copy()
    if WITHHELD not in out:
        return out
    # plain Python over the rows' lists (pandas' string and map methods cost more than the
    # work on the one-row frames the site writes by the hundred)
    lists, split = [], {}  # a list met again (a table repeats a few, "" most) split once
    for v in out[WITHHELD].tolist():
        if type(v) is not str:
            lists.append(set(("" if pd.isna(v) else str(v)).split(";")))
            continue
        names = split.get(v)
        if names is None:
            names = split[v] = set(v.split(";"))
        lists.append(names)
    named = set().union(*lists)
    for i, column in enumerate(out.columns):
        if column not in named:
            continue
        hide = np.fromiter((column in names for names in lists), dtype=bool, count=len(lists))
        if hide.any():
            values = out.iloc[:, i].to_numpy(dtype=object, copy=True)
            values[hide] = marker
            out.isetitem(i, pd.Series(values, index=out.index, dtype=object))
    return out


def _for_spreadsheet(df: pd.DataFrame) -> pd.DataFrame:
    """Withheld cells as the ONS marker, then formula neutralisation."""
    return neutralised(for_display(df))


def notes_rows(con, df: pd.DataFrame, filters: ExtractFilter) -> list[tuple[str, str]]:
    """The notes of an extract (XLSX notes sheet, and the notes file beside CSV and Parquet):
    what it is, as of when, its filters, the disclosure control method and what a reader can
    and cannot work out, definitions and source versions, as (label, text) pairs."""
    as_of = data_as_of(con)
    rows: list[tuple[str, str]] = [
        ("flexbench extract", "National benchmark of flexible working in the English NHS."),
        ("Data as of", as_of.line()),
        ("Extracted", f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by flexbench {_version()}"),
        (
            "Rows",
            f"{len(df)}: one row per trust and "
            + ("quarter" if filters.by == "quarter" else "benchmark window"),
        ),
        ("Filters", _describe_filters(filters)),
        ("", ""),
        ("Disclosure control", disclosure.METHOD_NAME + "."),
        *[("", rule) for rule in disclosure.RULES],
        ("What you can work out", ""),
        *[("", line) for line in disclosure.KNOWABLE],
        ("", ""),
        ("Column", "Definition"),
        *[(c, COLUMNS[c]) for c in df.columns if c in COLUMNS],
        ("", ""),
        ("Source", "Version (URL, sha256, fetched at)"),
    ]
    for r in read_public(con, "source_versions").itertuples():
        sha = f" sha256 {r.sha256[:16]}…" if isinstance(r.sha256, str) else ""
        rows.append((r.source, f"{r.url}{sha} fetched {r.fetched_at}"))
    return rows


def notes_path(path: Path) -> Path:
    """The notes file written beside a CSV or Parquet extract."""
    path = Path(path)
    return path.with_name(f"{path.name}.notes.txt")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flexbench")
    except PackageNotFoundError:
        return "(development)"


def _describe_filters(f: ExtractFilter) -> str:
    parts = []
    for label, values in (
        ("regions", f.regions),
        ("peer groups", f.peer_groups),
        ("trusts", f.trusts),
    ):
        if _split(values):
            parts.append(f"{label}: {', '.join(_split(values))}")
    if f.date_from:
        parts.append(f"from {f.date_from}")
    if f.date_to:
        parts.append(f"to {f.date_to}")
    return "; ".join(parts) or "none (every trust)"


def write_extract(con, df: pd.DataFrame, path: Path, fmt: str, filters: ExtractFilter) -> Path:
    """Write the extract as CSV, XLSX (data + notes sheet) or Parquet (+ a notes file).

    Text cells are formula-neutralised in every format (so a file converted to a
    spreadsheet later is safe too); numbers stay numbers. In CSV and XLSX withheld cells
    read ``[c]``; in Parquet they are null (columns keep their types) and named in
    ``withheld``. CSV and Parquet get ``<name>.notes.txt`` beside them. Each file is written
    next to its target and renamed into place.
    """
    if fmt not in FORMATS:
        raise ExtractError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        if fmt == "csv":
            _for_spreadsheet(df).to_csv(tmp, index=False, encoding="utf-8-sig")
        elif fmt == "parquet":
            neutralised(df).to_parquet(tmp, index=False)
        else:
            _write_xlsx(con, df, tmp, filters)
        if fmt != "xlsx":
            text = "\n".join(
                f"{label}: {value}" if label and value else (label or value)
                for label, value in notes_rows(con, df, filters)
            )
            notes = notes_path(path)
            notes_tmp = notes.with_name(f".{notes.name}.part")
            notes_tmp.write_text(text + "\n", encoding="utf-8")
            notes_tmp.replace(notes)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_xlsx(con, df: pd.DataFrame, path: Path, filters: ExtractFilter) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "benchmark"
    shown = _for_spreadsheet(df)
    ws.append(list(shown.columns))
    for values in shown.itertuples(index=False):
        ws.append([_cell(v) for v in values])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "C2"
    notes = wb.create_sheet("notes")
    for label, text in notes_rows(con, df, filters):
        notes.append([neutralise_formula(label), neutralise_formula(text)])
    notes.column_dimensions["A"].width = 28
    notes.column_dimensions["B"].width = 110
    # openpyxl writes any string starting "=" as a formula: make every text cell a string
    # cell explicitly (neutralised text starts with "'" already, so this is belt and braces).
    for sheet in (ws, notes):
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
    wb.save(path)


def _cell(value):
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
