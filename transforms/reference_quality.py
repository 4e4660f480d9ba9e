"""Quality of the reference data: upstream schema changes, rows quarantined, and coverage.

Three things are checked on each reference load:

* **Schema change** — the official files change shape from time to time (a column renamed,
  a question block moved, a new staff group). A parser that meets a shape it does not know
  raises :class:`SchemaChangeError`, whose message names what changed, so the load fails and
  the previous good data is kept.
* **Rows that break a rule** — a reference file fails row by row, not as a whole (the policy
  in docs/pipeline.md, "Reference files: row by row"). A row whose value cannot be read as
  its type, or that breaks a rule of its GX suite, is quarantined with its reasons
  (:func:`split_quarantine`) and the other rows load. The whole file is rejected only for a
  structural break: a missing column, a column of the wrong type (more than
  :data:`WRONG_TYPE_SHARE` of its values unreadable, :func:`check_column_type`), a rule that
  fails for the file rather than for rows, or too few rows to load compared with the last
  loaded edition of the source (:func:`too_few_rows`, threshold :data:`MIN_ROWS_SHARE`).
* **Coverage** — every trust in the benchmark population should appear in the Staff Survey
  and in the Workforce Statistics, and every trust-like unit in those sources should be an
  ODS trust in the population. :func:`coverage_summary` lists the gaps (one row per trust per
  gap) and :func:`coverage_text` says it in one paragraph for the run log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

#: A column is of the wrong type (a structural break: the file is rejected) when more than this
#: share of its non-blank values cannot be read as that type; fewer are problems of their rows.
WRONG_TYPE_SHARE = 0.5
#: A file is rejected when the rows it would load are fewer than this share of the rows loaded
#: from the last edition of the same source (a truncated download, a filter upstream).
MIN_ROWS_SHARE = 0.9
#: The column in which a parser notes why a row could not be read (None when it could).
PROBLEM_COLUMN = "_problem"
QUARANTINE_COLUMNS = ["row_number", "record_key", "reasons"]

COVERAGE_COLUMNS = ["org_code", "name", "issue", "source"]

ISSUE_MISSING_FROM_SOURCE = "in the ODS population, missing from this source"
ISSUE_NOT_IN_POPULATION = "in this source, not an ODS trust in the population"

# Units of the sources that are not trusts, so are not expected in the ODS trust population.
_SURVEY_NON_TRUST_KINDS = {"ICB", "CSU", "social enterprise", "other"}
_WORKFORCE_NON_TRUST_CLUSTERS = {"Integrated Care Board"}


class SchemaChangeError(ValueError):
    """An official reference file no longer has the shape the parser knows.

    The message names what moved or changed (the column, the question block, the staff
    group, the row type), so the person reading the run log knows what to update.
    """


def note_problem(frame: pd.DataFrame, bad: pd.Series, reason: str) -> None:
    """Add ``reason`` to the :data:`PROBLEM_COLUMN` of the rows where ``bad`` is true."""
    if PROBLEM_COLUMN not in frame.columns:
        frame[PROBLEM_COLUMN] = pd.Series(None, index=frame.index, dtype="object")
    bad = bad.reindex(frame.index, fill_value=False).astype(bool)
    for i in frame.index[bad]:
        before = frame.at[i, PROBLEM_COLUMN]
        frame.at[i, PROBLEM_COLUMN] = (
            reason if not isinstance(before, str) else f"{before}; {reason}"
        )


def check_column_type(
    bad: pd.Series, given: pd.Series, what: str, values: pd.Series | None = None
) -> None:
    """Raise :class:`SchemaChangeError` when most values given in a column are unreadable.

    Parameters
    ----------
    bad : Series of bool
        True where a value was given but could not be read as the column's type.
    given : Series of bool
        True where a value was given (not blank).
    what : str
        The column, in the words of the published file (e.g. "workforce CSV: HC").
    values : Series, optional
        The values as published: the first unreadable ones are quoted in the message.
    """
    n_given = int(given.sum())
    n_bad = int(bad.sum())
    if n_given and n_bad / n_given > WRONG_TYPE_SHARE:
        shown = ""
        if values is not None:
            examples = list(dict.fromkeys(values[bad].astype(str)))[:3]
            shown = f" (e.g. {', '.join(repr(e) for e in examples)})"
        raise SchemaChangeError(
            f"{what}: {n_bad} of {n_given} values are not of the column's type{shown}: "
            "the column has moved or changed type"
        )


def split_quarantine(
    frame: pd.DataFrame,
    failures: Sequence[Any],
    key_columns: Sequence[str],
    row_column: str = "_row",
) -> tuple[pd.DataFrame, pd.DataFrame, list[Any]]:
    """Split a validated reference frame into the rows to load and the rows to quarantine.

    Parameters
    ----------
    frame : DataFrame
        The parsed file, with ``_row`` (its row in the file) and optionally
        :data:`PROBLEM_COLUMN` (why a value could not be read).
    failures : sequence of RuleFailure
        The failed rules of its GX suite (:func:`expectations.core.run_rules`).
    key_columns : sequence of str
        The columns naming the record (e.g. ``org_code``), joined by "/" in ``record_key``.

    Returns
    -------
    kept : DataFrame
        The rows that load, without :data:`PROBLEM_COLUMN`.
    quarantined : DataFrame
        ``row_number``, ``record_key``, ``reasons`` (every rule the row broke, "; "-joined),
        one row per quarantined row, sorted by row number.
    structural : list of RuleFailure
        Failed rules that name no row: the file as a whole breaks them (it is rejected).
    """
    reasons: dict[int, list[str]] = {}
    if PROBLEM_COLUMN in frame.columns:
        for r, problem in zip(frame[row_column], frame[PROBLEM_COLUMN], strict=True):
            if isinstance(problem, str):
                reasons.setdefault(int(r), []).append(problem)
    structural = []
    for failure in failures:
        rows = sorted({r for rs in failure.rows.values() for r in rs})
        if not rows:
            structural.append(failure)
        for r in rows:
            reasons.setdefault(int(r), []).append(f"{failure.rule}: {failure.description}")
    bad = frame[row_column].astype("Int64").isin(list(reasons)).fillna(False).astype(bool)
    kept = frame[~bad].drop(columns=[PROBLEM_COLUMN], errors="ignore").reset_index(drop=True)
    out = frame[bad]

    def key(row) -> str:
        return "/".join("" if pd.isna(row[c]) else str(row[c]) for c in key_columns)

    quarantined = pd.DataFrame(
        {
            "row_number": out[row_column].astype("int64").to_numpy(),
            "record_key": [key(r) for _, r in out.iterrows()],
            "reasons": ["; ".join(reasons[int(r)]) for r in out[row_column]],
        },
        columns=QUARANTINE_COLUMNS,
    )
    return kept, quarantined.sort_values("row_number", ignore_index=True), structural


def too_few_rows(rows: int, last_edition_rows: int | None) -> str | None:
    """Why a file with ``rows`` rows to load is rejected against the last loaded edition of its
    source (``last_edition_rows``), or None when it is not (:data:`MIN_ROWS_SHARE`)."""
    if rows == 0:
        return "no rows left to load"
    if last_edition_rows and rows < MIN_ROWS_SHARE * last_edition_rows:
        return (
            f"only {rows} rows to load, fewer than {MIN_ROWS_SHARE:.0%} of the "
            f"{last_edition_rows} rows of the last loaded edition"
        )
    return None


def coverage_summary(
    ods_population: pd.DataFrame,
    survey: pd.DataFrame | None,
    workforce: pd.DataFrame | None,
) -> pd.DataFrame:
    """List trusts missing from a source, and source units missing from the population.

    Implements the reference data-quality summary (docs/pipeline.md): trusts in ODS but missing
    from the survey or workforce, and the reverse.

    Parameters
    ----------
    ods_population : DataFrame
        The benchmark population (``org_code``, ``name``), e.g. from
        :func:`transforms.ods.benchmark_population`.
    survey : DataFrame or None
        Staff Survey staging rows (``org_code``, ``org_name``, optionally ``unit_kind``);
        ``None`` when no survey is loaded (then no survey rows are reported).
    workforce : DataFrame or None
        Workforce staging rows (``org_code``, ``org_name``, optionally ``cluster_group``);
        ``None`` when no workforce file is loaded.

    Returns
    -------
    DataFrame
        Columns ``org_code``, ``name``, ``issue``, ``source`` (``"staff_survey"`` or
        ``"workforce"``), sorted by source, issue and code. ``issue`` is
        :data:`ISSUE_MISSING_FROM_SOURCE` for a population trust the source lacks, or
        :data:`ISSUE_NOT_IN_POPULATION` for a trust-like unit of the source that is not in
        the population. ICBs, CSUs and social enterprises are not reported in the reverse
        direction: they are not trusts, and the survey keeps them marked.
    """
    population = ods_population[["org_code", "name"]].drop_duplicates("org_code")
    pop_codes = set(population["org_code"])
    rows: list[dict[str, str]] = []
    for source, frame in (("staff_survey", survey), ("workforce", workforce)):
        if frame is None:
            continue
        codes = set(frame["org_code"].dropna())
        for code, name in population.itertuples(index=False):
            if code not in codes:
                rows.append(
                    {
                        "org_code": code,
                        "name": name,
                        "issue": ISSUE_MISSING_FROM_SOURCE,
                        "source": source,
                    }
                )
        trust_like = frame
        if source == "staff_survey" and "unit_kind" in frame.columns:
            trust_like = frame[~frame["unit_kind"].isin(_SURVEY_NON_TRUST_KINDS)]
        if source == "workforce" and "cluster_group" in frame.columns:
            trust_like = frame[~frame["cluster_group"].isin(_WORKFORCE_NON_TRUST_CLUSTERS)]
        units = trust_like[["org_code", "org_name"]].drop_duplicates("org_code")
        for code, name in units.itertuples(index=False):
            if code not in pop_codes:
                rows.append(
                    {
                        "org_code": code,
                        "name": name,
                        "issue": ISSUE_NOT_IN_POPULATION,
                        "source": source,
                    }
                )
    out = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
    return out.sort_values(["source", "issue", "org_code"], ignore_index=True)


def coverage_text(coverage: pd.DataFrame, population_size: int | None = None) -> str:
    """Say the coverage summary in one paragraph, for the run log.

    Parameters
    ----------
    coverage : DataFrame
        The output of :func:`coverage_summary`.
    population_size : int, optional
        Number of trusts in the population, quoted when given.

    Returns
    -------
    str
        E.g. "Reference coverage for 202 trusts: staff_survey lacks 3 population trusts
        (R1C, RAP, RY9); workforce has 3 trust units not in the population (TAD, TAH, TAJ)."
    """
    head = "Reference coverage"
    if population_size is not None:
        head += f" for {population_size} trusts"
    if coverage.empty:
        return f"{head}: every population trust is in every source, and the reverse."
    parts = []
    for (source, issue), group in coverage.groupby(["source", "issue"], sort=True):
        codes = sorted(group["org_code"])
        shown = ", ".join(codes[:10]) + (f" and {len(codes) - 10} more" if len(codes) > 10 else "")
        if issue == ISSUE_MISSING_FROM_SOURCE:
            parts.append(f"{source} lacks {len(codes)} population trusts ({shown})")
        else:
            parts.append(f"{source} has {len(codes)} trust units not in the population ({shown})")
    return f"{head}: " + "; ".join(parts) + "."
