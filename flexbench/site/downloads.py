"""The downloads of every site page: its numbers from the public layer as CSV and XLSX, with a
Frictionless Data Package descriptor (``datapackage.json``) beside them.

Each page's downloads live in a folder of their own (``downloads/<page>/``): one CSV per table
of the page, one XLSX holding them all (a sheet each) and ``datapackage.json`` naming every
column, its type, unit and definition, the suppression marker and the data-as-of date. The
frames written are the very frames the page shows (public values only, withheld values as the
suppression marker), so a download tells nothing the page does not. Read and format only.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from flexbench import extract
from flexbench.site import workbook
from transforms import disclosure
from transforms.disclosure import SUPPRESSION_MARKER
from transforms.indicators import BY_COLUMN

#: Definitions of the columns of downloads that the extracts do not carry (extract.COLUMNS
#: defines the rest): the trend, equity, flex-type, region and ICB tables of the pages.
EXTRA_COLUMNS = {
    "measure": "The indicator (see its page under indicators/).",
    "rate": "The measure's published value for the quarter (a proportion).",
    "rate_lower95": "Lower limit of its 95% interval, widened over the rounding.",
    "rate_upper95": "Upper limit of its 95% interval, widened over the rounding.",
    "status": "published | too_few (denominator under "
    f"{disclosure.MIN_RATE_DENOMINATOR}) | withheld (numerator withheld, {SUPPRESSION_MARKER}) "
    "| no_data.",
    "numerator": "The published numerator count (rounded to the nearest 5).",
    "denominator": "The published denominator count (rounded to the nearest 5).",
    "numerator_column": "Which count the numerator is.",
    "denominator_column": "Which count the denominator is.",
    "measure_order": "Order of the measure on the page.",
    "area_name": "Name of the region or ICB.",
    "area_kind": "region (NHS England region) or icb (integrated care board).",
    "area_code": "Code of the region (Y56-Y63) or ICB (ODS high-level health geography).",
    "trusts": "Trusts of the area (or group) in the benchmark; in the national and "
    "aggregate rows, the trusts with data.",
    "trusts_with_data": "Trusts of the area with accepted data in the benchmark window.",
    "scope": "national, region, peer_group or icb: what the row adds up.",
    "group_code": "ENG for England, else the region code, peer group or ICB code.",
    "period": "window (the 12-month benchmark window) or quarter.",
    "period_start": "First day of the period.",
    "period_end": "Last day of the period.",
    "level": "trust, peer_group or england: the unit the row describes.",
    "dimension": "The equity dimension (sex, ethnic_group, disability, age_band, pay_band, "
    "staff_group, flex_type, ...).",
    "group_value": "The group within the dimension.",
    "flex_type": "The kind of flexible working requested (the standard's flex_type).",
    "dimension_status": "published, or withheld as a whole where its groups would give back a "
    "count from 0 to 4.",
    "share_requested": "The group's share of the unit's requests received (a proportion).",
    "share_approved": "The group's share of the unit's approvals (a proportion).",
    "reference_group": 'The dimension\'s reference group (docs/methodology.md, "Equity").',
    "is_reference": "Whether this group is the reference group.",
    "relative_likelihood": "The reference group's approval rate divided by this group's "
    "(WRES convention: above 1, the reference group is more likely to be approved).",
    "relative_likelihood_lower95": "Lower limit of the relative likelihood's 95% interval "
    "(log method).",
    "relative_likelihood_upper95": "Upper limit of the relative likelihood's 95% interval "
    "(log method).",
    "gap_flagged": "Whether the equity gap flag is raised for this group.",
    "gap_direction": "Which way the gap runs (the group approved less or more often).",
    "gap_severity": "How strong the evidence of the gap is.",
    "gap_evidence": "The flag's evidence, written from published counts.",
    "target": "The funnel's target: the national rate, from published counts.",
    "phi": "The overdispersion factor of the trusts' rates about the target.",
    "tau2": "The between-trust variance added to the limits (0 where the trusts are not "
    "overdispersed).",
    "method": "How the limits are drawn: wilson, or arcsine widened by tau2.",
    "lower95": "Lower 95% control limit at this denominator.",
    "upper95": "Upper 95% control limit at this denominator.",
    "lower998": "Lower 99.8% control limit at this denominator.",
    "upper998": "Upper 99.8% control limit at this denominator.",
}


@dataclass
class Resource:
    """One table of a page: ``name`` (file stem, sheet), a title and the frame shown (None
    for the rows :attr:`rows_of` names, cut from their table only where they are written on
    their own: :meth:`shown_frame`)."""

    name: str
    title: str
    frame: pd.DataFrame | None
    units: dict[str, str] = field(default_factory=dict)
    #: The whole table the frame is cut from: column types are read from it (once), so a
    #: trust whose column happens to be empty gets the same schema as every other.
    types_from: pd.DataFrame | None = None
    #: Where the frame is rows of a table (its columns, their types): the table and the rows'
    #: positions in it, so the rows are written from the table written once (:func:`_lines`).
    rows_of: tuple[pd.DataFrame, Sequence[int]] | None = None
    #: The columns' types as the frame's own values give them, worked out already (e.g. by
    #: :class:`TypesOfRows`), where they are not read from :attr:`types_from`.
    types: dict[str, str] | None = None

    @property
    def columns(self) -> pd.Index:
        """The columns of the frame shown."""
        return self.rows_of[0].columns if self.frame is None else self.frame.columns

    def shown_frame(self) -> pd.DataFrame:
        """The frame shown, its rows cut from :attr:`rows_of` where it was not given."""
        if self.frame is None:
            table, positions = self.rows_of
            self.frame = table.iloc[list(positions)]
        return self.frame


#: What is worked out once from a table while it lives, by the table's id: (a weak reference
#: to the table, its values by name). An id is only the table's while the table lives, and a
#: table cut for one page (an area's trusts) dies with the page: the weak reference drops its
#: entry then, so a later table given the same id never reads them.
_BY_TABLE: dict[int, tuple[weakref.ref, dict]] = {}


def _of_table(table: pd.DataFrame) -> dict:
    """The values kept for ``table`` (column types of a Resource.types_from, the written form
    of a frame that several pages download, such as a peer group's rates)."""
    key = id(table)
    entry = _BY_TABLE.get(key)
    if entry is None or entry[0]() is not table:
        entry = (weakref.ref(table, lambda _ref, key=key: _BY_TABLE.pop(key, None)), {})
        _BY_TABLE[key] = entry
    return entry[1]


def _unit(column: str, given: dict[str, str]) -> str | None:
    if column in given:
        return given[column]
    base = column.removesuffix("_lower95").removesuffix("_upper95").removesuffix("_peer_median")
    if base in BY_COLUMN:
        return BY_COLUMN[base].unit
    if column.startswith("relative_likelihood"):
        return "ratio of approval rates"
    if base.endswith(("_rate", "_share")) or base.startswith("share_"):
        return "proportion (shown as %)"
    from transforms.vocabulary import COUNT_COLUMNS

    if column in COUNT_COLUMNS or column in ("approved", "decided", "numerator", "denominator"):
        return "requests (rounded to the nearest 5)"
    return None


def _numbers_type(dtype) -> str | None:
    """The type of a column of numbers or booleans (numpy's, or pandas' masked ones) from its
    dtype alone where it holds a value; None for a column of any other dtype."""
    if dtype.kind in "biuf" and (
        isinstance(dtype, np.dtype)
        or isinstance(dtype, pd.api.extensions.ExtensionDtype)
        and dtype.name in _MASKED
    ):
        return {"b": "boolean", "f": "number"}.get(dtype.kind, "integer")
    return None


def _type(series: pd.Series) -> str:
    dtype = series.dtype
    numbers = _numbers_type(dtype)
    if numbers is not None:
        # numbers or booleans: their type follows from the dtype alone (no text to be the
        # marker, each value a number or a bool), as the checks below find it value by value
        return numbers if series.notna().any() else "string"
    if len(series) <= _SHORT_COLUMN and (
        dtype == np.dtype(object) or isinstance(dtype, pd.StringDtype)
    ):
        # a column of text: text only, one value of which cannot be a number (the checks below
        # would find pd.to_numeric failing on it and no date among the texts)
        shown = [v for v in series.tolist() if not pd.isna(v) and str(v) not in _NOT_VALUES]
        if shown and all(type(v) is str for v in shown):
            if any(not _NUMBER_CHARS.issuperset(v) for v in shown):
                return "string"
    s = series.dropna()
    s = s[~s.astype(str).isin(_NOT_VALUES)]
    if s.empty:
        return "string"
    if pd.api.types.is_bool_dtype(series) or all(isinstance(v, bool) for v in s):
        return "boolean"
    try:
        nums = pd.to_numeric(s)
    except (TypeError, ValueError):
        if all(hasattr(v, "isoformat") for v in s):
            return "date"
        return "string"
    return (
        "integer" if (nums % 1 == 0).all() and not pd.api.types.is_float_dtype(series) else "number"
    )


#: Cells that are no value of their column's type: the descriptor's ``missingValues`` (a
#: blank and the suppression marker).
_NOT_VALUES = ("", SUPPRESSION_MARKER)

#: Rows up to which a column of text is typed by a loop over its values (pandas' checks below
#: cost less for a longer one).
_SHORT_COLUMN = 1000

#: Every character of a text that pd.to_numeric reads as a number (ASCII digits, sign, point,
#: exponent, inf, infinity or nan, ASCII white space): a text with another is not one.
_NUMBER_CHARS = frozenset("0123456789+-.eEiInNfFtTyYaA \t\n\r\f\v")

#: pandas' own nullable dtypes of numbers and booleans (NA for a missing value).
_MASKED = frozenset(
    ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32",
     "Float64", "boolean")
)  # fmt: skip


