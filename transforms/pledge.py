"""Pledge sign-ups: read the Get Ahead on Flex feed, redact, match to ODS trusts, keep history.

The campaign's sign-up service publishes sign-ups as paginated JSON
(``{"signups": [...], "next": url-or-null}``) and as a CSV export (docs/pledge-matching.md, P2).
This module is pure: it takes bytes, dicts and DataFrames and returns the same; fetching,
landing and loading are done by the pledge DAG.

The rules implemented here are documented in ``docs/pledge-matching.md``:

* P1 redaction: signatory names, e-mail addresses and phone numbers are dropped before
  anything is landed or stored;
* P2 the feed: follow ``next`` until null, stop with an error on a loop, keep one entry per
  sign-up (the latest ``updated_at``);
* P3 matching: override, else a valid ODS code, else one normalised-name match against
  current and former ODS names; anything else goes to the review list, never guessed;
* P4 history: type-2 history of every sign-up (edits and withdrawals close the earlier state).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urljoin

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------
# P1 redaction
# ---------------------------------------------------------------------------

#: Keys that always carry personal data (compared after lower-casing and turning any
#: punctuation or space into ``_``). Other keys that look personal are caught by
#: :func:`is_personal_field`.
PERSONAL_FIELDS: frozenset[str] = frozenset(
    {
        "signatory",
        "signatory_name",
        "signatory_email",
        "signatory_phone",
        "signed_by",
        "submitted_by",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "given_name",
        "family_name",
        "surname",
        "forename",
        "email",
        "e_mail",
        "email_address",
        "phone",
        "phone_number",
        "telephone",
        "mobile",
        "contact",
        "contact_name",
        "contact_email",
        "contact_phone",
        "ip_address",
    }
)

# A key ending in "name" is a person's name unless it names an organisation or a thing.
_NON_PERSONAL_NAME_PREFIXES = ("organisation", "organization", "org", "trust", "employer", "file")
_PERSONAL_KEY_PARTS = ("email", "e_mail", "phone", "mobile", "telephone", "surname", "forename")
# Keys that name the signatory but are not personal (the role is kept, docs/pledge-matching.md, P1).
_KEPT_KEYS = frozenset({"signatory_role"})

_EMAIL = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_EMAIL_RE = re.compile(_EMAIL)
# "Jane Smith <jane.smith@nhs.net>": the display name goes with the address.
_NAMED_EMAIL_RE = re.compile(
    r"(?:\"[^\"\n]{0,80}\"\s*|(?:[A-Z][\w'.-]*\s+){1,4})?<\s*(?:mailto:)?" + _EMAIL + r"\s*>"
)
_MAILTO_RE = re.compile(r"mailto:" + _EMAIL, re.IGNORECASE)
_WHOLE_EMAIL_RE = re.compile(r"\s*(?:mailto:)?" + _EMAIL + r"\s*", re.IGNORECASE)
REDACTED_EMAIL = "[e-mail removed]"


def _key(key: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(key).strip().lower()).strip("_")


def is_personal_field(key: object) -> bool:
    """Whether a field name looks like a person's name, e-mail address or phone number (P1).

    Parameters
    ----------
    key : object
        A JSON key or CSV header, in any case and punctuation.

    Returns
    -------
    bool
        True for ``signatory_name``, ``Email``, ``contact phone``, ``first_name`` …; False for
        ``organisation_name``, ``signatory_role`` and the other fields of a sign-up.
    """
    k = _key(key)
    if k in _KEPT_KEYS:
        return False
    if k in PERSONAL_FIELDS:
        return True
    if any(part in k for part in _PERSONAL_KEY_PARTS):
        return True
    if k.startswith("signatory") or k.startswith("contact"):
        return True
    if k.endswith("_by"):
        return True
    if k.endswith("name"):
        return not k.startswith(_NON_PERSONAL_NAME_PREFIXES)
    return False


def redact_text(text: str) -> str | None:
    """Remove e-mail addresses from a free-text value (P1).

    A value that is nothing but an e-mail address is dropped (returns None); an address
    inside longer text, with any display name before it (``Jane Smith <jane@x.nhs.uk>``),
    is replaced by ``[e-mail removed]``.
    """
    if _WHOLE_EMAIL_RE.fullmatch(text):
        return None
    if "@" not in text:
        return text
    text = _NAMED_EMAIL_RE.sub(REDACTED_EMAIL, text)
    text = _MAILTO_RE.sub(REDACTED_EMAIL, text)
    return _EMAIL_RE.sub(REDACTED_EMAIL, text)


def redact_signup(record: Mapping[str, Any]) -> dict[str, Any]:
    """Drop personal data from one sign-up, at any depth (P1).

    Parameters
    ----------
    record : mapping
        A sign-up as the feed gives it (nested objects and lists allowed).

    Returns
    -------
    dict
        A copy without any field that :func:`is_personal_field` flags, and without any
        e-mail address in string values (a value that is only an e-mail address is dropped).
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        if is_personal_field(key):
            continue
        if isinstance(value, str):
            cleaned = redact_text(value)
            if cleaned is None:
                continue
            out[key] = cleaned
        elif isinstance(value, Mapping):
            out[key] = redact_signup(value)
        elif isinstance(value, list):
            items = []
            for item in value:
                if isinstance(item, str):
                    item = redact_text(item)
                    if item is None:
                        continue
                elif isinstance(item, Mapping):
                    item = redact_signup(item)
                items.append(item)
            out[key] = items
        else:
            out[key] = value
    return out


