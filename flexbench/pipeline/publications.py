"""Trust publications: registry → fetch → validate → load (the publications DAG's tasks).

Fetch and validate work on batches of the registry and can run on many workers; they write
only to the landing zone and to per-file staged results (``data/staged``); the load is the one
task that writes to the warehouse, in one transaction, in the one-slot pool.

Rules (documented in docs/pipeline.md):
- every fetched file is landed unchanged and recorded in ``audit.publication_files``;
- a file whose content (sha256) was already processed for that URL is ``unchanged``: not
  validated or loaded again;
- a rejected or unreachable file never removes a trust's earlier accepted data;
- the newest accepted version of a (trust, period) wins (``staging.publications``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from flexbench.fetch import (
    FetchPolicy,
    FetchResult,
    fetch_to_landing,
    get_bytes,
    landed_state,
    now_utc,
)
from flexbench.pipeline import reference
from flexbench.settings import Settings, env_workers

log = logging.getLogger(__name__)

SOURCE = "publications"
#: Column of a staged Parquet file naming the publication (``<sha256>-<org_code>``) each row
#: comes from: a batch's accepted rows are staged in one file.
STAGED_KEY = "_staged_key"
PLEDGE_REGISTRY_FILE = "registry/pledge_data_urls.csv"
#: A registry entry (``breakdown_url`` in the sources file) in the breakdown form.
BREAKDOWN_FORM = "breakdown"


def policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(allow_local=settings.allow_local_urls)


def registry(settings: Settings) -> list[dict[str, str]]:
    """The publications registry: sources file entries, a registry CSV, and the data_url of
    every matched, current pledge sign-up (written by the pledge DAG). One entry per
    (org_code, url); sources-file entries win over pledge-supplied ones for the same trust."""
    entries: list[dict[str, str]] = []
    spec = settings.sources.get("publications") or []
    if isinstance(spec, dict):
        spec = [spec]
    for item in spec:
        if "registry_csv" in item:
            entries.extend(_read_registry_csv(item["registry_csv"], settings))
        elif item.get("url") and item.get("org_code"):
            entries.append(
                {"org_code": _code(item["org_code"]), "url": item["url"], "origin": "sources"}
            )
        if item.get("breakdown_url") and item.get("org_code"):
            # The breakdown form of the standard (docs/flex-data-standard.md), beside a
            # summary file: counts by equity dimension and group.
            entries.append(
                {
                    "org_code": _code(item["org_code"]),
                    "url": item["breakdown_url"],
                    "origin": "sources",
                    "form": BREAKDOWN_FORM,
                }
            )
    pledge_file = settings.data_dir / PLEDGE_REGISTRY_FILE
    if pledge_file.exists():
        with open(pledge_file, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("org_code") and row.get("url"):
                    entries.append(
                        {"org_code": _code(row["org_code"]), "url": row["url"], "origin": "pledge"}
                    )
    seen_orgs = {e["org_code"] for e in entries if e["origin"] != "pledge"}
    out, seen = [], set()
    for e in entries:
        if e["origin"] == "pledge" and e["org_code"] in seen_orgs:
            continue
        key = (e["org_code"], e["url"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _code(text: str) -> str:
    return "".join(ch for ch in str(text).upper() if ch.isalnum())


def _read_registry_csv(location: str, settings: Settings) -> list[dict[str, str]]:
    if "://" in location:
        _, _, body = get_bytes(location, policy(settings))
    else:
        path = Path(location)
        if not path.is_absolute():
            path = settings.sources_path.parent / path
        body = path.read_bytes()
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig")))
    out = []
    for r in reader:
        if not (r.get("org_code") and r.get("url")):
            continue
        entry = {
            "org_code": _code(r["org_code"]),
            "url": r["url"].strip(),
            "origin": "registry_csv",
        }
        # When the registry says when a file last changed, a refresh need not ask about a
        # file fetched since (fetch_batch); an empty or unreadable value means "ask".
        if (r.get("updated_at") or "").strip():
            entry["updated_at"] = r["updated_at"].strip()
        out.append(entry)
    return out


def parse_updated_at(text: Any) -> datetime | None:
    """A registry's ``updated_at`` as a UTC instant, read so as never to skip a change: an ISO
    8601 time with an offset as written; without one, as UTC (for a UK time, at or after the
    real instant); a date alone as the end of that day (the next midnight UTC). None for
    anything else (the file is then asked about, as without the column)."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def not_changed_since_fetch(landing: Path, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The landed state of ``entry``'s URL when the registry's ``updated_at`` is not newer
    than the last fetch that got or confirmed that copy (so there is nothing to ask); else
    None. No ``updated_at``, an unreadable one, no landed copy, or a state without the time
    of its last fetch: None (ask as always)."""
    updated = parse_updated_at(entry.get("updated_at"))
    if updated is None:
        return None
    state = landed_state(landing, SOURCE, entry["url"])
    if state is None:
        return None
    try:
        confirmed = datetime.fromisoformat(state["confirmed_at"])
    except (TypeError, ValueError):
        return None
    if confirmed.tzinfo is None:
        return None
    return state if updated <= confirmed else None


#: Registry entries per fetch-and-validate task. A task pays a fixed cost (its process, the
#: GX import and one GX run per form, a few seconds), so batches are large; inside a batch
#: ``flexbench.validate.validate_many`` splits the GX runs by rows (MAX_ROWS_PER_RUN), so
#: memory stays bounded whatever the files hold. 200 trusts' files are about 130,000 rows.
BATCH_SIZE = 200

#: Conditional GETs in flight at once in :func:`fetch_batch`. A refresh where little changed
#: is a round of small ``304 Not Modified`` answers, bound by latency, not bandwidth; the
#: HTTP connection pool (:data:`flexbench.fetch.POOL_SIZE`) is at least this large.
FETCH_THREADS = 16


def batches(entries: list[dict[str, str]], size: int = BATCH_SIZE) -> list[list[dict[str, str]]]:
    """Split the registry for fan-out: batched so per-task overhead stays small."""
    return [entries[i : i + size] for i in range(0, len(entries), size)] or [[]]


def fetch_batch(settings: Settings, entries: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Fetch every entry of a batch (I/O-bound: a few at a time); one failure never stops the
    others. Returns one small dict per entry (the fetch result plus org_code)."""
    from concurrent.futures import ThreadPoolExecutor

    pol = policy(settings)

    def one(entry):
        known = not_changed_since_fetch(settings.landing_dir, entry)
        if known is not None:
            # The registry says the file has not changed since it was last fetched: not
            # asked. Reported unchanged with the landed copy; no HTTP status, since nothing
            # was sent. (The load still validates it if the warehouse never processed it.)
            out = {
                **FetchResult(
                    SOURCE,
                    entry["url"],
                    "unchanged",
                    now_utc(),
                    sha256=known["sha256"],
                    size=known.get("size"),
                    path=known["path"],
                    etag=known.get("etag"),
                    last_modified=known.get("last_modified"),
                ).to_dict(),
                "org_code": entry["org_code"],
                "not_asked": True,
            }
            if entry.get("form"):
                out["expected_form"] = entry["form"]
            return out
        try:
            res = fetch_to_landing(SOURCE, entry["url"], settings.landing_dir, pol)
        except Exception as exc:  # noqa: BLE001 - one trust's failure never stops the others
            log.exception("fetching %s failed unexpectedly", entry["url"])
            res = FetchResult(
                SOURCE, entry["url"], "failed", now_utc(), error=f"{entry['url']}: {exc}"
            )
        out = {**res.to_dict(), "org_code": entry["org_code"]}
        if entry.get("form"):
            out["expected_form"] = entry["form"]
        return out

    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        return list(pool.map(one, entries))