def _column_type(r: Resource, column: str) -> str:
    source = r.types_from if r.types_from is not None and column in r.types_from else None
    if source is None:
        if r.types is not None and column in r.types:
            return r.types[column]
        return _type(r.shown_frame()[column])
    types = _of_table(source).setdefault("types", {})
    if column not in types:
        types[column] = _type(source[column])
    return types[column]


class TypesOfRows:
    """:func:`_type` of each column of a table's rows, for any rows of it (a page's cut, such
    as an area's trusts): what settles it worked out once a row of a column of numbers or
    booleans (whether it holds a value) or of text (whether it holds one, and one of words
    or not). Where that does not settle it (a column of another kind; texts that might be
    numbers; many rows), the rows' column is typed as :func:`_type` types any."""

    def __init__(self, table: pd.DataFrame):
        self.table = table
        self._rows = {c: self._kinds(table[c]) for c in table.columns}

    @staticmethod
    def _kinds(series: pd.Series) -> tuple[str, np.ndarray] | None:
        dtype = series.dtype
        numbers = _numbers_type(dtype)
        if numbers is not None:
            # the type of the numbers' dtype where a row holds one, else "string"
            return numbers, series.notna().to_numpy(dtype=bool)
        if isinstance(dtype, pd.StringDtype):
            # 0: no value (missing, or one of the missingValues), 1: a text of words (a
            # character pd.to_numeric cannot read), 2: a text that might be a number
            return "text", np.array(
                [
                    0 if pd.isna(v) or v in _NOT_VALUES else 2 if _NUMBER_CHARS.issuperset(v) else 1
                    for v in series.tolist()
                ],
                dtype=np.int8,
            )
        return None

    def __call__(self, positions: Sequence[int]) -> dict[str, str]:
        """The type of each column of the rows at ``positions``, as :func:`_type` finds it."""
        out, positions = {}, np.asarray(positions, dtype=np.intp)
        for column, kinds in self._rows.items():
            if kinds is not None:
                kind, rows = kinds
                mine = rows[positions]
                if kind != "text":
                    out[column] = kind if mine.any() else "string"
                    continue
                if len(positions) <= _SHORT_COLUMN and ((mine == 1).any() or not mine.any()):
                    out[column] = "string"  # a text of words among them, or no value
                    continue
            out[column] = _type(self.table[column].iloc[positions])
        return out


