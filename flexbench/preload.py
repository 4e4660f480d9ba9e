"""What flexbench's Airflow tasks import, imported once by a Celery worker before it forks.

Under the CeleryExecutor each task instance runs in a process forked from one of the worker's
pool processes (Airflow's task supervisor forks on Linux), and the pool processes are forked
from the worker. A module the worker imported before forking is in every task at no cost; a
module it did not import, every task imports afresh. Great Expectations alone is about 2.5 s
of CPU, which every validate task of every run paid, and pandas, pyarrow and DuckDB most of
another second for every task.

``flexbench.celery_config.CELERY_CONFIG`` names this module in Celery's ``imports``, which a
worker imports when it starts, before it forks its pool (docker-compose.yml sets
``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS`` to it). Importing it imports the libraries and
flexbench's task modules and makes this process's Great Expectations context
(``expectations.core.warm_up``); it opens no file, connection or thread. A task can tell
whether its worker preloaded (``flexbench.handoff.worker_preloaded``: this module is in the
task's process without the task importing it); the validate task's log says which.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)

_started = time.perf_counter()
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import duckdb  # noqa: E402
import numpy  # noqa: E402, F401
import pandas  # noqa: E402, F401
import pyarrow  # noqa: E402, F401
import requests  # noqa: E402, F401

import flexbench.handoff  # noqa: E402, F401
import flexbench.pipeline.benchmark  # noqa: E402, F401
import flexbench.pipeline.parquet  # noqa: E402, F401
import flexbench.pipeline.pledge  # noqa: E402, F401
import flexbench.pipeline.publications  # noqa: E402, F401
import flexbench.pipeline.reference  # noqa: E402, F401
import flexbench.site  # noqa: E402, F401
import flexbench.validate  # noqa: E402, F401
import warehouse  # noqa: E402, F401
from expectations import core  # noqa: E402

core.warm_up()  # Great Expectations and its context, once for every task of the worker

#: Seconds the imports took in the worker (logged once, at the worker's start).
SECONDS = round(time.perf_counter() - _started, 2)
log.info(
    "preloaded for this worker's tasks in %.1f s: Great Expectations, pandas, pyarrow, "
    "DuckDB %s and flexbench's task modules",
    SECONDS,
    duckdb.__version__,
)
