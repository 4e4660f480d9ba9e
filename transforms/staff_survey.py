"""NHS Staff Survey detailed spreadsheets: the flexible-working questions per organisation.

The detailed organisational results workbook has one sheet per group of questions. On each
sheet, row 1 carries the question titles (``"Q4d - The opportunities for flexible working
patterns."``), each over the first column of its block; row 5 carries the column headers
(``"ODS code"``, ``"% Satisfied"``, ``"Base (number of responses)"`` …); organisations follow
from row 6. Cells for fewer than 10 responses are suppressed (left blank, or ``-``).

The parser finds every block by its title on row 1 and every column by its header text on
row 5, never by a fixed sheet or column letter, so a block that moves to other columns or
sheets in a later year is still read. A block whose title is missing from row 1, or whose
headers are not the expected answer options, raises
:class:`~transforms.reference_quality.SchemaChangeError` naming the block.

Rules implemented (docs/methodology.md, "Staff voice against peers"):

SURVEY-1  ``q4d_pct_satisfied`` = % Satisfied + % Very satisfied (Q4d, satisfaction with the
          opportunities for flexible working patterns).
SURVEY-2  ``q6b_pct_agree``, ``q6c_pct_agree``, ``q6d_pct_agree`` = % Agree + % Strongly agree.
SURVEY-3  ``we_work_flexibly_score`` = the People Promise element "We work flexibly" score
          (0–10), from its "score" column.
SURVEY-4  A suppressed cell is null, never 0; a sum with a suppressed part is null.
          Percentages stay on the published 0–100 scale.
SURVEY-5  Split units are combined into their ODS trust with each unit's base (number of
          responses to that question) as weight; see :func:`combine_split_units`.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from transforms.reference_quality import PROBLEM_COLUMN, SchemaChangeError

TITLE_ROW = 1
HEADER_ROW = 5
FIRST_DATA_ROW = 6
BASE_HEADER = "Base (number of responses)"

#: Question blocks used by the benchmark: block id -> answer options summed (row-5 headers).
QUESTION_BLOCKS = {
    "Q4d": ("% Satisfied", "% Very satisfied"),
    "Q6b": ("% Agree", "% Strongly agree"),
    "Q6c": ("% Agree", "% Strongly agree"),
    "Q6d": ("% Agree", "% Strongly agree"),
}
WE_WORK_FLEXIBLY = "We work flexibly"
SCORE_HEADER_SUFFIX = "score"
ID_HEADERS = {
    "org_code": "ODS code",
    "org_name": "Organisation name",
    "survey_benchmarking_group": "Benchmarking group",
}

SURVEY_COLUMNS = [
    "org_code",
    "org_name",
    "survey_year",
    "q4d_pct_satisfied",
    "q6b_pct_agree",
    "q6c_pct_agree",
    "q6d_pct_agree",
    "we_work_flexibly_score",
    "survey_benchmarking_group",
    "responses",
    "unit_kind",
]
# Documented extras: the base of each measure, used as its weight when units are combined.
BASE_COLUMNS = {
    "q4d_pct_satisfied": "q4d_base",
    "q6b_pct_agree": "q6b_base",
    "q6c_pct_agree": "q6c_base",
    "q6d_pct_agree": "q6d_base",
    "we_work_flexibly_score": "we_work_flexibly_base",
}
_MEASURE = {
    "Q4d": "q4d_pct_satisfied",
    "Q6b": "q6b_pct_agree",
    "Q6c": "q6c_pct_agree",
    "Q6d": "q6d_pct_agree",
    WE_WORK_FLEXIBLY: "we_work_flexibly_score",
}

_QUESTION_TITLE = re.compile(r"^\s*(Q\d+[a-z]?(?:_\d+)?)\s*[-–:]", re.IGNORECASE)
_ELEMENT_TITLE = re.compile(r"^\s*PP\d+(?:_\d+)?\s*[-–:]\s*(.+?)\s*$", re.IGNORECASE)


def _norm(text: object) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip().casefold()


def _column_letter(index0: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index0 + 1)


def _block_id(title: object) -> str | None:
    """The block id a row-1 title announces: ``"Q4d"``, or ``"We work flexibly"``."""
    if not isinstance(title, str):
        return None
    q = _QUESTION_TITLE.match(title)
    if q:
        return q.group(1)
    e = _ELEMENT_TITLE.match(title)
    if e and _norm(e.group(1)) == _norm(WE_WORK_FLEXIBLY):
        return WE_WORK_FLEXIBLY
    return None


@dataclass(frozen=True)
class _Block:
    block: str
    sheet: str
    first: int  # 0-based first column
    last: int  # 0-based last column (inclusive)

    def where(self) -> str:
        return (
            f"sheet {self.sheet!r} columns {_column_letter(self.first)}–{_column_letter(self.last)}"
        )


def _find_blocks(top_rows: dict[str, list[tuple]]) -> dict[str, _Block]:
    wanted = [*QUESTION_BLOCKS, WE_WORK_FLEXIBLY]
    found: dict[str, list[_Block]] = {b: [] for b in wanted}
    elsewhere: dict[str, list[str]] = {b: [] for b in wanted}
    for sheet, rows in top_rows.items():
        if not rows:
            continue
        title_row = rows[0]
        header_row = rows[HEADER_ROW - 1] if len(rows) >= HEADER_ROW else ()
        width = max(len(title_row), len(header_row))
        starts = [j for j, v in enumerate(title_row) if v not in (None, "")]
        for n, j in enumerate(starts):
            block = _block_id(title_row[j])
            if block in found:
                nxt = starts[n + 1] if n + 1 < len(starts) else width
                found[block].append(_Block(block, sheet, j, nxt - 1))
        for r, row in enumerate(rows[1:], start=2):
            for j, v in enumerate(row):
                block = _block_id(v)
                if block in elsewhere:
                    elsewhere[block].append(f"sheet {sheet!r} cell {_column_letter(j)}{r}")
    blocks = {}
    for block in wanted:
        hits = found[block]
        if not hits:
            seen = elsewhere[block]
            hint = f"; its title is at {', '.join(seen)}" if seen else " nor anywhere near it"
            raise SchemaChangeError(
                f"staff survey block {block!r} not found on row {TITLE_ROW} of any sheet{hint}"
            )
        if len(hits) > 1:
            raise SchemaChangeError(
                f"staff survey block {block!r} found more than once: "
                + ", ".join(h.where() for h in hits)
            )
        blocks[block] = hits[0]
    return blocks


def _header_positions(block: _Block, header_row: tuple, needed: Iterable[str]) -> dict[str, int]:
    cells = {
        _norm(header_row[j]): j
        for j in range(block.last, block.first - 1, -1)  # first occurrence wins
        if j < len(header_row)
    }
    out = {}
    for header in needed:
        j = cells.get(_norm(header))
        if j is None:
            present = [
                header_row[j] for j in range(block.first, block.last + 1) if j < len(header_row)
            ]
            raise SchemaChangeError(
                f"staff survey block {block.block!r} on {block.where()} has no column "
                f"{header!r} on row {HEADER_ROW}; its headers are {present}"
            )
        out[header] = j
    return out


def _score_position(block: _Block, header_row: tuple) -> int:
    for j in range(block.first, min(block.last + 1, len(header_row))):
        if _norm(header_row[j]).endswith(SCORE_HEADER_SUFFIX):
            return j
    present = [header_row[j] for j in range(block.first, block.last + 1) if j < len(header_row)]
    raise SchemaChangeError(
        f"staff survey block {block.block!r} on {block.where()} has no '… - score' column "
        f"on row {HEADER_ROW}; its headers are {present}"
    )


def _id_positions(sheet: str, header_row: tuple) -> dict[str, int]:
    cells = {}
    for j, v in enumerate(header_row):
        cells.setdefault(_norm(v), j)
    out = {}
    for col, header in ID_HEADERS.items():
        if _norm(header) not in cells:
            raise SchemaChangeError(
                f"staff survey sheet {sheet!r} has no {header!r} column on row {HEADER_ROW}"
            )
        out[col] = cells[_norm(header)]
    return out


def _number(value: object) -> float:
    """A published cell as a number; a suppressed or non-numeric cell is NaN (SURVEY-4)."""
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan  # "-", "*", "" and other suppression marks


def _unit_kind(benchmarking_group: object) -> str:
    """Kind of survey unit, from its benchmarking group: trust, ICB, CSU, social enterprise."""
    group = _norm(benchmarking_group)
    if "icb" in group or "integrated care board" in group:
        return "ICB"
    if "csu" in group or "commissioning support" in group:
        return "CSU"
    if group.startswith("social enterprise"):
        return "social enterprise"
    if "trust" in group:
        return "trust"
    return "other"


def parse_staff_survey(data: bytes, year: int) -> pd.DataFrame:
    """Read one year's NSS detailed organisational results workbook (rules SURVEY-1..4).

    Parameters
    ----------
    data : bytes
        The XLSX as fetched, unchanged.
    year : int
        The survey year the workbook reports (e.g. 2024 for the survey run in autumn 2024).
        When cell A1 of the sheet holding Q4d names a different year, ``ValueError``.

    Returns
    -------
    DataFrame
        One row per survey unit: ``org_code``, ``org_name``, ``survey_year``,
        ``q4d_pct_satisfied``, ``q6b_pct_agree``, ``q6c_pct_agree``, ``q6d_pct_agree``
        (percent, 0–100, null when suppressed), ``we_work_flexibly_score`` (0–10),
        ``survey_benchmarking_group``, ``responses`` (the Q4d base: number of responses),
        ``unit_kind`` (``trust``, ``ICB``, ``CSU``, ``social enterprise`` or ``other``), the
        per-measure bases ``q4d_base`` … ``we_work_flexibly_base``, ``_row`` (row of the
        unit on the Q4d sheet, or on the first sheet it is on, for reports) and ``_problem``
        (a unit listed twice on a sheet: quarantined by the load; None otherwise).

    Raises
    ------
    SchemaChangeError
        A block's title is not on row 1, a block lacks an expected answer column, or the
        identity columns are missing.
    ValueError
        The bytes are not an XLSX workbook, or the workbook is for another year.
    """
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, InvalidFileException, KeyError …
        raise ValueError(f"staff survey file is not an XLSX workbook ({exc})") from exc
    try:
        top = {
            ws.title: list(ws.iter_rows(min_row=1, max_row=HEADER_ROW, values_only=True))
            for ws in wb.worksheets
        }
        blocks = _find_blocks(top)
        q4d_sheet = blocks["Q4d"].sheet
        stated = re.search(r"\b(19|20)\d{2}\b", str(top[q4d_sheet][0][0] or ""))
        if stated and int(stated.group(0)) != int(year):
            raise ValueError(
                f"staff survey workbook says {stated.group(0)} in cell A1 of sheet "
                f"{q4d_sheet!r}, but year {year} was given"
            )
        sheets = sorted({b.sheet for b in blocks.values()}, key=list(top).index)
        bodies = {
            s: list(wb[s].iter_rows(min_row=FIRST_DATA_ROW, values_only=True)) for s in sheets
        }
    finally:
        wb.close()

    units: dict[str, dict] = {}
    order: list[str] = []
    twice: dict[str, list[str]] = {}  # code -> where it appears again
    for sheet in sheets:
        header_row = top[sheet][HEADER_ROW - 1]
        ids = _id_positions(sheet, header_row)
        picks = []
        for block in (b for b in blocks.values() if b.sheet == sheet):
            measure = _MEASURE[block.block]
            if block.block == WE_WORK_FLEXIBLY:
                parts = [_score_position(block, header_row)]
                base = _header_positions(block, header_row, [BASE_HEADER])[BASE_HEADER]
            else:
                pos = _header_positions(
                    block, header_row, [*QUESTION_BLOCKS[block.block], BASE_HEADER]
                )
                parts = [pos[h] for h in QUESTION_BLOCKS[block.block]]
                base = pos[BASE_HEADER]
            picks.append((measure, parts, base))
        seen_here: set[str] = set()
        for r, row in enumerate(bodies[sheet], start=FIRST_DATA_ROW):
            code = row[ids["org_code"]] if ids["org_code"] < len(row) else None
            if code is None or str(code).strip() == "":
                continue
            code = str(code).strip()
            if code in seen_here:
                # Which of the two rows holds the unit's figures is unknown: the unit is
                # quarantined (its _problem), the other units load.
                twice.setdefault(code, []).append(f"{sheet!r} row {r}")
                continue
            seen_here.add(code)
            unit = units.get(code)
            if unit is None:
                unit = units[code] = {
                    "org_code": code,
                    "org_name": row[ids["org_name"]],
                    "survey_benchmarking_group": row[ids["survey_benchmarking_group"]],
                    "_row": r,
                }
                order.append(code)
            elif sheet == q4d_sheet:
                unit["_row"] = r
            for measure, parts, base in picks:
                # SURVEY-1/2/3, SURVEY-4: NaN in any part makes the sum NaN.
                unit[measure] = sum(_number(row[j]) if j < len(row) else math.nan for j in parts)
                unit[BASE_COLUMNS[measure]] = _number(row[base]) if base < len(row) else math.nan

    out = pd.DataFrame([units[c] for c in order])
    if out.empty:
        raise SchemaChangeError(f"staff survey sheet {q4d_sheet!r} has no organisations")
    out["survey_year"] = int(year)
    out["responses"] = out["q4d_base"]
    out["unit_kind"] = out["survey_benchmarking_group"].map(_unit_kind).astype("str")
    for col in ("org_code", "org_name", "survey_benchmarking_group"):
        out[col] = out[col].astype("str")
    for col in [*BASE_COLUMNS, *BASE_COLUMNS.values(), "responses"]:
        out[col] = out[col].astype("float64")
    for col in [*BASE_COLUMNS.values(), "responses"]:
        out[col] = out[col].round().astype("Int64")
    out["_row"] = out["_row"].astype("Int64")
    out[PROBLEM_COLUMN] = [
        f"appears more than once (also on sheet {', '.join(twice[c])})" if c in twice else None
        for c in out["org_code"]
    ]
    return out[[*SURVEY_COLUMNS, *BASE_COLUMNS.values(), "_row", PROBLEM_COLUMN]].reset_index(
        drop=True
    )


def split_unit_parent(code: str, ods_codes: set[str]) -> str | None:
    """The ODS trust a split survey unit belongs to, or None (rule SURVEY-5).

    A survey unit is a split of an ODS trust when its code is not an ODS code but its code
    without the last character, a digit, is (Isle of Wight: R1F1, R1F2 → R1F).
    """
    if code in ods_codes or len(code) < 4 or not code[-1].isdigit():
        return None
    parent = code[:-1]
    return parent if parent in ods_codes else None


def combine_split_units(survey_df: pd.DataFrame, ods_codes: Iterable[str]) -> pd.DataFrame:
    """Mark units that are not ODS trusts, and combine split units into their ODS trust.

    Implements rule SURVEY-5. Each measure of the combined trust is the mean of the units'
    values weighted by each unit's base for that measure (the number of responses to that
    question): ``sum(value_i * base_i) / sum(base_i)`` over the units where the value is
    not suppressed; its base is the sum of those bases. A measure suppressed in every unit
    stays null. The combined row takes the trust's ODS code, the unit name without its
    bracketed suffix ("Isle of Wight NHS Trust (acute sector)" → "Isle of Wight NHS Trust"),
    and the benchmarking group of the unit with the most responses. This is a close
    approximation: each unit's published figures are already weighted by occupation group,
    and a base-weighted mean of them equals the trust-level figure only if the occupation
    mix is similar across units.

    Parameters
    ----------
    survey_df : DataFrame
        Output of :func:`parse_staff_survey` (one or more years).
    ods_codes : iterable of str
        ODS codes of NHS trusts (e.g. every code in the etr file, open or closed).

    Returns
    -------
    DataFrame
        The survey rows with split units replaced by one row per ODS trust and year, plus
        ``is_ods_trust`` (bool) and ``combined_from`` (e.g. "R1F1+R1F2", null otherwise).
        Units that are not ODS trusts (ICBs, CSUs, social enterprises, trusts missing from
        ODS such as the care trusts TAD, TAF, TAH, TAJ) are kept with ``is_ods_trust=False``.
    """
    codes = set(ods_codes)
    df = survey_df.copy()
    parents = df["org_code"].map(lambda c: split_unit_parent(c, codes))
    whole = df[parents.isna()].copy()
    whole["combined_from"] = pd.Series(None, index=whole.index, dtype="str")
    combined = []
    split = df[parents.notna()].assign(_parent=parents[parents.notna()])
    for (parent, year), units in split.groupby(["_parent", "survey_year"], sort=True):
        units = units.sort_values("org_code")
        biggest = units.loc[units["responses"].fillna(0).astype("float64").idxmax()]
        row = {
            "org_code": parent,
            "org_name": re.sub(r"\s*\([^)]*\)\s*$", "", str(units["org_name"].iloc[0])),
            "survey_year": year,
            "survey_benchmarking_group": biggest["survey_benchmarking_group"],
            "unit_kind": "trust",
            "combined_from": "+".join(units["org_code"]),
        }
        if "_row" in units.columns:
            row["_row"] = units["_row"].min()
        if PROBLEM_COLUMN in units.columns:
            problems = [
                f"{c}: {p}"
                for c, p in zip(units["org_code"], units[PROBLEM_COLUMN], strict=True)
                if isinstance(p, str)
            ]
            row[PROBLEM_COLUMN] = "; ".join(problems) or None
        for measure, base_col in BASE_COLUMNS.items():
            if measure not in units.columns:
                continue
            values = units[measure].astype("float64")
            weights = units[base_col].astype("float64")
            ok = values.notna() & weights.notna() & (weights > 0)
            total = weights[ok].sum()
            row[measure] = (values[ok] * weights[ok]).sum() / total if ok.any() else math.nan
            row[base_col] = total if ok.any() else math.nan
        row["responses"] = row.get("q4d_base", units["responses"].astype("float64").sum())
        combined.append(row)
    out = pd.concat([whole, pd.DataFrame(combined, columns=whole.columns)], ignore_index=True)
    for col in [*BASE_COLUMNS.values(), "responses"]:
        if col in out.columns:
            # to_numeric copes with an object column mixing numbers and <NA> (a year with no
            # split units and a suppressed base), where astype("float64") raises.
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("Float64").round()
            out[col] = out[col].astype("Int64")
    out["is_ods_trust"] = out["org_code"].isin(codes)
    sort = ["survey_year", "org_code"] if "survey_year" in out.columns else ["org_code"]
    return out.sort_values(sort, ignore_index=True)