def redact_feed_page(data: bytes) -> bytes:
    """The landing copy of one JSON page of the sign-up feed, with personal data removed (P1).

    Parameters
    ----------
    data : bytes
        The page as fetched (UTF-8 JSON).

    Returns
    -------
    bytes
        The same document as UTF-8 JSON, every object redacted by :func:`redact_signup`.

    Raises
    ------
    ValueError
        When the bytes are not JSON: nothing unredacted is ever returned for landing.
    """
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the sign-up feed page is not JSON: {exc}") from None
    if isinstance(doc, Mapping):
        doc = redact_signup(doc)
    elif isinstance(doc, list):
        doc = [redact_signup(d) if isinstance(d, Mapping) else d for d in doc]
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


def _decode_csv(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def redact_csv_export(data: bytes) -> bytes:
    """The landing copy of the sign-up CSV export, with personal data removed (P1).

    Personal columns are dropped and e-mail addresses are removed from every other cell.
    The result is UTF-8 CSV with the remaining columns in their original order.
    """
    rows = list(csv.reader(io.StringIO(_decode_csv(data), newline="")))
    if not rows:
        return b""
    keep = [i for i, h in enumerate(rows[0]) if not is_personal_field(h)]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([rows[0][i] for i in keep])
    for row in rows[1:]:
        writer.writerow([(redact_text(row[i]) or "") if i < len(row) else "" for i in keep])
    return buf.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------
# P2 the feed
# ---------------------------------------------------------------------------


class FeedError(ValueError):
    """The sign-up feed cannot be read as a whole (bad page, loop, too many pages)."""


def _timestamp(value: Any) -> pd.Timestamp | None:
    """Parse a feed time to a tz-aware UTC timestamp; naive times are taken as UTC."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    try:
        ts = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError):
        return None
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _signup_id(record: Mapping[str, Any]) -> str | None:
    for key in ("id", "signup_id"):
        value = record.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def latest_per_signup(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep one entry per sign-up id: the one with the latest ``updated_at`` (rule P2).

    On a tie (or when neither time parses) the entry seen later wins. Entries with no id
    are all kept (the GX suite reports them). Order of first appearance is kept.
    """
    chosen: dict[str, dict[str, Any]] = {}
    order: list[str | int] = []
    without_id: list[dict[str, Any]] = []
    for record in records:
        record = dict(record)
        sid = _signup_id(record)
        if sid is None:
            order.append(len(without_id))
            without_id.append(record)
            continue
        if sid not in chosen:
            chosen[sid] = record
            order.append(sid)
            continue
        old, new = _timestamp(chosen[sid].get("updated_at")), _timestamp(record.get("updated_at"))
        if old is None or new is None or new >= old:
            chosen[sid] = record
    return [chosen[k] if isinstance(k, str) else without_id[k] for k in order]


def iter_feed(
    first_url: str, get_json: Callable[[str], Any], max_pages: int = 1000
) -> list[dict[str, Any]]:
    """Read every page of the sign-up feed and return its sign-ups, redacted (rule P2).

    Parameters
    ----------
    first_url : str
        URL of the first page.
    get_json : callable
        ``get_json(url) -> dict`` fetches and decodes one page (the HTTP layer retries).
    max_pages : int
        Stop with an error after this many pages.

    Returns
    -------
    list of dict
        One redacted record per sign-up id (the entry with the latest ``updated_at`` when an
        entry is repeated across pages), in feed order.

    Raises
    ------
    FeedError
        A page that is not ``{"signups": [...], "next": ...}``, a ``next`` URL seen before
        (a loop), or more than ``max_pages`` pages.
    """
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    url: str | None = first_url
    pages = 0
    while url:
        if url in seen:
            raise FeedError(f"the sign-up feed loops: page {url} was already read")
        if pages >= max_pages:
            raise FeedError(f"the sign-up feed has more than {max_pages} pages")
        seen.add(url)
        page = get_json(url)
        pages += 1
        if not isinstance(page, Mapping) or not isinstance(page.get("signups"), list):
            raise FeedError(f"page {url} of the sign-up feed has no 'signups' list")
        for item in page["signups"]:
            if not isinstance(item, Mapping):
                raise FeedError(f"page {url} of the sign-up feed has a non-object sign-up")
            records.append(redact_signup(item))
        nxt = page.get("next")
        if nxt is not None and not isinstance(nxt, str):
            raise FeedError(f"page {url} of the sign-up feed has a 'next' that is not a URL")
        url = urljoin(url, nxt) if nxt and nxt.strip() else None
    return latest_per_signup(records)


# ---------------------------------------------------------------------------
# The CSV export
# ---------------------------------------------------------------------------

#: CSV export headers (compared case-, space- and punctuation-insensitively) and the feed
#: field each one fills. The three commitments are three yes/no columns.
CSV_HEADER_SYNONYMS: dict[str, str] = {
    "id": "id",
    "signup_id": "id",
    "sign_up_id": "id",
    "organisation_name": "organisation_name",
    "organization_name": "organisation_name",
    "organisation": "organisation_name",
    "organization": "organisation_name",
    "employer": "organisation_name",
    "ods_code": "ods_code",
    "ods": "ods_code",
    "org_code": "ods_code",
    "trust_code": "ods_code",
    "signed_at": "signed_at",
    "signed_on": "signed_at",
    "date_signed": "signed_at",
    "signatory_role": "signatory_role",
    "role": "signatory_role",
    "commitment_lead": "commitment_lead",
    "commits_lead": "commitment_lead",
    "lead_the_conversation": "commitment_lead",
    "commitment_target": "commitment_target",
    "commits_target": "commitment_target",
    "set_a_target": "commitment_target",
    "commitment_train": "commitment_train",
    "commits_train": "commitment_train",
    "train_for_flex": "commitment_train",
    "action_plan_url": "action_plan_url",
    "action_plan": "action_plan_url",
    "data_url": "data_url",
    "board_review_date": "board_review_date",
    "board_review": "board_review_date",
    "managers_trained_pct": "managers_trained_pct",
    "managers_trained": "managers_trained_pct",
    "managers_trained_percent": "managers_trained_pct",
    "status": "status",
    "updated_at": "updated_at",
    "last_updated": "updated_at",
}

_TRUE = frozenset({"true", "yes", "y", "1", "t", "x", "committed"})
_FALSE = frozenset({"false", "no", "n", "0", "f", ""})


def _boolean(value: Any) -> bool | None:
    """Read a yes/no value; None when it is neither."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not pd.isna(value):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_csv_export(data: bytes) -> list[dict[str, Any]]:
    """Read the sign-up CSV export into records shaped like the JSON feed's (rule P2).

    Parameters
    ----------
    data : bytes
        The export (UTF-8 with or without BOM, or cp1252). Headers are matched by
        :data:`CSV_HEADER_SYNONYMS`; the commitments are three yes/no columns
        ``commitment_lead``, ``commitment_target``, ``commitment_train``. Personal columns
        are dropped and e-mail addresses removed from cells (P1).

    Returns
    -------
    list of dict
        ``{"id", "organisation_name", "ods_code", "signed_at", "signatory_role",
        "commitments": {"lead", "target", "train"}, "action_plan_url", "data_url",
        "board_review_date", "managers_trained_pct", "status", "updated_at"}``; blank cells are
        None; one record per id (the latest ``updated_at``).
    """
    reader = csv.reader(io.StringIO(_decode_csv(data), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    fields = [
        None
        if is_personal_field(h) and _key(h) not in CSV_HEADER_SYNONYMS
        else CSV_HEADER_SYNONYMS.get(_key(h))
        for h in header
    ]
    records = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        raw: dict[str, Any] = {}
        for field, cell in zip(fields, row, strict=False):
            if field is None:
                continue
            cell = redact_text(cell.strip()) if cell.strip() else None
            raw[field] = cell or None
        record = {k: v for k, v in raw.items() if not k.startswith("commitment_")}
        record["commitments"] = {
            part: _boolean(raw.get(f"commitment_{part}")) for part in ("lead", "target", "train")
        }
        records.append(record)
    return latest_per_signup(records)


# ---------------------------------------------------------------------------
# The staging frame
# ---------------------------------------------------------------------------

#: Columns of :func:`signups_frame`, in order. None is personal data.
SIGNUP_COLUMNS: tuple[str, ...] = (
    "signup_id",
    "organisation_name",
    "ods_code_given",
    "signed_at",
    "signatory_role",
    "commits_lead",
    "commits_target",
    "commits_train",
    "action_plan_url",
    "data_url",
    "board_review_date",
    "managers_trained_pct",
    "status",
    "updated_at",
)

_COMMITMENT_PARTS = ("lead", "target", "train")  # each a word in the commitment's name


def commitments_of(value: Any) -> dict[str, bool]:
    """The three pledge commitments of a sign-up as ``{"lead", "target", "train"}`` booleans.

    Accepts an object (``{"lead_the_conversation": true, ...}``, ``{"lead": true, ...}``,
    ``{"commitment_lead": "yes", ...}``) or a list of the commitments made
    (``["lead_the_conversation", "train_for_flex"]``). A commitment not stated is False.
    """
    out = {"lead": False, "target": False, "train": False}
    if isinstance(value, Mapping):
        for key, flag in value.items():
            k = _key(key)
            for part in _COMMITMENT_PARTS:
                if part in k:
                    out[part] = bool(_boolean(flag))
    elif isinstance(value, (list, tuple)):
        for item in value:
            k = _key(item)
            for part in _COMMITMENT_PARTS:
                if part in k:
                    out[part] = True
    return out


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text or None


def _date(value: Any) -> date | None:
    ts = _timestamp(value)
    return ts.date() if ts is not None else None


def _percent(value: Any) -> float | None:
    """Managers trained, as a percentage 0–100; None when missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return None if pd.isna(value) else float(value)
    text = str(value).strip().rstrip("%").strip()
    try:
        return float(text)
    except ValueError:
        return None


def signups_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per sign-up, typed, with no personal data (the staging shape,
    docs/pledge-matching.md).

    Parameters
    ----------
    records : iterable of dict
        Sign-ups from :func:`iter_feed` or :func:`parse_csv_export` (raw feed records are
        redacted here too).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SIGNUP_COLUMNS`: ``signed_at`` and ``updated_at`` tz-aware UTC,
        ``board_review_date`` a ``datetime.date`` (or None), ``commits_*`` bool,
        ``managers_trained_pct`` float (NaN when not given), ``status`` lower case.
    """
    rows = []
    for raw in records:
        record = redact_signup(raw)
        commitments = commitments_of(record.get("commitments"))
        for part in ("lead", "target", "train"):
            for key in (f"commitment_{part}", f"commits_{part}"):
                if key in record:
                    commitments[part] = bool(_boolean(record[key]))
        status = _text(record.get("status"))
        rows.append(
            {
                "signup_id": _signup_id(record),
                "organisation_name": _text(record.get("organisation_name")),
                "ods_code_given": _text(record.get("ods_code", record.get("ods_code_given"))),
                "signed_at": _timestamp(record.get("signed_at")),
                "signatory_role": _text(record.get("signatory_role")),
                "commits_lead": commitments["lead"],
                "commits_target": commitments["target"],
                "commits_train": commitments["train"],
                "action_plan_url": _text(record.get("action_plan_url")),
                "data_url": _text(record.get("data_url")),
                "board_review_date": _date(record.get("board_review_date")),
                "managers_trained_pct": _percent(record.get("managers_trained_pct")),
                "status": status.lower() if status else None,
                "updated_at": _timestamp(record.get("updated_at")),
            }
        )
    df = pd.DataFrame(rows, columns=list(SIGNUP_COLUMNS))
    for col in ("signed_at", "updated_at"):
        df[col] = pd.to_datetime(df[col], utc=True)
    for col in ("commits_lead", "commits_target", "commits_train"):
        df[col] = df[col].astype(bool)
    df["managers_trained_pct"] = pd.to_numeric(df["managers_trained_pct"]).astype(float)
    df["board_review_date"] = df["board_review_date"].astype(object)
    text_columns = ("signup_id", "organisation_name", "ods_code_given", "signatory_role")
    for col in (*text_columns, "action_plan_url", "data_url", "status"):
        df[col] = df[col].astype("str")  # pandas 3 string dtype; missing stays missing
    return df


# ---------------------------------------------------------------------------
# P3 matching to ODS trusts
# ---------------------------------------------------------------------------

# Words that do not tell one trust from another (rule P3): dropped after normalising.
_NOISE_WORDS = frozenset({"the", "nhs", "foundation", "trust", "ft", "nhsft"})


def normalise_org_name(name: Any) -> str:
    """A trust name reduced to the words that identify it (rule P3).

    Lower case; accents and curly quotes folded; apostrophes removed (``Guy's`` → ``guys``);
    ``&`` read as ``and``; other punctuation read as a space; ``St``/``St.`` read as
    ``saint``; runs of single letters joined (``N.H.S.`` → ``nhs``); the words ``the``,
    ``NHS``, ``Foundation``, ``Trust``, ``FT`` dropped; whitespace collapsed.

    Examples
    --------
    >>> normalise_org_name("GUY'S AND ST THOMAS' NHS FOUNDATION TRUST")
    'guys and saint thomas'
    >>> normalise_org_name("The Guys & St. Thomas' NHS FT.")
    'guys and saint thomas'
    """
    if name is None or (isinstance(name, float) and pd.isna(name)):
        return ""
    text = unicodedata.normalize("NFKD", str(name))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[\u2018\u2019\u02bc`´']", "", text)
    text = text.replace("&", " and ").replace("+", " and ")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    words: list[str] = []
    letters: list[str] = []
    for word in text.split():
        if len(word) == 1 and word.isalpha():
            letters.append(word)
            continue
        if letters:
            words.append("".join(letters))
            letters = []
        words.append(word)
    if letters:
        words.append("".join(letters))
    words = ["saint" if w == "st" else w for w in words]
    return " ".join(w for w in words if w not in _NOISE_WORDS)


_CODE_PLACEHOLDERS = frozenset({"NA", "NONE", "NIL", "NULL", "UNKNOWN", "TBC", "NOTKNOWN"})


def normalise_ods_code(text: Any) -> str | None:
    """An ODS code as ODS writes it: upper case, no spaces or punctuation (rule P3).

    Returns None when nothing is left, or for a placeholder such as ``n/a``, ``none``,
    ``unknown`` or ``TBC``. Whether the code is a trust is decided by matching, not here.

    Examples
    --------
    >>> normalise_ods_code(" rj 1. ")
    'RJ1'
    """
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return None
    code = re.sub(r"[^A-Z0-9]", "", str(text).upper())
    if not code or code in _CODE_PLACEHOLDERS:
        return None
    return code


#: Reasons a sign-up is on the review list.
REASON_NO_MATCH = "no match"
REASON_CODE_NOT_A_TRUST = "code not a trust"
REASON_SEVERAL = "several trusts match"
REASON_OVERRIDE_NOT_A_TRUST = "override code not a trust"

REVIEW_COLUMNS = ("signup_id", "organisation_name", "ods_code_given", "reason", "candidates")
OVERRIDE_COLUMNS = ("signup_id", "org_code", "reviewed_by", "reviewed_on", "note")


def parse_overrides(data: bytes) -> pd.DataFrame:
    """Read the reviewed-matches file ``pledge_overrides.csv`` (rule P3, first step).

    Lines starting with ``#`` are comments. Columns :data:`OVERRIDE_COLUMNS`; a blank
    ``org_code`` records that a reviewer found the sign-up is not an NHS trust.

    Raises
    ------
    ValueError
        A required column is missing, a row has no ``signup_id``, ``reviewed_by`` or
        ``reviewed_on``, or a sign-up is settled twice.
    """
    text = _decode_csv(data)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    df = pd.read_csv(io.StringIO("\n".join(lines)), dtype=str, keep_default_na=False)
    df.columns = [_key(c) for c in df.columns]
    missing = [c for c in ("signup_id", "org_code", "reviewed_by", "reviewed_on") if c not in df]
    if missing:
        raise ValueError(f"the overrides file has no column {', '.join(missing)}")
    if "note" not in df:
        df["note"] = ""
    df = df[list(OVERRIDE_COLUMNS)].apply(lambda s: s.str.strip())
    incomplete = (df[["signup_id", "reviewed_by", "reviewed_on"]] == "").any(axis=1)
    if incomplete.any():
        rows = [int(i) + 1 for i in df.index[incomplete]]
        raise ValueError(
            "the overrides file needs signup_id, reviewed_by and reviewed_on on every row "
            f"(override rows {rows}, counted below the header, comments not counted)"
        )
    dup = df["signup_id"][df["signup_id"].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"the overrides file settles sign-up {', '.join(dup)} more than once")
    return df.reset_index(drop=True)


def _names_index(frame: pd.DataFrame | None) -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    if frame is None or frame.empty:
        return index
    for code, name in zip(frame["org_code"], frame["name"], strict=True):
        code, key = normalise_ods_code(code), normalise_org_name(name)
        if code and key:
            index.setdefault(key, set()).add(code)
    return index


def match_signups(
    signups_df: pd.DataFrame,
    ods_trusts_df: pd.DataFrame,
    names_history_df: pd.DataFrame | None = None,
    overrides_df: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Match each sign-up to an ODS trust, or put it on the review list (rule P3).

    In order: a reviewed override wins; else the ODS code given, when it is a trust in
    ``ods_trusts_df``; else the normalised organisation name, when exactly one trust has it
    as its current or a former name. Zero or several candidates go to review: never
    dropped, never guessed.

    Parameters
    ----------
    signups_df : pandas.DataFrame
        From :func:`signups_frame` (needs signup_id, organisation_name, ods_code_given).
    ods_trusts_df : pandas.DataFrame
        The trusts a sign-up may match: ``org_code``, ``name`` (ODS spelling).
    names_history_df : pandas.DataFrame, optional
        Former names: ``org_code``, ``name``.
    overrides_df : pandas.DataFrame, optional
        From :func:`parse_overrides`.

    Returns
    -------
    matched_df : pandas.DataFrame
        Every sign-up, with ``org_code`` (None when under review) and ``match_method``
        (``override`` | ``ods_code`` | ``name`` | ``former_name``, None when under review).
    review_df : pandas.DataFrame
        Columns :data:`REVIEW_COLUMNS`, one row per sign-up needing a person's decision;
        ``candidates`` lists ``CODE NAME`` pairs separated by ``"; "`` (for ``no match``,
        the closest names, as hints only).
    """
    trust_names = {
        normalise_ods_code(c): str(n)
        for c, n in zip(ods_trusts_df["org_code"], ods_trusts_df["name"], strict=True)
        if normalise_ods_code(c)
    }
    current = _names_index(ods_trusts_df)
    former = _names_index(names_history_df)
    overrides: dict[str, str | None] = {}
    if overrides_df is not None and not overrides_df.empty:
        for sid, code in zip(overrides_df["signup_id"], overrides_df["org_code"], strict=True):
            overrides[str(sid).strip()] = normalise_ods_code(code)

    def describe(codes: Iterable[str]) -> str:
        return "; ".join(f"{c} {trust_names.get(c, '')}".strip() for c in sorted(codes))

    org_codes, methods, review = [], [], []
    for row in signups_df.itertuples(index=False):
        sid = row.signup_id
        code_given = normalise_ods_code(row.ods_code_given)
        code, method, reason, candidates = None, None, None, ""
        if sid is not None and str(sid) in overrides:
            override = overrides[str(sid)]
            if override is None or override in trust_names:
                code, method = override, "override"
            else:
                reason, candidates = REASON_OVERRIDE_NOT_A_TRUST, override
        elif code_given in trust_names:
            code, method = code_given, "ods_code"
        else:
            key = normalise_org_name(row.organisation_name)
            by_current = current.get(key, set())
            found = by_current | former.get(key, set())
            if len(found) == 1:
                code = next(iter(found))
                method = "name" if code in by_current else "former_name"
            elif found:
                reason, candidates = REASON_SEVERAL, describe(found)
            else:
                reason = REASON_CODE_NOT_A_TRUST if code_given else REASON_NO_MATCH
                hints = difflib.get_close_matches(key, list(current), n=3, cutoff=0.8)
                candidates = describe({c for h in hints for c in current[h]})
        org_codes.append(code)
        methods.append(method)
        if reason:
            review.append(
                {
                    "signup_id": sid,
                    "organisation_name": row.organisation_name,
                    "ods_code_given": row.ods_code_given,
                    "reason": reason,
                    "candidates": candidates,
                }
            )
    matched = signups_df.copy()
    matched["org_code"] = pd.Series(org_codes, index=matched.index, dtype=object)
    matched["match_method"] = pd.Series(methods, index=matched.index, dtype=object)
    return matched, pd.DataFrame(review, columns=list(REVIEW_COLUMNS))


# ---------------------------------------------------------------------------
# P4 history
# ---------------------------------------------------------------------------

HISTORY_COLUMNS = ("withdrawn_at", "valid_from", "valid_to", "is_current")


def _fingerprint(row: pd.Series, columns: Iterable[str]) -> tuple:
    out = []
    for col in columns:
        value = row.get(col)
        if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
            out.append(None)
        elif isinstance(value, (pd.Timestamp, datetime)):
            # the same instant or day compares equal however it was stored (a warehouse
            # round trip turns a date into a naive midnight timestamp)
            ts = pd.Timestamp(value)
            if ts.tzinfo is not None:
                out.append(ts.tz_convert("UTC").isoformat())
            elif ts == ts.normalize():
                out.append(ts.date().isoformat())
            else:
                out.append(ts.isoformat())
        elif isinstance(value, date):
            out.append(value.isoformat())
        elif isinstance(value, (bool, np.bool_)):
            out.append(str(bool(value)))
        elif isinstance(value, float):
            out.append(round(value, 9))
        else:
            out.append(str(value))
    return tuple(out)


def apply_snapshot(
    history_df: pd.DataFrame | None,
    snapshot_df: pd.DataFrame,
    loaded_at: Any,
    close_absent: bool = False,
) -> pd.DataFrame:
    """Add one snapshot of the feed to the sign-up history (rule P4, type-2 history).

    Parameters
    ----------
    history_df : pandas.DataFrame or None
        The history so far (None or empty on the first load).
    snapshot_df : pandas.DataFrame
        Today's sign-ups, one row per ``signup_id`` (from :func:`signups_frame`, optionally
        with the matching columns from :func:`match_signups`).
    loaded_at : timestamp-like
        When this snapshot was taken; becomes ``valid_from`` of new states and ``valid_to``
        of the states they replace (naive times are taken as UTC).
    close_absent : bool
        When True, a sign-up missing from the snapshot has its current state closed. The
        default keeps it current: a missing entry is not evidence of a withdrawal.

    Returns
    -------
    pandas.DataFrame
        The snapshot's columns plus ``withdrawn_at`` (``updated_at`` of a withdrawn state),
        ``valid_from``, ``valid_to`` (NaT while current) and ``is_current``. A sign-up whose
        fields are unchanged adds nothing, so loading the same snapshot twice gives the same
        history; an edit or a withdrawal closes the previous state and adds the new one; a
        snapshot state older (by ``updated_at``) than the current one is ignored.
    """
    loaded = _timestamp(loaded_at)
    if loaded is None:
        raise ValueError(f"loaded_at is not a time: {loaded_at!r}")
    tracked = [c for c in snapshot_df.columns if c not in HISTORY_COLUMNS]
    duplicated = snapshot_df["signup_id"][snapshot_df["signup_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"sign-up {duplicated.iloc[0]} appears more than once in the snapshot")
    snap = snapshot_df[tracked].reset_index(drop=True)
    snap["withdrawn_at"] = snap["updated_at"].where(snap["status"] == "withdrawn")
    snap["withdrawn_at"] = pd.to_datetime(snap["withdrawn_at"], utc=True)

    if history_df is None or history_df.empty:
        history = pd.DataFrame(columns=[*tracked, *HISTORY_COLUMNS])
    else:
        history = history_df.copy()
        for col in tracked:
            if col not in history:
                history[col] = None
    history = history.reset_index(drop=True)

    current_rows = history.index[history["is_current"].astype(bool)] if len(history) else []
    current_by_id = {history.at[i, "signup_id"]: i for i in current_rows}
    compare = [*tracked, "withdrawn_at"]
    new_rows, close_idx = [], []
    for label, row in snap.iterrows():
        i = current_by_id.get(row["signup_id"])
        if i is not None:
            old = history.loc[i]
            if _fingerprint(old, compare) == _fingerprint(row, compare):
                continue
            old_upd, new_upd = _timestamp(old.get("updated_at")), _timestamp(row["updated_at"])
            if old_upd is not None and new_upd is not None and new_upd < old_upd:
                continue
            close_idx.append(i)
        new_rows.append(label)
    if close_absent:
        present = set(snap["signup_id"])
        close_idx += [i for sid, i in current_by_id.items() if sid not in present]

    if close_idx:
        history.loc[close_idx, "valid_to"] = loaded
        history.loc[close_idx, "is_current"] = False
    if new_rows:
        added = snap.loc[new_rows].reset_index(drop=True)
        added["valid_from"] = loaded
        added["valid_to"] = pd.NaT
        added["is_current"] = True
        history = pd.concat([history, added], ignore_index=True) if len(history) else added
    history = history[[*tracked, *HISTORY_COLUMNS]]
    for col in ("signed_at", "updated_at", "withdrawn_at", "valid_from", "valid_to"):
        if col in history:
            history[col] = pd.to_datetime(history[col], utc=True)
    history["is_current"] = history["is_current"].astype(bool)
    return history.sort_values(["signup_id", "valid_from"], kind="stable").reset_index(drop=True)


def current_state(history_df: pd.DataFrame) -> pd.DataFrame:
    """The current state of every sign-up in a history from :func:`apply_snapshot` (rule P4)."""
    current = history_df[history_df["is_current"].astype(bool)]
    return current.sort_values("signup_id", kind="stable").reset_index(drop=True)