def keep_types(table: pd.DataFrame, columns: Sequence[str] | None = None) -> None:
    """Work out now the type of each column of a table pages read their columns' types from
    (:attr:`Resource.types_from`; e.g. once before forking the processes that write them):
    of ``columns``, where given (those the pages download), else of every column."""
    if not table.columns.is_unique:
        return
    types = _of_table(table).setdefault("types", {})
    for column in table.columns if columns is None else [c for c in columns if c in table]:
        if column not in types:
            types[column] = _type(table[column])


def _field(column: str, kind: str, units: dict[str, str]) -> dict:
    out = {
        "name": column,
        "type": kind,
        "description": extract.COLUMNS.get(column) or EXTRA_COLUMNS.get(column, ""),
    }
    unit = _unit(column, units)
    if unit:
        out["unit"] = unit
    return out


def shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as written: withheld values as the suppression marker, formulae neutralised."""
    return extract.neutralised(extract.for_display(frame))


def _written(frame: pd.DataFrame) -> tuple[bytes, list[list]]:
    """The frame as written: its CSV file and its sheet's rows (the header first); worked out
    once for a frame several pages download (a peer group's rates, on each of its trusts'
    pages)."""
    kept = _of_table(frame)
    if "written" not in kept:
        out = shown(frame)
        rows = workbook.SheetRows([list(out.columns)])
        # the values as objects, a row at a time (itertuples costs a column lookup per column)
        rows.extend([extract._cell(v) for v in values] for values in out.to_numpy(object))
        kept["written"] = (out.to_csv(index=False).encode("utf-8"), rows)
    return kept["written"]


def written(frame: pd.DataFrame) -> None:
    """Work out now :func:`_written` of a frame several pages download, and its sheet's rows
    (e.g. before forking the processes that write the pages, so that they share them)."""
    workbook.keep_rows(_written(frame)[1])


def _each_row_alone(column: pd.Series) -> bool:
    """Whether ``to_csv`` writes each value of the column as it writes it in a frame of that
    row alone: true of numbers, booleans and text (a value at a time), not of dates with
    times (written without the time where every value of the frame is at midnight)."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    if dtype.kind in "biufO" or pd.api.types.is_string_dtype(dtype):
        return True
    if dtype.kind == "M" and getattr(dtype, "tz", None) is None:
        values = column.dropna()
        return bool((values == values.dt.normalize()).all())
    return False


