"""The project's four DAGs run on the production components: api-server, scheduler,
dag-processor and Celery workers, against PostgreSQL and Redis on loopback (see conftest.py).

A small synthetic nation (``flexbench.demo.generate``, 20 trusts) is served on loopback HTTP;
the four DAGs of ``dags/`` are triggered in order with the run conf ``flexbench run`` gives
them, each waited for; then the warehouse is read back. Fetch and validate must have run on the
``default``-queue worker and every warehouse writer on the one-process ``duckdb``-queue worker.
Skipped, with the reason, where PostgreSQL or Redis is not reachable.
"""

from __future__ import annotations

import socket
import urllib.error
from pathlib import Path

import pytest
import yaml

from flexbench import demo, settings

pytestmark = pytest.mark.deployment

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS = PROJECT_ROOT / "dags"
AS_OF = "2026-10-31"
N_TRUSTS = 20
DAG_ORDER = ("flexbench_reference", "flexbench_pledge", "flexbench_publications",
             "flexbench_benchmark")  # fmt: skip
# The tasks that write the warehouse: one queue, one slot (DuckDB has one writer).
WAREHOUSE_WRITERS = {
    "flexbench_reference": "load",
    "flexbench_pledge": "load",
    "flexbench_publications": "load",
    "flexbench_benchmark": "build",
}
# What fans out, or only reads: the default queue, any number of worker slots.
FAN_OUT = {
    "flexbench_reference": "fetch",
    "flexbench_pledge": "fetch",
    "flexbench_publications": "fetch",
}
RUN_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def nation(tmp_path_factory):
    """The synthetic nation, served on loopback for the whole module, and its run settings."""
    root = tmp_path_factory.mktemp("served")
    port = _free_port()
    made = demo.generate(root, f"http://127.0.0.1:{port}", n_trusts=N_TRUSTS)
    data_dir = tmp_path_factory.mktemp("flexbench_data")
    sources = data_dir / "sources.yml"
    sources.write_text(yaml.safe_dump(made["sources"], sort_keys=False))
    run_settings = settings.load(sources=sources, warehouse=data_dir / "flexbench.duckdb")
    with demo.serve(root, port):
        yield made, run_settings


