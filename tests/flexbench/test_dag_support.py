"""Which settings and which as-of date a DAG run works on (docs/deploy.md, "DAG params")."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pendulum

from flexbench import dag_support

LOGICAL = pendulum.datetime(2026, 4, 30, tz="UTC")
RAN_ON = pendulum.datetime(2026, 11, 30, 9, 15, tz="UTC")


def _context(run_type="scheduled", logical=LOGICAL, conf=None, params=None):
    # A task sees the run type as the Task SDK's enum.
    from airflow.sdk.api.datamodels._generated import DagRunType

    return {
        "dag_run": SimpleNamespace(
            conf=conf or {}, run_type=DagRunType(run_type), run_after=RAN_ON
        ),
        "logical_date": logical,
        "params": params or {},
    }


def test_a_scheduled_run_works_on_its_logical_date():
    assert dag_support.run_as_of(_context()) == date(2026, 4, 30)


def test_an_asset_triggered_run_works_on_the_day_it_runs_to_take_the_newest_data():
    assert dag_support.run_as_of(_context(run_type="asset_triggered")) == date(2026, 11, 30)


def test_a_manual_run_without_a_logical_date_works_on_the_day_it_runs():
    assert dag_support.run_as_of(_context(run_type="manual", logical=None)) == date(2026, 11, 30)


def test_the_as_of_param_wins_over_every_date_of_the_run():
    for run_type in ("scheduled", "asset_triggered", "manual"):
        ctx = _context(run_type=run_type, params={"as_of": "2026-03-31"})
        assert dag_support.run_as_of(ctx) == date(2026, 3, 31)


def test_the_sources_and_warehouse_params_are_the_settings_of_the_run(tmp_path):
    sources = tmp_path / "sources.yml"
    sources.write_text("allow_local_urls: true\n")
    ctx = _context(
        conf={"data_dir": str(tmp_path / "d")},
        params={"sources": str(sources), "warehouse": str(tmp_path / "w.duckdb"), "as_of": None},
    )
    s = dag_support.run_settings(ctx)
    assert s.sources_path == sources
    assert s.warehouse_path == tmp_path / "w.duckdb"
    assert s.data_dir == tmp_path / "d"  # the rest of the conf still applies
    assert s.allow_local_urls is True