def _staged_dir(settings: Settings) -> Path:
    return settings.data_dir / "staged" / SOURCE


def validate_batch(
    settings: Settings, fetched: list[dict[str, Any]], today: date, processed: set | None = None
) -> list[dict[str, Any]]:
    """Validate every newly fetched file of a batch in one GX run per form.

    A file the fetch reports ``unchanged`` (304 Not Modified, or the same sha256 as the last
    fetch of that URL) is not validated again: it stays ``unchanged`` and :func:`load` checks
    that the warehouse has processed that content (validating it there if not). When
    ``processed`` (the (url, sha256) pairs of :func:`processed_files`) is given, an unchanged
    file missing from it is validated here instead.

    Accepted rows are written to one Parquet file per call under ``data/staged/publications/``
    (:func:`_stage`, each file's rows tagged with its key ``<sha256>-<org>``); a rejected
    file gets a validation report (JSON) under ``data/reports/validation/``. Returns the
    outcomes (small dicts) for the load task.
    """
    outcomes, todo = [], []
    for item in fetched:
        if item["status"] == "failed":
            outcomes.append({**item, "status": "fetch_failed", "reasons": item.get("error")})
        elif item["status"] == "unchanged" and (
            processed is None or (item["url"], item["sha256"]) in processed
        ):
            outcomes.append({**item, "status": "unchanged", "reasons": None})
        else:
            todo.append(item)
    breakdown_todo = [i for i in todo if i.get("expected_form") == BREAKDOWN_FORM]
    todo = [i for i in todo if i.get("expected_form") != BREAKDOWN_FORM]
    breakdown_rows: dict[str, Any] = {}
    for item in breakdown_todo:
        outcomes.append(_validate_breakdown(settings, item, today, breakdown_rows))
    if breakdown_rows and not todo:
        paths = _stage(settings, breakdown_rows, prefix="breakdown")
        for out in outcomes:
            if out.get("staged_key") in paths:
                out["breakdown_path"] = paths[out["staged_key"]]
    if todo:
        from flexbench.validate import release_freed_memory

        # The trusts' headcounts from the last reference load (rule
        # "requests-within-headcount"; a trust without one is held to the absolute bound).
        verdicts = _verdicts(todo, today, reference.read_headcounts(settings))
        reports = settings.reports_dir / "validation"
        reports.mkdir(parents=True, exist_ok=True)
        accepted: dict[str, Any] = {}  # staged key -> accepted rows
        requests: dict[str, Any] = {}  # staged key -> an accepted request-level file as read
        for i, item in enumerate(todo):
            verdict = verdicts[i]
            out = {**item, "form": verdict.form}
            if verdict.accepted:
                key = f"{item['sha256']}-{item['org_code']}"
                accepted[key] = verdict.summary
                if verdict.form == "request_level" and verdict.read_frame is not None:
                    requests[key] = verdict.read_frame
                out.update(status="accepted", reasons=None, rows=len(verdict.summary))
                out["staged_key"] = key
            else:
                report = {
                    "org_code": item["org_code"],
                    "url": item["url"],
                    "sha256": item["sha256"],
                    "fetched_at": item["fetched_at"],
                    **verdict.report(),
                }
                rpath = reports / f"{item['org_code']}-{item['sha256'][:16]}.json"
                rpath.write_text(json.dumps(report, indent=2, default=str))
                out.update(
                    status="rejected",
                    reasons="; ".join(verdict.lines()),
                    rows=0,
                    report_path=str(rpath),
                )
            outcomes.append(out)
        paths = _stage(settings, accepted)
        del accepted, verdicts
        release_freed_memory()  # the check frames, before the breakdowns are counted
        breakdown_paths = _stage(
            settings, {**breakdowns(requests, today), **breakdown_rows}, prefix="breakdown"
        )
        for out in outcomes:
            if out.get("staged_key") in paths:
                out["staged_path"] = paths[out["staged_key"]]
            if out.get("staged_key") in breakdown_paths:
                out["breakdown_path"] = breakdown_paths[out["staged_key"]]
    return outcomes


