"""What the four DAG files share: Assets, default arguments, params, and reading a run's settings.

Kept light: DAG files import this at parse time, so nothing heavy is imported here.
"""

from __future__ import annotations

from datetime import date, timedelta

import pendulum
from airflow.sdk import Asset, Param

from flexbench import settings as _settings

START_DATE = pendulum.datetime(2025, 1, 1, tz="Europe/London")

# Data-aware scheduling: each DAG says what it updates; the next one runs on it.
REFERENCE = Asset(name="flexbench_reference", uri="flexbench://warehouse/staging/reference")
PLEDGE = Asset(name="flexbench_pledge", uri="flexbench://warehouse/staging/pledge_signups")
PUBLICATIONS = Asset(
    name="flexbench_publications", uri="flexbench://warehouse/staging/publications"
)
BENCHMARK = Asset(name="flexbench_benchmark", uri="flexbench://warehouse/marts")

# DuckDB has one writer: every task that writes the warehouse runs in this one-slot pool and on
# this queue (served by one worker process in the Celery deployment).
WAREHOUSE_POOL = "duckdb_writer"
WAREHOUSE_QUEUE = "duckdb"

DEFAULT_ARGS = {
    "owner": "flexbench",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
}

#: The run settings a DAG run can be given (the UI's trigger form, `flexbench run`'s conf).
PARAM_NAMES = ("sources", "warehouse", "as_of")


def dag_params() -> dict[str, Param]:
    """The params every DAG takes, with defaults read where the DAG is parsed (docs/deploy.md,
    "DAG params")."""
    return {
        "sources": Param(
            str(_settings.default_sources_path()),
            type="string",
            title="Sources file",
            description="The sources registry (YAML) to fetch from. Default: FLEXBENCH_SOURCES, "
            "else sources.yml in the project.",
        ),
        "warehouse": Param(
            str(_settings.default_warehouse_path()),
            type="string",
            title="Warehouse",
            description="The DuckDB warehouse file to write. Default: FLEXBENCH_WAREHOUSE, "
            "else data/flexbench.duckdb in the project.",
        ),
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="As of",
            description="The date the run works on (YYYY-MM-DD). Empty: a scheduled run uses "
            "its logical date; an asset-triggered or manual run without a logical date uses "
            "the day it runs, so it takes the newest source data.",
        ),
    }


def _run_conf(context) -> dict:
    """The run's conf with its params over it (Airflow already puts a trigger's conf into the
    params, so a param is the conf's value when given, else its default)."""
    dag_run = context.get("dag_run")
    conf = dict((getattr(dag_run, "conf", None) or {}) if dag_run else {})
    params = context.get("params") or {}
    for name in PARAM_NAMES:
        value = params.get(name) if hasattr(params, "get") else None
        if value not in (None, ""):
            conf[name] = value
    return conf


def run_settings(context):
    """The settings of this DAG run: its params and conf over env and defaults."""
    return _settings.load(conf=_run_conf(context))


def run_as_of(context) -> date:
    """The date a run works on (docs/deploy.md, "DAG params"): ``as_of`` in its params or
    conf; else, for an asset-triggered run or one without a logical date, the day it runs
    (the newest source data); else its logical date. Never the wall clock of a scheduled run."""
    as_of = _run_conf(context).get("as_of")
    if as_of:
        return date.fromisoformat(str(as_of)[:10])
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    run_type = str(getattr(run_type, "value", run_type) or "")  # an enum in a task
    logical = context.get("logical_date")
    if logical is not None and run_type != "asset_triggered":
        return logical.date()
    run_after = getattr(dag_run, "run_after", None) or context.get("data_interval_end")
    return run_after.date() if run_after else date.today()


def run_id(context) -> str:
    dag_run = context.get("dag_run")
    return getattr(dag_run, "run_id", None) or "manual"
