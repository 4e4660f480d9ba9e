"""What the publications DAG's tasks hand each other (flexbench/handoff.py): paths and
counts in the XComs, the per-file records in files; validation sized by the new content."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
if "warehouse" in sys.modules and getattr(sys.modules["warehouse"], "__file__", None) is None:
    del sys.modules["warehouse"]

from flexbench import handoff  # noqa: E402
from flexbench import settings as settings_mod  # noqa: E402
from flexbench.pipeline import publications  # noqa: E402
from tests.flexbench.test_pipeline_publications import (  # noqa: E402
    TODAY,
    VERSION_1,
    VERSION_2,
    publication,
)

TRUSTS = [f"R{a}{b}" for a in "ABCDEFGH" for b in "AB"]  # 16 trusts


@pytest.fixture
def settings(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FLEXBENCH_FETCH_RETRIES", "1")
    monkeypatch.setenv("FLEXBENCH_FETCH_BACKOFF", "0.01")
    monkeypatch.delenv("FLEXBENCH_DATA_DIR", raising=False)
    for org in TRUSTS:
        server.expect_request(f"/{org}.csv").respond_with_data(publication(org, VERSION_1))
    lines = ["allow_local_urls: true", "publications:"]
    lines += [f"  - {{org_code: {o}, url: '{server.url_for(f'/{o}.csv')}'}}" for o in TRUSTS]
    (tmp_path / "sources.yml").write_text("\n".join(lines) + "\n")
    return settings_mod.load(
        sources=tmp_path / "sources.yml", warehouse=tmp_path / "data" / "flexbench.duckdb"
    )


def dag_run(settings, run_id: str) -> tuple[dict, list]:
    """The DAG's tasks in order, as Airflow calls them; returns the load's counts and every
    XCom the tasks returned."""
    xcoms = []
    batches = handoff.plan_fetch(settings, run_id)
    fetched = [handoff.fetch(settings, b) for b in batches]
    groups = handoff.plan_validation(settings, run_id, fetched)
    validated = [handoff.validate(settings, g, TODAY) for g in groups]
    xcoms += [batches, *fetched, groups, *validated]
    return handoff.load(settings, validated, run_id, TODAY), xcoms


def test_tasks_pass_paths_and_counts_whatever_the_number_of_files(settings, monkeypatch):
    monkeypatch.setattr(publications, "BATCH_SIZE", 5)  # 16 trusts: 4 registry batches
    counts, xcoms = dag_run(settings, "manual__2025-01-15T00:00:00+00:00")
    assert len(xcoms[0]) == 4

    assert counts == {"accepted": 16}
    # No XCom carries a per-file record: each is a path, or a path and counts, small.
    for value in xcoms:
        text = json.dumps(value)
        assert "RAA" not in text and "sha256" not in text, text
        assert len(text) < 1000
    # The per-file records are in the run's folder, under the data dir.
    folder = handoff.run_dir(settings, "manual__2025-01-15T00:00:00+00:00")
    assert folder.parent == settings.data_dir / "staged" / "runs"
    outcomes = [o for f in sorted(folder.glob("outcomes-*.jsonl")) for o in handoff.read_records(f)]
    assert sorted(o["org_code"] for o in outcomes) == sorted(TRUSTS)


def test_a_refresh_validates_only_new_content_in_one_group(settings, server, monkeypatch):
    monkeypatch.setattr(publications, "BATCH_SIZE", 5)
    dag_run(settings, "run-1")
    server.clear()
    for org in TRUSTS:
        version = VERSION_2 if org in ("RAB", "RHB") else VERSION_1
        server.expect_request(f"/{org}.csv").respond_with_data(publication(org, version))

    batches = handoff.plan_fetch(settings, "run-2")
    fetched = [handoff.fetch(settings, b) for b in batches]
    groups = handoff.plan_validation(settings, "run-2", fetched)

    # Two changed files in two registry batches: one validation task, not one per batch;
    # it also records the 14 unchanged files.
    assert len(batches) == 4 and sum(f["new"] for f in fetched) == 2
    assert len(groups) == 1
    validated = [handoff.validate(settings, g, TODAY) for g in groups]
    assert validated[0]["statuses"] == {"accepted": 2, "unchanged": 14}
    assert handoff.load(settings, validated, "run-2", TODAY) == {"accepted": 2, "unchanged": 14}


def test_nothing_new_is_one_task_that_only_records(settings):
    dag_run(settings, "run-1")
    batches = handoff.plan_fetch(settings, "run-2")
    fetched = [handoff.fetch(settings, b) for b in batches]
    groups = handoff.plan_validation(settings, "run-2", fetched)
    assert groups == [[groups[0][0]]]
    assert {r["status"] for r in handoff.read_records(groups[0][0])} == {"unchanged"}


def test_run_one_task_at_a_time_the_validation_is_one_task_on_every_core(
    settings, monkeypatch, tmp_path
):
    # As under `flexbench run` (dag.test(): one task after another in one process): one
    # validation task takes every group and shares them between worker processes; the
    # outcomes, staged files and load are those of one task per group.
    monkeypatch.setattr(publications, "BATCH_SIZE", 5)  # 16 files: 4 groups
    monkeypatch.setattr(publications, "FILES_PER_WORKER", 1)  # both workers take a share
    monkeypatch.setenv("FLEXBENCH_VALIDATE_WORKERS", "2")
    pids = tmp_path / "pids"
    pids.mkdir()
    real = publications.validate_batch

    def noting_the_process(settings, items, today, processed=None):
        (pids / str(os.getpid())).touch()
        return real(settings, items, today, processed)

    monkeypatch.setattr(publications, "validate_batch", noting_the_process)

    def run(run_id: str) -> tuple[list, dict, list]:
        fetched = [handoff.fetch(settings, b) for b in handoff.plan_fetch(settings, run_id)]
        groups = handoff.plan_validation(settings, run_id, fetched)
        validated = [handoff.validate(settings, g, TODAY) for g in groups]
        outcomes = [o for v in validated for o in handoff.read_records(v["outcomes"])]
        return groups, validated, outcomes

    apart, _, apart_outcomes = run("run-apart")
    assert [len(g) for g in apart] == [1, 1, 1, 1]
    assert {p.name for p in pids.iterdir()} == {str(os.getpid())}
    # A second run of the same content would only record it: validate it afresh instead.
    for f in settings.data_dir.glob("landing/_state/*.json"):
        f.unlink()
    for f in (settings.data_dir / "staged" / "publications").iterdir():
        f.unlink()

    with handoff.tasks_one_at_a_time():
        together, validated, outcomes = run("run-together")

    assert [len(g) for g in together] == [4]
    assert len(validated) == 1 and validated[0]["statuses"] == {"accepted": 16}
    assert len(json.dumps(validated)) < 1000
    workers = {p.name for p in pids.iterdir()} - {str(os.getpid())}
    assert len(workers) == 2
    kept = ("org_code", "status", "form", "rows", "reasons", "staged_key", "staged_path")
    assert [{k: o.get(k) for k in kept} for o in outcomes] == [
        {k: o.get(k) for k in kept} for o in apart_outcomes
    ]
    assert handoff.load(settings, validated, "run-together", TODAY) == {"accepted": 16}


@pytest.mark.parametrize(
    ("files", "slots", "sizes"),
    [
        (0, 2, []),
        (1, 2, [1]),
        (96, 2, [96]),  # a 5% refresh at N=10: one group, one fixed cost
        (250, 2, [125, 125]),  # enough for two workers
        (250, 1, [125, 125]),  # over BATCH_SIZE: split for memory whatever the slots
        (1926, 2, [193] * 6 + [192] * 4),  # a full run at N=10: ten groups, none over 200
    ],
)
def test_validation_groups_pay_the_fixed_cost_once_within_the_memory_bound(files, slots, sizes):
    groups = handoff.validation_groups(list(range(files)), slots)
    assert [len(g) for g in groups] == sizes
    assert [x for g in groups for x in g] == list(range(files))
    assert all(len(g) <= publications.BATCH_SIZE for g in groups)


def test_a_process_forked_from_a_preloaded_worker_starts_with_the_task_libraries():
    # What a Celery worker does with flexbench.celery_config: import flexbench.preload, then
    # fork; the forked process (a task) finds Great Expectations, pandas and DuckDB there and
    # its validate task says so. A process that did not preload imports them itself.
    script = (
        "import os, sys\n"
        "from flexbench import handoff\n"
        "before = handoff.worker_preloaded()\n"
        "import flexbench.preload\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = handoff.worker_preloaded() and all(m in sys.modules for m in "
        "('great_expectations', 'pandas', 'duckdb', 'pyarrow', 'flexbench.validate'))\n"
        "    os._exit(0 if ok else 1)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(before, os.waitstatus_to_exitcode(status))\n"
    )
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "PYTHONPATH": _ROOT}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "0"]


def test_the_validate_task_log_says_whether_its_worker_preloaded(tmp_path, caplog, monkeypatch):
    import logging

    monkeypatch.delitem(sys.modules, handoff.PRELOAD_MODULE, raising=False)
    group = tmp_path / "group-0.jsonl"
    handoff.write_records(group, [])
    s = settings_mod.load(warehouse=tmp_path / "w.duckdb")
    with caplog.at_level(logging.INFO, logger="flexbench.handoff"):
        handoff.validate(s, str(group), date(2026, 10, 31))
    assert "imported by this task" in caplog.text
    caplog.clear()
    monkeypatch.setitem(sys.modules, handoff.PRELOAD_MODULE, object())
    with caplog.at_level(logging.INFO, logger="flexbench.handoff"):
        handoff.validate(s, str(group), date(2026, 10, 31))
    assert "imported by the worker before this task" in caplog.text
