"""
### Pledge sign-ups

Fetches the "Get Ahead on Flex" sign-up feed (paginated JSON or a CSV export), drops personal
data before anything is landed, validates it, matches sign-ups to ODS trusts (unmatched ones go
to the review list) and loads `staging.pledge_signups` with history. Matched sign-ups' data URLs
join the publications registry.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from flexbench.dag_support import (
    DEFAULT_ARGS,
    PLEDGE,
    START_DATE,
    WAREHOUSE_POOL,
    WAREHOUSE_QUEUE,
    dag_params,
    run_settings,
)


@dag(
    dag_id="flexbench_pledge",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flexbench", "pledge"],
    params=dag_params(),
    doc_md=__doc__,
)
def flexbench_pledge():
    @task(multiple_outputs=False)
    def fetch(**context) -> dict:
        from flexbench.pipeline import pledge

        return pledge.fetch(run_settings(context))

    @task(pool=WAREHOUSE_POOL, queue=WAREHOUSE_QUEUE, outlets=[PLEDGE], multiple_outputs=False)
    def load(fetched: dict, **context) -> dict:
        from flexbench.pipeline import pledge

        return pledge.load(run_settings(context), fetched)

    load(fetch())


flexbench_pledge()
