"""Reruns and backfills give the same marts (docs/pipeline.md).

- running the same benchmark build twice gives identical marts, every row and column;
- a build for a past as-of date (a DAG run for a past logical date) after a later one rebuilds
  that window exactly as it was;
- loading a run's publications again (a retried or rerun load) leaves the warehouse as the
  first load left it;
- ``flexbench.runner.run_all`` twice over the same sources gives identical marts (slow: runs
  Airflow in-process), but for the last fetch attempt ``marts.publication_status`` reports.

The pipeline functions are called directly, on a synthetic nation of 20 trusts served on
loopback, as the DAG tasks call them.
"""

from __future__ import annotations

import json
import shutil
import socket
from datetime import date
from types import SimpleNamespace

import pandas as pd
import pendulum
import pytest
import yaml

import warehouse
from flexbench import dag_support, demo, settings
from flexbench.pipeline import benchmark, pledge, publications, reference

AS_OF = date(2026, 10, 31)
PAST_AS_OF = date(2026, 4, 30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tables(path, schemas=("marts",)) -> dict[str, pd.DataFrame]:
    """Every table of ``schemas``, all columns, rows in a canonical order."""
    con = warehouse.connect(path, read_only=True)
    try:
        names = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            f"where schema_name in ({', '.join('?' for _ in schemas)}) order by all",
            list(schemas),
        ).fetchall()
        return {
            f"{schema}.{name}": con.execute(f"select * from {schema}.{name} order by all").df()
            for schema, name in names
        }
    finally:
        con.close()


def assert_same_tables(first: dict, second: dict) -> None:
    assert sorted(first) == sorted(second)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name], obj=name)


@pytest.fixture(scope="module")
def nation(tmp_path_factory):
    """The sample nation served on loopback while the module runs, with its sources file."""
    root = tmp_path_factory.mktemp("reruns")
    port = _free_port()
    made = demo.generate(root / "served", f"http://127.0.0.1:{port}", n_trusts=20)
    (root / "sources.yml").write_text(yaml.safe_dump(made["sources"], sort_keys=False))
    with demo.serve(root / "served", port):
        yield root


@pytest.fixture(scope="module")
def loaded(nation):
    """A warehouse with every source loaded once (no benchmark built yet), and the outcomes of
    the publications run."""
    s = settings.load(sources=nation / "sources.yml", warehouse=nation / "data" / "base.duckdb")
    reference.load(s, reference.fetch(s))
    pledge.load(s, pledge.fetch(s))
    outcomes = []
    for batch in publications.batches(publications.registry(s)):
        outcomes += publications.validate_batch(s, publications.fetch_batch(s, batch), AS_OF)
    publications.load(s, outcomes, "run-1", AS_OF)
    return s, outcomes


@pytest.fixture
def copy(loaded, tmp_path):
    s, outcomes = loaded
    path = tmp_path / "flexbench.duckdb"
    shutil.copy(s.warehouse_path, path)
    return settings.load(conf={**s.as_conf(), "warehouse": str(path)}), outcomes


def test_the_same_build_twice_gives_identical_marts(copy):
    s, _ = copy
    benchmark.build(s, AS_OF)
    first = tables(s.warehouse_path, ("staging", "intermediate", "marts"))

    benchmark.build(s, AS_OF)

    second = tables(s.warehouse_path, ("staging", "intermediate", "marts"))
    assert_same_tables(first, second)
    # Not vacuous: the marts hold the benchmark of the sample's trusts.
    assert first["marts.trust_benchmark"]["has_data"].any()


def test_a_build_for_a_past_as_of_after_a_later_one_rebuilds_that_window_identically(copy):
    s, _ = copy
    benchmark.build(s, PAST_AS_OF)
    past = tables(s.warehouse_path, ("intermediate", "marts"))

    benchmark.build(s, AS_OF)
    later = tables(s.warehouse_path, ("intermediate", "marts"))
    benchmark.build(s, PAST_AS_OF)
    again = tables(s.warehouse_path, ("intermediate", "marts"))

    assert_same_tables(past, again)
    # The later build really was a different window, so the rebuild had something to undo.
    window = "intermediate.int_benchmark_window"
    assert past[window]["window_end"].iloc[0] < later[window]["window_end"].iloc[0]
    assert str(past[window]["as_of"].iloc[0])[:10] == PAST_AS_OF.isoformat()


def test_a_dag_run_for_a_past_logical_date_works_on_that_date():
    logical = pendulum.datetime(2026, 4, 30, tz="UTC")
    scheduled = {"dag_run": SimpleNamespace(conf={}), "logical_date": logical}
    triggered = {"dag_run": SimpleNamespace(conf={"as_of": "2026-03-31"}), "logical_date": logical}

    assert dag_support.run_as_of(scheduled) == date(2026, 4, 30)
    # `flexbench run --as-of` passes its date in the conf; it wins over the logical date.
    assert dag_support.run_as_of(triggered) == date(2026, 3, 31)


def test_loading_the_same_run_again_leaves_the_warehouse_as_the_first_load_did(copy):
    s, outcomes = copy
    every = ("raw", "audit", "staging")
    first = tables(s.warehouse_path, every)

    counts = publications.load(s, json.loads(json.dumps(outcomes, default=str)), "run-1", AS_OF)

    assert counts.get("accepted", 0) > 0  # the rerun loaded its files again, not "unchanged"
    assert_same_tables(first, tables(s.warehouse_path, every))


# A second run fetches every publication again and records that attempt (its content
# unchanged): marts.publication_status reports the last attempt, so these two columns move by
# design. The verdict (last_fetch_status) stays the content's real verdict.
LAST_ATTEMPT_COLUMNS = ["last_attempt_at", "last_fetch_unchanged"]


@pytest.mark.slow
def test_run_all_twice_through_airflow_gives_identical_marts(nation, tmp_path):
    from flexbench import runner

    s = settings.load(sources=nation / "sources.yml", warehouse=tmp_path / "flexbench.duckdb")
    runner.run_all(s, AS_OF, quiet=True)
    first = tables(s.warehouse_path)

    runner.run_all(s, AS_OF, quiet=True)

    second = tables(s.warehouse_path)
    status = "marts.publication_status"
    attempts = first[status]["last_attempt_at"].notna()
    assert second[status].loc[attempts, "last_fetch_unchanged"].astype(bool).all()
    assert "unchanged" not in set(second[status]["last_fetch_status"])
    for frame in (first, second):
        frame[status] = frame[status].drop(columns=LAST_ATTEMPT_COLUMNS)
    assert_same_tables(first, second)
    assert first["marts.trust_benchmark"]["has_data"].any()