def _validate_breakdown(
    settings: Settings, item: dict[str, Any], today: date, accepted: dict[str, Any]
) -> dict[str, Any]:
    """Check one file in the breakdown form (expectations/breakdown.py); its accepted rows go
    to ``accepted`` under its staged key, a rejected file gets a validation report."""
    from expectations.breakdown import check_breakdown

    data = Path(item["path"]).read_bytes()
    verdict = check_breakdown(data, _file_name(item), item["org_code"], today)
    out = {**item, "form": BREAKDOWN_FORM}
    if verdict.accepted:
        key = f"{item['sha256']}-{item['org_code']}"
        accepted[key] = verdict.rows
        out.update(status="accepted", reasons=None, rows=len(verdict.rows), staged_key=key)
        return out
    reports = settings.reports_dir / "validation"
    reports.mkdir(parents=True, exist_ok=True)
    report = {
        "org_code": item["org_code"],
        "url": item["url"],
        "sha256": item["sha256"],
        "fetched_at": item["fetched_at"],
        "accepted": False,
        "form": BREAKDOWN_FORM,
        "failures": [
            {"rule": f.rule, "column": f.column, "description": f.description,
             "rows": sorted(set(f.rows_for("")))}
            for f in verdict.failures
        ],
    }  # fmt: skip
    rpath = reports / f"{item['org_code']}-{item['sha256'][:16]}.json"
    rpath.write_text(json.dumps(report, indent=2, default=str))
    out.update(status="rejected", reasons="; ".join(verdict.lines()), rows=0,
               report_path=str(rpath))  # fmt: skip
    return out


