"""`flexbench ui`: the Airflow UI on this machine, over the same metadata DB as `flexbench run`.

Starts Airflow's api-server (UI and REST API), scheduler and dag-processor with the project's
Airflow home (``var/airflow``, or ``FLEXBENCH_AIRFLOW_HOME``), the project's ``dags/``,
examples off, one JWT secret and the Execution API at the api-server's own port, so the runs
of `flexbench run` and `make demo` show in it and a triggered run can report back. Everything
listens on 127.0.0.1 only; the scheduler's log server is not started (the api-server reads the
task logs from the same folder). Log in as ``admin``; Airflow's simple auth manager writes the
generated password to ``simple_auth_manager_passwords.json.generated`` in the Airflow home.

The project's DAGs are unpaused (README, "The Airflow UI"). After `flexbench demo`, scheduled
runs read the demo's sources file unless ``FLEXBENCH_SOURCES`` says otherwise. Ctrl-C or
SIGTERM stops every process it started. Each process's output goes to
``<airflow home>/logs/ui-<name>.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from flexbench.runner import DAG_ORDER, RunError, airflow_home, configure_airflow_env, prepare

DEFAULT_PORT = 8080
INSTANCE_NAME = "flexbench (local)"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
#: The processes `flexbench ui` starts (the airflow subcommand and its arguments).
PROCESSES = ("api-server", "scheduler", "dag-processor")
#: Slots of Airflow's default pool locally: fetches and validations, two at a time.
LOCAL_DEFAULT_POOL_SLOTS = 2
MAX_RESTARTS = 3


class UIError(RunError):
    """The UI could not start; the message says why."""


def ui_env(home: Path, port: int) -> dict[str, str]:
    """The environment of every process `flexbench ui` starts (and of this one)."""
    env = configure_airflow_env(home)
    secret_file = home / "api_secret_key"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    url = f"http://127.0.0.1:{port}"
    sources = scheduled_sources()
    if sources is not None:
        env["FLEXBENCH_SOURCES"] = str(sources)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Four task processes at most on a laptop; with the default pool at two slots (see
            # serve()), a warehouse task in the one-slot pool always finds one free.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__INSTANCE_NAME": INSTANCE_NAME,
            "AIRFLOW__API__SECRET_KEY": secret_file.read_text().strip(),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # On a busy laptop with SQLite a task's first call to the Execution API can wait on
            # the database for longer than Airflow's default 5 s.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            # A DAG serialized less than this long ago is not written again, even if it changed:
            # with Airflow's 30 s, the first parse after `flexbench demo` would keep the demo
            # run's parameter defaults. 0: the first parse here writes what it parsed (a DAG is
            # still written only when it changed), and unpause_project_dags waits for it.
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
        }
    )
    os.environ.update(env)
    return env


def scheduled_sources() -> Path | None:
    """The sources file scheduled runs read, when it is not the project's default: the demo's,
    after `flexbench demo` (so scheduled runs never mix real sources into the synthetic
    nation's warehouse). ``FLEXBENCH_SOURCES``, when set, is left as it is."""
    from flexbench import settings

    if os.environ.get("FLEXBENCH_SOURCES"):
        return None
    demo = settings.default_warehouse_path().resolve().parent / "demo" / "sources.yml"
    return demo if demo.exists() else None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _command(name: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "airflow", name]
    if name == "api-server":
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if name == "scheduler":
        # Its log server would listen on every interface; the api-server reads the task logs
        # from the shared logs folder instead.
        cmd += ["--skip-serve-logs"]
    return cmd


def healthy(base_url: str, timeout: float = 5) -> dict:
    """Airflow's health report (``/api/v2/monitor/health``), or {} when it does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/v2/monitor/health", timeout=timeout) as r:
            return json.load(r)
    except (OSError, ValueError):
        return {}


def all_healthy(report: dict) -> bool:
    return all(
        (report.get(part) or {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "dag_processor")
    )


def unpause_project_dags(parsed_since: datetime | None = None) -> list[str]:
    """Unpause the project's DAGs that the metadata DB knows and, with ``parsed_since``, that
    the dag-processor has parsed since then; returns the project's DAGs now unpaused.

    A DAG serialized by an earlier process (``flexbench demo``'s runs) carries that process's
    parameter defaults, the sources file among them: a run the scheduler creates from it would
    read those sources. So `flexbench ui` unpauses a DAG only once its own dag-processor, in the
    UI's environment, has parsed it again.
    """
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(DagModel).filter(DagModel.dag_id.in_(DAG_ORDER)).all()
        for row in rows:
            fresh = parsed_since is None or (
                row.last_parsed_time is not None and row.last_parsed_time >= parsed_since
            )
            if fresh:
                row.is_paused = False
        return sorted(row.dag_id for row in rows if not row.is_paused)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class Processes:
    """The child processes, each in its own process group, stopped together."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env = env
        self.logs = logs
        self.children: dict[str, subprocess.Popen] = {}
        self.retired: list[subprocess.Popen] = []  # replaced by a restart

    def start(self, name: str, cmd: list[str]) -> None:
        if name in self.children:
            self.retired.append(self.children[name])
        log = open(self.logs / f"ui-{name}.log", "ab")
        self.children[name] = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()

    def exited(self) -> list[str]:
        return [n for n, p in self.children.items() if p.poll() is not None]

    def all(self) -> list[subprocess.Popen]:
        return [*self.retired, *self.children.values()]

    def stop(self, grace: float = 30) -> None:
        """SIGTERM each process group, the scheduler first: its running tasks still report
        their end to the api-server, which stops last. SIGKILL what is left after ``grace``."""
        order = {"scheduler": 0, "dag-processor": 1, "api-server": 2}
        names = sorted(self.children, key=lambda n: order.get(n, 1))
        deadline = time.monotonic() + grace
        for proc in self.retired:
            _signal_group(proc, signal.SIGTERM)
        for name in names:
            proc = self.children[name]
            _signal_group(proc, signal.SIGTERM)
            # The scheduler waits for its running tasks; a second SIGTERM tells it not to.
            for wait, again in ((grace / 3, True), (grace, False)):
                try:
                    proc.wait(timeout=max(0.1, min(wait, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    if again:
                        _signal_group(proc, signal.SIGTERM)
        for proc in self.all():
            _signal_group(proc, signal.SIGKILL)  # anything left in the group goes too
            proc.wait()


def serve(port: int = DEFAULT_PORT, echo=print, ready_timeout: float = 180) -> int:
    """Run the UI until Ctrl-C or SIGTERM; returns the exit code."""
    if not _port_free(port):
        raise UIError(f"port {port} on 127.0.0.1 is in use: choose another with --port")
    home = airflow_home().resolve()
    env = ui_env(home, port)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "ui-prepare.log", "ab") as log:
        prepare(home, log)
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        Pool.DEFAULT_POOL_NAME,
        slots=LOCAL_DEFAULT_POOL_SLOTS,
        description="fetch and validate tasks (set by flexbench ui)",
        include_deferred=False,
    )
    base_url = f"http://127.0.0.1:{port}"
    procs = Processes(env, logs)

    stopping = False

    def stop_on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    old_int = signal.signal(signal.SIGINT, stop_on_signal)
    old_term = signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        parsed_since = datetime.now(UTC)
        for name in PROCESSES:
            procs.start(name, _command(name, port))
        echo(f"Starting Airflow ({', '.join(PROCESSES)}) with home {home} …")
        started = time.monotonic()
        announced = False
        unpaused: list[str] = []
        restarts = dict.fromkeys(PROCESSES, 0)
        while not stopping:
            for name in procs.exited():
                # One that stopped (SQLite busy for too long, say) is started again, a few times.
                if restarts[name] >= MAX_RESTARTS:
                    raise UIError(f"airflow {name} keeps stopping (see {logs}/ui-{name}.log)")
                restarts[name] += 1
                echo(f"airflow {name} stopped; starting it again (see {logs}/ui-{name}.log)")
                procs.start(name, _command(name, port))
            if announced and len(unpaused) < len(DAG_ORDER):
                # The DB busy, or the DAGs not parsed yet: next round.
                with contextlib.suppress(Exception):
                    unpaused = unpause_project_dags(parsed_since)
            if not announced:
                report = healthy(base_url)
                if all_healthy(report):
                    # Unpaused only now, so that no task starts before the Execution API
                    # it reports to is up.
                    announced = True
                    with contextlib.suppress(Exception):
                        unpaused = unpause_project_dags(parsed_since)
                    echo(f"Airflow UI:   {base_url}  ({INSTANCE_NAME})")
                    echo(f"Login:        admin, password in {home / PASSWORDS_FILE}")
                    echo(f"Unpaused:     {', '.join(unpaused) or 'none yet (not parsed yet)'}")
                    echo(f"Sources:      {os.environ.get('FLEXBENCH_SOURCES') or 'sources.yml'}")
                    echo(f"Logs:         {logs}/ui-*.log")
                    echo("Stop with Ctrl-C.")
                elif time.monotonic() - started > ready_timeout:
                    raise UIError(
                        f"Airflow was not healthy after {ready_timeout:.0f}s: "
                        f"{report or 'no answer'} (see {logs}/ui-*.log)"
                    )
            time.sleep(1)
        echo("Stopping Airflow …")
        return 0
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        procs.stop()
