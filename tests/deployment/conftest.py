"""Real-process Airflow harness: PostgreSQL metadata DB, Redis broker, Celery workers.

The production deployment (``docker-compose.yml``) runs Airflow's components as separate
services. No Docker engine runs on the development machines, but PostgreSQL and Redis do, on
loopback. This harness starts the same components as real processes against them, so a test
proves that the project's DAGs run on the CeleryExecutor exactly as they will in compose:

- ``deploy/airflow-init.sh`` (the compose file's airflow-init) on a fresh PostgreSQL database,
  dropped at the end: ``airflow db migrate``, the ``duckdb_writer`` pool with one slot
  (DuckDB has one writer), the ``admin`` user's password;
- ``airflow api-server`` (which also serves the Execution API the workers call),
  ``airflow scheduler``, ``airflow dag-processor``, a Celery worker on the ``default`` queue
  and a one-process Celery worker on the ``duckdb`` queue, all sharing one JWT secret and one
  fernet key. (No triggerer: nothing here defers.)

Use the ``airflow_cluster`` fixture::

    def test_x(airflow_cluster, tmp_path):
        cluster = airflow_cluster(dags_folder, {"FLEXBENCH_WAREHOUSE": str(tmp_path / "w.duckdb")})
        run_id = cluster.trigger("my_dag", conf={"as_of": "2025-03-31"})
        assert cluster.wait("my_dag", run_id, timeout=300) == "success"

Clusters are cached per test module by ``(dags_folder, env_extra)``, so several tests of one
module share one start-up. Every process is killed, and the database and Redis keys removed,
when the module finishes. The fixture skips, saying why, when PostgreSQL or Redis is not
reachable or the Celery provider (or psycopg2/asyncpg) is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

POSTGRES_HOST = os.environ.get("FLEXBENCH_TEST_PGHOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("FLEXBENCH_TEST_PGPORT", "5432"))
POSTGRES_USER = os.environ.get("FLEXBENCH_TEST_PGUSER", "postgres")
REDIS_HOST = os.environ.get("FLEXBENCH_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("FLEXBENCH_TEST_REDIS_PORT", "6379"))
# A Redis database number kept for these tests; every cluster also prefixes its keys with its
# own id, so two test sessions on one machine never take each other's Celery messages.
REDIS_DB = int(os.environ.get("FLEXBENCH_TEST_REDIS_DB", "11"))

WAREHOUSE_POOL = "duckdb_writer"
WAREHOUSE_QUEUE = "duckdb"
DEFAULT_QUEUE = "default"
STARTUP_TIMEOUT_S = 120.0
ADMIN_USER = "admin"

# The executables of the virtualenv running pytest (the project's .venv).
_BIN = Path(sys.executable).parent
AIRFLOW = str(_BIN / "airflow")
INIT_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "airflow-init.sh"


def _port_is_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deployment_skip_reason() -> str | None:
    """Say why the real-process deployment test cannot run here, or None when it can."""
    try:
        import airflow.providers.celery  # noqa: F401
    except ImportError:
        return "apache-airflow-providers-celery is not installed (needed for CeleryExecutor)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (needed for the PostgreSQL metadata DB)"
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (Airflow 3's api-server needs it for PostgreSQL)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis client is not installed (needed for the Celery broker)"
    if not _port_is_open(POSTGRES_HOST, POSTGRES_PORT):
        return f"PostgreSQL is not reachable on {POSTGRES_HOST}:{POSTGRES_PORT}"
    if not _port_is_open(REDIS_HOST, REDIS_PORT):
        return f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}"
    return None


def _pg_connect(dbname: str):
    import psycopg2

    conn = psycopg2.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user=POSTGRES_USER, dbname=dbname, connect_timeout=5
    )
    conn.autocommit = True
    return conn


@dataclass
class AirflowCluster:
    """A running set of Airflow components on loopback, driven from a test.

    Attributes
    ----------
    home : Path
        The temporary AIRFLOW_HOME (logs are under ``home / "logs"``, each component's
        output under ``home / "<component>.log"``).
    env : dict
        The environment every component and CLI call runs with.
    api_url : str
        Base URL of the api-server (the Execution API is at ``api_url + "/execution/"``).
    database : str
        Name of the PostgreSQL metadata database of this cluster.
    timings : dict
        Seconds taken by ``init``, ``startup`` (migrate + all components ready) and
        ``last_run`` (the last run waited for, from trigger to its final state).
    """

    home: Path
    env: dict[str, str]
    api_url: str
    database: str
    redis_prefix: str
    timings: dict[str, float] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _unpaused: set[str] = field(default_factory=set)
    _triggered_at: dict[str, float] = field(default_factory=dict)

    # -- commands -------------------------------------------------------------------------
    def airflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command on this cluster; raise with its output on failure."""
        result = subprocess.run(
            [AIRFLOW, *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    @property
    def admin_password(self) -> str:
        return self.env["FLEXBENCH_ADMIN_PASSWORD"]

    def api_token(self, username: str = ADMIN_USER, password: str | None = None) -> str:
        """Log in to the api-server (SimpleAuthManager) and return the bearer token."""
        body = json.dumps(
            {"username": username, "password": password or self.admin_password}
        ).encode()
        request = urllib.request.Request(
            f"{self.api_url}/auth/token",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["access_token"]

    def api_get(self, path: str, token: str | None = None) -> dict:
        """GET a public REST API path (e.g. ``/api/v2/dags``) as the admin user."""
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            headers={"Authorization": f"Bearer {token or self.api_token()}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def api_send(self, method: str, path: str, body: dict) -> dict:
        """PATCH/POST a public REST API path as the admin user; raise with the reply on error."""
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.api_token()}",
                "Content-Type": "application/json",
            },
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"{method} {path} failed ({exc.code}): {exc.read().decode(errors='replace')}"
            ) from None

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read the metadata database (dag runs, task instances) directly."""
        conn = _pg_connect(self.database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has parsed and serialised ``dag_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            rows = self.query("select 1 from serialized_dag where dag_id = %s", (dag_id,))
            if rows:
                return
            time.sleep(1)
        errors = self.query("select filename, stacktrace from import_error")
        raise TimeoutError(
            f"DAG {dag_id!r} was not parsed within {timeout:.0f} s; import errors: {errors}\n"
            + self.log_tail("dag-processor")
        )

    def trigger(
        self, dag_id: str, conf: dict | None = None, logical_date: str | None = None
    ) -> str:
        """Unpause ``dag_id`` (once) and trigger a run of it; return the run id.

        Parameters
        ----------
        dag_id : str
            The DAG to run; waits for the dag-processor to have parsed it first.
        conf : dict, optional
            The run's ``conf`` (``dag_run.conf`` / params).
        logical_date : str, optional
            ISO date-time of the run (for backfill-like reruns); none means "now".
        """
        self.wait_for_dag(dag_id)
        # Through the REST API, as a user or an external scheduler would: each `airflow` CLI
        # call costs a full Airflow import (5-15 s), the API a round trip.
        if dag_id not in self._unpaused:
            self.api_send("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
            self._unpaused.add(dag_id)
        run_id = f"deploytest__{uuid.uuid4().hex[:12]}"
        self._triggered_at[run_id] = time.monotonic()
        self.api_send(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}},
        )
        return run_id

    def wait(self, dag_id: str, run_id: str, timeout: float = 300, fail_fast: bool = True) -> str:
        """Wait for a run to finish; return its final state (``success`` or ``failed``).

        Raises ``TimeoutError`` (with the task states and component log tails) when the run
        is still going after ``timeout`` seconds, or ``RuntimeError`` if a component died.
        With ``fail_fast`` (the default), a task that fails or waits for a retry (the
        project's DAGs retry after minutes) ends the wait at once: ``RuntimeError`` with that
        task's log.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            rows = self.query(
                "select state from dag_run where dag_id = %s and run_id = %s", (dag_id, run_id)
            )
            if rows and rows[0][0] in ("success", "failed"):
                if run_id in self._triggered_at:
                    self.timings["last_run"] = time.monotonic() - self._triggered_at[run_id]
                return rows[0][0]
            if fail_fast:
                states = self.task_states(dag_id, run_id)
                broken = [t for t, s in states.items() if s in ("failed", "up_for_retry")]
                if broken:
                    task_id = broken[0].split("[", 1)[0]
                    raise RuntimeError(
                        f"{dag_id} run {run_id}: task {broken[0]} is {states[broken[0]]}; "
                        f"task states: {states}\n" + self.task_log(dag_id, run_id, task_id)
                    )
            time.sleep(1)
        raise TimeoutError(
            f"{dag_id} run {run_id} did not finish within {timeout:.0f} s; "
            f"task states: {self.task_states(dag_id, run_id)}\n"
            + "\n".join(self.log_tail(name) for name in self.processes)
        )

    def task_log(self, dag_id: str, run_id: str, task_id: str, chars: int = 4000) -> str:
        """The end of the task log(s) of one task of one run (every map index and attempt)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        parts = []
        for path in sorted(folder.rglob("*.log")) if folder.exists() else []:
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.relative_to(self.home)} ---\n{text[-chars:]}")
        return "\n".join(parts) or f"(no task log under {folder})"

    def workers_that_ran(self, dag_id: str, run_id: str, task_id: str) -> set[str]:
        """Names of the Celery worker processes whose log shows they executed ``task_id`` of
        this run (the Celery executor logs every workload it executes, with its task ids)."""
        needle = (f"task_id='{task_id}'", f"dag_id='{dag_id}'", f"run_id='{run_id}'")
        found = set()
        for name in self.processes:
            if not name.startswith("celery-worker"):
                continue
            for line in (self.home / f"{name}.log").read_text(errors="replace").splitlines():
                if "Executing workload in Celery" in line and all(n in line for n in needle):
                    found.add(name)
        return found

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Map ``task_id`` (``task_id[map_index]`` when mapped) to state for one run."""
        rows = self.query(
            "select task_id, map_index, state from task_instance"
            " where dag_id = %s and run_id = %s order by task_id, map_index",
            (dag_id, run_id),
        )
        return {(t if m < 0 else f"{t}[{m}]"): s for t, m, s in rows}

    def task_queues(self, dag_id: str, run_id: str) -> dict[str, tuple[str, str]]:
        """Map ``task_id`` to ``(queue, pool)`` the task instance ran with."""
        rows = self.query(
            "select task_id, queue, pool from task_instance where dag_id = %s and run_id = %s",
            (dag_id, run_id),
        )
        return {t: (q, p) for t, q, p in rows}

    def log_tail(self, component: str, chars: int = 3000) -> str:
        path = self.home / f"{component}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {component} (last {chars} chars) ---\n{text[-chars:]}"

    # -- lifecycle ------------------------------------------------------------------------
    def _start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [AIRFLOW, *args],
            env=self.env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills its children too
        )
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with {proc.returncode}\n" + self.log_tail(name)
                )

    def _wait_until(self, what: str, ready: Callable[[], bool], deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            if ready():
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"{what} not ready within {STARTUP_TIMEOUT_S:.0f} s\n"
            + "\n".join(self.log_tail(name) for name in self.processes)
        )

    def _http_ok(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _worker_ready(self, name: str) -> bool:
        text = (self.home / f"{name}.log").read_text(errors="replace")
        return " ready." in text

    def _dag_processor_running(self) -> bool:
        rows = self.query(
            "select 1 from job where job_type = 'DagProcessorJob' and state = 'running'"
        )
        return bool(rows)

    def start(self, worker_concurrency: int = 4) -> None:
        """Migrate the metadata DB, create the pool, start every component, wait until ready."""
        started = time.monotonic()
        # The same one-shot init as the airflow-init service of docker-compose.yml:
        # migrate, the duckdb_writer pool (1 slot), the admin user's password file.
        result = subprocess.run(
            ["bash", str(INIT_SCRIPT)],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{INIT_SCRIPT.name} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        self.timings["init"] = time.monotonic() - started

        scheduler_port = int(self.env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"])
        api_port = self.api_url.rsplit(":", 1)[1]
        self._start("api-server", "api-server", "--host", "127.0.0.1", "--port", api_port,
                    "--workers", "1")  # fmt: skip
        self._start("scheduler", "scheduler")
        self._start("dag-processor", "dag-processor")
        # As in docker-compose.yml: a scalable worker for the default queue (fetch/validate fan
        # out there) and a single-process worker for the warehouse-writer queue. Only the first
        # serves task logs (one log-server port; both write under the same AIRFLOW_HOME).
        for name, queue, concurrency, serve_logs in (
            ("celery-worker", DEFAULT_QUEUE, worker_concurrency, True),
            ("celery-worker-duckdb", WAREHOUSE_QUEUE, 1, False),
        ):
            self._start(
                name,
                "celery", "worker",
                "--queues", queue,
                "--concurrency", str(concurrency),
                "--celery-hostname", f"{name}-{self.redis_prefix}@%h",
                "--without-gossip", "--without-mingle",
                *([] if serve_logs else ["--skip-serve-logs"]),
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        self._wait_until(
            "api-server", lambda: self._http_ok(f"{self.api_url}/api/v2/monitor/health"), deadline
        )
        self._wait_until(
            "scheduler",
            lambda: self._http_ok(f"http://127.0.0.1:{scheduler_port}/health"),
            deadline,
        )
        self._wait_until("dag-processor", self._dag_processor_running, deadline)
        for name in ("celery-worker", "celery-worker-duckdb"):
            self._wait_until(name, lambda name=name: self._worker_ready(name), deadline)
        self.timings["startup"] = time.monotonic() - started

    def stop(self) -> None:
        """Kill every component (and its children); always safe to call."""
        for proc in self.processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.processes.values():
            # The group may outlive its leader (task supervisors, uvicorn workers).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if proc.poll() is None:
                proc.wait(timeout=10)


def _new_database() -> str:
    name = f"flexbench_airflow_test_{secrets.token_hex(6)}"
    conn = _pg_connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute(f'create database "{name}"')
    finally:
        conn.close()
    return name


def _drop_database(name: str) -> None:
    conn = _pg_connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
    finally:
        conn.close()


def _delete_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def cluster_environment(
    home: Path, dags_folder: Path, database: str, redis_prefix: str, api_port: int
) -> dict[str, str]:
    """The environment of every component: the same settings docker-compose.yml gives them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    pg = f"{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            # The admin user, as airflow-init creates it in docker-compose.yml.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "FLEXBENCH_ADMIN_PASSWORD": secrets.token_urlsafe(16),
            # As in docker-compose.yml: the landing zone and reports live under the data dir.
            "FLEXBENCH_DATA_DIR": str(home / "data"),
            "PATH": f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
            # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3: name the driver.
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": redis_prefix,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
            # Free ports, so a cluster never collides with another one on this machine.
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            # A test waits on these loops: make them short.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            # As in docker-compose.yml: workers import flexbench.preload before forking.
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "flexbench.celery_config.CELERY_CONFIG",
        }
    )
    return env


@pytest.fixture(scope="module")
def airflow_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., AirflowCluster]]:
    """Start (or reuse, within the module) a real Airflow cluster on PostgreSQL + Redis.

    Returns a function ``airflow_cluster(dags_folder, env_extra=None)`` giving an
    :class:`AirflowCluster` with ``trigger(dag_id, conf)`` and ``wait(dag_id, run_id, timeout)``.
    ``env_extra`` is added to every component's environment (e.g. ``FLEXBENCH_WAREHOUSE``).
    """
    reason = deployment_skip_reason()
    if reason:
        pytest.skip(f"deployment test skipped: {reason}")

    clusters: dict[tuple, AirflowCluster] = {}
    cleanups: list[Callable[[], None]] = []

    def start(dags_folder: Path | str, env_extra: dict[str, str] | None = None) -> AirflowCluster:
        dags_folder = Path(dags_folder).resolve()
        key = (str(dags_folder), tuple(sorted((env_extra or {}).items())))
        if key in clusters:
            return clusters[key]
        home = tmp_path_factory.mktemp("airflow_home")
        database = _new_database()
        cleanups.append(lambda: _drop_database(database))
        prefix = f"flexbench-test-{secrets.token_hex(4)}:"
        cleanups.append(lambda: _delete_redis_keys(prefix))
        api_port = _free_port()
        env = cluster_environment(home, dags_folder, database, prefix, api_port)
        env.update(env_extra or {})
        cluster = AirflowCluster(
            home=home,
            env=env,
            api_url=f"http://127.0.0.1:{api_port}",
            database=database,
            redis_prefix=prefix.rstrip(":"),
        )
        cleanups.append(cluster.stop)
        cluster.start()
        clusters[key] = cluster
        return cluster

    try:
        yield start
    finally:
        # Stop processes first (they hold DB connections), then drop the DB and Redis keys.
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - clean up the rest regardless
                print(f"deployment cleanup failed: {exc!r}", file=sys.stderr)
