"""Every DAG file imports cleanly, parses fast, and follows the house rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
EXPECTED = {
    "flexbench_reference",
    "flexbench_pledge",
    "flexbench_publications",
    "flexbench_benchmark",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_file_imports_without_error(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_has_owner_retries_tags_and_docs(dagbag, dag_id):
    dag = dagbag.dags.get(dag_id)
    assert "flexbench" in dag.tags and len(dag.tags) >= 2
    assert dag.catchup is False
    assert dag.max_active_runs == 1  # a DuckDB file is written
    assert dag.doc_md and len(dag.doc_md) > 80
    assert dag.start_date.tzinfo is not None
    for task in dag.tasks:
        assert task.owner == "flexbench", task.task_id
        assert task.retries >= 1, task.task_id


def test_warehouse_writers_share_the_one_slot_pool(dagbag):
    # The site is built from the warehouse by a reader that must not meet a writer, so it
    # queues in the same pool.
    writers = {
        (d, t.task_id)
        for d in EXPECTED
        for t in dagbag.dags.get(d).tasks
        if t.pool == "duckdb_writer"
    }
    assert writers == {
        ("flexbench_reference", "load"),
        ("flexbench_pledge", "load"),
        ("flexbench_publications", "load"),
        ("flexbench_benchmark", "build"),
        ("flexbench_benchmark", "publish_site"),
        ("flexbench_benchmark", "export_parquet"),
    }


def test_dags_are_chained_by_assets(dagbag):
    def outlets(dag_id):
        return {a.name for t in dagbag.dags.get(dag_id).tasks for a in t.outlets}

    assert "flexbench_reference" in outlets("flexbench_reference")
    assert "flexbench_pledge" in outlets("flexbench_pledge")
    assert "flexbench_publications" in outlets("flexbench_publications")
    assert "flexbench_benchmark" in outlets("flexbench_benchmark")
    # Publications run when the pledge feed (and so the registry) is updated, and on their own
    # timetable too, so a failed pledge feed cannot starve them; the benchmark runs when
    # reference data or publications change.
    publications = dagbag.dags.get("flexbench_publications")
    assert _scheduled_on(publications) == {"flexbench_pledge"}
    assert type(publications.timetable).__name__ == "AssetOrTimeSchedule"
    assert publications.timetable.timetable.expression == "0 6 * * *"
    assert _scheduled_on(dagbag.dags.get("flexbench_benchmark")) == {
        "flexbench_reference",
        "flexbench_publications",
    }


def _scheduled_on(dag) -> set[str]:
    def names(node) -> set[str]:
        if hasattr(node, "objects"):  # AssetAll / AssetAny
            return set().union(*(names(child) for child in node.objects))
        return {node.name}

    return names(dag.timetable.asset_condition)


_PARSE_PROBE = r"""
import json, sys, time, runpy
import airflow.sdk  # the dag-processor has this loaded before it parses any file
heavy = {"pandas", "duckdb", "great_expectations", "openpyxl", "scipy", "requests"}
before = set(sys.modules)
t = time.perf_counter()
runpy.run_path(sys.argv[1])
took = time.perf_counter() - t
loaded = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy)
# Parsed again in the same process, as the dag-processor parses a file every few minutes:
# Airflow's own modules are loaded by then, so this is the file's own cost.
t = time.perf_counter()
runpy.run_path(sys.argv[1])
again = time.perf_counter() - t
print(json.dumps({"seconds": took, "again": again, "heavy": loaded}))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_in_under_half_a_second_without_heavy_imports(path):
    out = subprocess.run(
        [sys.executable, "-c", _PARSE_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{path.name}: parsed in {result['seconds']:.3f}s, again in {result['again']:.3f}s")
    assert result["heavy"] == [], f"{path.name} imports {result['heavy']} at parse time"
    # The first parse in a process also pays Airflow's own lazily imported modules (the
    # @task decorator's operators, croniter …): about 0.2 s of it on a quiet machine.
    assert result["seconds"] < 0.5
    assert result["again"] < 0.3


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_every_dag_offers_the_run_settings_as_params_with_descriptions(dagbag, dag_id):
    params = dagbag.dags.get(dag_id).params
    assert set(params.keys()) >= {"sources", "warehouse", "as_of"}
    for name in ("sources", "warehouse", "as_of"):
        param = params.get_param(name)
        assert param.description and len(param.description) > 30, name
    assert params["sources"].endswith(".yml") and params["warehouse"].endswith(".duckdb")
    assert params["as_of"] is None  # empty: the logical date, or the day an asset run runs
