"""Parquet copies of the marts beside the warehouse (docs/analysts.md)."""

from __future__ import annotations

import duckdb

import warehouse
from flexbench.pipeline import parquet


def _warehouse(path, marts: dict[str, int]):
    con = warehouse.connect(path)
    warehouse.apply_schema(con)
    for name, rows in marts.items():
        con.execute(f"create or replace table marts.{name} as select range as n from range({rows})")
    con.close()


def test_every_mart_is_written_beside_the_warehouse_with_its_rows(tmp_path):
    path = tmp_path / "data" / "flexbench.duckdb"
    _warehouse(path, {"trust_benchmark": 3, "trust_trends": 5})
    assert parquet.export_marts(path) == {"trust_benchmark": 3, "trust_trends": 5}
    out = tmp_path / "data" / "parquet" / "marts"
    assert sorted(p.name for p in out.iterdir()) == [
        "trust_benchmark.parquet",
        "trust_trends.parquet",
    ]
    (n,) = duckdb.execute(f"select sum(n) from '{out / 'trust_trends.parquet'}'").fetchone()
    assert n == 0 + 1 + 2 + 3 + 4


def test_a_rebuild_replaces_the_files_and_drops_those_of_marts_gone(tmp_path):
    path = tmp_path / "flexbench.duckdb"
    _warehouse(path, {"trust_benchmark": 3, "old_mart": 1})
    parquet.export_marts(path)
    con = warehouse.connect(path)
    con.execute("drop table marts.old_mart")
    con.close()
    _warehouse(path, {"trust_benchmark": 7})
    parquet.export_marts(path)
    out = tmp_path / "parquet" / "marts"
    assert [p.name for p in out.iterdir()] == ["trust_benchmark.parquet"]  # no temp file left
    (rows,) = duckdb.execute(f"select count(*) from '{out / 'trust_benchmark.parquet'}'").fetchone()
    assert rows == 7
