"""
### Reference data

Fetches the ODS list of NHS trusts, the NHS Staff Survey detailed spreadsheets and the NHS
Workforce Statistics staff-in-post file from the sources registry, lands them unchanged,
validates them with their GX suites and loads `staging.ods_trusts`, `staging.staff_survey` and
`staging.workforce`. A source that fails keeps its last good data and fails the run, saying why.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from flexbench.dag_support import (
    DEFAULT_ARGS,
    REFERENCE,
    START_DATE,
    WAREHOUSE_POOL,
    WAREHOUSE_QUEUE,
    dag_params,
    run_as_of,
    run_settings,
)


@dag(
    dag_id="flexbench_reference",
    schedule="@monthly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flexbench", "reference"],
    params=dag_params(),
    doc_md=__doc__,
)
def flexbench_reference():
    @task
    def fetch(**context) -> list[dict]:
        from flexbench.pipeline import reference

        return reference.fetch(run_settings(context))

    @task(pool=WAREHOUSE_POOL, queue=WAREHOUSE_QUEUE, outlets=[REFERENCE], multiple_outputs=False)
    def load(fetched: list[dict], **context) -> dict:
        from flexbench.pipeline import reference

        return reference.load(run_settings(context), fetched, run_as_of(context))

    load(fetch())


flexbench_reference()
