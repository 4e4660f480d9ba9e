"""Read trust publications in the Flex Data Standard v1 (summary and request-level forms).

A trust publishes its flexible working figures as a CSV or XLSX file. This module turns the
bytes of such a file into a DataFrame with the standard's column names, tolerating the
cosmetic differences spreadsheets bring (byte-order marks, CRLF, cp1252, header spelling,
documented synonyms, extra columns, a title row above the header), and refuses files that
cannot be a publication at all (empty, an HTML page, too large, missing columns, personal
data) with a :class:`PublicationError` whose rule id and message a trust HR lead can act on.

Row-level checks (whole numbers, sums, periods, ...) are not made here: they are the GX
suites in ``expectations/publications.py``. This module also aggregates the request-level
form to the summary form (:func:`aggregate_requests`) and counts it by equity group
(:func:`aggregate_request_breakdown`; the pipeline counts a whole group of files at once with
the same counts as SQL text, :func:`request_breakdown_sql`, which it runs on DuckDB).

The standard itself, with every rule id, is documented in ``docs/flex-data-standard.md``.
Pure: no Airflow, no network, no DuckDB.
"""

from __future__ import annotations

import bisect
import csv
import difflib
import io
import itertools
import math
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from transforms import vocabulary, zip_limits
from transforms.workforce import KNOWN_STAFF_GROUPS

ROW_COLUMN = "_row"  # same name as expectations.core.ROW_COLUMN (kept import-free here)

# --- the standard's columns ---------------------------------------------------------------

#: The eight statutory grounds (Employment Rights Act 1996 s.80G, in that order) and "other".
DECLINE_REASONS: tuple[str, ...] = tuple(
    c.removeprefix("declined_") for c in vocabulary.DECLINE_REASON_COLUMNS
)
DECLINE_REASON_COLUMNS: tuple[str, ...] = vocabulary.DECLINE_REASON_COLUMNS

#: Outcome counts that must add up to requests_received (rule "outcomes-sum").
OUTCOME_COLUMNS: tuple[str, ...] = vocabulary.OUTCOME_COLUMNS

#: Count columns of the summary form, each a whole number 0 or more.
COUNT_COLUMNS: tuple[str, ...] = vocabulary.COUNT_COLUMNS

#: Summary form: one row per trust x reporting period x staff group (DESIGN 3.1 order).
SUMMARY_COLUMNS: tuple[str, ...] = vocabulary.SUMMARY_COLUMNS

#: Request-level form: one row per request. All required except the optional ones below.
REQUEST_LEVEL_REQUIRED: tuple[str, ...] = (
    "org_code",
    "request_id",
    "received_date",
    "decision_date",
    "outcome",
    "escalated",
    "appeal",
    "decline_reason",
    "staff_group",
)
REQUEST_LEVEL_OPTIONAL: tuple[str, ...] = (
    "flex_type",
    "sex",
    "age_band",
    "ethnic_group",
    "disability",
    "band",
)
REQUEST_LEVEL_COLUMNS: tuple[str, ...] = REQUEST_LEVEL_REQUIRED + REQUEST_LEVEL_OPTIONAL

OUTCOMES: tuple[str, ...] = OUTCOME_COLUMNS
APPEALS: tuple[str, ...] = ("none", "upheld", "not_upheld", "pending")
FLEX_TYPES: tuple[str, ...] = (
    "part_time",
    "compressed_hours",
    "flexitime",
    "annualised_hours",
    "term_time",
    "self_rostering",
    "job_share",
    "remote_or_hybrid",
    "other",
)

ALL_STAFF_GROUPS = "All staff groups"
#: NHS Workforce Statistics staff groups (STAFF_GROUP_1_NAME, without "Unknown
#: classification"), plus the total row "All staff groups".
STAFF_GROUPS: tuple[str, ...] = tuple(
    group for group in KNOWN_STAFF_GROUPS if group != "Unknown classification"
)

# --- documented limits --------------------------------------------------------------------

#: A publication file (CSV or XLSX, as downloaded) larger than this is refused unread.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
#: An XLSX whose parts would inflate past this many bytes in total is refused before
#: anything is decompressed (an XLSX is a zip; its directory declares the sizes).
MAX_INFLATED_BYTES = 100 * 1024 * 1024
#: A part of an XLSX larger than 1 MiB that inflates more than this many times its
#: compressed size is refused as a zip bomb (real sheets compress 5-30 times).
MAX_COMPRESSION_RATIO = 100
#: Data rows read from one file at most.
MAX_ROWS = 200_000
#: The largest count a cell may hold (rule "count-within-bound"): ten times the headcount of
#: the largest NHS trust (about 45,000 staff), rounded up. Where the trust's headcount is
#: known, requests_received is also held to :data:`REQUESTS_PER_HEAD` times it.
MAX_COUNT = 500_000
#: requests_received may be at most this many times the trust's headcount, when known
#: (rule "requests-within-headcount").
REQUESTS_PER_HEAD = 10
#: The earliest date a period, a request or a decision may carry (rule "date-in-range"): the
#: first day of the financial year 2003/04, in which the statutory right to request flexible
#: working began (6 April 2003). The latest is the run's as-of date (``--today``).
EARLIEST_DATE = date(2003, 4, 1)
#: A decision (including any appeal) may come at most this many months after the end of the
#: quarter the request was received in (rule "decision-within-window"): the law asks for two
#: months, extensions by agreement are allowed, a year past the quarter is not plausible.
DECISION_WINDOW_MONTHS = 12

# --- header matching ----------------------------------------------------------------------


#: Letters of other scripts that look like Latin ones (Cyrillic, Greek, a few others), read as
#: the Latin letter they imitate, so "Nаme" with a Cyrillic "а" is "Name". Applied after
#: Unicode NFKC (which already folds full-width letters, ligatures and the like).
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ь": "b", "п": "n", "г": "r", "л": "n",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "μ": "u", "ϲ": "c", "ϳ": "j",
    # Latin look-alikes and others
    "ı": "i", "ȷ": "j", "ɡ": "g", "ɑ": "a", "ℓ": "l", "օ": "o", "ս": "u", "ո": "n", "ց": "g",
}  # fmt: skip
_CONFUSABLES = str.maketrans(CONFUSABLES)


def fold_text(text: Any) -> str:
    """Text as it reads to a person: NFKC, lower case, confusables read as Latin, accents off.

    Implements the matching of headers in docs/flex-data-standard.md ("Files flexbench
    accepts"): ``"Ｎаmé"`` (full-width N, Cyrillic а, accented e) folds to ``"name"``.
    """
    folded = unicodedata.normalize("NFKC", str(text)).lower().translate(_CONFUSABLES)
    if folded.isascii():
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalise_header(text: Any) -> str:
    """Header key used for matching: folded (:func:`fold_text`), "&" read as "and", letters
    and digits only.

    ``"Agreed with amendments"``, ``"agreed_with_amendments"`` and ``"AGREED WITH
    AMENDMENTS "`` all give ``"agreedwithamendments"``.
    """
    text = str(text)
    if text.isascii():
        return re.sub(r"[^a-z0-9]", "", text.lower().replace("&", "and"))
    return re.sub(r"[^a-z0-9]", "", fold_text(text).replace("&", "and"))


#: Documented synonyms: header as trusts write it -> column of the standard. Matching is
#: case-, space- and punctuation-insensitive (see :func:`normalise_header`); the standard's
#: own names (``org_code``, "Org code", ...) always match too.
SYNONYMS: dict[str, str] = {
    # who and when
    "ODS code": "org_code",
    "Trust code": "org_code",
    "Organisation code": "org_code",
    "Organization code": "org_code",
    "Org": "org_code",
    "Provider code": "org_code",
    "Period from": "period_start",
    "Start date": "period_start",
    "From": "period_start",
    "Period to": "period_end",
    "End date": "period_end",
    "To": "period_end",
    "Staff group name": "staff_group",
    "Staff group 1": "staff_group",
    # counts
    "Requests": "requests_received",
    "Number of requests": "requests_received",
    "Requests made": "requests_received",
    "Total requests": "requests_received",
    "Approved": "approved_in_full",
    "Agreed": "approved_in_full",
    "Agreed in full": "approved_in_full",
    "Approved in full": "approved_in_full",
    "Agreed with amendments": "approved_with_changes",
    "Approved with amendments": "approved_with_changes",
    "Agreed with changes": "approved_with_changes",
    "Agreed with modifications": "approved_with_changes",
    "Approved with modifications": "approved_with_changes",
    "Agreed with amendments or trial": "approved_with_changes",
    "Rejected": "declined",
    "Refused": "declined",
    "Not agreed": "declined",
    "Declined total": "declined",
    "Withdrawn by employee": "withdrawn",
    "Pending at period end": "pending",
    "Undecided": "pending",
    "Outstanding": "pending",
    "In progress": "pending",
    "Escalations": "escalated",
    "Escalated to second stage": "escalated",
    "Escalated to panel": "escalated",
    "Appeals lodged": "appeals",
    "Number of appeals": "appeals",
    "Appeals successful": "appeals_upheld",
    "Successful appeals": "appeals_upheld",
    "Decided within two months": "decided_within_2_months",
    "Decisions within 2 months": "decided_within_2_months",
    "Decisions within two months": "decided_within_2_months",
    # declines by ground (the statutory wording)
    "Burden of additional costs": "declined_costs",
    "Declined - costs": "declined_costs",
    "Detrimental effect on ability to meet customer demand": "declined_demand",
    "Inability to reorganise work among existing staff": "declined_reorganise",
    "Inability to recruit additional staff": "declined_recruit",
    "Detrimental impact on quality": "declined_quality",
    "Detrimental impact on performance": "declined_performance",
    "Insufficiency of work during the periods the employee proposes to work": (
        "declined_insufficient_work"
    ),
    "Insufficient work": "declined_insufficient_work",
    "Planned structural changes": "declined_structural_changes",
    "Structural changes": "declined_structural_changes",
    "Other reasons": "declined_other",
    "Declined other reasons": "declined_other",
    # request-level form
    "Request reference": "request_id",
    "Reference": "request_id",
    "Request number": "request_id",
    "Case reference": "request_id",
    "Date received": "received_date",
    "Received": "received_date",
    "Request date": "received_date",
    "Date of request": "received_date",
    "Date of decision": "decision_date",
    "Decision date": "decision_date",
    "Date decided": "decision_date",
    "Decision": "outcome",
    "Result": "outcome",
    "Escalated yes no": "escalated",
    "Appeal outcome": "appeal",
    "Reason for decline": "decline_reason",
    "Decline reason code": "decline_reason",
    "Reason declined": "decline_reason",
    "Type of flexible working": "flex_type",
    "Flexible working type": "flex_type",
    "Gender": "sex",
    "Age": "age_band",
    "Ethnicity": "ethnic_group",
    "Disabled": "disability",
    "AfC band": "band",
    "Pay band": "band",
}

