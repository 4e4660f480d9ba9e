"""
### Benchmark build

Rebuilds the benchmark from the staging tables: the window, the population of English trusts,
peer groups, each trust's measures with their intervals and ranks, and the marts users read
(`marts.trust_benchmark`, `marts.policy_practice_gaps`, …), all in one transaction: a failed
build leaves the previous benchmark in place. Then it publishes the static site (`data/site/`)
and writes each mart as Parquet beside the warehouse (`data/parquet/marts/<table>.parquet`).

Params: the sources file, the warehouse and the as-of date (empty: the logical date of a
scheduled run, else the day it runs).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from flexbench.dag_support import (
    BENCHMARK,
    DEFAULT_ARGS,
    PUBLICATIONS,
    REFERENCE,
    START_DATE,
    WAREHOUSE_POOL,
    WAREHOUSE_QUEUE,
    dag_params,
    run_as_of,
    run_settings,
)


@dag(
    dag_id="flexbench_benchmark",
    schedule=(REFERENCE | PUBLICATIONS),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flexbench", "benchmark"],
    params=dag_params(),
    doc_md=__doc__,
)
def flexbench_benchmark():
    @task(pool=WAREHOUSE_POOL, queue=WAREHOUSE_QUEUE, outlets=[BENCHMARK], multiple_outputs=False)
    def build(**context) -> dict:
        from flexbench.pipeline import benchmark

        return benchmark.build(run_settings(context), run_as_of(context))

    # Reads the warehouse: in the writers' pool so it never meets a writer mid-transaction.
    @task(pool=WAREHOUSE_POOL, queue=WAREHOUSE_QUEUE)
    def publish_site(built: dict, **context) -> str:
        from flexbench.site import build_site

        s = run_settings(context)
        return str(build_site(s.warehouse_path, s.data_dir / "site"))

    # Reads the warehouse too, so it queues in the writers' pool as well.
    @task(pool=WAREHOUSE_POOL, queue=WAREHOUSE_QUEUE, multiple_outputs=False)
    def export_parquet(built: dict, **context) -> dict:
        from flexbench.pipeline import parquet

        return parquet.export_marts(run_settings(context).warehouse_path)

    built = build()
    publish_site(built)
    export_parquet(built)


flexbench_benchmark()