def _lines(table: pd.DataFrame) -> tuple[str, list[str], list, object] | None:
    """The whole table as written, a row at a time: the CSV header, each row's CSV line, the
    columns and the values as objects (a row's sheet cells once :func:`extract._cell`); None
    where a row alone might be written otherwise (a column of another kind, a line break in
    a value)."""
    if not table.columns.is_unique or not all(
        _each_row_alone(table.iloc[:, i]) for i in range(table.shape[1])
    ):
        return None
    out = shown(table)
    text = out.to_csv(index=False)
    lines = text.split("\n")
    if "\r" in text or len(lines) != len(table) + 2 or lines[-1]:
        return None
    # the values as objects, made cells row by row as pages take them (in the processes
    # writing the pages, not all before they start); a text or date met again is the same
    # object (the tables repeat a few words and dates in every row: a copy each took tens of
    # MB; numbers are left alone, as 0.0 == -0.0 and True == 1)
    values = out.to_numpy(object)
    for j in range(values.shape[1]):
        if out.dtypes.iloc[j].kind == "O":
            seen: dict = {}
            values[:, j] = [
                seen.setdefault(v, v) if type(v) is str or type(v) is date else v
                for v in values[:, j]
            ]
    return lines[0] + "\n", [line + "\n" for line in lines[1:-1]], list(out.columns), values


def table_lines(table: pd.DataFrame) -> tuple[str, list[str], list, object] | None:
    """:func:`_lines` of ``table``, worked out once while the table lives (call it before
    forking workers that cut rows from the table, so that they share it)."""
    kept = _of_table(table)
    if "lines" not in kept:
        kept["lines"] = _lines(table)
    return kept["lines"]


def _written_rows(r: Resource) -> tuple[bytes, workbook.TableRows] | None:
    """:func:`_written` of rows of a table (:attr:`Resource.rows_of`), cut from the table
    written once; None where they must be written on their own."""
    table, positions = r.rows_of
    written = table_lines(table)
    if written is None or len(positions) == 0:
        return None
    header, lines, columns, values = written
    csv = header + "".join(lines[i] for i in positions)
    return csv.encode("utf-8"), workbook.TableRows(columns, values, positions, extract._cell)


#: The names of a frame's columns by the columns' Index (kept with it, so that its id is its
#: own): the frames cut from one table share their Index, and a tuple of text taken from an
#: Arrow-backed Index costs a conversion a name.
_NAMES: dict[int, tuple[pd.Index, tuple]] = {}


def _names(columns: pd.Index) -> tuple:
    entry = _NAMES.get(id(columns))
    if entry is None or entry[0] is not columns:
        if len(_NAMES) >= 10_000:
            _NAMES.clear()
        entry = _NAMES[id(columns)] = (columns, tuple(columns))
    return entry[1]