_CANONICAL = set(SUMMARY_COLUMNS) | set(REQUEST_LEVEL_COLUMNS)
_HEADER_KEYS: dict[str, str] = {normalise_header(c): c for c in _CANONICAL}
_HEADER_KEYS.update({normalise_header(k): v for k, v in SYNONYMS.items()})

_SUMMARY_ONLY = set(SUMMARY_COLUMNS) - set(REQUEST_LEVEL_COLUMNS)
_REQUEST_ONLY = set(REQUEST_LEVEL_COLUMNS) - set(SUMMARY_COLUMNS)

#: Headers that identify a person; a file (either form) with any of them is refused as a
#: whole (rule "personal-data"). Matched on the normalised header (:func:`normalise_header`,
#: so case, spacing, punctuation, look-alike letters of other scripts and accents do not
#: matter): a header is personal data when its key is one of these, or ends with one of
#: :data:`PERSONAL_DATA_ENDINGS`. The list is documented in docs/flex-data-standard.md.
PERSONAL_DATA_HEADERS: tuple[str, ...] = (
    # names
    "Name", "Names", "Full name", "First name", "Forename", "Forenames", "Given name",
    "Surname", "Last name", "Family name", "Middle name", "Maiden name", "Initials",
    "Employee", "Employee name", "Staff name", "Staff member", "Staff member name",
    "Applicant", "Applicant name", "Requester", "Requester name", "Manager name",
    "Line manager", "Colleague name",
    # staff and pay numbers
    "Staff number", "Staff no", "Staff ID", "Employee number", "Employee no", "Employee ID",
    "Pay number", "Pay no", "Payroll number", "Payroll no", "Payroll ID",
    "Assignment number", "Assignment no", "ESR number", "ESR no", "ESR ID", "Person ID",
    # national numbers
    "NI number", "NI no", "NINO", "National Insurance", "National Insurance number",
    "National Insurance no", "NHS number", "NHS no",
    # birth and contact
    "Date of birth", "DOB", "Birth date", "Birthday", "Email", "Email address",
    "E-mail", "E-mail address", "Home address", "Address", "Postcode", "Home postcode",
    "Phone", "Phone number", "Telephone", "Telephone number", "Mobile", "Mobile number",
)  # fmt: skip
#: Header endings that name personal data whatever comes before them ("Employee's full
#: name", "Applicant e-mail", "Staff pay no.").
PERSONAL_DATA_ENDINGS: tuple[str, ...] = (
    "fullname", "firstname", "forename", "forenames", "surname", "lastname", "familyname",
    "employeename", "staffname", "staffmembername", "applicantname", "requestername",
    "staffnumber", "staffno", "employeenumber", "employeeno", "employeeid", "paynumber",
    "payno", "payrollnumber", "payrollno", "assignmentnumber", "assignmentno", "esrnumber",
    "ninumber", "nino", "nationalinsurance", "nationalinsurancenumber", "nhsnumber",
    "dateofbirth", "birthdate", "dob", "email", "emailaddress", "phonenumber",
)  # fmt: skip
_PERSONAL_KEYS = frozenset(normalise_header(h) for h in PERSONAL_DATA_HEADERS)
_PERSONAL_PARTS = ("dateofbirth", "nationalinsurance", "email")


def is_personal_data_header(header: Any) -> bool:
    """Whether a header names data that identifies a person (rule "personal-data").

    Implements the rule of docs/flex-data-standard.md that neither form may carry names,
    dates of birth, staff, pay or assignment numbers, national numbers or contact details.
    """
    text = fold_text(header)
    keys = {normalise_header(text), normalise_header(re.sub(r"\([^)]*\)|\[[^\]]*\]", "", text))}
    # "Employee (ESR)", "Date of birth [dd/mm/yyyy]": a qualifier in brackets is read past.
    return any(
        key
        and key not in _HEADER_KEYS
        and (
            key in _PERSONAL_KEYS
            or key.endswith(PERSONAL_DATA_ENDINGS)
            or any(p in key for p in _PERSONAL_PARTS)
        )
        for key in keys
    )


def closest_column(header: Any) -> str | None:
    """The column of the standard an unrecognised header most likely meant, or None.

    ``"requests_recieved"`` -> ``"requests_received"``. Compared on the normalised header
    with every column name and synonym (difflib's ratio, at least 0.8).
    """
    key = normalise_header(header)
    if not key:
        return None
    best = difflib.get_close_matches(key, list(_HEADER_KEYS), n=1, cutoff=0.8)
    return _HEADER_KEYS[best[0]] if best else None


def _named(header: str) -> str:
    """An unrecognised header, named with the column it most likely meant."""
    guess = closest_column(header)
    return f"{header} (did you mean {guess}?)" if guess else header


# --- errors and results -------------------------------------------------------------------


