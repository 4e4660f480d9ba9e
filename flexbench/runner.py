"""Run the four DAGs through Airflow, in-process (the embedded default behind `flexbench run`).

Airflow gets a project-local home (``var/airflow``, or ``FLEXBENCH_AIRFLOW_HOME``) with a SQLite
metadata DB, migrated on first use; the one-slot warehouse pool is created; then each DAG is
run with ``dag.test()`` in order — reference, pledge, publications, benchmark — so every run is
a real DAG run in the metadata DB (``airflow dags list-runs``, and ``flexbench ui``). Every DAG
runs even when an earlier one failed: the others work on the data they have, and the command
fails at the end naming each failed DAG.

A run's logical date is its as-of date; its start and end times are the real ones. Each task's
log is written where Airflow's log reader looks for it
(``<airflow home>/logs/dag_id=…/run_id=…/task_id=…/attempt=N.log``), so the UI shows it; the
whole run's output also goes to ``<airflow home>/logs/flexbench-run-*.log``. The terminal gets
one line per DAG.

``dag.test()`` runs one task at a time, so the publications DAG's validation is planned as one
task that shares its groups between worker processes, one per core (``flexbench.handoff``),
not as one mapped task per group run one after another.

In-process runs do not retry failed tasks (Airflow would wait out the retry delay): HTTP
fetches already retry with backoff, and a failed run is simply run again.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from flexbench import handoff
from flexbench.settings import PROJECT_ROOT, Settings

DAG_ORDER = (
    "flexbench_reference",
    "flexbench_pledge",
    "flexbench_publications",
    "flexbench_benchmark",
)


class RunError(RuntimeError):
    """A DAG run failed; the message names the DAG, the task and why."""


class RunsFailed(RunError):
    """One or more DAG runs failed (the others ran); the message names each failure."""

    def __init__(self, failures: list[str], results: list[dict]):
        self.failures = failures
        self.results = results
        super().__init__(
            f"{len(failures)} of {len(results)} DAG runs failed: " + "; ".join(failures)
        )


def airflow_home() -> Path:
    return Path(os.environ.get("FLEXBENCH_AIRFLOW_HOME") or PROJECT_ROOT / "var" / "airflow")


def configure_airflow_env(home: Path | None = None) -> dict[str, str]:
    """Set the environment Airflow reads at import (must run before airflow is imported)."""
    home = (home or airflow_home()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    secret_file = home / "jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Wait up to a minute for a lock rather than fail: with `flexbench ui`, four processes
        # share this SQLite file.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text().strip(),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONWARNINGS": "ignore",
    }
    os.environ.update(env)
    return env


def _migrate_if_needed(home: Path, log) -> None:
    import importlib.metadata

    stamp = home / f".migrated-{importlib.metadata.version('apache-airflow-core')}"
    if stamp.exists() and (home / "airflow.db").exists():
        return
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    if proc.returncode != 0:
        raise RunError(f"could not prepare Airflow's metadata DB in {home} (see the run log)")
    stamp.touch()


def prepare(home: Path, log) -> None:
    """Make the metadata DB ready: migrated, with the one-slot warehouse pool. Airflow must be
    configured (:func:`configure_airflow_env`) first; Airflow's output goes to ``log``."""
    _migrate_if_needed(home, log)
    import sqlite3

    # Write-ahead logging: readers (the UI) and the one writer at a time no longer block each
    # other. The setting stays with the file.
    with sqlite3.connect(home / "airflow.db", timeout=60) as db:
        db.execute("pragma journal_mode=wal")
    from airflow.models.pool import Pool

    from flexbench.dag_support import WAREHOUSE_POOL

    Pool.create_or_update_pool(
        WAREHOUSE_POOL,
        slots=1,
        description="the one DuckDB warehouse writer",
        include_deferred=False,
    )