def _schema(r: Resource) -> tuple[dict, dict | None]:
    """The Table Schema of a resource, and where its JSON is kept for other pages: worked out
    once for the columns of a table that several pages cut rows from, where every column's
    type is read from the table (kept while the table lives); else None."""
    key = (_names(r.columns), tuple(r.units.items()))
    if r.types_from is not None:  # a schema kept for these columns (shared, then)
        kept = _of_table(r.types_from).setdefault("schemas", {})
        if key in kept:
            return kept[key]["schema"], kept[key]
    shared = r.types_from is not None and all(c in r.types_from for c in r.columns)
    kept = _of_table(r.types_from).setdefault("schemas", {}) if shared else None
    schema = {
        "fields": [_field(c, _column_type(r, c), r.units) for c in r.columns],
        "missingValues": list(_NOT_VALUES),
    }
    if kept is None:
        return schema, None
    kept[key] = {"schema": schema, "json": None}
    return schema, kept[key]


#: Where a resource's schema sits in a descriptor: the depth of its lines.
_SCHEMA_INDENT = "\n" + " " * 6


def _descriptor_json(descriptor: dict, kept: list[dict | None]) -> str:
    """``json.dumps(descriptor, indent=2, default=str)``, each resource's schema serialised
    once where ``kept`` (from :func:`_schema`) keeps it: Python's encoder with an indent is
    pure Python, and a schema is most of a descriptor and the same for every page cutting
    rows from one table."""
    schemas = [r["schema"] for r in descriptor["resources"]]
    marks = [f"\0schema {i}\0" for i in range(len(schemas))]
    shell = {
        **descriptor,
        "resources": [
            {**r, "schema": mark} for r, mark in zip(descriptor["resources"], marks, strict=True)
        ],
    }
    text = json.dumps(shell, indent=2, default=str)
    for schema, mark, entry in zip(schemas, marks, kept, strict=True):
        quoted = json.dumps(mark)
        if text.count(quoted) != 1:  # the mark met in the descriptor's own text: no shortcut
            return json.dumps(descriptor, indent=2, default=str)
        if entry is not None and entry["json"] is not None:
            schema_json = entry["json"]
        else:
            schema_json = json.dumps(schema, indent=2, default=str).replace("\n", _SCHEMA_INDENT)
            if entry is not None:
                entry["json"] = schema_json
        text = text.replace(quoted, schema_json)
    return text


def write_downloads(
    folder: Path, page_title: str, resources: list[Resource], as_of: extract.DataAsOf
) -> dict[str, str]:
    """Write a page's CSV files, one XLSX and ``datapackage.json`` into ``folder``; return the
    file names by kind (``csv:<name>``, ``xlsx``, ``datapackage``) for the page's links."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    sheets = []
    package_resources, schemas_kept = [], []
    for r in resources:
        cut = None if r.rows_of is None else _written_rows(r)
        csv, rows = _written(r.shown_frame()) if cut is None else cut
        path = folder / f"{r.name}.csv"
        path.write_bytes(csv)
        files[f"csv:{r.name}"] = path.name
        sheets.append((r.name[:31], rows))
        schema, schema_kept = _schema(r)
        schemas_kept.append(schema_kept)
        package_resources.append(
            {
                "name": r.name.replace("_", "-").lower(),
                "title": r.title,
                "path": path.name,
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": schema,
            }
        )
    xlsx = folder / "data.xlsx"
    workbook.write_workbook(xlsx, sheets)
    files["xlsx"] = xlsx.name
    descriptor = {
        "name": "flexbench-" + folder.name.lower(),
        "title": page_title,
        "description": "Numbers shown on the page, from the public layer of the national "
        "benchmark of flexible working in the English NHS, disclosure-controlled "
        '(docs/methodology.md, "Disclosure control").',
        "data_as_of": None if as_of.as_of is None else as_of.as_of.isoformat(),
        "window_start": None if as_of.window_start is None else as_of.window_start.isoformat(),
        "window_end": None if as_of.window_end is None else as_of.window_end.isoformat(),
        "suppression_marker": SUPPRESSION_MARKER,
        "suppression": " ".join(disclosure.RULES),
        "resources": package_resources,
    }
    (folder / "datapackage.json").write_text(
        _descriptor_json(descriptor, schemas_kept) + "\n", encoding="utf-8"
    )
    files["datapackage"] = "datapackage.json"
    return files
