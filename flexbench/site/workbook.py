"""The XLSX file of a page's downloads, written as openpyxl writes it, at a fraction of the cost.

The site writes hundreds of small workbooks (one per page) and openpyxl's write-only mode
spends most of each on its machinery: an element tree per cell, a temporary file per sheet,
the theme, styles and manifest made again for every file. Here openpyxl still makes every
part of the file but the cells: a workbook of the same sheet names (and the same date style
where a sheet holds dates) is saved once and kept, and only each sheet's rows are written
here, in openpyxl's own form (inline strings, ``t="n"`` numbers as ``%.16g``, ``t="b"``
booleans, dates as serial numbers with the date style). A value of any other kind (a formula,
an error code, a datetime, text a worksheet cannot hold, ...) sends the whole workbook to
openpyxl, so the file is always the one openpyxl would have written, its save time aside.
The parts every workbook holds, and a sheet several hold (a peer group's), are deflated once
and their deflated bytes written again into each file.
"""

from __future__ import annotations

import io
import math
import re
import time
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

#: Text openpyxl stores otherwise than as an inline string, or refuses (cell.cell).
_ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))
_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
_MAX_TEXT = 32767
_CORE_TIMES = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


class _Unusual(Exception):
    """A value this writer does not write as openpyxl would: leave the workbook to openpyxl."""


@lru_cache(maxsize=256)
def _letters(width: int) -> tuple[str, ...]:
    from openpyxl.utils import get_column_letter

    return tuple(get_column_letter(i) for i in range(1, width + 1))


def _tail(value) -> tuple[str, bool]:
    """A cell as openpyxl's write-only worksheet writes it, after its ``<c r="..."``, and
    whether it is a date."""
    kind = type(value)
    if kind is str:
        if (
            len(value) > _MAX_TEXT
            or (len(value) > 1 and value.startswith("="))
            or value in _ERROR_CODES
            or _ILLEGAL.search(value)
        ):
            raise _Unusual(value)
        if not value:
            return ' t="inlineStr" />', False
        stripped = value.strip()
        space = ' xml:space="preserve"' if stripped and stripped != value else ""
        return f' t="inlineStr"><is><t{space}>{escape(value)}</t></is></c>', False
    if kind is bool:
        return f' t="b"><v>{value:.16g}</v></c>', False
    if kind is int or kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _Unusual(value)
        return f' t="n"><v>{value:.16g}</v></c>', False
    if kind is date:
        from openpyxl.utils.datetime import to_excel

        return f' s="1" t="n"><v>{to_excel(value):.16g}</v></c>', True
    raise _Unusual(value)


#: :func:`_tail` of texts and dates met already (a sheet repeats a few words and dates in every
#: row; working out a text's cell again, its checks and escaping, was most of a sheet's cost):
#: a text's cell by the text, a date's by the date, each emptied when it grows past
#: :data:`_KEPT_TAILS`.
_TEXT_TAILS: dict[str, str] = {}
_DATE_TAILS: dict[date, str] = {}
_KEPT_TAILS = 200_000


class SheetRows(list):
    """A sheet's rows (a list) that keep their ``<row>`` elements once worked out: the rows of
    a table several workbooks hold (a peer group's, in each of its trusts' downloads)."""

    written: tuple[str, bool] | None = None
    #: the sheet's part of the file, and it deflated, by the template's part it fills
    parts: dict[bytes, tuple[bytes, bytes]] | None = None


class TableRows:
    """Rows of a table's values (a 2-D array of objects, as the table holds them) at
    ``positions``, under ``header``: made cells (``cell(value)``: a value as a sheet takes
    it, None for an empty cell; a text, an int or a float but NaN as it is, NaN as None) only
    where openpyxl is to write them, their ``<row>`` elements written from the values."""

    def __init__(self, header: Sequence, values, positions: Sequence[int], cell):
        self.header, self.values, self.positions, self.cell = header, values, positions, cell

    def __iter__(self):
        yield list(self.header)
        cell, values = self.cell, self.values
        for i in self.positions:
            yield [cell(v) for v in values[i]]


def _rows_xml(rows: Iterable[Sequence]) -> tuple[str, bool]:
    if isinstance(rows, TableRows):
        values = rows.values
        return _sheet_rows([rows.header, *(values[i] for i in rows.positions)], rows.cell)
    if not isinstance(rows, SheetRows):
        return _sheet_rows(rows)
    if rows.written is None:
        rows.written = _sheet_rows(rows)
    return rows.written


def keep_rows(rows: SheetRows) -> None:
    """Work out now the ``<row>`` elements of rows several workbooks hold (e.g. before forking
    the processes that write them); nothing where openpyxl is to write them."""
    try:
        _rows_xml(rows)
    except _Unusual:
        pass


