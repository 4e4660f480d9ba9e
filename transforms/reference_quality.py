"""Quality of the reference data: upstream schema changes and coverage between sources.

Two things are checked after each reference load:

* **Schema change** — the official files change shape from time to time (a column renamed,
  a question block moved, a new staff group). A parser that meets a shape it does not know
  raises :class:`SchemaChangeError`, whose message names what changed, so the load fails and
  the previous good data is kept.
* **Coverage** — every trust in the benchmark population should appear in the Staff Survey
  and in the Workforce Statistics, and every trust-like unit in those sources should be an
  ODS trust in the population. :func:`coverage_summary` lists the gaps (one row per trust per
  gap) and :func:`coverage_text` says it in one paragraph for the run log.
"""

from __future__ import annotations

import pandas as pd

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