@pytest.fixture(scope="module")
def cluster(airflow_cluster, nation):
    _, s = nation
    env = {
        # What docker-compose.yml gives every Airflow service: the settings loader's variables.
        "FLEXBENCH_WAREHOUSE": str(s.warehouse_path),
        "FLEXBENCH_DATA_DIR": str(s.data_dir),
        "FLEXBENCH_SOURCES": str(s.sources_path),
        "FLEXBENCH_ALLOW_LOCAL_URLS": "1",
        # The workers run in this virtualenv; the project must import wherever they start.
        "PYTHONPATH": str(PROJECT_ROOT),
        "GX_ANALYTICS_ENABLED": "false",
        # The test triggers every run itself, in order, with its conf: no cron runs (the DAGs
        # are @monthly/@daily, catchup off) and no asset-triggered runs beside them.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    return airflow_cluster(DAGS, env)


@pytest.fixture(scope="module")
def runs(cluster, nation):
    """Trigger the four DAGs in order, each after the previous one succeeded."""
    _, s = nation
    conf = {**s.as_conf(), "as_of": AS_OF}
    done: dict[str, tuple[str, str]] = {}
    seconds: dict[str, float] = {}
    for dag_id in DAG_ORDER:
        run_id = cluster.trigger(dag_id, conf=conf)
        state = cluster.wait(dag_id, run_id, timeout=RUN_TIMEOUT_S)
        done[dag_id] = (run_id, state)
        seconds[dag_id] = round(cluster.timings["last_run"], 1)
        if state != "success":
            break
    print(f"\ncluster timings (s): {cluster.timings}; runs (s): {seconds}")
    durations = cluster.query(
        "select dag_id, task_id, count(*), round(sum(duration)::numeric, 2)::float"
        " from task_instance group by dag_id, task_id order by dag_id, task_id"
    )
    print("task seconds (task instances, summed duration):", durations)
    return done


def test_the_four_dags_succeed_in_order_on_the_celery_executor(cluster, runs):
    for dag_id in DAG_ORDER:
        assert dag_id in runs, f"{dag_id} was not run: an earlier DAG failed ({runs})"
        run_id, state = runs[dag_id]
        assert state == "success", (dag_id, cluster.task_states(dag_id, run_id))


def test_the_benchmark_mart_has_every_trust_of_the_population_with_data(nation, runs):
    made, s = nation
    assert runs["flexbench_benchmark"][1] == "success"
    import warehouse

    con = warehouse.connect(s.warehouse_path, read_only=True)
    try:
        rows = con.execute(
            "select org_code, has_data, decided, as_of from marts.trust_benchmark"
        ).fetchall()
    finally:
        con.close()

    truth = made["nation"].truth
    population = set(truth.loc[truth["in_benchmark"], "org_code"])
    assert {code for code, *_ in rows} == population
    with_data = {code for code, has_data, *_ in rows if has_data}
    assert with_data, "no trust of the benchmark has data"
    assert all(decided > 0 for code, has_data, decided, _ in rows if has_data)
    assert {str(as_of) for *_, as_of in rows} == {AS_OF}


def test_fetch_and_validate_fan_out_on_the_default_queue_worker(cluster, runs):
    # The publications DAG maps its fetch over registry batches and its validation over
    # groups of the files with new content.
    for dag_id, task_id in FAN_OUT.items():
        run_id, _ = runs[dag_id]
        queues = cluster.task_queues(dag_id, run_id)
        assert queues[task_id] == ("default", "default_pool"), (dag_id, task_id)
        assert cluster.workers_that_ran(dag_id, run_id, task_id) == {"celery-worker"}
    run_id, _ = runs["flexbench_publications"]
    states = cluster.task_states("flexbench_publications", run_id)
    for task_id in ("fetch", "validate"):
        assert [t for t in states if t.startswith(f"{task_id}[")], f"{task_id} was not mapped"
        queues = cluster.task_queues("flexbench_publications", run_id)
        assert queues[task_id] == ("default", "default_pool"), task_id


def test_every_warehouse_writer_runs_on_the_duckdb_queue_in_the_one_slot_pool(cluster, runs):
    for dag_id, task_id in WAREHOUSE_WRITERS.items():
        run_id, _ = runs[dag_id]
        queues = cluster.task_queues(dag_id, run_id)
        assert queues[task_id] == ("duckdb", "duckdb_writer"), (dag_id, task_id)
        assert cluster.workers_that_ran(dag_id, run_id, task_id) == {"celery-worker-duckdb"}
    slots = cluster.query("select slots from slot_pool where pool = 'duckdb_writer'")
    assert slots == [(1,)]


def test_each_worker_imports_the_task_libraries_once_before_its_tasks(cluster, runs):
    # Both workers import flexbench.preload as they start (flexbench.celery_config), before
    # forking their pool: the tasks are forked with Great Expectations, pandas and DuckDB in.
    for name in ("celery-worker", "celery-worker-duckdb"):
        log = (cluster.home / f"{name}.log").read_text(errors="replace")
        assert log.count("preloaded for this worker's tasks in") == 1, cluster.log_tail(name)
    run_id, _ = runs["flexbench_publications"]
    log = cluster.task_log("flexbench_publications", run_id, "validate", chars=200_000)
    assert "imported by the worker before this task (flexbench.preload)" in log, log[-3000:]
    assert "imported by this task" not in log


def test_the_admin_user_logs_in_to_the_api_server_and_a_wrong_password_is_refused(cluster):
    dag = cluster.api_get("/api/v2/dags/flexbench_benchmark")

    assert dag["dag_id"] == "flexbench_benchmark"
    with pytest.raises(urllib.error.HTTPError) as refused:
        cluster.api_token(password="not-the-password")
    assert refused.value.code == 401