def breakdowns(requests: dict[str, Any], today: date, period: str = "quarter") -> dict[str, Any]:
    """Counts by equity dimension and group of accepted request-level files (staged key ->
    rows in :data:`transforms.publications.BREAKDOWN_COLUMNS`).

    As for the summary rows (``flexbench.validate``), a request belongs to the period of its
    received_date, and requests of a period not over on ``today`` are left out until it ends
    (docs/methodology.md, "Equity"). The files are counted in one pass: the columns the
    counts read are typed, each distinct value read once in Python
    (:func:`transforms.publications.breakdown_codes`), and DuckDB counts the rows of all the
    files at once (:func:`transforms.publications.request_breakdown_sql`). A file's counts
    are its own, as :func:`transforms.publications.aggregate_request_breakdown` gives them
    for the file alone: a dimension only where the file has its column
    (docs/flex-data-standard.md, "The equality columns"), whatever the other files of the
    group have (in the pass, its rows are given no group of that dimension, where a blank
    cell would read as "Not stated").
    """
    import numpy as np
    import pandas as pd

    from flexbench import validate
    from transforms.publications import (
        BREAKDOWN_COLUMNS,
        BREAKDOWN_INPUT_COLUMNS,
        ROW_COLUMN,
        breakdown_codes,
        breakdown_from_counts,
        coerce_request_level,
        request_breakdown_sql,
    )

    if not requests:
        return {}
    read = {ROW_COLUMN, *BREAKDOWN_INPUT_COLUMNS}
    # Files with the same columns are typed together (coercion works a column at a time).
    shapes: dict[tuple[str, ...], list[str]] = {}
    for k, f in requests.items():
        shapes.setdefault(tuple(f.columns), []).append(k)
    frames, files, has = [], [], []
    for columns, keys in shapes.items():
        fs = [requests[k][[c for c in columns if c in read]] for k in keys]
        whole = pd.concat(fs, ignore_index=True) if len(fs) > 1 else fs[0].reset_index(drop=True)
        frames.append(coerce_request_level(whole, BREAKDOWN_INPUT_COLUMNS))
        files.append(np.repeat(np.array(keys, dtype=object), [len(f) for f in fs]))
        has.append((set(columns), len(whole)))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    # The rows of the files without a column that other files of the group have: no group
    # of its dimension (blank there would read as "Not stated").
    absent = {
        c: np.concatenate([np.full(n, c not in cs) for cs, n in has])
        for c in frame.columns
        if any(c not in cs for cs, _ in has)
    }
    codes = breakdown_codes(frame, np.concatenate(files), absent)
    del frame
    with validate.scratch_duckdb() as con:
        con.register("requests", codes.table)
        counts = con.execute(request_breakdown_sql(codes, today, period)).df()
    out = breakdown_from_counts(counts, codes)
    file = out["file"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, file[1:] != file[:-1]]) if len(file) else []
    ends = [*starts[1:], len(file)]
    table = out[list(BREAKDOWN_COLUMNS)]
    return {
        file[a]: table.iloc[a:b].reset_index(drop=True) for a, b in zip(starts, ends, strict=True)
    }


def _stage(settings: Settings, accepted: dict[str, Any], prefix: str = "batch") -> dict[str, str]:
    """Write a batch's accepted rows to ONE Parquet file, each file's rows tagged with its
    staged key (``<sha256>-<org_code>``); returns key -> path.

    One file per batch, not per publication: converting and writing a small frame costs
    milliseconds each, which at national scale (thousands of files) was seconds of a run.
    The name is a digest of the keys, so validating the same batch again writes the same
    file. Should the rows of the batch not go into one table together, each publication is
    written to a file of its own instead.
    """
    import hashlib

    import numpy as np
    import pandas as pd

    if not accepted:
        return {}
    staged = _staged_dir(settings)
    staged.mkdir(parents=True, exist_ok=True)
    keys = sorted(accepted)
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
    path = staged / f"{prefix}-{digest}.parquet"
    try:
        frames = [accepted[k] for k in keys]
        if all(list(f.columns) == list(frames[0].columns) for f in frames):
            # The files' rows concatenated, then tagged in one column: the same table as
            # each file's rows tagged before (its key last), without a copy of each file.
            frame = pd.concat(frames, ignore_index=True)
            lengths = [len(f) for f in frames]
            frame[STAGED_KEY] = pd.Series(
                np.repeat(np.array(keys, dtype=object), lengths), dtype="str"
            )
        else:  # columns differ between files: each file's key after its own columns
            frame = pd.concat(
                [accepted[k].assign(**{STAGED_KEY: k}) for k in keys], ignore_index=True
            )
        del frames
        _write_parquet(frame, path)
        return dict.fromkeys(keys, str(path))
    except Exception:  # noqa: BLE001 - odd types in one file must not lose the batch
        log.exception("staging the batch in one file failed; staging each file on its own")
    paths = {}
    for k in keys:
        one = staged / (f"{k}.parquet" if prefix == "batch" else f"{k}-{prefix}.parquet")
        _write_parquet(accepted[k].assign(**{STAGED_KEY: k}), one)
        paths[k] = str(one)
    return paths


def _write_parquet(frame: Any, path: Path) -> None:
    """Write ``frame`` to ``path`` whole or not at all (a crash leaves no half file)."""
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def validation_workers() -> int:
    """Worker processes :class:`ValidationPool` uses: ``FLEXBENCH_VALIDATE_WORKERS``, else one
    per core."""
    return env_workers("FLEXBENCH_VALIDATE_WORKERS", os.cpu_count() or 1)


def _quiet_worker() -> None:
    # A worker should not die of ^C before its parent decides.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm_up() -> bool:
    from expectations.core import warm_up

    warm_up()
    return True


