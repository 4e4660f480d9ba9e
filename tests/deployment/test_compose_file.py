"""docker-compose.yml, Dockerfile and .env.example: the production deployment, checked as files.

No Docker engine runs on the development machines, so these checks stand in for
`docker compose config`: the file parses, every service is healthchecked, the components get
the image, mounts and settings they need, and no secret is written into the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-worker-duckdb",
    "airflow-triggerer",
    "airflow-init",
)
SECRET_SETTINGS = (
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
    "AIRFLOW__CELERY__RESULT_BACKEND",
)
ENV_REFERENCE = re.compile(r"\$\{[A-Z_]+(:?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_the_compose_file_has_the_official_airflow_3_services(services):
    for name in ("postgres", "redis", *AIRFLOW_SERVICES):
        assert name in services, f"missing service {name}"


@pytest.mark.parametrize(
    "name",
    [
        "postgres",
        "redis",
        *AIRFLOW_SERVICES,
        "flower",
    ],
)
def test_every_service_has_a_healthcheck(services, name):
    test = services[name].get("healthcheck", {}).get("test")
    assert test, f"{name} has no healthcheck"
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_run_the_project_image_built_from_the_dockerfile(services, name):
    service = services[name]
    assert service["build"] == "."
    assert service["image"] == services["airflow-apiserver"]["image"]
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env_of(service)


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_use_celery_postgres_redis_and_the_execution_api(services, name):
    env = env_of(services[name])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+asyncpg://")
    # A bare db+postgresql:// would load psycopg 3 under SQLAlchemy 2.1, which is not installed.
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        "http://airflow-apiserver:8080/execution/"
    )
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["FLEXBENCH_WAREHOUSE"].startswith("/opt/flexbench/data/")
    # Every service the same Celery settings; the workers import flexbench.preload with them.
    assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "flexbench.celery_config.CELERY_CONFIG"


def test_the_celery_settings_are_airflows_with_the_task_libraries_preloaded():
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from flexbench.celery_config import CELERY_CONFIG

    assert {k: v for k, v in CELERY_CONFIG.items() if k != "imports"} == {
        k: v for k, v in DEFAULT_CELERY_CONFIG.items() if k != "imports"
    }
    assert "flexbench.preload" in CELERY_CONFIG["imports"]


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_every_airflow_service_shares_one_jwt_secret_and_fernet_key_from_env(services, name):
    env = env_of(services[name])
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == (
        "${AIRFLOW_JWT_SECRET:?set AIRFLOW_JWT_SECRET in .env}"
    )
    assert env["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW_FERNET_KEY:?")


def test_no_literal_secret_is_written_into_the_compose_file(services):
    for name, service in services.items():
        env = env_of(service)
        for key in (*SECRET_SETTINGS, "POSTGRES_PASSWORD", "FLEXBENCH_ADMIN_PASSWORD"):
            if key not in env:
                continue
            value = env[key]
            # Every secret is, or embeds as its password, a required ${VAR:?...} reference.
            assert ENV_REFERENCE.search(value), f"{name}: {key} is a literal"
            assert ":?" in value, f"{name}: {key} has a default instead of being required"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_the_warehouse_and_landing_zone_are_on_the_host_data_volume(services, name):
    volumes = services[name]["volumes"]
    assert "${FLEXBENCH_HOST_DATA_DIR:-./data}:/opt/flexbench/data" in volumes
    env = env_of(services[name])
    # FLEXBENCH_LANDING_ZONE was never read by anything: the data dir is what counts.
    assert "FLEXBENCH_LANDING_ZONE" not in env


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_the_settings_loader_finds_the_warehouse_landing_zone_and_sources_in_the_mounts(
    services, name, monkeypatch
):
    from flexbench import settings

    env = env_of(services[name])
    for key in ("FLEXBENCH_WAREHOUSE", "FLEXBENCH_DATA_DIR", "FLEXBENCH_SOURCES"):
        assert key in env, f"{name}: {key} not set"
    for key in [k for k in os.environ if k.startswith("FLEXBENCH_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("FLEXBENCH_"):
            monkeypatch.setenv(key, value)

    s = settings.load(require_sources=False)

    data = Path("/opt/flexbench/data")
    assert s.warehouse_path.parent == data
    assert s.landing_dir == data / "landing"
    assert s.reports_dir.is_relative_to(data)
    # Production refuses file:// and loopback URLs unless the operator switches them on.
    assert s.allow_local_urls is False
    mounts = {
        m["target"]: m["source"]
        for m in (re.match(r"^(?P<source>.+?):(?P<target>/[^:]+)(:ro)?$", v)
                  for v in services[name]["volumes"])
    }  # fmt: skip
    assert str(s.sources_path) in mounts, "the sources file is not mounted from the host"


def test_warehouse_writes_have_one_worker_process_on_the_duckdb_queue(services):
    fan_out = services["airflow-worker"]["command"].split()
    writer = services["airflow-worker-duckdb"]["command"].split()

    assert fan_out[:2] == ["celery", "worker"]
    assert fan_out[fan_out.index("--queues") + 1] == "default"
    assert writer[writer.index("--queues") + 1] == "duckdb"
    assert writer[writer.index("--concurrency") + 1] == "1"


def test_airflow_waits_for_healthy_postgres_redis_and_a_finished_init(services):
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully"


def test_init_migrates_creates_the_one_slot_pool_and_the_admin_user(services):
    init = services["airflow-init"]
    script = (ROOT / "deploy" / "airflow-init.sh").read_text()

    assert init["command"] == ["/opt/flexbench/deploy/airflow-init.sh"]
    assert "airflow db migrate" in script
    assert re.search(r"airflow pools set duckdb_writer 1\b", script)
    assert "FLEXBENCH_ADMIN_PASSWORD" in env_of(init)
    assert env_of(init)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"


def test_the_dockerfile_installs_the_project_from_its_own_pinned_files():
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11$", dockerfile, re.MULTILINE)
    assert "requirements.lock" in dockerfile
    assert "deploy/requirements-celery.txt" in dockerfile
    assert re.search(r"pip install .*--no-deps /opt/flexbench", dockerfile)
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in dockerfile


def test_the_docker_build_context_leaves_out_secrets_and_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".venv", "data", ".git"):
        assert entry in ignored


def test_env_example_names_every_variable_compose_requires_and_holds_no_secret(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )

    assert required, "compose requires no variable: secrets would have defaults"
    assert required <= set(example)
    assert all(example[name] == "" for name in required)


def test_make_secrets_fills_every_required_secret_with_a_fresh_value():
    def generate() -> dict[str, str]:
        out = subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "make_secrets.py"), "--stdout"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return dict(
            line.split("=", 1) for line in out.splitlines() if line and not line.startswith("#")
        )

    first, second = generate(), generate()
    text = (ROOT / "docker-compose.yml").read_text()
    for name in set(re.findall(r"\$\{([A-Z_]+):\?", text)):
        assert first[name], f"{name} left empty"
        assert first[name] != second[name], f"{name} is not random"
    assert len(first["AIRFLOW_FERNET_KEY"]) == 44  # 32 bytes, url-safe base64
