"""Test-wide setup: Airflow gets a throwaway home before anything imports it."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT.parent / "shared" / "data" / "reference"

_home = Path(tempfile.mkdtemp(prefix="flexbench-test-airflow-"))
# Each test process removes its own home when it ends (they were left behind in /tmp).
atexit.register(shutil.rmtree, _home, ignore_errors=True)
# A test process started by pytest-xdist inherits the environment of the process that started
# it, home included: each gets a home (and metadata DB) of its own, as every session does.
_OURS = "FLEXBENCH_TEST_AIRFLOW_HOME_SET"
_inherited = os.environ.get(_OURS)
if os.environ.get("PYTEST_XDIST_WORKER") and _inherited == os.environ.get("AIRFLOW_HOME"):
    for _name in ("FLEXBENCH_AIRFLOW_HOME", "AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        os.environ.pop(_name, None)
if "AIRFLOW_HOME" not in os.environ:
    os.environ[_OURS] = str(_home)
os.environ.setdefault("FLEXBENCH_AIRFLOW_HOME", str(_home))
os.environ.setdefault("AIRFLOW_HOME", str(_home))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_home / 'airflow.db'}")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture
def reference_dir() -> Path:
    if not REFERENCE_DIR.exists():
        pytest.skip(f"real reference files not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


# --- builds shared by several modules ---------------------------------------------------------


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    import hashlib

    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out[str(path.relative_to(folder))] = h.hexdigest()
    return out


class SharedBuilds:
    """Builds that several test modules read but never change (a nation's warehouse, the site
    made from it), made once per session in the session's basetemp and keyed on their inputs.

    ``shared_build(name, builder, *args, **kwargs)`` calls ``builder(folder, *args, **kwargs)``
    once for each distinct (name, args, kwargs), in its own folder, and returns what the builder
    returned. The name says what is built; the arguments are the build's inputs, so two
    modules asking for the same name and inputs read the same files.

    The tests only read these files. A test that needs to change one works on a copy: every
    shared folder is checked unchanged (file by file, sha256) at the end of the session, and
    the session fails if a test wrote to one.
    """

    def __init__(self, root: Path):
        self.root = root
        self._built: dict[tuple, tuple[Path, object]] = {}
        self._digests: dict[Path, dict[str, str]] = {}

    def __call__(self, name: str, builder, *args, **kwargs):
        key = (name, repr(args), repr(sorted(kwargs.items())))
        if key not in self._built:
            inputs = "-".join([*map(str, args), *(f"{k}={v}" for k, v in sorted(kwargs.items()))])
            slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{name}-{inputs}" if inputs else name)
            folder = self.root / f"{len(self._built):02d}-{slug[:80]}"
            folder.mkdir(parents=True)
            result = builder(folder, *args, **kwargs)
            self._built[key] = (folder, result)
            self._digests[folder] = _digest(folder)
        return self._built[key][1]

    def changed(self) -> dict[str, list[str]]:
        """The shared folders whose files differ from what their build left, and the files."""
        out = {}
        for folder, before in self._digests.items():
            after = _digest(folder)
            files = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            if files:
                out[folder.name] = files
        return out


@pytest.fixture(scope="session")
def shared_build(tmp_path_factory):
    """See :class:`SharedBuilds`: one build per distinct input for the whole session."""
    builds = SharedBuilds(tmp_path_factory.mktemp("shared", numbered=False))
    yield builds
    changed = builds.changed()
    assert not changed, f"a test wrote to a build other modules share: {changed}"


# --- running in two processes (pytest-xdist: `make test` passes -n 2 when it is installed) ------

#: Modules that read the same shared build run in one process, so it is built once; every
#: other module is a group of its own (its module-scoped fixtures, servers and Airflow
#: homes stay in one process).
SHARED_GROUPS = {
    "tests/docs/test_doc_examples.py": "demo-nation",
    "tests/flexbench/test_disclosure_attack.py": "demo-nation",
    "tests/flexbench/test_disclosure_attack_equity.py": "equity-nation",
    "tests/flexbench/test_site_equity.py": "equity-nation",
    "tests/flexbench/test_site.py": "tiny-site",
    "tests/flexbench/test_site_pages.py": "tiny-site",
    "tests/flexbench/test_extract.py": "tiny-site",
    "tests/flexbench/test_site_browser.py": "tiny-site",
}


def process_group(nodeid: str) -> str:
    """The process group of a test: its module's, or the shared one its module is in."""
    module = nodeid.split("::", 1)[0]
    return SHARED_GROUPS.get(module, module)


#: Groups handed out first, in this order; the rest follow in collection order. The DAG files'
#: parse-time test (a wall-clock bound) runs first, beside pure-Python transform tests rather
#: than an Airflow cluster starting up; then the longest groups, so neither process is left
#: with a long one at the end.
FIRST_GROUPS = [
    "tests/dags/test_dag_integrity.py",
    "tests/transforms/test_publications.py",
    "tests/deployment/test_celery_deployment.py",
    "demo-nation",
    "equity-nation",
    "tests/flexbench/test_ui.py",
    "tests/flexbench/test_end_to_end.py",
]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Whole groups to a process, the FIRST_GROUPS first (pytest-xdist's own `loadgroup` reads
    marks it can no longer attach to a test's id under pytest 9, so it is not used)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return process_group(nodeid)

        def _assign_work_unit(self, node) -> None:
            if not self.ordered:  # the queue is complete at the first hand-out
                self.ordered = True
                rank = {g: i for i, g in enumerate(FIRST_GROUPS)}
                for scope in sorted(self.workqueue, key=lambda g: rank.get(g, len(rank))):
                    self.workqueue.move_to_end(scope)
            super()._assign_work_unit(node)

    config.option.loadscopereorder = False
    return ModuleGroups(config, log)
