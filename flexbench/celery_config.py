"""The Celery settings of flexbench's Airflow deployment: Airflow's own, and one addition.

Every worker imports :mod:`flexbench.preload` when it starts, before it forks its pool, so the
tasks it runs (each a process forked from the pool) start with Great Expectations, pandas,
pyarrow, DuckDB and flexbench's task modules already imported, instead of each task importing
them again (docs/deploy.md, "Workers import once").

Airflow reads it from the setting ``[celery] celery_config_options``, here
``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=flexbench.celery_config.CELERY_CONFIG``
(docker-compose.yml sets it for every service, so the scheduler's Celery app and the workers'
have the same settings; only a worker imports Celery's ``imports``).
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

from flexbench.handoff import PRELOAD_MODULE

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), PRELOAD_MODULE),
}
