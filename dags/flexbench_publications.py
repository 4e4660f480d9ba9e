"""
### Trust publications

Fetches every trust's published flexible working data (the registry: the sources file plus
the data URLs of matched pledge sign-ups), lands each file unchanged, validates it against the
Flex Data Standard, and loads accepted files into `staging.publications`. Every file is
recorded in `audit.publication_files`; rejected files get a validation report. Fetch and
validate fan out over batches of the registry; the load is the one warehouse writer.

Runs every day at 06:00 (London) and whenever the pledge sign-ups are updated: a pledge feed
that fails does not stop the publications of the registry being fetched.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from flexbench.dag_support import (
    DEFAULT_ARGS,
    PLEDGE,
    PUBLICATIONS,
    START_DATE,
    WAREHOUSE_POOL,
    WAREHOUSE_QUEUE,
    dag_params,
    run_as_of,
    run_id,
    run_settings,
)


@dag(
    dag_id="flexbench_publications",
    # Its own daily timetable, or as soon as the pledge feed updates: a broken pledge feed
    # does not starve the publications (docs/deploy.md, "Schedules").
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="Europe/London"), assets=PLEDGE
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flexbench", "publications"],
    params=dag_params(),
    doc_md=__doc__,
)
def flexbench_publications():
    @task
    def plan_batches(**context) -> list[list[dict]]:
        from flexbench.pipeline import publications

        return publications.batches(publications.registry(run_settings(context)))

    @task
    def fetch_and_validate(batch: list[dict], **context) -> list[dict]:
        from flexbench.pipeline import publications

        s = run_settings(context)
        fetched = publications.fetch_batch(s, batch)
        return publications.validate_batch(s, fetched, run_as_of(context))

    @task(pool=WAREHOUSE_POOL, queue=WAREHOUSE_QUEUE, outlets=[PUBLICATIONS])
    def load(outcomes: list[list[dict]], **context) -> dict:
        from flexbench.pipeline import publications

        flat = [o for batch in outcomes for o in batch]
        return publications.load(run_settings(context), flat, run_id(context), run_as_of(context))

    load(fetch_and_validate.expand(batch=plan_batches()))


flexbench_publications()
