"""A generated nation's warehouse with its request-level trusts' equity breakdowns loaded (as
the publications load leaves raw.publication_breakdown_rows: docs/methodology.md, "Equity"),
built in seconds without Airflow, for the disclosure attack on the equity and area tables."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from nation_warehouse import _insert, load_nation

import warehouse


def build_equity_nation(folder: Path, seed: int, n_trusts: int = 200) -> Path:
    """The nation of ``seed`` loaded with its summary rows and its request-level breakdowns,
    and the benchmark built as of the nation's as-of date."""
    from flexbench.pipeline import benchmark
    from flexbench.sample import nation as nation_mod
    from flexbench.settings import Settings
    from transforms.publications import aggregate_request_breakdown

    folder.mkdir(parents=True, exist_ok=True)
    nation = nation_mod.build_nation(n_trusts=n_trusts, seed=seed)
    path = folder / "flexbench.duckdb"
    con = warehouse.connect(path)
    try:
        warehouse.apply_schema(con)
        load_nation(con, nation)
        truth = nation.truth.set_index("org_code")
        accepted = set(truth.index[truth["publishes"] & (truth["mistake"] == "")])
        requests = nation.requests[nation.requests["org_code"].isin(accepted)]
        requests = requests[requests["received_date"] <= pd.Timestamp(nation_mod.DEFAULT_AS_OF)]
        breakdown = aggregate_request_breakdown(requests)
        fetched = pd.Timestamp(datetime(2026, 10, 15, tzinfo=UTC))
        _insert(
            con,
            "raw.publication_breakdown_rows",
            breakdown.assign(file_sha256="sha-" + breakdown["org_code"], fetched_at=fetched),
        )
    finally:
        con.close()
    settings = Settings(
        sources_path=folder / "sources.yml", warehouse_path=path, data_dir=folder,
        allow_local_urls=True,
    )  # fmt: skip
    benchmark.build(settings, nation_mod.DEFAULT_AS_OF)
    return path
