"""
### Trust publications

Fetches every trust's published flexible working data (the registry: the sources file plus
the data URLs of matched pledge sign-ups), lands each file unchanged, validates it against the
Flex Data Standard, and loads accepted files into `staging.publications`. Every file is
recorded in `audit.publication_files`; rejected files get a validation report. The fetch fans
out over batches of the registry; validation over groups of the files whose content is new
(when nothing changed, one task that only records the files; under `flexbench run`, which
runs one task at a time, one task that shares every group between worker processes); the
load is the one warehouse writer. Tasks pass each other file paths and counts, not per-file
records.

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
    # Tasks hand each other files (flexbench/handoff.py): an XCom is a path and counts.
    @task
    def plan_batches(**context) -> list[str]:
        from flexbench import handoff

        return handoff.plan_fetch(run_settings(context), run_id(context))

    @task(multiple_outputs=False)
    def fetch(batch: str, **context) -> dict:
        from flexbench import handoff

        return handoff.fetch(run_settings(context), batch)

    @task
    def plan_validation(fetched: list[dict], **context) -> list[list[str]]:
        from flexbench import handoff

        return handoff.plan_validation(run_settings(context), run_id(context), list(fetched))

    @task(multiple_outputs=False)
    def validate(groups: list[str], **context) -> dict:
        from flexbench import handoff

        return handoff.validate(run_settings(context), groups, run_as_of(context))

    @task(
        pool=WAREHOUSE_POOL, queue=WAREHOUSE_QUEUE, outlets=[PUBLICATIONS], multiple_outputs=False
    )
    def load(validated: list[dict], **context) -> dict:
        from flexbench import handoff

        s = run_settings(context)
        return handoff.load(s, list(validated), run_id(context), run_as_of(context))

    fetched = fetch.expand(batch=plan_batches())
    load(validate.expand(groups=plan_validation(fetched)))


flexbench_publications()