def _sheet_rows(rows: Iterable[Sequence], cell=None) -> tuple[str, bool]:
    """The ``<row>`` elements of a sheet (None cells left out) and whether any cell is a date;
    ``cell``, where given, makes each value but the first row's a cell as
    :class:`TableRows` says."""
    out, dated = [], False
    texts, dates = _TEXT_TAILS, _DATE_TAILS
    isfinite = math.isfinite
    for number, values in enumerate(rows, 1):
        letters = _letters(len(values))
        cells = []
        append = cells.append
        convert = cell is not None and number > 1
        n = str(number)
        for letter, value in zip(letters, values, strict=True):
            kind = type(value)
            if kind is str:  # the commonest cell: its tail as _tail writes it, kept
                tail = texts.get(value)
                if tail is None:
                    if len(texts) >= _KEPT_TAILS:
                        texts.clear()
                    tail = texts[value] = _tail(value)[0]
                append(f'<c r="{letter}{n}"{tail}')
                continue
            if kind is float:
                if value != value:
                    if convert:  # NaN: an empty cell
                        continue
                    raise _Unusual(value)
                if not isfinite(value):
                    raise _Unusual(value)
                append(f'<c r="{letter}{n}" t="n"><v>{value:.16g}</v></c>')  # as _tail writes it
                continue
            if kind is int:  # never NaN nor infinite
                append(f'<c r="{letter}{n}" t="n"><v>{value:.16g}</v></c>')
                continue
            if convert:
                value = cell(value)
                kind = type(value)
                if kind is float or kind is int or kind is str:  # a numpy scalar made one
                    if kind is float and not isfinite(value):
                        raise _Unusual(value)
                    append(f'<c r="{letter}{n}"{_tail(value)[0]}')
                    continue
            if value is None:
                continue
            if kind is date:
                tail = dates.get(value)
                if tail is None:
                    if len(dates) >= _KEPT_TAILS:
                        dates.clear()
                    tail = dates[value] = _tail(value)[0]
                append(f'<c r="{letter}{n}"{tail}')
                dated = True
                continue
            tail, is_date = _tail(value)
            append(f'<c r="{letter}{n}"{tail}')
            dated = dated or is_date
        out.append(f'<row r="{n}">{"".join(cells)}</row>')
    return "".join(out), dated


@lru_cache(maxsize=64)
def _template(titles: tuple[str, ...], dated: tuple[bool, ...]) -> tuple[tuple[str, bytes], ...]:
    """Every part of openpyxl's file for sheets of these titles (a date in the sheets marked
    ``dated``), in openpyxl's order; each sheet's rows replaced by a marker."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for title, has_date in zip(titles, dated, strict=True):
        ws = wb.create_sheet(title)
        ws.append([date(2000, 1, 1)] if has_date else ["x"])
    buffer = io.BytesIO()
    wb.save(buffer)
    parts = []
    with zipfile.ZipFile(buffer) as z:
        for name in z.namelist():
            data = z.read(name)
            if name.startswith("xl/worksheets/sheet"):
                head, rest = data.split(b"<sheetData>", 1)
                tail = rest.split(b"</sheetData>", 1)[1]
                data = head + b"<sheetData>\0</sheetData>" + tail
            parts.append((name, data))
    return tuple(parts)


def _openpyxl(path: Path, sheets: Sequence[tuple[str, Iterable[Sequence]]]) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for title, rows in sheets:
        ws = wb.create_sheet(title)
        for values in rows:
            ws.append(list(values))
    wb.save(path)


class _Deflated:
    """A part's deflated bytes worked out before, given as zipfile's compressor gives them."""

    def __init__(self, deflated: bytes):
        self._left = deflated

    def compress(self, _data) -> bytes:
        out, self._left = self._left, b""
        return out

    def flush(self) -> bytes:
        out, self._left = self._left, b""
        return out


def _deflate(data: bytes) -> bytes:
    """``data`` deflated as zipfile deflates a part of a ZIP_DEFLATED file (the default level)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


@lru_cache(maxsize=1024)
def _deflated(data: bytes) -> bytes:
    """:func:`_deflate` of a part every workbook of some sheet titles holds (kept)."""
    return _deflate(data)


def _write_part(z: zipfile.ZipFile, name: str, data: bytes, deflated: bytes) -> None:
    """``z.writestr(name, data)``, its deflated bytes given (deflating the same parts of
    hundreds of files again was a third of the cost of writing them)."""
    zinfo = zipfile.ZipInfo(name, date_time=time.localtime(time.time())[:6])
    zinfo.compress_type = zipfile.ZIP_DEFLATED
    zinfo.external_attr = 0o600 << 16  # as writestr makes it
    zinfo.file_size = len(data)
    with z.open(zinfo, mode="w") as dest:
        if isinstance(getattr(dest, "_compressor", None), type(zlib.compressobj())):
            dest._compressor = _Deflated(deflated)
        dest.write(data)


def write_workbook(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence]]]) -> None:
    """Write ``sheets`` (title, rows: the header first, None for an empty cell) to ``path`` as
    openpyxl's write-only workbook would hold them."""
    try:
        written = [_rows_xml(rows) for _title, rows in sheets]
    except _Unusual:
        _openpyxl(path, sheets)
        return
    titles = tuple(title for title, _rows in sheets)
    template = _template(titles, tuple(dated for _xml, dated in written))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sheet_parts = iter(zip(sheets, written, strict=True))
    buffer = io.BytesIO()  # the file written at once (not a part, and its header, at a time)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as z:
        for name, part in template:
            if name.startswith("xl/worksheets/sheet"):
                (_title, rows), (xml, _dated) = next(sheet_parts)
                kept = rows.parts if isinstance(rows, SheetRows) else None
                if kept is not None and part in kept:
                    data, deflated = kept[part]
                else:
                    data = part.replace(b"\0", xml.encode("utf-8"))
                    if not isinstance(rows, SheetRows) or rows.written is None:
                        z.writestr(name, data)
                        continue
                    # the rows of a table several workbooks hold: deflated once
                    deflated = _deflate(data)
                    if rows.parts is None:
                        rows.parts = {}
                    rows.parts[part] = (data, deflated)
            elif name == "docProps/core.xml":
                data = _CORE_TIMES.sub(rb"\g<1>" + now.encode() + rb"\g<3>", part)
                deflated = _deflated(data)
            else:
                data, deflated = part, _deflated(part)
            _write_part(z, name, data, deflated)
    Path(path).write_bytes(buffer.getvalue())
