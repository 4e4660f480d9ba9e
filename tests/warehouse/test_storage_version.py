"""The warehouse file is written in a storage version DuckDB 1.x clients can open."""

from __future__ import annotations

import duckdb

import warehouse


def _version_on_disk(path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return warehouse.storage_version(con)
    finally:
        con.close()


def test_a_new_warehouse_is_written_in_the_1x_storage_version(tmp_path):
    path = tmp_path / "w.duckdb"
    con = warehouse.connect(path)
    warehouse.apply_schema(con)
    con.execute("create table marts.t as select 1 as x")
    con.close()
    assert _version_on_disk(path) == warehouse.STORAGE_VERSION == "v1.4.0"


def test_a_warehouse_in_duckdb_2_format_is_converted_with_its_data_on_first_write(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))  # DuckDB 2.0's own default format, as older builds wrote
    con.execute("create schema marts; create table marts.t as select 7 as x")
    con.close()
    assert _version_on_disk(path) != "v1.4.0"
    con = warehouse.connect(path)
    assert con.execute("select x from marts.t").fetchall() == [(7,)]
    con.close()
    assert _version_on_disk(path) == "v1.4.0"
    assert not (tmp_path / "w.duckdb.convert").exists()


def test_reopening_for_writing_keeps_the_storage_version(tmp_path):
    path = tmp_path / "w.duckdb"
    for value in (1, 2):
        con = warehouse.connect(path)
        con.execute(f"create or replace table t as select {value} as x")
        con.close()
    assert _version_on_disk(path) == "v1.4.0"