class PublicationError(ValueError):
    """A file that cannot be read as a publication at all (file-level failure).

    Attributes
    ----------
    rule : str
        Stable rule id, e.g. ``"html-page"``, ``"missing-columns"``.
    column : str
        The column(s) concerned, or ``"(file)"`` when the whole file is at fault.
    """

    def __init__(
        self, rule: str, message: str, column: str = "(file)", sheet: str | None = None
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.column = column
        self.sheet = sheet  # the worksheet read, for an XLSX


@dataclass
class ParsedPublication:
    """A publication read from a file, before row-level validation.

    Attributes
    ----------
    form : str
        ``"summary"`` or ``"request_level"``.
    frame : pandas.DataFrame
        Columns renamed to the standard's names (only those of the form), values as read
        (text from CSV; numbers, dates and text from XLSX; blanks as missing), plus ``_row``:
        the row number a person sees in the file (header is row 1 when it is the first row).
    warnings : list of str
        Things tolerated but worth telling the publisher (extra columns ignored, ...).
    sheet : str or None
        The worksheet read, for an XLSX.
    """

    form: str
    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    sheet: str | None = None


# --- reading ------------------------------------------------------------------------------


def read_publication(data: bytes, filename: str) -> ParsedPublication:
    """Read a publication file (CSV or XLSX) into the standard's columns.

    Parameters
    ----------
    data : bytes
        The file as downloaded.
    filename : str
        Its name (used in messages only: the format is recognised from the content).

    Returns
    -------
    ParsedPublication

    Raises
    ------
    PublicationError
        For file-level failures: ``too-large``, ``empty-file``, ``html-page``,
        ``not-csv-or-xlsx``, ``undecodable``, ``too-large-inflated``,
        ``unreadable-xlsx``, ``too-many-rows``, ``missing-columns``, ``duplicate-columns``,
        ``personal-data``. Never another exception for bad input: whatever a damaged or
        hostile file makes the readers raise becomes one of these.
    """
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise PublicationError(
            "too-large",
            f"{filename} is {len(data):,} bytes; a publication may be at most "
            f"{MAX_DOWNLOAD_BYTES:,} bytes",
        )
    if not data.strip():
        raise PublicationError("empty-file", f"{filename} is empty")
    sheet = None
    if data[:4] == b"PK\x03\x04":
        rows, sheet = _read_xlsx_rows(data, filename)
    else:
        _refuse_non_csv(data, filename)
        rows = _read_csv_rows(_decode(data, filename))
    try:
        return _publication_from_rows(rows, filename, sheet)
    except PublicationError as error:
        error.sheet = sheet
        raise


def _refuse_non_csv(data: bytes, filename: str) -> None:
    head = data[:2048]
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise PublicationError(
            "not-csv-or-xlsx",
            f"{filename} is an old Excel .xls workbook; save it as .xlsx or CSV",
        )
    if head.startswith(b"%PDF"):
        raise PublicationError(
            "not-csv-or-xlsx", f"{filename} is a PDF; publish the figures as CSV or XLSX"
        )
    if head.startswith(b"PK"):
        raise PublicationError("not-csv-or-xlsx", f"{filename} is a zip archive, not an XLSX")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if (
        text.startswith((b"<!doctype html", b"<html"))
        or b"<html" in text
        or b"<body" in text
        or b"<head" in text
    ):
        raise PublicationError(
            "html-page",
            f"{filename} is a web page (HTML), not data: the link may point to a page "
            "about the file rather than the file itself",
        )
    if text.startswith((b"<?xml", b"{", b"[")):
        raise PublicationError(
            "not-csv-or-xlsx", f"{filename} is XML or JSON; publish the figures as CSV or XLSX"
        )
    if not head.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\x00" in head:
        raise PublicationError("not-csv-or-xlsx", f"{filename} is a binary file, not a CSV or XLSX")


def _decode(data: bytes, filename: str) -> str:
    """Decode CSV bytes: UTF-8 (BOM or not), UTF-16 with BOM, else cp1252 (Excel's)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    else:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                return data.decode("cp1252")
            except UnicodeDecodeError:
                pass
    raise PublicationError(
        "undecodable",
        f"{filename} is not text in UTF-8 or Windows-1252; save it as 'CSV UTF-8'",
    )


def _dialect(text: str) -> Any:
    """The CSV dialect of a file's text: sniffed from its first 8 KiB (delimiter one of
    ``,;\t|``), else Excel's."""
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _read_csv_rows(text: str) -> list[tuple[int, list[Any]]]:
    """CSV text -> (row number as seen in a spreadsheet, cell values) for each record."""
    dialect = _dialect(text)
    rows: list[tuple[int, list[Any]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        for number, record in enumerate(reader, start=1):
            rows.append((number, record))
            if len(rows) > MAX_ROWS + 50:
                break
    except csv.Error as exc:
        raise PublicationError(
            "not-csv-or-xlsx", f"the file could not be read as CSV: {exc}"
        ) from exc
    return rows


def check_zip_sizes(data: bytes, filename: str) -> zipfile.ZipFile:
    """Refuse an XLSX (a zip) that would inflate past the limits, before decompressing it.

    Implements the documented safety limits: the zip directory's declared sizes are
    checked first (:data:`MAX_INFLATED_BYTES`, :data:`MAX_COMPRESSION_RATIO`), then every
    part is inflated in 1 MiB chunks that are counted and discarded, so a part that
    declares less than it really holds is caught with bounded memory.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise PublicationError(
            "unreadable-xlsx", f"{filename} looks like an XLSX but is damaged: {exc}"
        ) from exc
    too_big = PublicationError(
        "too-large-inflated", zip_limits.too_large_message(filename, MAX_INFLATED_BYTES)
    )
    if zip_limits.declared_too_large(archive, MAX_INFLATED_BYTES, MAX_COMPRESSION_RATIO):
        raise too_big
    inflated = 0
    try:
        for m in members:
            seen = 0
            with archive.open(m) as part:
                while chunk := part.read(1024 * 1024):
                    seen += len(chunk)
                    inflated += len(chunk)
                    if seen > m.file_size or inflated > MAX_INFLATED_BYTES:
                        raise too_big
    except PublicationError:
        raise
    except Exception as exc:  # noqa: BLE001 - zlib.error, BadZipFile, EOFError, ...: damaged
        raise PublicationError(
            "unreadable-xlsx", f"{filename} looks like an XLSX but is damaged: {_why(exc)}"
        ) from exc
    return archive


def _why(exc: BaseException) -> str:
    """An exception as one short line for a message (type when the text is empty)."""
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__


def _read_xlsx_rows(data: bytes, filename: str) -> tuple[list[tuple[int, list[Any]]], str]:
    """XLSX -> rows of the data sheet and its name (see :func:`_data_sheet`).

    Read-only and streamed by openpyxl, except its shared-strings table (the workbook's list
    of distinct texts), which openpyxl would hold whole in memory: the cells refer to it by
    number, and only the entries the rows read refer to are looked up afterwards, in one
    streamed pass over the table (:class:`_SharedStrings`). Anything a damaged workbook makes
    the readers raise (broken XML, an unknown attribute, a corrupt deflate stream, a date
    cell out of range) is the rejection ``unreadable-xlsx``, never an exception of another
    kind.
    """
    check_zip_sizes(data, filename)
    name: str | None = None
    try:
        book, strings = _open_workbook(data)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for damaged books
        raise PublicationError(
            "unreadable-xlsx", f"{filename} could not be opened as an XLSX workbook: {_why(exc)}"
        ) from exc
    try:
        names = book.sheetnames
        if not names:
            raise PublicationError("empty-file", f"{filename} has no worksheets")
        name = _data_sheet(book, names, strings)
        rows = strings.resolve(_sheet_rows(book[name], MAX_ROWS + 50))
    except PublicationError as error:
        error.sheet = name
        raise
    except Exception as exc:  # noqa: BLE001 - damaged sheet XML, bad cell values, ...
        where = f"sheet {name}" if name else "the workbook"
        raise PublicationError(
            "unreadable-xlsx",
            f"{filename} is damaged: {where} could not be read ({_why(exc)})",
            sheet=name,
        ) from exc
    finally:
        try:
            book.close()
        except Exception:  # noqa: BLE001, S110 - closing a damaged book must not hide the verdict
            pass
    return rows, name


class _SharedRef:
    """A cell that holds entry ``index`` of the shared-strings table, until looked up."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _SharedStrings:
    """A workbook's shared-strings table read on demand: ``table[i]`` gives a
    :class:`_SharedRef`; :meth:`resolve` then reads the table once, as a stream, keeping only
    the entries the rows refer to. Memory grows with the cells read, not with the table."""

    def __init__(self, archive: zipfile.ZipFile | None = None, part: str | None = None) -> None:
        self.archive, self.part = archive, part

    def __getitem__(self, index: int) -> _SharedRef:
        return _SharedRef(int(index))

    def resolve(self, rows: list[tuple[int, list[Any]]]) -> list[tuple[int, list[Any]]]:
        """The rows with every :class:`_SharedRef` replaced by its text."""
        wanted = {v.index for _, values in rows for v in values if type(v) is _SharedRef}
        if not wanted:
            return rows
        texts = self._read(wanted)
        missing = wanted - texts.keys()
        if missing:
            raise ValueError(f"a cell refers to shared string {min(missing)}, which is missing")
        return [
            (n, [texts[v.index] if type(v) is _SharedRef else v for v in values])
            for n, values in rows
        ]

    def _read(self, wanted: set[int]) -> dict[int, str]:
        """Entries ``wanted`` of the table, read in 1 MiB pieces: a piece holding none of
        them is only counted (``bytes.count``); the others are parsed as XML."""
        if self.archive is None or self.part is None:
            return {}
        targets = sorted(wanted)
        found: dict[int, str] = {}
        last = -1  # index of the last entry before the buffer
        buffer, opening, token, closing = b"", None, b"<si", b"</si>"
        with self.archive.open(self.part) as src:
            while True:
                chunk = src.read(1024 * 1024)
                buffer += chunk
                if opening is None:  # the table's own start tag, e.g. <sst xmlns=...> or <x:sst
                    root = re.search(rb"<((?:[A-Za-z_][\w.-]*:)?)sst\b[^>]*>", buffer)
                    if root is None:
                        if chunk and len(buffer) < 1024 * 1024:
                            continue
                        return found
                    opening, prefix = root.group(0), root.group(1)
                    token, closing = b"<" + prefix + b"si", b"</" + prefix + b"si>"
                    buffer = buffer[root.end() :]
                cut = buffer.rfind(token) if chunk else len(buffer)
                if cut <= 0 and chunk:
                    continue
                head, buffer = buffer[:cut], buffer[cut:]
                entries = head.count(token)
                first = bisect.bisect_left(targets, last + 1)
                if first < len(targets) and targets[first] <= last + entries:
                    found.update(self._parse(head, last, opening, token, closing, targets))
                last += entries
                if not chunk or len(found) == len(targets):
                    return found

    @staticmethod
    def _parse(head: bytes, last: int, opening: bytes, token: bytes, closing: bytes, targets):
        """Entries of ``targets`` among those in ``head`` (numbered from ``last + 1``)."""
        from xml.etree import ElementTree

        from openpyxl.cell.text import Text

        pieces = head.split(token)[1:]
        numbers, fragments = [], []
        for offset, piece in enumerate(pieces):
            number = last + 1 + offset
            k = bisect.bisect_left(targets, number)
            if k < len(targets) and targets[k] == number:
                end = piece.rfind(closing)
                body = piece[: end + len(closing)] if end >= 0 else piece.split(b">", 1)[0] + b">"
                numbers.append(number)
                fragments.append(token + body)
        root_name = opening[1:].split(None, 1)[0].rstrip(b">").rstrip(b"/")
        tree = ElementTree.fromstring(
            opening.rstrip(b"/>").rstrip(b">")
            + b">"
            + b"".join(fragments)
            + b"</"
            + root_name
            + b">"
        )
        out = {}
        for number, node in zip(numbers, list(tree), strict=True):
            out[number] = Text.from_tree(node).content.replace("x005F_", "")
        return out


def _open_workbook(data: bytes) -> tuple[Any, _SharedStrings]:
    """openpyxl's ``load_workbook(read_only=True, data_only=True)``, with the shared-strings
    table left unread (:class:`_SharedStrings`)."""
    from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader

    class Reader(ExcelReader):
        def read_strings(self) -> None:
            ct = self.package.find(SHARED_STRINGS)
            part = ct.PartName[1:] if ct is not None else None
            self.shared_strings = _SharedStrings(self.archive, part)

    reader = Reader(io.BytesIO(data), read_only=True, keep_vba=False, data_only=True)
    reader.read()
    return reader.wb, reader.shared_strings


#: Cells of a data row read from an XLSX (the standard has 23 columns at most). The first
#: rows, where the header is looked for, are read whole, so no column (a personal-data one
#: above all) can hide past this limit.
_XLSX_COLUMNS = 200
_HEADER_ROWS = 10


def _sheet_rows(sheet: Any, limit: int) -> list[tuple[int, list[Any]]]:
    """Non-blank rows of a read-only worksheet as (row number, values), at most ``limit``."""
    if hasattr(sheet, "reset_dimensions"):
        sheet.reset_dimensions()  # ignore a declared (possibly huge) used range
    rows: list[tuple[int, list[Any]]] = []
    number = 0
    for cells in sheet.iter_rows():
        number += 1
        values = []
        for cell in cells if len(rows) < _HEADER_ROWS else cells[:_XLSX_COLUMNS]:
            if getattr(cell, "row", None) is not None:
                number = cell.row
            values.append(getattr(cell, "value", None))
        while values and _blank(values[-1]):
            values.pop()
        if values:
            rows.append((number, values))
            if len(rows) >= limit:
                break
    return rows


def _data_sheet(book: Any, names: list[str], strings: _SharedStrings) -> str:
    """The worksheet holding the data: the one named "data" (any case), else the sheet whose
    first rows name most columns of the standard (a notes or cover sheet names none), the
    first sheet on a tie."""
    named = [n for n in names if normalise_header(n) == "data"]
    if named or len(names) == 1:
        return (named or names)[0]
    heads: dict[str, list[tuple[int, list[Any]]]] = {}
    for n in names[:20]:
        try:
            heads[n] = _sheet_rows(book[n], 10)
        except Exception:  # noqa: BLE001 - a damaged extra sheet is not the data sheet
            continue
    every = strings.resolve([row for head in heads.values() for row in head])
    best, best_hits, at = names[0], 0, 0
    for n, head in heads.items():
        hits = max((_header_hits(v) for _, v in every[at : at + len(head)]), default=0)
        at += len(head)
        if hits > best_hits:
            best, best_hits = n, hits
    return best


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _blank_row(values: list[Any]) -> bool:
    """Whether every cell of a row is blank (fast for CSV rows, which are all text)."""
    try:
        return not "".join(values).strip()
    except TypeError:  # XLSX cells: numbers, dates, None
        return all(_blank(x) for x in values)


def _cells(column: tuple[Any, ...]) -> list[Any]:
    """One column of the body as read: text stripped, blanks (and short rows) None."""
    return [(x.strip() or None) if type(x) is str else x for x in column]


def _header_hits(values: list[Any]) -> int:
    """How many columns of the standard a row names."""
    return len({_column_named(v) for v in values if not _blank(v)} - {None})


_COLUMN_NAMED: dict[str, str | None] = {}


def _column_named(value: Any) -> str | None:
    """The column of the standard a cell names, or None (text looked up once per process,
    up to 100,000 distinct texts: a file's first rows repeat the same few)."""
    if type(value) is not str:
        return _HEADER_KEYS.get(normalise_header(value))
    found = _COLUMN_NAMED.get(value, False)
    if found is False:
        found = _HEADER_KEYS.get(normalise_header(value))
        if len(_COLUMN_NAMED) < 100_000:
            _COLUMN_NAMED[value] = found
    return found


def _find_header(rows: list[tuple[int, list[Any]]]) -> int:
    """Index of the header row: of the first 10 non-blank rows, the one naming most columns."""
    best, best_hits = 0, -1
    for i, (_, values) in enumerate(rows[:10]):
        hits = _header_hits(values)
        if hits > best_hits:
            best, best_hits = i, hits
    return best


def _publication_from_rows(
    rows: list[tuple[int, list[Any]]], filename: str, sheet: str | None
) -> ParsedPublication:
    rows = [(n, v) for n, v in rows if not _blank_row(v)]
    if not rows:
        raise PublicationError("empty-file", f"{filename} has no rows")
    warnings: list[str] = []
    h = _find_header(rows)
    if h:
        warnings.append(f"ignored {h} row(s) above the header (row {rows[h][0]})")
    header = rows[h][1]
    body = rows[h + 1 :]
    if len(body) > MAX_ROWS:
        raise PublicationError("too-many-rows", f"{filename} has more than {MAX_ROWS:,} data rows")
    layout = header_layout(header)
    warnings.extend(layout.warnings)
    if not body:
        raise PublicationError("empty-file", f"{filename} has a header but no data rows")
    # The body turned into columns in one pass; rows shorter than the header are padded.
    by_column = list(itertools.zip_longest(*(v for _, v in body)))
    blank = (None,) * len(body)
    # Built column by column as object so blanks stay None (not NaN).
    frame = pd.DataFrame(
        {
            c: pd.Series(
                _cells(by_column[position] if position < len(by_column) else blank),
                dtype=object,
            )
            for c, position in layout.columns.items()
        }
    )
    frame[ROW_COLUMN] = pd.Series([n for n, _ in body], dtype="int64")
    return ParsedPublication(form=layout.form, frame=frame, warnings=warnings, sheet=sheet)


@dataclass
class HeaderLayout:
    """What a publication's header row says: its form, where each column of the standard
    is, and what to tell the publisher (extra columns ignored).

    Attributes
    ----------
    form : str
        ``"summary"`` or ``"request_level"``.
    columns : dict
        Column of the standard -> its position in the row (0-based), in the form's order.
    warnings : list of str
        Extra or unused columns, as :func:`read_publication` reports them.
    """

    form: str
    columns: dict[str, int]
    warnings: list[str] = field(default_factory=list)


def header_layout(header: list[Any]) -> HeaderLayout:
    """A header row (cells as read) -> its :class:`HeaderLayout`, by the header matching of
    docs/flex-data-standard.md ("Files flexbench accepts").

    Raises the file-level rejections a header alone decides: ``duplicate-columns``,
    ``personal-data``, ``missing-columns``.
    """
    mapping: dict[int, str] = {}
    seen: dict[str, str] = {}
    extras: list[str] = []
    for i, raw in enumerate(header):
        if _blank(raw):
            continue
        canonical = _HEADER_KEYS.get(normalise_header(raw))
        if canonical is None:
            extras.append(str(raw).strip())
            continue
        if canonical in seen:
            raise PublicationError(
                "duplicate-columns",
                f"columns '{seen[canonical]}' and '{str(raw).strip()}' both mean "
                f"{canonical}; keep one",
                canonical,
            )
        seen[canonical] = str(raw).strip()
        mapping[i] = canonical

    found = set(mapping.values())
    form = "request_level" if len(found & _REQUEST_ONLY) > len(found & _SUMMARY_ONLY) else "summary"
    personal = [e for e in extras if is_personal_data_header(e)]
    if personal:  # either form: a summary has no business with a name column either
        raise PublicationError(
            "personal-data",
            "the file carries personal data (" + ", ".join(personal) + "): remove names, "
            "dates of birth, staff, pay and assignment numbers, NI and NHS numbers and "
            "contact details before publishing"
            + ("; use a pseudonymous request_id" if form == "request_level" else ""),
            ", ".join(personal),
        )
    if form == "request_level":
        required, wanted = REQUEST_LEVEL_REQUIRED, REQUEST_LEVEL_COLUMNS
    else:
        required, wanted = SUMMARY_COLUMNS, SUMMARY_COLUMNS
    missing = [c for c in required if c not in found]
    if missing:
        unknown = (
            f"; headers not in the standard: {', '.join(map(_named, extras))}" if extras else ""
        )
        raise PublicationError(
            "missing-columns",
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}: the "
            f"{form.replace('_', '-')} form of the Flex Data Standard needs "
            f"{'them' if len(missing) > 1 else 'it'} (see docs/flex-data-standard.md)" + unknown,
            ", ".join(missing),
        )
    warnings = []
    unused = [seen[c] for c in found if c not in wanted]  # e.g. outcome in a summary file
    if extras or unused:
        warnings.append("ignored extra columns: " + ", ".join([*map(_named, extras), *unused]))
    position = {c: i for i, c in mapping.items()}
    columns = {c: position[c] for c in wanted if c in found}
    return HeaderLayout(form=form, columns=columns, warnings=warnings)


#: What :meth:`str.strip` removes from an ASCII cell besides spaces and line ends. A file
#: holding one of them (a tab other than as the delimiter) is not given a :class:`CsvPlan`:
#: the declared-schema reader trims cells of spaces only.
OTHER_ASCII_WHITESPACE = b"\t\x0b\x0c\x1c\x1d\x1e\x1f"


@dataclass
class CsvPlan:
    """How a CSV publication can be read with declared columns (no sniffing by the reader),
    giving exactly the rows :func:`read_publication` gives.

    Made by :func:`csv_plan` only for a file whose every row is one line of plain ASCII
    (no blank line before the end, no line break inside quotes, no NUL, no bare CR) and
    whose first line is the header. The reader then reads ``fields`` text columns per
    line, split on ``delimiter``, ``"`` quoting with doubled quotes as escapes, every cell
    trimmed (blank as missing). Line ``k`` of the file is row
    ``k``; a file read with fewer or more rows than ``rows`` (a quoted line break) must be
    read by :func:`read_publication` instead. Cells are trimmed of spaces only, so a file
    holding other whitespace (:data:`OTHER_ASCII_WHITESPACE`; a tab only as the delimiter of
    a file without quotes) gets no plan.

    Attributes
    ----------
    delimiter : str
        As :func:`read_publication` sniffs it.
    fields : int
        Cells in the header row; every row must have as many (else the reader fails and
        the file goes to :func:`read_publication`).
    rows : int
        Data lines (the lines after the header, up to the last non-empty one).
    layout : HeaderLayout
        The header's form, columns and warnings.
    """

    delimiter: str
    fields: int
    rows: int
    layout: HeaderLayout


#: A well-formed quoted cell (quotes doubled inside, no line break), per delimiter: what is
#: left of a line once they are taken out holds no quote in a file DuckDB reads as the csv
#: module does. The pattern starts with the quote itself (then looks back: the text's start,
#: a line's start or the delimiter before it) so the regex engine skips from quote to quote
#: instead of trying a match at every character, and its body is the unrolled loop
#: ``[^"]*(?:""[^"]*)*`` of ``(?:[^"]|"")*``: the same cells, about ten times faster on a
#: file quoting a column on every row.
_QUOTED_FIELD = {
    d: re.compile(
        rf'"(?<![^{re.escape(d)}\n]")[^"\r\n]*(?:""[^"\r\n]*)*"(?={re.escape(d)}|\r?$)', re.M
    )
    for d in ",;\t|"
}
_QUOTE_OUTSIDE_FIELDS = re.compile('"')


def csv_plan(data: bytes, filename: str) -> CsvPlan | None:
    """A :class:`CsvPlan` for a CSV publication a declared-schema reader reads exactly as
    :func:`read_publication` does, or None: then :func:`read_publication` reads the file
    (XLSX, other encodings, odd quoting, ragged or multi-line rows, a title above the
    header, a file to reject on its header, ...).
    """
    if len(data) > MAX_DOWNLOAD_BYTES or data[:2] == b"PK" or not data.strip():
        return None
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    # Most files have no carriage return: a scan for one spares counting them (and looking
    # for a blank line written with one) over the whole text.
    cr = b"\r" in body
    if not body.isascii() or b"\x00" in body or (cr and body.count(b"\r") != body.count(b"\r\n")):
        return None
    try:
        _refuse_non_csv(data, filename)
    except PublicationError:
        return None
    text = body.decode("ascii")
    dialect = _dialect(text)
    if any(ch in body for ch in OTHER_ASCII_WHITESPACE[1:]) or (
        b"\t" in body and (dialect.delimiter != "\t" or b'"' in body)
    ):
        return None
    if (
        dialect.quotechar != '"'
        or dialect.skipinitialspace
        or getattr(dialect, "escapechar", None) is not None
        or (not dialect.doublequote and '""' in text)
        or dialect.delimiter not in ",;\t|"
    ):
        return None
    core = text.rstrip("\r\n")
    if "\n\n" in core or (cr and "\n\r\n" in core):
        return None  # a blank line: the reader would skip it, and its row number
    lines = core.count("\n") + 1
    if lines - 1 > MAX_ROWS or lines < 2:
        return None
    if len(core) > csv.field_size_limit() and max(map(len, core.split("\n"))) > (
        csv.field_size_limit()
    ):
        return None  # the csv module refuses a field this long
    if '"' in text and _QUOTE_OUTSIDE_FIELDS.search(_QUOTED_FIELD[dialect.delimiter].sub("", core)):
        return None  # a quote inside a cell, or after one: the csv module's own reading
    try:
        head = list(
            csv.reader(io.StringIO("\n".join(core.split("\n", 60)[:60]), newline=""), dialect)
        )
    except csv.Error:
        return None
    rows = [(n, v) for n, v in enumerate(head, start=1) if not _blank_row(v)]
    if not rows or rows[0][0] != 1 or (len(rows) < 10 and lines > 60) or _find_header(rows):
        return None  # a title or blank rows above the header: read_publication finds it
    try:
        layout = header_layout(rows[0][1])
    except PublicationError:
        return None
    return CsvPlan(
        delimiter=dialect.delimiter, fields=len(rows[0][1]), rows=lines - 1, layout=layout
    )


def publication_from_cells(
    plan: CsvPlan, columns: dict[str, Any], blank: Any
) -> ParsedPublication | None:
    """A file read by its :class:`CsvPlan` -> the :class:`ParsedPublication` that
    :func:`read_publication` gives, or None when it has no data row (that file's rejection
    comes from :func:`read_publication`).

    ``columns`` maps each column of ``plan.layout`` to its trimmed cells (text or None), one
    per data line in file order; ``blank`` flags the lines whose every cell is blank.
    """
    keep = ~np.asarray(blank, dtype=bool)
    if not keep.any():
        return None
    numbers = np.arange(2, plan.rows + 2, dtype="int64")[keep]
    # One 2-D block of the cells (column by row, as pandas holds a block), not a Series per
    # column aligned on its index: the same frame in about a quarter of the time.
    names = list(plan.layout.columns)
    whole = bool(keep.all())
    cells = np.empty((len(names), len(numbers)), dtype=object)
    for j, c in enumerate(names):
        cells[j] = columns[c] if whole else np.asarray(columns[c], dtype=object)[keep]
    frame = pd.DataFrame(cells.T, columns=names, dtype=object, copy=False)
    frame[ROW_COLUMN] = pd.Series(numbers, dtype="int64")
    return ParsedPublication(
        form=plan.layout.form, frame=frame, warnings=list(plan.layout.warnings)
    )


# --- value coercion -----------------------------------------------------------------------

_INT_TEXT = re.compile(r"^[+-]?(\d+|\d{1,3}(,\d{3})+)(\.0*)?$")
#: Digits beyond which a count is not read exactly (Python refuses to turn very long digit
#: strings into ints); such a count is far past :data:`MAX_COUNT` and is held as +-10**1000.
_MAX_DIGITS = 1000
#: Stand-in for a count beyond :data:`MAX_COUNT` in a typed column (int64 cannot hold
#: 99999999999999999999): enough to fail rule "count-within-bound", small enough that the sum
#: rules stay exact integer arithmetic.
OVER_MAX_COUNT = MAX_COUNT + 1


def parse_count(value: Any) -> int | None:
    """A count as read -> its exact value (a Python int), or None when blank or not whole.

    Accepts ``12``, ``"12"``, ``"1,234"`` (thousands separators) and ``12.0`` (Excel);
    ``"12.5"``, ``"n/a"``, ``"*"``, booleans, infinities and blanks give None (rule
    "whole-number"). Read as an integer, never through a float: ``"99999999999999999999"``
    is 99999999999999999999 (rule "count-within-bound" refuses it). Negative whole numbers
    are returned as such (rule "not-negative" catches them).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    text = str(value).strip()
    if not _INT_TEXT.match(text):
        return None
    digits = text.replace(",", "").split(".")[0]
    negative = digits.startswith("-")
    digits = digits.lstrip("+-").lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        number = 10**_MAX_DIGITS
    else:
        number = int(digits)
    return -number if negative else number


def _held(number: int) -> int:
    """A count as held in a typed column: itself, or +-OVER_MAX_COUNT past the bound."""
    return max(-OVER_MAX_COUNT, min(OVER_MAX_COUNT, number))


def _is_text(values: pd.Series) -> pd.Series:
    """Which cells are text (CSV cells always are; XLSX cells may be numbers or dates)."""
    if infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.notna()
    return pd.Series([isinstance(v, str) for v in values], index=values.index, dtype=bool)


def parse_counts(values: pd.Series) -> pd.Series:
    """:func:`parse_count` on a whole column at once: Int64 (exact), missing where not whole.

    A count past :data:`MAX_COUNT` either way is held as ``+-OVER_MAX_COUNT`` (int64 cannot
    hold every count a file may claim; rule "count-within-bound" refuses the row and its
    message shows the value as written). A column of text (CSV) is factorised and each
    distinct text read once with :func:`parse_count`, as an integer, never through a float;
    other columns (XLSX numbers) are read cell by cell.
    """
    cells = values.to_numpy(dtype=object)
    out = np.zeros(len(cells), dtype="int64")
    given = np.zeros(len(cells), dtype=bool)
    if infer_dtype(cells, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(cells, use_na_sentinel=True)
        read = [parse_count(u) for u in uniques]
        table = np.array([0 if n is None else _held(n) for n in read] + [0], dtype="int64")
        known = np.array([n is not None for n in read] + [False], dtype=bool)
        out, given = table[codes], known[codes]  # code -1 (blank) takes the last entry
    else:
        for position, value in enumerate(cells):
            number = parse_count(value)
            if number is not None:
                out[position] = _held(number)
                given[position] = True
    return pd.Series(pd.arrays.IntegerArray(out, ~given), index=values.index, dtype="Int64")


_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d %B %Y", "%d %b %Y", "%Y%m%d")


def parse_date(value: Any) -> pd.Timestamp:
    """A date as read -> Timestamp (midnight), or NaT when blank or not a date.

    Text dates are read day first, as in the UK (``01/04/2024`` is 1 April 2024); ISO
    ``2024-04-01`` (with or without a time of midnight) and XLSX date cells are accepted.
    """
    if value is None:
        return pd.NaT
    if isinstance(value, datetime | date):
        return pd.Timestamp(value).normalize()
    text = str(value).strip()
    text = re.sub(r"[ T]00:00(:00(\.0+)?)?$", "", text)
    for fmt in _DATE_FORMATS:
        try:
            return pd.Timestamp(datetime.strptime(text, fmt))
        except ValueError:
            continue
    return pd.NaT


_MIDNIGHT = r"[ T]00:00(:00(\.0+)?)?$"
_NUMERIC_DATE_RE = re.compile(
    r"^\s*([0-9]{1,2})[/.\-]([0-9]{1,2})[/.\-][0-9]{1,4}(?:[ T]00:00(?::00(?:\.0+)?)?)?\s*$"
)


def date_order(values: pd.Series) -> pd.DataFrame:
    """How each cell's all-number date (``04/01/2024``, ``4.1.2024``) reads, for rule
    "unambiguous-date" (docs/flex-data-standard.md, "Dates").

    Returns boolean columns ``ambiguous`` (both of the first two numbers 12 or less and not
    equal: 4 January or 1 April?), ``day_first`` (the first number is above 12, so it can
    only be the day: ``30/06/2024``) and ``month_first`` (the second is above 12, so the
    file writes the month first, as in the US: ``06/30/2024``). Other cells (ISO dates,
    month names, XLSX date cells, blanks) are False in all three. Each distinct text is
    looked at once.
    """
    cells = values.to_numpy(dtype=object)
    codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    table = np.zeros((len(uniques) + 1, 3), dtype=bool)  # the last row: blanks
    for k, value in enumerate(uniques):
        if type(value) is not str:
            continue
        found = _NUMERIC_DATE_RE.match(value)
        if found:
            a, b = int(found.group(1)), int(found.group(2))
            table[k] = (0 < a <= 12 and 0 < b <= 12 and a != b, a > 12 >= b, b > 12 >= a)
    picked = table[codes]
    return pd.DataFrame(
        {"ambiguous": picked[:, 0], "day_first": picked[:, 1], "month_first": picked[:, 2]},
        index=values.index,
    )


def parse_dates(values: pd.Series) -> pd.Series:
    """:func:`parse_date` on a whole column at once: datetime64, NaT where not a date.

    Text cells are parsed column-wise with each documented format in turn (the same
    formats, in the same order, as :func:`parse_date`); only the cells no format read, and
    cells that are not text (XLSX dates), go one by one through :func:`parse_date`, so
    the result is the same as parsing cell by cell. A column of text (CSV) is factorised
    and each distinct text parsed once: a request-level file has a row per request but a
    few hundred days.
    """
    cells = values.to_numpy(dtype=object)
    if len(cells) > 1 and infer_dtype(cells, skipna=True) in ("string", "empty"):
        codes, distinct = pd.factorize(cells, use_na_sentinel=True)
        if len(distinct) < len(cells):
            read = _parse_date_cells(pd.Series(distinct, dtype=object)).to_numpy()
            table = np.append(read, np.datetime64("NaT", "us"))  # code -1: a blank cell
            return pd.Series(table[codes], index=values.index)
    return _parse_date_cells(values)


def _parse_date_cells(values: pd.Series) -> pd.Series:
    """:func:`parse_dates` cell by cell (no factorising)."""
    cells = values.reset_index(drop=True)
    out = np.full(len(cells), np.datetime64("NaT"), dtype="datetime64[us]")
    text = _is_text(cells).to_numpy()
    remaining = cells[text].astype("str").str.strip().str.replace(_MIDNIGHT, "", regex=True)
    for fmt in _DATE_FORMATS:
        if remaining.empty:
            break
        parsed = pd.to_datetime(remaining, format=fmt, errors="coerce")
        ok = parsed.notna().to_numpy()
        if ok.any():
            out[remaining.index.to_numpy()[ok]] = parsed[ok].to_numpy().astype("datetime64[us]")
            remaining = remaining[~ok]
    # Cells no format read (a strptime quirk pandas may not share) and XLSX values.
    slow = np.union1d(remaining.index.to_numpy(), np.flatnonzero(~text & cells.notna().to_numpy()))
    for position in slow:
        value = parse_date(cells.iloc[position])
        if not pd.isna(value):
            out[position] = value.to_datetime64()
    return pd.Series(out, index=values.index)


_STAFF_GROUP_KEYS: dict[str, str] = {normalise_header(g): g for g in STAFF_GROUPS}
_STAFF_GROUP_KEYS.update(
    {
        normalise_header(k): v
        for k, v in {
            "All staff": ALL_STAFF_GROUPS,
            "All": ALL_STAFF_GROUPS,
            "Total": ALL_STAFF_GROUPS,
            "Trust total": ALL_STAFF_GROUPS,
            "HCHS doctors": STAFF_GROUPS[1],
            "Doctors": STAFF_GROUPS[1],
            "Medical and dental": STAFF_GROUPS[1],
            "Scientific therapeutic and technical": "Scientific, therapeutic & technical staff",
            "Support to scientific, therapeutic & technical staff": "Support to ST&T staff",
        }.items()
    }
)


def normalise_staff_group(value: Any) -> Any:
    """Staff group as written -> the Workforce Statistics name, or the value unchanged.

    Matching ignores case, spaces and punctuation and reads "&" as "and"; a few common
    short names ("Doctors", "Total") are accepted. Unknown values are returned as they are
    so rule "known-staff-group" can name them.
    """
    if value is None:
        return None
    return _STAFF_GROUP_KEYS.get(normalise_header(value), str(value).strip())


def _code_lookup(values: dict[str, tuple[str, ...]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for code, variants in values.items():
        for v in (code, *variants):
            out[normalise_header(v)] = code
    return out


_OUTCOME_KEYS = _code_lookup(
    {
        "approved_in_full": ("approved", "agreed", "agreed in full", "accepted"),
        "approved_with_changes": (
            "agreed with amendments",
            "approved with amendments",
            "agreed with changes",
            "trial period",
            "trial period agreed",
            "agreed on trial",
        ),
        "declined": ("rejected", "refused", "not agreed"),
        "withdrawn": ("withdrawn by employee",),
        "pending": ("undecided", "in progress", "outstanding", "open"),
    }
)
_APPEAL_KEYS = _code_lookup(
    {
        "none": ("no", "no appeal", "n/a", "na"),
        "upheld": ("appeal upheld", "successful"),
        "not_upheld": ("dismissed", "rejected", "unsuccessful", "appeal not upheld"),
        "pending": ("appeal pending", "ongoing"),
    }
)
_YES_NO_KEYS = _code_lookup({"yes": ("y", "true", "1"), "no": ("n", "false", "0")})
_DECLINE_KEYS = _code_lookup(
    {
        r: (f"declined_{r}", *(k for k, v in SYNONYMS.items() if v == f"declined_{r}"))
        for r in DECLINE_REASONS
    }
)
_FLEX_TYPE_KEYS = _code_lookup({t: () for t in FLEX_TYPES} | {"remote_or_hybrid": ("hybrid",)})


def normalise_code(value: Any, kind: str) -> Any:
    """A coded request-level value as written -> its code, or the value unchanged.

    ``kind`` is one of ``"outcome"``, ``"appeal"``, ``"yes_no"``, ``"decline_reason"``,
    ``"flex_type"``. ``"Agreed with amendments"`` -> ``approved_with_changes``; ``"Y"`` ->
    ``yes``; ``"Burden of additional costs"`` -> ``costs``. Blank appeal means ``none``.
    """
    table = {
        "outcome": _OUTCOME_KEYS,
        "appeal": _APPEAL_KEYS,
        "yes_no": _YES_NO_KEYS,
        "decline_reason": _DECLINE_KEYS,
        "flex_type": _FLEX_TYPE_KEYS,
    }[kind]
    if value is None:
        return "none" if kind == "appeal" else None
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return table.get(normalise_header(value), str(value).strip())


def normalise_org_code(value: Any) -> Any:
    """ODS code as written -> upper case without spaces (``" rj1 "`` -> ``"RJ1"``)."""
    if value is None:
        return None
    return re.sub(r"\s+", "", str(value)).upper()


def _each(values: pd.Series, convert) -> pd.Series:
    """Apply ``convert`` to each value, keeping None as None (Series.map would give NaN).

    ``convert`` is called once per distinct value, not once per cell: a column of text
    (as read from CSV) is factorised; other columns are converted through a cache keyed on
    the value and its type (so ``1`` and ``True`` stay apart).
    """
    if infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
        table = np.empty(len(uniques) + 1, dtype=object)
        table[:-1] = [convert(u) for u in uniques]
        table[-1] = convert(None)  # code -1: a blank cell
        return pd.Series(table[codes], index=values.index, dtype=object)
    cache: dict[tuple[type, Any], Any] = {}
    out = []
    for v in values:
        key = (type(v), v)
        if key not in cache:
            cache[key] = convert(v)
        out.append(cache[key])
    return pd.Series(out, index=values.index, dtype=object)


def coerce_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Summary form as read -> typed values (counts Int64, exact; dates Timestamp/NaT).

    Values that cannot be read become missing here; the GX suite then names the rows
    (rules "whole-number", "valid-date", "required"). Never raises on bad values. Typed a
    column at a time (:func:`parse_counts`, :func:`parse_dates`), so it serves a whole
    batch of files concatenated as well as one file.
    """
    out = pd.DataFrame({ROW_COLUMN: frame[ROW_COLUMN].astype("int64")}, index=frame.index)
    out["org_code"] = _each(frame["org_code"], normalise_org_code)
    out["period_start"] = parse_dates(frame["period_start"])
    out["period_end"] = parse_dates(frame["period_end"])
    out["staff_group"] = _each(frame["staff_group"], normalise_staff_group)
    for c in COUNT_COLUMNS:
        out[c] = parse_counts(frame[c])
    return out[[*SUMMARY_COLUMNS, ROW_COLUMN]]


def _request_id(value: Any) -> Any:
    if type(value) is str:  # as read from CSV (every request its own id: once per row)
        return value.strip()
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # Excel keeps 1234 as 1234.0
        value = int(value)
    return str(value).strip()


def coerce_request_level(
    frame: pd.DataFrame, columns: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Request-level form as read -> typed, coded values (see :func:`normalise_code`).

    ``columns``: only these of the form are typed (and kept, where the frame has them),
    e.g. :data:`BREAKDOWN_INPUT_COLUMNS`; default all.
    """
    wanted = set(REQUEST_LEVEL_COLUMNS if columns is None else columns)
    out = pd.DataFrame({ROW_COLUMN: frame[ROW_COLUMN].astype("int64")}, index=frame.index)
    codes = {
        "org_code": normalise_org_code,
        "request_id": _request_id,
        "received_date": None,
        "decision_date": None,
        "outcome": lambda v: normalise_code(v, "outcome"),
        "escalated": lambda v: normalise_code(v, "yes_no"),
        "appeal": lambda v: normalise_code(v, "appeal"),
        "decline_reason": lambda v: normalise_code(v, "decline_reason"),
        "staff_group": normalise_staff_group,
    }
    for c, convert in codes.items():
        if c in wanted:
            out[c] = parse_dates(frame[c]) if convert is None else _each(frame[c], convert)
    if "flex_type" in frame.columns and "flex_type" in wanted:
        out["flex_type"] = _each(frame["flex_type"], lambda v: normalise_code(v, "flex_type"))
    for c in REQUEST_LEVEL_OPTIONAL[1:]:
        if c in frame.columns and c in wanted:
            out[c] = frame[c]
    return out


# --- aggregation --------------------------------------------------------------------------


def period_of(dates: pd.Series, period: str = "quarter") -> tuple[pd.Series, pd.Series]:
    """The reporting period each date falls in: (period_start, period_end).

    ``period="quarter"``: calendar quarters (Jan-Mar, Apr-Jun, Jul-Sep, Oct-Dec, which are
    also the financial-year quarters); ``"financial_year"``: 1 April to 31 March;
    ``"month"``: calendar months.
    """
    d = pd.to_datetime(dates)
    if period == "quarter":
        start = d.dt.to_period("Q").dt.start_time
    elif period == "month":
        start = d.dt.to_period("M").dt.start_time
    elif period == "financial_year":
        year = d.dt.year - (d.dt.month < 4).astype(int)
        start = pd.to_datetime({"year": year, "month": 4, "day": 1})
    else:
        raise ValueError(f"period must be quarter, month or financial_year, not {period!r}")
    months = {"quarter": 3, "month": 1, "financial_year": 12}[period]
    end = start + pd.DateOffset(months=months) - pd.Timedelta(days=1)
    return start.dt.normalize(), end.dt.normalize()


def decided_within_two_months(received: pd.Series, decided: pd.Series) -> pd.Series:
    """Whether each decision came within two calendar months of receipt.

    Implements the timeliness rule of the standard: ``decision_date <= received_date + 2
    calendar months`` (31 December + 2 months is the last day of February). Missing
    decision dates count as not within.
    """
    limit = pd.to_datetime(received) + pd.DateOffset(months=2)
    return (pd.to_datetime(decided) <= limit).fillna(False).astype(bool)


#: The outcomes that are decisions (counted by decided_within_2_months when timely).
_DECIDED: tuple[str, ...] = ("approved_in_full", "approved_with_changes", "declined")


def aggregate_requests(
    frame: pd.DataFrame, period: str = "quarter", by: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Request-level rows (coerced and valid) -> the summary form.

    Implements "the pipeline aggregates this form to the summary form": one row per
    org_code x period x staff_group, plus an "All staff groups" row per org_code x period.
    Requests are counted in the period their received_date falls in (quarters by default,
    see :func:`period_of`); outcomes are as known at the time of the export, so ``pending``
    is the requests still undecided then. ``decided_within_2_months`` counts decided
    requests (approved or declined) with :func:`decided_within_two_months`; the request-level
    form has no appeal date, so appeals are not part of that measure.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`coerce_request_level` that passed ``REQUEST_LEVEL_RULES``.
    period : str
        ``"quarter"`` (default), ``"month"`` or ``"financial_year"``.
    by : tuple of str
        Further columns to keep apart, first in the key and the sort order: ``("_file",)``
        aggregates a whole batch of files in one pass, each file on its own.

    Returns
    -------
    pandas.DataFrame
        Columns ``by`` then :data:`SUMMARY_COLUMNS`, counts int64, periods datetime64; one
        file's rows sorted by period, "All staff groups" first, then staff group.
    """
    start, end = period_of(frame["received_date"], period)
    outcome = frame["outcome"].to_numpy(dtype=object)
    appeal = frame["appeal"].to_numpy(dtype=object)
    reason = frame["decline_reason"].to_numpy(dtype=object)
    decided = np.isin(outcome, list(_DECIDED))
    within = decided_within_two_months(frame["received_date"], frame["decision_date"])
    declined = outcome == "declined"
    counts: dict[str, Any] = {"requests_received": np.ones(len(frame), dtype="int64")}
    for o in OUTCOME_COLUMNS:
        counts[o] = outcome == o
    counts["escalated"] = frame["escalated"].to_numpy(dtype=object) == "yes"
    counts["appeals"] = np.isin(appeal, ["upheld", "not_upheld", "pending"])
    counts["appeals_upheld"] = appeal == "upheld"
    counts["decided_within_2_months"] = decided & within.to_numpy(dtype=bool)
    for r, c in zip(DECLINE_REASONS, DECLINE_REASON_COLUMNS, strict=True):
        counts[c] = declined & (reason == r)
    table = pd.DataFrame(
        {
            **{k: frame[k].to_numpy() for k in by},
            "org_code": frame["org_code"].to_numpy(),
            "period_start": start.to_numpy(),
            "period_end": end.to_numpy(),
            "staff_group": frame["staff_group"].to_numpy(),
            **{c: np.asarray(v, dtype="int64") for c, v in counts.items()},
        }
    )
    keys = [*by, "org_code", "period_start", "period_end"]
    by_group = table.groupby([*keys, "staff_group"], as_index=False)[list(COUNT_COLUMNS)].sum()
    total = table.groupby(keys, as_index=False)[list(COUNT_COLUMNS)].sum()
    total["staff_group"] = ALL_STAFF_GROUPS
    out = pd.concat([total, by_group], ignore_index=True)
    out["_not_all"] = out["staff_group"] != ALL_STAFF_GROUPS
    out = out.sort_values([*keys, "_not_all", "staff_group"]).reset_index(drop=True)
    out[list(COUNT_COLUMNS)] = out[list(COUNT_COLUMNS)].astype("int64")
    return out[[*by, *SUMMARY_COLUMNS]]


def _key_codes(keys: pd.DataFrame) -> np.ndarray:
    """One integer per row of ``keys``, equal where the rows are equal in every column; -1
    where a column is missing (a groupby on those columns leaves such rows out)."""
    codes = np.zeros(len(keys), dtype="int64")
    missing = np.zeros(len(keys), dtype=bool)
    for c in keys.columns:
        column, distinct = pd.factorize(keys[c], use_na_sentinel=True)
        missing |= column < 0
        codes = codes * (len(distinct) + 1) + column + 1
        codes, _ = pd.factorize(codes)  # kept below the number of rows: no overflow
    codes[missing] = -1
    return codes


#: The counts of the breakdown by group: requests and their outcomes (the five outcome columns
#: add up to requests_received, as in the summary form).
BREAKDOWN_COUNT_COLUMNS: tuple[str, ...] = ("requests_received", *OUTCOME_COLUMNS)
#: One row per trust x period x dimension x group (docs/flex-data-standard.md, "Breakdown form").
BREAKDOWN_COLUMNS: tuple[str, ...] = (
    "org_code",
    "period_start",
    "period_end",
    "dimension",
    "group_value",
    *BREAKDOWN_COUNT_COLUMNS,
)


def aggregate_request_breakdown(
    frame: pd.DataFrame, period: str = "quarter", by: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Request-level rows (coerced and valid) -> counts by equity dimension and group.

    Implements "keep the dimensions when request-level logs are aggregated"
    (docs/methodology.md, "Equity"): one row per org_code x period x dimension x group, for
    each dimension the file carries a column for (sex, ethnic group and, where the file
    names them, the detailed 2021 Census groups, disability, age band, pay band, staff group,
    flex type; groups read by :func:`transforms.equity.group_values`). A request belongs to
    the period its received_date falls in, as in :func:`aggregate_requests`, so each
    dimension's groups add up to that period's "All staff groups" row.

    Returns
    -------
    pandas.DataFrame
        Columns ``by`` then :data:`BREAKDOWN_COLUMNS`, counts int64, sorted by period,
        dimension (in :data:`transforms.equity.DIMENSIONS` order) and group.
    """
    from transforms import equity

    columns = [*by, *BREAKDOWN_COLUMNS]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    start, end = period_of(frame["received_date"], period)
    outcome = frame["outcome"].to_numpy(dtype=object)
    base = pd.DataFrame(
        {
            **{k: frame[k].to_numpy() for k in by},
            "org_code": frame["org_code"].to_numpy(),
            "period_start": start.to_numpy(),
            "period_end": end.to_numpy(),
            "requests_received": np.ones(len(frame), dtype="int64"),
            **{o: (outcome == o).astype("int64") for o in OUTCOME_COLUMNS},
        }
    )
    keys = [*by, "org_code", "period_start", "period_end"]
    # Each request's key (file, trust, period) is coded once; a dimension's groups are then
    # counted by one integer per (key, group): the rows and counts of a groupby on the key
    # columns and the group, without grouping by the key columns again for each dimension.
    key_codes = _key_codes(base[keys])
    counts = base[list(BREAKDOWN_COUNT_COLUMNS)].to_numpy(dtype="int64")
    parts = []
    for dimension, values in equity.group_values(frame).items():
        group_value = values.to_numpy()
        value_codes, distinct = pd.factorize(group_value, use_na_sentinel=True)
        kept = np.flatnonzero((key_codes >= 0) & (value_codes >= 0))  # groupby drops NA keys
        if not len(kept):  # no group: the groupby's own empty frame (and its dtypes)
            part = base.assign(dimension=dimension, group_value=group_value)
            parts.append(
                part.groupby([*keys, "dimension", "group_value"], as_index=False)[
                    list(BREAKDOWN_COUNT_COLUMNS)
                ].sum()
            )
            continue
        pair = key_codes[kept] * max(len(distinct), 1) + value_codes[kept]
        _, first, inverse = np.unique(pair, return_index=True, return_inverse=True)
        rows = kept[first]
        part = base[keys].iloc[rows].reset_index(drop=True)
        part = part.assign(dimension=dimension, group_value=group_value[rows])
        for j, c in enumerate(BREAKDOWN_COUNT_COLUMNS):
            summed = np.zeros(len(rows), dtype="int64")
            np.add.at(summed, inverse, counts[kept, j])
            part[c] = summed
        parts.append(part)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = pd.concat(parts, ignore_index=True)
    # Detailed ethnic groups only for the files (trusts) that give them.
    detailed = out["dimension"] == "ethnic_group_detailed"
    if detailed.any():
        named = detailed & out["group_value"].isin(list(equity.ETHNIC_DETAILED))
        gives = out[named].groupby([*by, "org_code"]).size().rename("_gives").reset_index()
        out = out.merge(gives, on=[*by, "org_code"], how="left")
        out = out[~detailed.to_numpy() | out["_gives"].notna().to_numpy()].drop(columns="_gives")
    out["_dim"] = out["dimension"].map({d: i for i, d in enumerate(equity.DIMENSIONS)})
    out = out.sort_values([*keys, "_dim", "group_value"]).reset_index(drop=True)
    out[list(BREAKDOWN_COUNT_COLUMNS)] = out[list(BREAKDOWN_COUNT_COLUMNS)].astype("int64")
    return out[columns]


# --- the breakdown by group in SQL ----------------------------------------------------------

#: The columns of the request-level form the breakdown by group reads (the others are not
#: typed for it: :func:`coerce_request_level` with ``columns``).
BREAKDOWN_INPUT_COLUMNS: tuple[str, ...] = (
    "org_code",
    "received_date",
    "outcome",
    "staff_group",
    *REQUEST_LEVEL_OPTIONAL,
)


@dataclass
class BreakdownCodes:
    """Coerced request-level rows as whole numbers, for :func:`request_breakdown_sql`.

    ``table`` has a row per request: ``file`` and ``org`` (codes, -1 where missing),
    ``received`` (datetime64, NaT where missing), ``outcome`` (its place in
    :data:`OUTCOME_COLUMNS`, -1 for none) and ``g0``, ``g1``, ... the request's group in each
    of ``dimensions`` (-1 where none). A code is the place of the value in ``labels``
    (file, org_code and each dimension's groups), which are sorted: codes sort as the values.
    """

    table: pd.DataFrame
    dimensions: tuple[str, ...]
    labels: dict[str, np.ndarray]
    detailed_named: tuple[int, ...] = ()


def _sorted_codes(values: Any) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=True)
    return codes.astype("int64"), np.asarray(uniques, dtype=object)


def breakdown_codes(
    frame: pd.DataFrame, files: Any, absent: dict[str, Any] | None = None
) -> BreakdownCodes:
    """Coerced request-level rows (:func:`coerce_request_level`, at least
    :data:`BREAKDOWN_INPUT_COLUMNS`) of one or more files (``files``: each row's file) ->
    :class:`BreakdownCodes`. The groups are those of :func:`transforms.equity.group_values`,
    read from each distinct value of a column once (in Python); only the counting is left
    to SQL. ``absent`` maps a column to the rows (a boolean array) whose file has no such
    column: they get no group of its dimensions, as :func:`aggregate_request_breakdown`
    gives a file without it none.
    """
    from transforms import equity

    file_codes, file_labels = _sorted_codes(files)
    org_codes, org_labels = _sorted_codes(frame["org_code"])
    table = pd.DataFrame(
        {
            "file": file_codes,
            "org": org_codes,
            "received": pd.to_datetime(frame["received_date"]).to_numpy(),
            "outcome": _places(frame["outcome"], OUTCOME_COLUMNS),
        }
    )
    labels = {"file": file_labels, "org_code": org_labels}
    groups: dict[str, np.ndarray] = {}
    for column in dict.fromkeys(equity.DIMENSION_COLUMNS.values()):
        if column not in frame:
            continue
        # group_values of the column's distinct values (and a blank, the last: code -1)
        # gives each row's groups, a value being read the same wherever it stands.
        rows, distinct = pd.factorize(frame[column].astype(object), use_na_sentinel=True)
        each = np.empty(len(distinct) + 1, dtype=object)
        each[:-1] = distinct
        each[-1] = None
        for dimension, values in equity.group_values(pd.DataFrame({column: each})).items():
            codes, labels[dimension] = _sorted_codes(values)
            groups[dimension] = codes[rows]
            if absent is not None and column in absent:
                groups[dimension] = np.where(absent[column], -1, groups[dimension])
    dimensions = tuple(d for d in equity.DIMENSIONS if d in groups)
    for i, dimension in enumerate(dimensions):
        table[f"g{i}"] = groups[dimension]
    named: tuple[int, ...] = ()
    if "ethnic_group_detailed" in labels:
        detailed = labels["ethnic_group_detailed"]
        named = tuple(
            int(i) for i in np.flatnonzero(np.isin(detailed, list(equity.ETHNIC_DETAILED)))
        )
    return BreakdownCodes(table, dimensions, labels, named)


def request_breakdown_sql(
    codes: BreakdownCodes, today: date, period: str = "quarter", relation: str = "requests"
) -> str:
    """The query counting :class:`BreakdownCodes` (registered as ``relation``) by file,
    trust, period, dimension and group: :func:`aggregate_request_breakdown` in SQL, with
    the requests of a period not over on ``today`` left out (docs/methodology.md, "Equity").

    Rows: ``file``, ``org``, ``period_start``, ``period_end``, ``dim`` (the place of the
    dimension in ``codes.dimensions``), ``grp`` (the group's code) and the counts of
    :data:`BREAKDOWN_COUNT_COLUMNS`, sorted as :func:`aggregate_request_breakdown` sorts them.
    One scan: a grouping set per dimension. Detailed ethnic groups only for the files and
    trusts that name one.
    """
    start, end = _period_sql(period)
    groups = [f"g{i}" for i in range(len(codes.dimensions))]
    if not groups:
        return (
            "select null::bigint as file, null::bigint as org, null::timestamp as period_start, "
            "null::timestamp as period_end, null::bigint as dim, null::bigint as grp, "
            + ", ".join(f"null::bigint as {c}" for c in BREAKDOWN_COUNT_COLUMNS)
            + " limit 0"
        )
    which = " ".join(f"when grouping({g}) = 0 then {i}" for i, g in enumerate(groups))
    value = " ".join(f"when grouping({g}) = 0 then {g}" for g in groups)
    counts = ", ".join(
        [
            "count(*) as requests_received",
            *(
                f"count(*) filter (where outcome = {i}) as {o}"
                for i, o in enumerate(OUTCOME_COLUMNS)
            ),
        ]
    )
    sets = ", ".join(f"(file, org, period_start, period_end, {g})" for g in groups)
    detailed = ""
    if "ethnic_group_detailed" in codes.dimensions:
        d = codes.dimensions.index("ethnic_group_detailed")
        named = ", ".join(str(c) for c in codes.detailed_named) or "null"
        detailed = (
            f" qualify dim <> {d} or "
            f"bool_or(dim = {d} and grp in ({named})) over (partition by file, org)"
        )
    return (
        f"with dated as (select *, {start} as period_start from {relation} "
        "where received is not null and org >= 0), "
        f"kept as (select *, {end} as period_end from dated "
        f"where {end} <= timestamp '{today.isoformat()}'), "
        f"counted as (select file, org, period_start, period_end, case {which} end as dim, "
        f"case {value} end as grp, {counts} from kept group by grouping sets ({sets})) "
        f"select * from counted where grp >= 0{detailed} "
        "order by file, org, period_start, period_end, dim, grp"
    )


def breakdown_from_counts(counts: pd.DataFrame, codes: BreakdownCodes) -> pd.DataFrame:
    """The rows of :func:`request_breakdown_sql` -> columns ``file`` (its label) then
    :data:`BREAKDOWN_COLUMNS`, typed as :func:`aggregate_request_breakdown` types them."""
    dim = counts["dim"].to_numpy(dtype="int64")
    grp = counts["grp"].to_numpy(dtype="int64")
    names = np.array(codes.dimensions, dtype=object)
    unit = codes.table["received"].dtype  # as period_of gives the periods of those dates
    group_value = np.empty(len(counts), dtype=object)
    for i, dimension in enumerate(codes.dimensions):
        here = dim == i
        group_value[here] = codes.labels[dimension][grp[here]]
    out = pd.DataFrame(
        {
            "file": codes.labels["file"][counts["file"].to_numpy(dtype="int64")],
            "org_code": codes.labels["org_code"][counts["org"].to_numpy(dtype="int64")],
            "period_start": counts["period_start"].to_numpy(dtype=unit),
            "period_end": counts["period_end"].to_numpy(dtype=unit),
            "dimension": names[dim],
            "group_value": group_value,
            **{c: counts[c].to_numpy(dtype="int64") for c in BREAKDOWN_COUNT_COLUMNS},
        }
    )
    return out


# --- the aggregation to the summary form in SQL ---------------------------------------------


@dataclass
class RequestCodes:
    """Coerced request-level rows as whole numbers, for :func:`request_summary_sql`.

    ``table`` has a row per request: ``file``, ``org`` and ``grp`` (file, org_code and
    staff_group codes, -1 where missing; a code is the place of the value in the sorted
    ``labels``, so codes sort as the values), ``received`` and ``decided`` (datetime64, NaT
    where missing), ``outcome`` (its place in :data:`OUTCOME_COLUMNS`), ``appeal`` (its place
    in :data:`APPEALS`), ``reason`` (its place in :data:`DECLINE_REASONS`; -1 for none of
    them) and ``escalated`` (yes).
    """

    table: pd.DataFrame
    labels: dict[str, np.ndarray]


def _places(values: Any, names: tuple[str, ...]) -> np.ndarray:
    """Each value's place in ``names``, -1 where it is none of them (each distinct value
    looked up once)."""
    rows, distinct = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    table = np.full(len(distinct) + 1, -1, dtype="int64")  # the last: a blank (code -1)
    for i, value in enumerate(distinct):
        for place, name in enumerate(names):
            if value == name:
                table[i] = place
                break
    return table[rows]


def request_codes(frame: pd.DataFrame, files: Any) -> RequestCodes:
    """Coerced request-level rows (:func:`coerce_request_level`) of one or more files
    (``files``: each row's file) -> :class:`RequestCodes`."""
    file_codes, file_labels = _sorted_codes(files)
    org_codes, org_labels = _sorted_codes(frame["org_code"])
    group_codes, group_labels = _sorted_codes(frame["staff_group"])
    table = pd.DataFrame(
        {
            "file": file_codes,
            "org": org_codes,
            "grp": group_codes,
            "received": pd.to_datetime(frame["received_date"]).to_numpy(),
            "decided": pd.to_datetime(frame["decision_date"]).to_numpy(),
            "outcome": _places(frame["outcome"], OUTCOME_COLUMNS),
            "appeal": _places(frame["appeal"], APPEALS),
            "reason": _places(frame["decline_reason"], DECLINE_REASONS),
            "escalated": frame["escalated"].to_numpy(dtype=object) == "yes",
        }
    )
    labels = {"file": file_labels, "org_code": org_labels, "staff_group": group_labels}
    return RequestCodes(table, labels)


def _period_sql(period: str) -> tuple[str, str]:
    """(first day, last day) of the period of ``received``, in SQL (:func:`period_of`)."""
    start = {
        "quarter": "date_trunc('quarter', received)",
        "month": "date_trunc('month', received)",
        "financial_year": (
            "make_timestamp(year(received) - (month(received) < 4)::int, 4, 1, 0, 0, 0)"
        ),
    }.get(period)
    if start is None:
        raise ValueError(f"period must be quarter, month or financial_year, not {period!r}")
    months = {"quarter": 3, "month": 1, "financial_year": 12}[period]
    return start, f"{start} + interval {months} month - interval 1 day"


def request_summary_sql(
    codes: RequestCodes, today: date, period: str = "quarter", relation: str = "requests"
) -> str:
    """The query aggregating :class:`RequestCodes` (registered as ``relation``) to the
    summary form: :func:`aggregate_requests` with ``by=("file",)`` in SQL, the requests of a
    period not over on ``today`` left out.

    Rows: ``file``, ``org``, ``period_start``, ``period_end``, ``grp`` (null for the "All
    staff groups" row) and :data:`COUNT_COLUMNS`, sorted as :func:`aggregate_requests` sorts
    them. One scan: two grouping sets (each staff group, and all of them).
    """
    start, end = _period_sql(period)
    decided = ", ".join(str(OUTCOME_COLUMNS.index(o)) for o in _DECIDED)
    declined = OUTCOME_COLUMNS.index("declined")
    upheld = APPEALS.index("upheld")
    lodged = ", ".join(str(APPEALS.index(a)) for a in ("upheld", "not_upheld", "pending"))
    counts = [
        "count(*) as requests_received",
        *(f"count(*) filter (where outcome = {i}) as {o}" for i, o in enumerate(OUTCOME_COLUMNS)),
        "count(*) filter (where escalated) as escalated",
        f"count(*) filter (where appeal in ({lodged})) as appeals",
        f"count(*) filter (where appeal = {upheld}) as appeals_upheld",
        f"count(*) filter (where outcome in ({decided}) and decided <= received "
        "+ interval 2 month) as decided_within_2_months",
        *(
            f"count(*) filter (where outcome = {declined} and reason = {i}) as {c}"
            for i, c in enumerate(DECLINE_REASON_COLUMNS)
        ),
    ]
    labels = codes.labels["staff_group"]
    whole = np.flatnonzero(labels == ALL_STAFF_GROUPS)
    whole_code = int(whole[0]) if len(whole) else -1
    return (
        f"with dated as (select *, {start} as period_start, {end} as period_end from "
        f"{relation} where received is not null and org >= 0) "
        "select file, org, period_start, period_end, "
        "case when grouping(grp) = 0 then grp end as grp, "
        + ", ".join(counts)
        + f" from dated where period_end <= timestamp '{today.isoformat()}' "
        "group by grouping sets ((file, org, period_start, period_end), "
        "(file, org, period_start, period_end, grp)) "
        "having grouping(grp) = 1 or grp >= 0 "
        "order by file, org, period_start, period_end, "
        f"coalesce(grp <> {whole_code}, false), grp nulls first"
    )


def request_ongoing_sql(today: date, period: str = "quarter", relation: str = "requests") -> str:
    """The query counting, per ``file``, the requests of a period not over on ``today``
    (left out of :func:`request_summary_sql`)."""
    _, end = _period_sql(period)
    return (
        f"select file, count(*) as left_out from {relation} "
        f"where {end} > timestamp '{today.isoformat()}' group by file order by file"
    )


def summary_from_counts(counts: pd.DataFrame, codes: RequestCodes) -> pd.DataFrame:
    """The rows of :func:`request_summary_sql` -> columns ``file`` (its label) then
    :data:`SUMMARY_COLUMNS`, as :func:`aggregate_requests` gives them."""
    unit = codes.table["received"].dtype  # as period_of gives the periods of those dates
    grp = counts["grp"].to_numpy(dtype="float64", na_value=np.nan)
    staff_group = np.full(len(counts), ALL_STAFF_GROUPS, dtype=object)
    named = ~np.isnan(grp)
    staff_group[named] = codes.labels["staff_group"][grp[named].astype("int64")]
    return pd.DataFrame(
        {
            "file": codes.labels["file"][counts["file"].to_numpy(dtype="int64")],
            "org_code": codes.labels["org_code"][counts["org"].to_numpy(dtype="int64")],
            "period_start": counts["period_start"].to_numpy(dtype=unit),
            "period_end": counts["period_end"].to_numpy(dtype=unit),
            "staff_group": staff_group,
            **{c: counts[c].to_numpy(dtype="int64") for c in COUNT_COLUMNS},
        }
    )
