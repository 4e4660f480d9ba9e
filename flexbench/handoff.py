"""What the publications DAG's tasks hand each other: files in the data dir, not XComs.

A task's XCom carries a path and a few counts; the per-file records (registry entries, fetch
results, validation outcomes) go to a JSON Lines file under
``data/staged/runs/<run id>/`` (:func:`run_dir`). At national scale a per-file XCom was
thousands of dicts serialised into the metadata DB and read back by the next task; a path is
a few bytes whatever the number of files.

The tasks (``dags/flexbench_publications.py`` calls them):

- :func:`plan_fetch`: the registry in batches, one file each; the paths are mapped over;
- :func:`fetch`: one batch fetched (landing zone), its results written to one file;
- :func:`plan_validation`: the files whose content is new, in groups sized so that each
  validation task pays its fixed cost (its process, the GX import, one GX run per form) once
  for as many files as memory allows (at most ``BATCH_SIZE`` files and ``GROUP_BYTES``
  bytes), and only as many groups as there are files worth a worker
  (``FILES_PER_WORKER``); a refresh where nothing changed
  validates nothing and never imports GX. The files not to validate (unchanged, failed) go
  with the first group, to be recorded;
- :func:`validate`: one group through ``validate_batch``, its outcomes written to one file;
  while the tasks run one after another in one process (:func:`tasks_one_at_a_time`:
  ``flexbench run``, the bench), one task takes every group and shares them between worker
  processes, one per core (``ValidationPool``), instead of one mapped task per group run on
  one core after the other;
- :func:`load`: every outcome file read back, one load.

Standard library only at import: the DAG files import nothing of this at parse time anyway.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The module a Celery worker imports for its tasks before forking its pool
#: (``flexbench.celery_config``; docs/deploy.md, "Workers import once").
PRELOAD_MODULE = "flexbench.preload"


def worker_preloaded() -> bool:
    """True when this process's worker imported :data:`PRELOAD_MODULE` before forking it: the
    module is here though no task imports it."""
    return PRELOAD_MODULE in sys.modules


#: Handoff folders of runs older than this are removed when a new run plans its batches.
KEEP_DAYS = 14

#: True while the DAGs' tasks run one after another in this process (:func:`tasks_one_at_a_time`).
_one_at_a_time = False


@contextmanager
def tasks_one_at_a_time() -> Iterator[None]:
    """While inside, the tasks run one after another in this process, nothing beside them
    (``dag.test()``, :func:`flexbench.runner.run_all`): :func:`plan_validation` then plans
    one validation task for all the groups, which shares them between worker processes. A
    scheduler runs the mapped tasks side by side on its workers' slots instead; one per
    group is right there."""
    global _one_at_a_time
    before, _one_at_a_time = _one_at_a_time, True
    try:
        yield
    finally:
        _one_at_a_time = before


def run_dir(settings, run_id: str) -> Path:
    """``data/staged/runs/<run id>``: the run's handoff files (the run id made safe as a
    folder name)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id or "manual").strip("._") or "manual"
    return settings.data_dir / "staged" / "runs" / safe