@contextmanager
def _to_log(log_path: Path):
    """Send everything written to stdout/stderr (Airflow's logs, task output) to the run log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    with open(log_path, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)


def _failure_reason(log_path: Path, start: int) -> str:
    """The last exception line a failed task wrote to the run log."""
    with open(log_path, "rb") as fh:
        fh.seek(start)
        text = fh.read().decode("utf-8", "replace")
    candidates = []
    for line in text.splitlines():
        stripped = line.strip()
        for marker in ("Error: ", "Exception: "):
            head, sep, _ = stripped.partition(marker)
            if sep and head and " " not in head and head[0].isalpha():
                candidates.append(stripped)
    if not candidates:
        return "see the run log"
    return candidates[-1][:400]


def task_log_path(
    logs: Path, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> Path:
    """Where Airflow's log reader finds a task's log (its default ``log_filename_template``)."""
    path = logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        path = path / f"map_index={map_index}"
    return path / f"attempt={try_number}.log"


@contextmanager
def _task_logs(logs: Path, run_log: Path):
    """While ``dag.test()`` runs, write each task's output to its own log file (then copy it
    to the run log), as a scheduler's worker would."""
    from airflow.sdk.definitions import dag as sdk_dag

    original = sdk_dag._run_task

    def run_task_with_log(*, ti, task, **kwargs):
        path = task_log_path(logs, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _to_log(path):
                return original(ti=ti, task=task, **kwargs)
        finally:
            with open(run_log, "ab") as out:
                out.write(path.read_bytes())

    sdk_dag._run_task = run_task_with_log
    try:
        yield
    finally:
        sdk_dag._run_task = original


def _record_real_start(dag_run, started) -> None:
    """``dag.test()`` gives a run its logical date as start date; put the real one back."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.get(DagRun, dag_run.id)
        if row is not None:
            row.start_date = started


def run_all(
    settings: Settings, as_of: date, dag_ids=DAG_ORDER, echo=print, quiet: bool = False
) -> list[dict]:
    """Run every DAG of ``dag_ids`` in order through Airflow, whatever the earlier ones did.

    Raises :class:`RunsFailed`, naming each failed DAG, when any run failed.
    """
    home = airflow_home().resolve()
    configure_airflow_env(home)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"flexbench-run-{time.strftime('%Y%m%dT%H%M%S')}.log"
    say = (lambda *a, **k: None) if quiet else echo
    say(f"Airflow home {home}; run log {log_path}")
    results = []
    with _to_log(log_path):
        with open(log_path, "ab") as log:
            prepare(home, log)
        import pendulum
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        first = next(iter(bag.import_errors.items()))
        raise RunError(f"DAG file {first[0]} does not import: {first[1].strip().splitlines()[-1]}")
    conf = {**settings.as_conf(), "as_of": as_of.isoformat()}
    logical = pendulum.datetime(as_of.year, as_of.month, as_of.day, tz="UTC")
    failures = []
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        if dag is None:
            raise RunError(f"DAG {dag_id} not found in {PROJECT_ROOT / 'dags'}")
        for t in dag.tasks:
            t.retries = 0
        say(f"  {dag_id:<26} running …", end="\r" if sys.stdout.isatty() else "\n")
        started = time.monotonic()
        started_at = pendulum.now("UTC")
        offset = log_path.stat().st_size
        # dag.test() runs the tasks one after another in this process: the publications
        # DAG's validation is then one task on every core (flexbench/handoff.py).
        with _to_log(log_path), _task_logs(logs, log_path), handoff.tasks_one_at_a_time():
            dag_run = dag.test(logical_date=logical, run_after=started_at, run_conf=conf)
        took = time.monotonic() - started
        if dag_run is not None:
            _record_real_start(dag_run, started_at)
        state = str(getattr(dag_run, "state", "failed"))
        failed = (
            [ti.task_id for ti in dag_run.get_task_instances() if str(ti.state) != "success"]
            if dag_run
            else []
        )
        results.append(
            {
                "dag_id": dag_id,
                "state": state,
                "seconds": round(took, 1),
                "run_id": getattr(dag_run, "run_id", None),
            }
        )
        if not state.endswith("success"):
            reason = _failure_reason(log_path, offset)
            say(f"  {dag_id:<26} FAILED  {took:6.1f}s")
            failures.append(
                f"{dag_id} failed in task {', '.join(sorted(set(failed))) or '?'}: {reason}"
            )
            continue
        say(f"  {dag_id:<26} success {took:6.1f}s")
    if failures:
        raise RunsFailed(failures, results)
    return results
