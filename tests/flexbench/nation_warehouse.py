"""A warehouse of a generated nation, built in seconds without Airflow (shared by the tests).

The reference data and the accepted publications are loaded straight from the nation's frames
(what the validated files hold), skipping file parsing and GX; the real SQL models are built on
top by the benchmark build, so the marts and the public layer are the ones `make demo` gives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

import warehouse
from transforms.staff_survey import combine_split_units

LOADED_AT = pd.Timestamp(datetime(2026, 11, 1, tzinfo=UTC))


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    """Insert the table's columns of ``frame`` (as the loads do)."""
    columns = set(con.execute(f"select * from {table} limit 0").df().columns)
    con.register("frame", frame[[c for c in frame.columns if c in columns]])
    con.execute(f"insert into {table} by name select * from frame")
    con.unregister("frame")


def _load_nation(con, nation) -> None:
    """Raw tables as the reference and publications loads would leave them."""
    trusts = nation.trusts.copy()
    trusts["country"] = trusts["region_code"].map(lambda r: "England" if r.startswith("Y")
                                                  else "Wales")  # fmt: skip
    _insert(con, "raw.ods_trusts", trusts.drop(columns=["benchmark_group", "cluster_group",
                                                        "ics_code"]).assign(
        sha256="ods", loaded_at=LOADED_AT))  # fmt: skip
    _insert(con, "raw.workforce", nation.workforce.assign(sha256="wf", loaded_at=LOADED_AT))
    survey = nation.staff_survey.assign(unit_kind="trust")
    for measure, base in (("q4d_pct_satisfied", "q4d_base"), ("q6b_pct_agree", "q6b_base"),
                          ("q6c_pct_agree", "q6c_base"), ("q6d_pct_agree", "q6d_base"),
                          ("we_work_flexibly_score", "we_work_flexibly_base")):  # fmt: skip
        survey[base] = survey["responses"].where(survey[measure].notna())
    survey = combine_split_units(survey, trusts["org_code"])
    _insert(con, "raw.staff_survey", survey.assign(sha256="nss", loaded_at=LOADED_AT))

    truth = nation.truth.set_index("org_code")
    accepted = truth.index[truth["publishes"] & (truth["mistake"] == "")]
    rejected = truth.index[truth["publishes"] & (truth["mistake"] != "")]
    rows = nation.summary[nation.summary["org_code"].isin(accepted)]
    fetched = pd.Timestamp(datetime(2026, 10, 15, tzinfo=UTC))
    _insert(
        con,
        "raw.publication_rows",
        rows.assign(file_sha256="sha-" + rows["org_code"], fetched_at=fetched),
    )
    audit = pd.DataFrame({"org_code": list(accepted) + list(rejected)})
    audit["url"] = "http://127.0.0.1/publications/" + audit["org_code"] + ".csv"
    audit["sha256"] = "sha-" + audit["org_code"]
    audit["fetched_at"] = fetched
    audit["status"] = ["accepted"] * len(accepted) + ["rejected"] * len(rejected)
    audit["reasons"] = [None] * len(accepted) + list(truth.loc[rejected, "mistake"])
    audit["run_id"] = "test"
    _insert(con, "audit.publication_files", audit)
    warehouse.build_layers_named(con, ["staging.ods_trusts", "staging.ods_trust_names",
                                       "staging.staff_survey", "staging.workforce"])  # fmt: skip


load_nation = _load_nation


def build_nation_warehouse(
    folder: Path, seed: int, n_trusts: int = 200, extra_rows: pd.DataFrame | None = None
) -> Path:
    """Generate a nation from ``seed``, load it and run the benchmark build as of the nation's
    as-of date; ``extra_rows`` (publication rows) are added to the accepted publications."""
    from flexbench.pipeline import benchmark
    from flexbench.sample import nation as nation_mod
    from flexbench.settings import Settings

    folder.mkdir(parents=True, exist_ok=True)
    nation = nation_mod.build_nation(n_trusts=n_trusts, seed=seed)
    path = folder / "flexbench.duckdb"
    con = warehouse.connect(path)
    try:
        warehouse.apply_schema(con)
        _load_nation(con, nation)
        if extra_rows is not None:
            fetched = pd.Timestamp(datetime(2026, 10, 15, tzinfo=UTC))
            _insert(
                con,
                "raw.publication_rows",
                extra_rows.assign(file_sha256="sha-" + extra_rows["org_code"], fetched_at=fetched),
            )
    finally:
        con.close()
    settings = Settings(
        sources_path=folder / "sources.yml", warehouse_path=path, data_dir=folder,
        allow_local_urls=True,
    )  # fmt: skip
    benchmark.build(settings, nation_mod.DEFAULT_AS_OF)
    return path


def build_site_in(folder: Path, warehouse_path: Path) -> Path:
    """The site of the warehouse at ``warehouse_path``, built into ``folder / "site"``; returns
    that folder (``build_site`` must answer with its index page)."""
    from flexbench.site import build_site

    out = folder / "site"
    index = build_site(warehouse_path, out)
    assert index == out.resolve() / "index.html"
    return out