#: Files to validate per worker process of a :class:`ValidationPool`: a worker beyond the
#: first is put to work only when there are at least this many files for each. Its cost is
#: the GX import (about 4 s of CPU on the cores the fetch is using); 100 files take a worker
#: about 2 s. A refresh where 5% of the national files changed (about 100 at N=10) is
#: validated by one worker.
FILES_PER_WORKER = 100


class ValidationPool:
    """Validation on every core where nothing else runs tasks side by side: the bench's
    pipeline run, and the publications DAG's one validate task under ``dag.test()``
    (``flexbench run``, :func:`flexbench.handoff.tasks_one_at_a_time`).

    Under a scheduler the mapped validate tasks are the parallel workers; here this pool
    plays their part. Its worker processes (one per core, or ``workers``) are forked when the
    pool is made (in the bench before any fetch thread exists; under ``dag.test()`` inside
    Airflow's runner process, whose own threads are running: a lock one of them held at the
    fork would stay held in the worker, a risk the runner's tests have not shown); the first
    at once imports Great Expectations and builds its context while the caller goes on. The
    others stay idle (a forked process, no import) until :meth:`expect` is told of enough
    files to validate, at least ``files_per_worker`` per worker: a refresh where little
    changed pays one GX import, not one per core. Where no worker can be forked (a daemonic
    process, as a Celery pool's), everything runs in the calling process.

    Three ways in, each group one :func:`validate_batch` call (so the same staged files,
    reports and outcomes as the DAG's tasks): :meth:`validate` shares the files to validate
    between the workers in use, in groups of at most :data:`BATCH_SIZE` files and
    :data:`GROUP_BYTES` bytes; :meth:`validate_groups` takes groups already planned (the
    DAG's); :meth:`add` takes fetch results as they come and sends groups while the caller
    fetches on, :meth:`outcomes` gives them back. A group whose worker fails is validated
    again in the calling process, so no file is lost. With one worker, everything runs in
    the calling process.
    """

    def __init__(self, workers: int | None = None, files_per_worker: int = FILES_PER_WORKER):
        self.workers = workers or validation_workers()
        self.files_per_worker = max(1, files_per_worker)
        self.active = 1
        self._executors: list[Any] = []
        self._warming: list[Any] = []
        # What add() was given and sent (outcomes() collects it).
        self._added: list[dict[str, Any]] = []
        self._waiting: list[dict[str, Any]] = []
        self._sent: list[tuple[list[dict[str, Any]], Any]] = []
        self._queued: dict[int, list[Any]] = {}
        self._new = 0
        self.groups_validated = 0  # groups the last outcomes() validated
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            # One executor per worker, so a worker can be told to import GX on its own.
            try:
                for _ in range(self.workers):
                    executor = ProcessPoolExecutor(1, mp_context=ctx, initializer=_quiet_worker)
                    self._executors.append(executor)
                    executor.submit(int)  # forks the worker now, before any thread of ours
            except (AssertionError, OSError) as exc:
                # No worker process to be had (a daemonic process, as a Celery pool's, may
                # not have children; no memory to fork): everything in this process.
                log.warning(
                    "validation in one process: no worker process (%s)",
                    exc or type(exc).__name__,
                )
                self.close()
                self.workers = 1
            else:
                self._warming.append(self._executors[0].submit(_warm_up))

    def __enter__(self) -> ValidationPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)
        self._executors = []

    def workers_for(self, files: int) -> int:
        """Workers worth using for ``files`` files: one, and one more per
        ``files_per_worker`` files beyond, up to :attr:`workers`."""
        return min(self.workers, max(1, files // self.files_per_worker))

    def expect(self, files: int) -> None:
        """``files`` files are (so far) to be validated: put the workers they are worth to
        work now, so they import GX while the caller goes on fetching."""
        wanted = self.workers_for(files)
        while self._executors and self.active < wanted:
            self._warming.append(self._executors[self.active].submit(_warm_up))
            self.active += 1

    def groups(self, todo: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """``todo`` in groups of at most :data:`BATCH_SIZE` files and :data:`GROUP_BYTES`
        bytes (:func:`bounded_groups`), at least one per worker worth using
        (:meth:`workers_for`)."""
        return bounded_groups(todo, self.workers_for(len(todo)))

    def validate(
        self, settings: Settings, fetched: list[dict[str, Any]], today: date
    ) -> list[dict[str, Any]]:
        """Outcomes for every fetched item, as :func:`validate_batch` gives them: the files
        whose content is new (status ``fetched``) are validated, the others only recorded."""
        outcomes = validate_batch(settings, [f for f in fetched if f["status"] != "fetched"], today)
        todo = [f for f in fetched if f["status"] == "fetched"]
        return outcomes + self.validate_groups(settings, self.groups(todo), today)

    def validate_groups(
        self, settings: Settings, groups: list[list[dict[str, Any]]], today: date
    ) -> list[dict[str, Any]]:
        """The outcomes of :func:`validate_batch` for each of ``groups`` (already planned),
        in the order of the groups: the groups shared between the workers that the files to
        validate (status ``fetched``) are worth (:meth:`expect`)."""
        if self._executors:
            self.expect(sum(f["status"] == "fetched" for g in groups for f in g))
        return _collect(settings, self._dispatch(settings, groups, today), today)

    def add(self, settings: Settings, fetched: list[dict[str, Any]], today: date) -> None:
        """Fetch results as they come (a registry batch's, say), validated while the caller
        fetches on: as soon as :attr:`files_per_worker` files with new content are waiting,
        they go, in groups (:func:`bounded_groups`), to the worker in use with the fewest
        groups still to do. :meth:`outcomes` sends the rest and gives every outcome. A
        refresh where little changed sends nothing before the fetch ends: its new files make
        one group (one GX run per form), not one per registry batch. With one worker,
        everything is validated in the calling process, by :meth:`outcomes`."""
        new = [f for f in fetched if f["status"] == "fetched"]
        self._added.extend(fetched)
        self._waiting.extend(new)
        self._new += len(new)
        self.expect(self._new)
        if self._executors and len(self._waiting) >= self.files_per_worker:
            self._send(settings, bounded_groups(self._waiting), today)

    def _send(self, settings: Settings, groups: list[list[dict[str, Any]]], today: date) -> None:
        self._waiting = []
        self._sent.extend(self._dispatch(settings, groups, today))

    def _dispatch(
        self, settings: Settings, groups: list[list[dict[str, Any]]], today: date
    ) -> list[tuple[list[dict[str, Any]], Any]]:
        """``(group, future)`` for each group, sent to the worker in use with the fewest groups
        still to do; future None where there is no worker (:func:`_collect` validates it in
        the calling process)."""
        if not self._executors:
            return [(group, None) for group in groups]
        in_use = self._executors[: self.active]
        sent = []
        for group in groups:
            busiest = [sum(not f.done() for f in self._queued.get(id(e), [])) for e in in_use]
            executor = in_use[busiest.index(min(busiest))]
            future = _submit(executor, _validate_group, settings, group, today)
            self._queued.setdefault(id(executor), []).append(future)
            sent.append((group, future))
        return sent

    def outcomes(self, settings: Settings, today: date) -> list[dict[str, Any]]:
        """Outcomes for every item given to :meth:`add`, as :meth:`validate` gives them: the
        files not new first (only recorded), then the groups in the order they were made."""
        outcomes = validate_batch(
            settings, [f for f in self._added if f["status"] != "fetched"], today
        )
        rest = self._waiting
        self._send(settings, bounded_groups(rest, self.workers_for(len(rest))), today)
        sent = self._sent
        self._added, self._waiting, self._sent, self._queued, self._new = [], [], [], {}, 0
        self.groups_validated = len(sent)
        return outcomes + _collect(settings, sent, today)


def _collect(settings: Settings, sent: list[tuple[list, Any]], today: date) -> list[dict]:
    """The outcomes of groups sent to workers (``(group, future)``, in order); a group whose
    worker failed, or that was never sent (future None), is validated here, so no file is
    lost."""
    outcomes: list[dict[str, Any]] = []
    for group, future in sent:
        if future is None:
            outcomes.extend(validate_batch(settings, group, today))
            continue
        try:
            outcomes.extend(future.result())
        except Exception:  # noqa: BLE001 - a lost worker never loses its files
            log.exception("a validation worker failed; validating its %d file(s) here", len(group))
            outcomes.extend(validate_batch(settings, group, today))
    return outcomes


def _validate_group(
    settings: Settings, group: list[dict[str, Any]], today: date
) -> list[dict[str, Any]]:
    """:func:`validate_batch` in a worker of :class:`ValidationPool`, which then gives back
    the memory the group freed (:func:`flexbench.validate.release_freed_memory`: Arrow's
    pool, glibc's heap) before its next group: without it each group starts on top of the
    memory the last one freed (about 170 MB after a group of 193 files at N=10). No
    garbage collection: it cost about 0.1 s of CPU a group and gave back nothing more.
    The workers share the cores, so each reads its files with one DuckDB thread
    (:data:`flexbench.validate.READ_THREADS`)."""
    from flexbench import validate

    validate.READ_THREADS = 1
    try:
        return validate_batch(settings, group, today)
    finally:
        validate.release_freed_memory()


#: Bytes of the files of one validation group at most (with at most :data:`BATCH_SIZE`
#: files): a group's memory follows its rows, and so its bytes, more than its number of
#: files. At N=10 a group of 193 files is about 21 MB (a worker's peak about 520 MB RSS, of
#: which about 365 MB is Great Expectations and the other modules, before any file).
GROUP_BYTES = 24 * 2**20


def bounded_groups(todo: list[dict[str, Any]], at_least: int = 1) -> list[list[dict[str, Any]]]:
    """``todo`` in consecutive groups as even as can be (:func:`even_groups`): at least
    ``at_least`` of them (no more than there are items), and as few as keep each group to at
    most :data:`BATCH_SIZE` items and :data:`GROUP_BYTES` bytes (items' ``size``; a bigger
    file is a group of its own)."""
    if not todo:
        return []
    count = min(len(todo), max(at_least, -(-len(todo) // BATCH_SIZE)))
    while True:
        groups = even_groups(todo, count)
        if count >= len(todo) or all(
            len(g) == 1 or sum(_size(i) for i in g) <= GROUP_BYTES for g in groups
        ):
            return groups
        count += 1


def _size(item: Any) -> int:
    """A fetched file's size in bytes (0 when not known)."""
    return int(item.get("size") or 0) if isinstance(item, dict) else 0


def even_groups(items: list, count: int) -> list[list]:
    """``items`` in ``count`` consecutive groups whose sizes differ by at most one."""
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def _submit(executor: Any, fn: Any, *args: Any) -> Any:
    """``executor.submit(fn, *args)``; a worker already gone gives a failed future (its
    group is then validated in the calling process) instead of an error here."""
    from concurrent.futures import Future

    try:
        return executor.submit(fn, *args)
    except Exception as exc:  # noqa: BLE001 - BrokenProcessPool, or shut down
        failed: Future = Future()
        failed.set_exception(exc)
        return failed


def _file_name(item: dict[str, Any]) -> str:
    """The name a trust gave its file (from the URL path), for messages and format sniffing."""
    return Path(urlparse(item["url"]).path).name or Path(item["path"]).name


def _verdicts(
    todo: list[dict[str, Any]], today: date, headcounts: dict[str, int] | None = None
) -> dict:
    """Verdicts for the files of a batch: one GX run per form; should that run break on one
    odd file, each file is checked on its own so the others still get their verdict.
    ``headcounts``: ODS code -> headcount, where known."""
    from expectations.core import RuleFailure
    from flexbench.validate import Verdict, validate_many

    items = [
        (i, Path(item["path"]).read_bytes(), _file_name(item), item["org_code"])
        for i, item in enumerate(todo)
    ]
    paths = {i: item["path"] for i, item in enumerate(todo)}
    try:
        return validate_many(items, today=today, paths=paths, headcounts=headcounts)
    except Exception:  # noqa: BLE001 - one trust's failure never stops the others
        log.exception("validating the batch together failed; checking files one by one")
    verdicts = {}
    for item in items:
        try:
            verdicts[item[0]] = validate_many([item], today=today, headcounts=headcounts)[item[0]]
        except Exception as exc:  # noqa: BLE001
            log.exception("validating %s failed unexpectedly", item[2])
            failure = RuleFailure(
                "readable", "(file)", f"the file could not be checked ({exc})", {}
            )
            verdicts[item[0]] = Verdict(accepted=False, form=None, summary=None, failures=[failure])
    return verdicts


def processed_files(con, exclude_run: str | None = None) -> set[tuple[str, str]]:
    """(url, sha256) of the content last validated (accepted or rejected) from each URL.

    Fetching that content again from that URL is ``unchanged``. Content a URL served before
    but not last (a trust going back to an earlier file) is processed again, so the newest
    publication wins. ``exclude_run`` leaves out one run's own rows (a rerun of that run).
    """
    rows = con.execute(
        "select url, sha256 from audit.publication_files "
        "where status in ('accepted', 'rejected') and sha256 is not null "
        "and run_id is distinct from ? "
        "qualify row_number() over (partition by url order by fetched_at desc) = 1",
        [exclude_run],
    ).fetchall()
    return {(u, s) for u, s in rows}


def load(settings: Settings, outcomes: list[dict[str, Any]], run_id: str, today: date) -> dict:
    """Load a run's outcomes into the warehouse in ONE transaction: audit rows for every file,
    accepted rows into raw.publication_rows, then staging.publications rebuilt.

    Rules (docs/pipeline.md): a file whose content is the content last processed from its URL
    is recorded ``unchanged`` and adds no rows; a file reported unchanged whose content the
    warehouse has never processed (a crash between fetch and load) is validated here, so
    nothing is lost; a rerun of the same run replaces that run's rows. Returns the number of
    files per status.
    """
    import pandas as pd

    import warehouse

    con = warehouse.connect(settings.warehouse_path)
    try:
        warehouse.apply_schema(con)
        done = processed_files(con, exclude_run=run_id)
        redo = [
            o
            for o in outcomes
            if o["status"] == "unchanged" and (o["url"], o.get("sha256")) not in done
        ]
        if redo:
            log.info("validating %d unchanged file(s) the warehouse has not seen", len(redo))
            fixed = validate_batch(settings, [{**o, "status": "fetched"} for o in redo], today)
            outcomes = [o for o in outcomes if o not in redo] + fixed
        # Content already processed from that URL (its fetch state was lost, or the same file
        # was served again without a conditional GET): recorded, not loaded again.
        outcomes = [
            {**o, "status": "unchanged", "reasons": None}
            if o["status"] in ("accepted", "rejected") and (o["url"], o["sha256"]) in done
            else o
            for o in outcomes
        ]
        audit = pd.DataFrame(
            [{**{c: o.get(c) for c in AUDIT_COLUMNS}, "run_id": run_id} for o in outcomes],
            columns=AUDIT_COLUMNS,
        )
        audit["fetched_at"] = pd.to_datetime(audit["fetched_at"], utc=True)
        audit["rows"] = audit["rows"].astype("Int64")
        audit["http_status"] = audit["http_status"].astype("Int64")
        # Accepted rows are read by DuckDB straight from the staged Parquet files (no pandas
        # copy of the run's rows); each file's sha256 and fetch time come from this table.
        staged = pd.DataFrame(
            [
                {
                    "staged_path": o.get("staged_path"),
                    "staged_key": o.get("staged_key"),
                    "file_sha256": o["sha256"],
                    "fetched_at": pd.Timestamp(o["fetched_at"]),
                    "breakdown_path": o.get("breakdown_path"),
                }
                for o in outcomes
                if o["status"] == "accepted" and o.get("rows")
            ],
            columns=["staged_path", "staged_key", "file_sha256", "fetched_at", "breakdown_path"],
        )
        staged["breakdown_path"] = staged["breakdown_path"].astype(object)
        staged["staged_path"] = staged["staged_path"].astype(object)
        with warehouse.transaction(con):
            # A rerun of the same run replaces what that run loaded (idempotent).
            con.execute(
                "delete from raw.publication_rows r using audit.publication_files a "
                "where a.run_id = ? and a.status = 'accepted' "
                "and r.file_sha256 = a.sha256 and r.fetched_at = a.fetched_at",
                [run_id],
            )
            con.execute(
                "delete from raw.publication_breakdown_rows r using audit.publication_files a "
                "where a.run_id = ? and a.status = 'accepted' "
                "and r.file_sha256 = a.sha256 and r.fetched_at = a.fetched_at",
                [run_id],
            )
            con.execute("delete from audit.publication_files where run_id = ?", [run_id])
            con.register("audit_df", audit)
            con.execute("insert into audit.publication_files by name select * from audit_df")
            con.unregister("audit_df")
            if len(staged):
                con.register("staged_df", staged)
                # raw keeps every accepted fetch; one fetch of one file is there once.
                con.execute(
                    "delete from raw.publication_rows r using staged_df f "
                    "where r.file_sha256 = f.file_sha256 and r.fetched_at = f.fetched_at"
                )
                # A staged file holds a batch; each publication's rows carry its key. (A file
                # in the breakdown form has no summary rows.)
                summary_paths = sorted(set(staged["staged_path"].dropna()))
                if summary_paths:
                    con.execute(
                        "insert into raw.publication_rows by name "
                        "select f.file_sha256, f.fetched_at, "
                        f"p.* exclude (filename, {STAGED_KEY}) "
                        "from read_parquet(?, filename = true) as p "
                        "join staged_df as f on p.filename = f.staged_path "
                        f"and p.{STAGED_KEY} = f.staged_key",
                        [summary_paths],
                    )
                # Counts by equity dimension and group of the request-level files.
                con.execute(
                    "delete from raw.publication_breakdown_rows r using staged_df f "
                    "where r.file_sha256 = f.file_sha256 and r.fetched_at = f.fetched_at"
                )
                with_breakdown = sorted(set(staged["breakdown_path"].dropna()))
                if with_breakdown:
                    con.execute(
                        "insert into raw.publication_breakdown_rows by name "
                        "select f.file_sha256, f.fetched_at, "
                        f"p.* exclude (filename, {STAGED_KEY}) "
                        "from read_parquet(?, filename = true) as p "
                        "join staged_df as f on p.filename = f.breakdown_path "
                        f"and p.{STAGED_KEY} = f.staged_key",
                        [with_breakdown],
                    )
                con.unregister("staged_df")
            warehouse.build_layers_named(
                con, ["staging.publications", "staging.publication_breakdowns"]
            )
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o["status"]] = counts.get(o["status"], 0) + 1
        log.info("publications loaded: %s", counts)
        return counts
    finally:
        con.close()


AUDIT_COLUMNS = [
    "org_code",
    "url",
    "sha256",
    "fetched_at",
    "status",
    "reasons",
    "form",
    "rows",
    "http_status",
    "report_path",
    "run_id",
]