def write_records(path: Path, records: list[dict[str, Any]]) -> str:
    """Write ``records`` to ``path`` as JSON Lines, whole or not at all; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, default=str) + "\n")
    os.replace(tmp, path)
    return str(path)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _counts(records: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def _prune(parent: Path, keep_days: float = KEEP_DAYS) -> None:
    if not parent.is_dir():
        return
    cutoff = time.time() - keep_days * 86400
    for folder in parent.iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def plan_fetch(settings, run_id: str) -> list[str]:
    """The registry in batches (``publications.BATCH_SIZE``), one file each; their paths."""
    from flexbench.pipeline import publications

    folder = run_dir(settings, run_id)
    _prune(folder.parent)
    batches = publications.batches(publications.registry(settings), publications.BATCH_SIZE)
    return [write_records(folder / f"batch-{i:04d}.jsonl", b) for i, b in enumerate(batches)]


def fetch(settings, batch_path: str) -> dict[str, Any]:
    """Fetch one batch; its results go to ``fetched-<n>.jsonl`` beside the batch file.
    Returns the path and counts (files, and how many have new content)."""
    from flexbench.pipeline import publications

    entries = read_records(batch_path)
    fetched = publications.fetch_batch(settings, entries)
    path = Path(batch_path).with_name(Path(batch_path).name.replace("batch-", "fetched-"))
    return {
        "fetched": write_records(path, fetched),
        "files": len(fetched),
        "new": sum(f["status"] == "fetched" for f in fetched),
        "statuses": _counts(fetched),
    }


def validation_groups(todo: list[Any], slots: int) -> list[list[Any]]:
    """``todo`` in groups of at most ``BATCH_SIZE`` files and ``GROUP_BYTES`` bytes
    (memory), no more groups than that needs unless there are at least ``FILES_PER_WORKER``
    files for each extra worker slot (up to ``slots``): a group pays one task's fixed cost,
    so small refreshes are one group."""
    from flexbench.pipeline import publications

    if not todo:
        return []
    worth = min(max(1, slots), max(1, len(todo) // publications.FILES_PER_WORKER), len(todo))
    return publications.bounded_groups(todo, worth)


def plan_validation(settings, run_id: str, fetch_results: list[dict[str, Any]]) -> list[list[str]]:
    """The groups to validate, one file each, as the validation tasks take them: one group's
    path per task, or all of them for one task while the tasks run one at a time in this
    process (:func:`tasks_one_at_a_time`). At least one group: the files not to validate
    are recorded by the first group's task."""
    from flexbench.pipeline import publications

    fetched = [r for res in fetch_results for r in read_records(res["fetched"])]
    todo = [f for f in fetched if f["status"] == "fetched"]
    rest = [f for f in fetched if f["status"] != "fetched"]
    groups = validation_groups(todo, publications.validation_workers()) or [[]]
    groups[0] = [*rest, *groups[0]]
    folder = run_dir(settings, run_id)
    paths = [write_records(folder / f"group-{i:04d}.jsonl", g) for i, g in enumerate(groups)]
    return [paths] if _one_at_a_time else [[p] for p in paths]


def validate(settings, group_paths: list[str] | str, today: date) -> dict[str, Any]:
    """Validate the groups of one task (``validate_batch`` each): one in this process, more
    shared between worker processes (``ValidationPool``, one per core); their outcomes, in
    the groups' order, go to one file, ``outcomes-<n>.jsonl`` after the first group."""
    from flexbench.pipeline import publications

    if isinstance(group_paths, str):
        group_paths = [group_paths]
    log.info(
        "Great Expectations, pandas and DuckDB: %s",
        "imported by the worker before this task (flexbench.preload)"
        if worker_preloaded()
        else "imported by this task (a Celery worker can import them once for all its tasks: "
        'docs/deploy.md, "Workers import once")',
    )
    groups = [read_records(p) for p in group_paths]
    if len(groups) == 1:
        outcomes = publications.validate_batch(settings, groups[0], today)
    else:
        workers = min(len(groups), publications.validation_workers())
        per_worker = publications.FILES_PER_WORKER
        with publications.ValidationPool(workers, files_per_worker=per_worker) as pool:
            outcomes = pool.validate_groups(settings, groups, today)
    first = Path(group_paths[0])
    path = first.with_name(first.name.replace("group-", "outcomes-"))
    return {
        "outcomes": write_records(path, outcomes),
        "files": len(outcomes),
        "statuses": _counts(outcomes),
    }


def load(settings, results: list[dict[str, Any]], run_id: str, today: date) -> dict[str, int]:
    """Read every group's outcomes back and load them in one transaction."""
    from flexbench.pipeline import publications

    outcomes = [o for res in results for o in read_records(res["outcomes"])]
    return publications.load(settings, outcomes, run_id, today)
