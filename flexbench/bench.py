"""`flexbench bench`: the national-scale performance harness (docs/performance.md).

Generates N national workloads (:mod:`flexbench.sample.workload`), serves them on loopback,
and measures, on the same files, each run in a fresh Python process so its CPU time and peak
memory are its own:

==============  ==============================================================================
floor           DuckDB alone: every publication file into one table, each form read with its
                declared columns and types (no sniffing); the sniffing read is a side figure
naive           pandas reads every file, one concatenated frame, one GX validation (a plain
                suite), written to DuckDB
pipeline        our pipeline without the scheduler: registry → fetch_batch (every batch) →
                validate_batch (the new/changed files, in batches of their own) → load, then
                benchmark.build (reference data loaded before, in its own process)
airflow         the same through Airflow (``runner.run_all`` of the publications and benchmark
                DAGs, fresh Airflow home; the metadata-DB migration is timed apart)
incremental     the pipeline again on the pipeline's warehouse after 5% of the files changed,
                the registry saying which (``updated_at``); ``incremental_ask_all`` is the
                same with a registry that does not say, so every file is asked about
==============  ==============================================================================

Beside the runs: one core's CSV parse rate (DuckDB, one thread, declared columns) and the
physical line (the files' bytes over that rate); ``flexbench validate`` on the 3-row worked
example beside a bare ``import great_expectations``; what each publications task imports;
where the Airflow run's time goes (per task, XCom bytes, time outside tasks).

Each run reports wall and CPU seconds (user + system, the process and its children, imports
included), peak resident memory, rows per second (data rows of the files the run read; the
incremental run counts the rows of the changed files) and its wall time over the floor's.
Also measured: each DAG file's parse time, and the time of ``flexbench demo`` from a fresh
Airflow home. The machine and its load average are recorded beside the figures.

Run ``python -m flexbench.bench --child KIND SPEC OUT`` is the per-run child; not for users.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

RUNS = ("floor", "naive", "pipeline", "airflow", "incremental")
CHANGED_FRACTION = 0.05
BENCH_DAGS = ("flexbench_publications", "flexbench_benchmark")


# --- the children: one measured run each ---------------------------------------------------


def _peak_rss_kib() -> float:
    """This process's own peak resident memory (KiB).

    VmHWM belongs to this program's address space. ru_maxrss would not do: Linux carries the
    parent's high-water mark across fork and exec, so a child of a large process would report
    the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _pss_kib(pid: int) -> int | None:
    """A process's proportional set size (KiB): its resident pages, each page shared with
    other processes (since a fork, or a library) divided by the number sharing it. Summed
    over processes, a shared page counts once; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


#: :class:`_TreePeak` reads the PSS of the processes every this many samples.
PSS_EVERY = 5


class _TreePeak:
    """Peaks of the summed memory of this process and its descendants (the validation
    workers), sampled every ``interval`` seconds (0.1) in a background thread: resident
    memory (RSS) and proportional set size (PSS).

    A page shared by several processes (forked workers share their parent's pages until
    either writes them) is counted once per process in the RSS sum, so that sum is an upper
    bound of what the run needs at once; in the PSS sum it counts once, split between them.
    """

    def __init__(self, interval: float = 0.1):
        import threading

        self.peak = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        import psutil

        me = psutil.Process()
        sample = 0
        while not self._stop.wait(interval):
            sample += 1
            total = 0
            procs = []
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                    procs.append(proc.pid)
                except psutil.Error:  # it ended between listing and reading
                    continue
            self.peak = max(self.peak, total)
            # Reading PSS costs about 1.4 ms a process (the kernel walks its 1,400 mappings),
            # charged to this run: read at the first sample and every PSS_EVERY-th after
            # (0.5 s; every 0.1 s it was about 1.5 CPU-s of a 60 CPU-s run at N=10), and only
            # when the RSS sum is above the PSS peak so far (a PSS is never above its RSS).
            if (sample - 1) % PSS_EVERY == 0 and total > self.peak_pss:
                pss = sum((_pss_kib(pid) or 0) * 1024 for pid in procs)
                self.peak_pss = max(self.peak_pss, pss)

    def stop(self) -> tuple[float, float]:
        """Stop sampling; the peaks of the RSS sum and of the PSS sum, in KiB (a run too
        short for a PSS sample gets its PSS now)."""
        self._stop.set()
        self._thread.join()
        if not self.peak_pss:
            self.peak_pss = (_pss_kib(os.getpid()) or 0) * 1024
        return self.peak / 1024, self.peak_pss / 1024


def _usage(tree_peak_kib: float = 0.0, tree_pss_kib: float = 0.0) -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        # The children's CPU is counted once they have ended (worker pools are shut down
        # before a run returns).
        "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        # The process's own high-water mark, or the sampled peak of the process and its
        # workers together when that is higher (pages shared since a fork counted in each).
        "peak_rss_mb": max(_peak_rss_kib(), tree_peak_kib) / 1024,
        # The sampled peak of the process's and its workers' PSS added up: a page shared
        # between them counted once. No high-water mark of its own: sampled only.
        "peak_pss_mb": tree_pss_kib / 1024,
    }


def _settings(spec: dict, name: str, sources: str = "sources"):
    from flexbench import settings

    return settings.load(sources=spec[sources], warehouse=spec[name]["warehouse"])


#: Declared column types of the two forms, as the standard defines them (the floor reads with
#: these, no sniffing). ``escalated`` is a count in the summary form and yes/no in the
#: request-level form: VARCHAR in both, so the two forms go into one table.
def declared_columns() -> dict[str, dict[str, str]]:
    from flexbench.sample.nation import SUMMARY_COLUMNS
    from flexbench.sample.publications import REQUEST_LEVEL_COLUMNS

    text = {"org_code", "staff_group", "escalated"}
    summary = {
        c: "VARCHAR" if c in text else "DATE" if c.startswith("period_") else "INTEGER"
        for c in SUMMARY_COLUMNS
    }
    request = {
        c: "DATE" if c in ("received_date", "decision_date") else "VARCHAR"
        for c in REQUEST_LEVEL_COLUMNS
    }
    return {"summary": summary, "request_level": request}


def _declared_read(files: list[str], columns: dict[str, str]) -> str:
    """A ``read_csv`` of ``files`` with the given columns and types: no sniffing."""
    cols = ", ".join(f"'{c}': '{t}'" for c, t in columns.items())
    names = ", ".join(f"'{f}'" for f in files)
    return (
        f"read_csv([{names}], columns = {{{cols}}}, header = true, auto_detect = false, "
        "delim = ',', quote = '\"', escape = '\"', filename = true)"
    )


def _run_floor(spec: dict) -> dict:
    """The floor: DuckDB reads every file into one table, each form with its declared
    columns and types (no sniffing), both cores."""
    import duckdb

    con = duckdb.connect(spec["floor"]["warehouse"])
    try:
        declared = declared_columns()
        parts = [
            f"select * from {_declared_read(files, declared[form])}"
            for form, files in sorted(spec["files_by_form"].items())
        ]
        con.execute(
            "create or replace table publication_rows as " + " union all by name ".join(parts)
        )
        rows = con.execute("select count(*) from publication_rows").fetchone()[0]
    finally:
        con.close()
    return {"rows": int(rows)}


def _run_floor_sniffing(spec: dict) -> dict:
    """The earlier floor, a side figure: one ``read_csv`` over every file with DuckDB's sniffer
    working out each file's dialect, columns and types (``union_by_name``)."""
    import duckdb

    con = duckdb.connect(spec["floor"]["warehouse"])
    try:
        con.execute(
            "create or replace table publication_rows_sniffed as select * from "
            # escalated is a count in the summary form and yes/no in the request-level form.
            "read_csv(?, union_by_name = true, header = true, filename = true, "
            "types = {'escalated': 'VARCHAR'})",
            [spec["files"]],
        )
        rows = con.execute("select count(*) from publication_rows_sniffed").fetchone()[0]
    finally:
        con.close()
    return {"rows": int(rows)}


#: Size of the calibration file of each form for one core's CSV parse rate: the workload's
#: files of that form concatenated (one header), repeated as needed to reach this size, so
#: the rate is the parser's, not the cost of opening many small files.
PARSE_RATE_BYTES = 32 * 1024 * 1024


def _calibration_file(files: list[str], path: Path, size: int) -> int:
    """Concatenate ``files`` (the first one's header only) into ``path``, repeated until
    ``size`` bytes; return its size."""
    written = 0
    with open(path, "wb") as out:
        header_done = False
        while written < size:
            for f in files:
                with open(f, "rb") as fh:
                    header = fh.readline()
                    if not header_done:
                        out.write(header)
                        written += len(header)
                        header_done = True
                    body = fh.read()
                if body and not body.endswith(b"\n"):
                    body += b"\n"
                out.write(body)
                written += len(body)
                if written >= size:
                    break
    return written


def _run_parse_rate(spec: dict) -> dict:
    """One core's CSV parse rate on this machine: DuckDB with one thread reading a large file
    of each form (:func:`_calibration_file`, declared columns, no sniffing) into a table,
    best of three; bytes per second."""
    import duckdb

    declared = declared_columns()
    folder = Path(spec["floor"]["warehouse"]).parent
    sizes = {}
    for form, files in sorted(spec["files_by_form"].items()):
        sizes[form] = _calibration_file(files, folder / f"calibration-{form}.csv", PARSE_RATE_BYTES)
    con = duckdb.connect()
    try:
        con.execute("set threads = 1")
        con.execute("set enable_progress_bar = false")
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            for form in sizes:
                read = _declared_read([str(folder / f"calibration-{form}.csv")], declared[form])
                con.execute(f"create or replace table t_{form} as select * from {read}")
            took = time.perf_counter() - t0
            best = took if best is None else min(best, took)
    finally:
        con.close()
        for form in sizes:
            (folder / f"calibration-{form}.csv").unlink(missing_ok=True)
    total = sum(sizes.values())
    return {"bytes": total, "seconds": best, "bytes_per_s": total / best if best else None}


def _run_floor_by_form(spec: dict) -> dict:
    """DuckDB reading the files one ``read_csv`` per form (no ``union_by_name``): a side
    figure. ``union_by_name`` makes DuckDB work out every file's columns before reading; with
    the two forms' files apart it need not, and the same rows load several times faster."""
    import duckdb

    con = duckdb.connect(spec["floor"]["warehouse"])
    rows = 0
    try:
        for form, files in sorted(spec["files_by_form"].items()):
            con.execute(
                f"create or replace table publication_rows_{form} as select * from "
                "read_csv(?, header = true, filename = true)",
                [files],
            )
            rows += con.execute(f"select count(*) from publication_rows_{form}").fetchone()[0]
    finally:
        con.close()
    return {"rows": int(rows)}


def plain_rules() -> list:
    """The naive peer's suite: the checks a first attempt would write, on the whole frame."""
    from expectations.core import Rule
    from transforms.publications import COUNT_COLUMNS, OUTCOMES, STAFF_GROUPS

    rules = [
        Rule(
            "org-code",
            "org_code",
            "org_code present",
            lambda gx: gx.ExpectColumnValuesToNotBeNull(column="org_code"),
        ),
        Rule(
            "org-code-form",
            "org_code",
            "org_code is an ODS code",
            lambda gx: gx.ExpectColumnValuesToMatchRegex(
                column="org_code", regex=r"^[A-Z0-9]{3,5}$"
            ),
        ),
        Rule(
            "staff-group",
            "staff_group",
            "known staff group",
            lambda gx: gx.ExpectColumnValuesToBeInSet(
                column="staff_group", value_set=list(STAFF_GROUPS)
            ),
        ),
        Rule(
            "outcome",
            "outcome",
            "known outcome",
            lambda gx: gx.ExpectColumnValuesToBeInSet(column="outcome", value_set=list(OUTCOMES)),
        ),
    ]
    # escalated is a count in one form and yes/no in the other: left out of the plain suite.
    for col in (c for c in COUNT_COLUMNS if c != "escalated"):
        rules.append(
            Rule(
                f"count-{col}",
                col,
                f"{col} ≥ 0",
                lambda gx, c=col: gx.ExpectColumnValuesToBeBetween(column=c, min_value=0),
            )
        )
    return rules


def _run_naive(spec: dict) -> dict:
    """The naive peer: pandas reads every file, concat, one GX run, DuckDB table."""
    import duckdb
    import pandas as pd

    from expectations.core import FILE_COLUMN, ROW_COLUMN, run_rules

    frames = []
    for path in spec["files"]:
        df = pd.read_csv(path)
        df[FILE_COLUMN] = Path(path).name
        df[ROW_COLUMN] = range(2, len(df) + 2)
        frames.append(df)
    frame = pd.concat(frames, ignore_index=True)
    failures = run_rules(frame, plain_rules(), "bench_naive")
    con = duckdb.connect(spec["naive"]["warehouse"])
    try:
        con.register("frame", frame)
        con.execute("create or replace table publication_rows as select * from frame")
        rows = con.execute("select count(*) from publication_rows").fetchone()[0]
    finally:
        con.close()
    return {"rows": int(rows), "failed_rules": [f.rule for f in failures]}


def _run_reference(spec: dict, name: str) -> dict:
    """Reference data into a run's warehouse (its own process, outside the timed runs)."""
    from flexbench.pipeline import reference

    s = _settings(spec, name)
    try:
        return {"loaded": reference.load(s, reference.fetch(s)), "problems": None}
    except reference.ReferenceLoadError as exc:  # the good sources are loaded; go on
        return {"loaded": None, "problems": str(exc)}


def _publication_pass(spec: dict, name: str, sources: str = "sources") -> dict:
    """One pass of the publications DAG and the benchmark DAG, task by task, timed by phase."""
    from flexbench.pipeline import benchmark, publications

    s = _settings(spec, name, sources)
    as_of = date.fromisoformat(spec["as_of"])
    phases = {"fetch": 0.0, "validate": 0.0}
    t = time.perf_counter()
    entries = publications.registry(s)
    # Every registry entry is fetched (a conditional GET when it was fetched before), batch
    # by batch as the DAG's mapped tasks do. Validation runs in worker processes, one per
    # core, as the DAG's mapped tasks run on the workers' slots; the workers are started
    # first and import GX while the fetch runs, and a batch's new files are validated while
    # the next batch is fetched (ValidationPool.add), as the mapped tasks of one batch run
    # while another's fetch does. Files with new or changed content wait until there are
    # enough for a group, so a refresh where 5% changed pays one GX run per form, not one
    # per registry batch. "fetch" is the time until the last batch is fetched; "validate"
    # the time from then until the last verdict.
    with publications.ValidationPool(spec.get("validate_workers")) as pool:
        t0 = time.perf_counter()
        fetched = []
        for batch in publications.batches(entries):
            got = publications.fetch_batch(s, batch)
            fetched.extend(got)
            pool.add(s, got, as_of)
        t1 = time.perf_counter()
        todo = [f for f in fetched if f["status"] == "fetched"]
        outcomes = pool.outcomes(s, as_of)
        groups = pool.groups_validated
        workers, used = pool.workers, pool.active
    phases["fetch"] = t1 - t0
    phases["validate"] = time.perf_counter() - t1
    validated = len(todo)
    t0 = time.perf_counter()
    counts = publications.load(s, outcomes, f"bench-{name}-{time.time_ns()}", as_of)
    phases["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    built = benchmark.build(s, as_of)
    phases["benchmark_build"] = time.perf_counter() - t0
    phases["registry"] = time.perf_counter() - t - sum(phases.values())
    import warehouse

    con = warehouse.connect(s.warehouse_path, read_only=True)
    try:
        loaded = con.execute("select count(*) from raw.publication_rows").fetchone()[0]
        staged = con.execute("select count(*) from staging.publications").fetchone()[0]
    finally:
        con.close()
    # Data rows of the files this pass validated and accepted (as published, before the
    # request-level ones are aggregated): comparable with the floor's row count.
    rows_by_url = spec.get("rows_by_url", {})
    read = sum(rows_by_url.get(o["url"], 0) for o in outcomes if o["status"] == "accepted")
    return {
        "phases": {k: round(v, 3) for k, v in phases.items()},
        "fetched": len(fetched),
        # Registry entries not asked about: their updated_at is not newer than their fetch.
        "not_asked": sum(bool(f.get("not_asked")) for f in fetched),
        "validated": validated,
        "validate_batches": groups,
        "validate_workers": workers,
        "validate_workers_used": used,
        "statuses": counts,
        "rows_read": int(read),
        "raw_publication_rows": int(loaded),
        "staging_publications_rows": int(staged),
        "trusts_with_data": built["trusts_with_data"],
    }


def _run_airflow_prepare(spec: dict) -> dict:
    """Migrate a fresh Airflow home (run with no DAG: migration, pool, DAG bag)."""
    from flexbench import runner

    runner.run_all(
        _settings(spec, "airflow"), date.fromisoformat(spec["as_of"]), dag_ids=(), quiet=True
    )
    return {}


def _run_airflow(spec: dict) -> dict:
    from flexbench import runner

    s = _settings(spec, "airflow")
    results = runner.run_all(s, date.fromisoformat(spec["as_of"]), dag_ids=BENCH_DAGS, quiet=True)
    import warehouse

    con = warehouse.connect(s.warehouse_path, read_only=True)
    try:
        counts = dict(
            con.execute(
                "select status, count(*) from audit.publication_files group by status"
            ).fetchall()
        )
    finally:
        con.close()
    return {
        "dags": {r["dag_id"]: r["seconds"] for r in results},
        "statuses": counts,
        **_airflow_breakdown(Path(spec["airflow"]["home"]), results),
    }


def _airflow_breakdown(home: Path, results: list[dict]) -> dict:
    """Where the Airflow run's time goes, from its metadata DB: per DAG and task, the task
    instances (mapped ones counted), their summed run time, and the bytes of their XComs;
    per DAG, the time outside any task (``dag.test()``'s scheduling, state and XCom
    handling)."""
    import sqlite3

    tasks: dict[str, dict] = {}
    outside: dict[str, float] = {}
    with sqlite3.connect(home / "airflow.db") as db:
        for r in results:
            dag_id, run_id = r["dag_id"], r["run_id"]
            per: dict[str, dict] = {}
            for task_id, count, seconds in db.execute(
                "select task_id, count(*), sum(coalesce(duration, 0)) from task_instance "
                "where dag_id = ? and run_id = ? group by task_id",
                (dag_id, run_id),
            ):
                per[task_id] = {"instances": count, "seconds": round(seconds or 0.0, 3)}
            try:
                rows = db.execute(
                    "select task_id, sum(length(value)) from xcom "
                    "where dag_id = ? and run_id = ? group by task_id",
                    (dag_id, run_id),
                ).fetchall()
            except sqlite3.Error:
                rows = []
            for task_id, size in rows:
                per.setdefault(task_id, {"instances": 0, "seconds": 0.0})["xcom_bytes"] = int(
                    size or 0
                )
            tasks[dag_id] = per
            outside[dag_id] = round(r["seconds"] - sum(t["seconds"] for t in per.values()), 3)
    return {"tasks": tasks, "outside_tasks_s": outside}


def _run_dag_parse(spec: dict) -> dict:
    """Parse one DAG file with Airflow's DagBag, after Airflow itself is imported."""
    from flexbench import runner

    runner.configure_airflow_env(Path(spec["airflow"]["home"]))
    t0 = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    imported = time.perf_counter() - t0
    t0 = time.perf_counter()
    bag = DagBag(dag_folder=spec["dag_file"])
    took = time.perf_counter() - t0
    # Parsed again in the same process, as the dag-processor re-parses a file: Airflow's own
    # lazily imported modules (the @task operators, croniter …) are loaded by then.
    t0 = time.perf_counter()
    DagBag(dag_folder=spec["dag_file"])
    again = time.perf_counter() - t0
    return {
        "parse_s": took,
        "reparse_s": again,
        "airflow_import_s": imported,
        "dag_ids": sorted(bag.dag_ids),
        "errors": {k: v.strip().splitlines()[-1] for k, v in bag.import_errors.items()},
    }


_CHILDREN = {
    "floor": _run_floor,
    "floor-sniffing": _run_floor_sniffing,
    "floor-by-form": _run_floor_by_form,
    "parse-rate": _run_parse_rate,
    "naive": _run_naive,
    "reference-pipeline": lambda spec: _run_reference(spec, "pipeline"),
    "reference-airflow": lambda spec: _run_reference(spec, "airflow"),
    "pipeline": lambda spec: _publication_pass(spec, "pipeline"),
    "incremental": lambda spec: _publication_pass(spec, "pipeline"),
    "incremental-ask-all": lambda spec: _publication_pass(spec, "pipeline", "sources_ask_all"),
    "airflow-prepare": _run_airflow_prepare,
    "airflow": _run_airflow,
    "dag-parse": _run_dag_parse,
}


def _child_main(kind: str, spec_path: str, out_path: str) -> int:
    started = time.perf_counter()
    tree = _TreePeak()
    spec = json.loads(Path(spec_path).read_text())
    profile = spec.get("profile_dir")
    if profile and kind in ("pipeline", "incremental", "incremental-ask-all", "naive"):
        import cProfile

        prof = cProfile.Profile()
        detail = prof.runcall(_CHILDREN[kind], spec)
        prof.dump_stats(str(Path(profile) / f"{kind}.prof"))
    else:
        detail = _CHILDREN[kind](spec)
    wall = time.perf_counter() - started
    Path(out_path).write_text(
        json.dumps({"wall_s": wall, **_usage(*tree.stop()), "detail": detail}, default=str)
    )
    return 0


# --- the parent: workload, server, runs, report -------------------------------------------


class BenchError(RuntimeError):
    """A measured run failed; the message names it and says where its output is."""


def _spawn(kind: str, spec: dict, workdir: Path, env: dict | None = None) -> dict:
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, default=str))
    out = workdir / f"result-{kind}.json"
    log = workdir / f"child-{kind}.log"
    out.unlink(missing_ok=True)
    child_env = {
        **os.environ,
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    started = time.perf_counter()
    with open(log, "ab") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "flexbench.bench", "--child", kind, str(spec_path), str(out)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=workdir,
        )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise BenchError(
            f"bench run {kind} failed (exit {proc.returncode}): {tail[0][:300]} "
            f"(full output: {log})"
        )
    result = json.loads(out.read_text())
    result["process_wall_s"] = elapsed
    return result


def machine_info() -> dict:
    """The machine the figures come from: CPU, cores, memory, Python and library versions."""
    import importlib.metadata

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for pkg in (
        "apache-airflow-core",
        "great-expectations",
        "duckdb",
        "pandas",
        "numpy",
        "pyarrow",
    ):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gb": mem_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _summary(result: dict, rows: int) -> dict:
    wall = result["wall_s"]
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(result["cpu_s"], 3),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
        "peak_pss_mb": round(result.get("peak_pss_mb", 0.0), 1),
        "rows_per_s": round(rows / wall, 1) if wall > 0 else None,
        "rows": rows,
        "process_wall_s": round(result["process_wall_s"], 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def run_bench(
    scale: float = 1.0,
    workdir: Path | None = None,
    runs=RUNS,
    trusts_per_nation: int | None = None,
    dag_parse: bool = True,
    demo: bool = True,
    profile: bool = False,
    echo=print,
    validate_small: bool = True,
) -> dict:
    """Measure every run of ``runs`` on one generated workload; return the report (a dict).

    Parameters
    ----------
    scale : float
        N, the number of national workloads.
    workdir : Path, optional
        Where the workload, warehouses and child logs go (a temporary folder by default; it
        is kept, so the child logs can be read).
    runs : sequence of str
        Which of :data:`RUNS` to measure ("incremental" needs "pipeline").
    trusts_per_nation : int, optional
        Trusts in one national workload (default 215); smaller for smoke tests.
    dag_parse, demo : bool
        Also time each DAG file's parse, and ``flexbench demo`` from a fresh Airflow home.
    validate_small : bool
        Also time ``flexbench validate`` on the worked example beside GX's bare import
        (:func:`measure_validate_small`) and each publications task's imports.
    profile : bool
        Write cProfile stats of the naive, pipeline and incremental runs to ``workdir/profile``.
    """
    from flexbench import demo as demo_mod
    from flexbench.sample import workload as wl

    unknown = set(runs) - set(RUNS)
    if unknown:
        raise BenchError(f"unknown run(s): {', '.join(sorted(unknown))}")
    if "incremental" in runs and "pipeline" not in runs:
        raise BenchError("the incremental run needs the pipeline run")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="flexbench-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    port = demo_mod._free_port(0)
    base_url = f"http://127.0.0.1:{port}"
    served = workdir / "served"
    echo(f"Generating {scale} × the national workload in {served} …")
    t0 = time.perf_counter()
    workload = wl.write_workload(
        served, base_url, scale=scale, trusts_per_nation=trusts_per_nation or wl.NATIONAL_TRUSTS
    )
    generate_s = time.perf_counter() - t0
    import yaml

    sources = workdir / "sources.yml"
    sources.write_text(yaml.safe_dump(workload.sources, sort_keys=False))
    sources_ask_all = workdir / "sources-ask-all.yml"
    sources_ask_all.write_text(yaml.safe_dump(workload.sources_ask_all, sort_keys=False))
    spec = {
        "sources": str(sources),
        "sources_ask_all": str(sources_ask_all),
        "as_of": str(workload.as_of),
        "files": [str(p) for p in workload.files],
        "files_by_form": {
            form: [str(served / "publications" / name) for name in group["filename"]]
            for form, group in workload.manifest.groupby("form")
        },
        "rows_by_url": dict(
            zip(workload.manifest["url"], map(int, workload.manifest["rows"]), strict=True)
        ),
        "floor": {"warehouse": str(workdir / "floor" / "floor.duckdb")},
        "naive": {"warehouse": str(workdir / "naive" / "naive.duckdb")},
        "pipeline": {"warehouse": str(workdir / "pipeline" / "flexbench.duckdb")},
        "airflow": {
            "warehouse": str(workdir / "airflow" / "flexbench.duckdb"),
            "home": str(workdir / "airflow" / "home"),
        },
        "profile_dir": str(workdir / "profile") if profile else None,
    }
    for key in ("floor", "naive", "pipeline", "airflow"):
        Path(spec[key]["warehouse"]).parent.mkdir(parents=True, exist_ok=True)
    if profile:
        (workdir / "profile").mkdir(exist_ok=True)
    total_rows = workload.total_rows
    echo(
        f"  {workload.trusts} trusts, {len(workload.manifest)} files, {total_rows:,} rows "
        f"({generate_s:.0f} s)"
    )
    report: dict = {
        "scale": scale,
        "workload": {
            "trusts": workload.trusts,
            "files": len(workload.manifest),
            "rows": total_rows,
            "files_by_form": workload.manifest["form"].value_counts().to_dict(),
            "rows_by_form": workload.manifest.groupby("form")["rows"].sum().astype(int).to_dict(),
            "bytes": sum(p.stat().st_size for p in workload.files),
            "generate_s": round(generate_s, 1),
        },
        "runs": {},
        "extra": {},
        "dag_parse_s": {},
        "dag_reparse_s": {},
        "machine": machine_info(),
        "workdir": str(workdir),
    }
    airflow_env = {"FLEXBENCH_AIRFLOW_HOME": spec["airflow"]["home"]}

    def measured(kind: str, rows: int, env=None, name=None):
        echo(f"  {name or kind:<12} running …")
        result = _spawn(kind, spec, workdir, env)
        summary = _summary(result, rows)
        summary["detail"] = result.get("detail")
        report["runs"][name or kind] = summary
        echo(f"  {name or kind:<12} {summary['wall_s']:8.1f} s")
        return result

    with demo_mod.serve(served, port):
        if "floor" in runs:
            res = measured("floor", total_rows)
            if res["detail"]["rows"] != total_rows:
                raise BenchError(
                    f"the floor read {res['detail']['rows']} rows, the files hold {total_rows}"
                )
            for kind, key in (
                ("floor-sniffing", "floor_sniffing"),
                ("floor-by-form", "floor_by_form"),
            ):
                side = _spawn(kind, spec, workdir)
                report["extra"][f"{key}_s"] = round(side["wall_s"], 2)
                report["extra"][f"{key}_cpu_s"] = round(side["cpu_s"], 2)
                if side["detail"]["rows"] != total_rows:
                    raise BenchError(
                        f"{kind} read {side['detail']['rows']} rows, the files hold {total_rows}"
                    )
            rate = _spawn("parse-rate", spec, workdir)["detail"]
            report["extra"]["parse_rate_one_core_mb_s"] = round(rate["bytes_per_s"] / 1e6, 1)
            report["extra"]["physical_line_s"] = round(
                report["workload"]["bytes"] / rate["bytes_per_s"], 2
            )
        if "naive" in runs:
            measured("naive", total_rows)
        if "pipeline" in runs:
            ref = _spawn("reference-pipeline", spec, workdir)
            report["extra"]["reference_load_s"] = round(ref["wall_s"], 2)
            if ref["detail"]["problems"]:
                report["extra"]["reference_problems"] = ref["detail"]["problems"][:500]
            measured("pipeline", total_rows)
        if "airflow" in runs:
            prep = _spawn("airflow-prepare", spec, workdir, airflow_env)
            report["extra"]["airflow_migrate_s"] = round(prep["wall_s"], 2)
            _spawn("reference-airflow", spec, workdir, airflow_env)
            measured("airflow", total_rows, airflow_env)
        if "incremental" in runs:
            # Without the registry's updated_at first (every file asked about), then with
            # it, each after 5% of the files were republished.
            man = workload.manifest.set_index("filename")
            changed = wl.change_files(workload, CHANGED_FRACTION, seed=1)
            changed_rows = int(man.loc[changed, "rows"].sum())
            report["extra"]["incremental_ask_all_changed_files"] = len(changed)
            report["extra"]["incremental_ask_all_changed_rows"] = changed_rows
            measured("incremental-ask-all", changed_rows, name="incremental_ask_all")
            changed = wl.change_files(workload, CHANGED_FRACTION, seed=2)
            changed_rows = int(man.loc[changed, "rows"].sum())
            report["extra"]["incremental_changed_files"] = len(changed)
            report["extra"]["incremental_changed_rows"] = changed_rows
            measured("incremental", changed_rows)
    if dag_parse:
        if "airflow" not in runs:
            _spawn("airflow-prepare", spec, workdir, airflow_env)
        from flexbench.settings import PROJECT_ROOT

        for dag_file in sorted((PROJECT_ROOT / "dags").glob("*.py")):
            res = _spawn("dag-parse", {**spec, "dag_file": str(dag_file)}, workdir, airflow_env)
            for dag_id in res["detail"]["dag_ids"] or [dag_file.stem]:
                report["dag_parse_s"][dag_id] = round(res["detail"]["parse_s"], 3)
                report["dag_reparse_s"][dag_id] = round(res["detail"]["reparse_s"], 3)
            report["extra"]["airflow_import_s"] = round(res["detail"]["airflow_import_s"], 2)
    if validate_small:
        report["validate_small"] = measure_validate_small()
        report["task_imports_s"] = measure_task_imports()
    if demo:
        report["extra"]["demo_s"] = round(time_demo(workdir / "demo"), 1)
    floor = report["runs"].get("floor")
    for summary in report["runs"].values():
        if floor:
            summary["ratio_to_floor"] = round(summary["wall_s"] / floor["wall_s"], 2)
    runs_done = report["runs"]
    pipeline = runs_done.get("pipeline")
    if pipeline:
        for name in ("incremental", "incremental_ask_all"):
            if name in runs_done:
                report["extra"][f"{name}_share_of_pipeline"] = round(
                    runs_done[name]["wall_s"] / pipeline["wall_s"], 3
                )
        if "physical_line_s" in report["extra"]:
            report["extra"]["pipeline_over_physical_line"] = round(
                pipeline["wall_s"] / report["extra"]["physical_line_s"], 2
            )
    if pipeline and "airflow" in runs_done:
        airflow = runs_done["airflow"]
        report["extra"]["airflow_over_pipeline"] = round(airflow["wall_s"] / pipeline["wall_s"], 2)
        # The benchmark DAG also builds the site and the Parquet extract, which the pipeline
        # run does not: the same work is the Airflow run without those two tasks.
        extra_tasks = (airflow.get("detail") or {}).get("tasks", {}).get("flexbench_benchmark", {})
        not_in_pipeline = sum(
            extra_tasks.get(t, {}).get("seconds", 0.0) for t in ("publish_site", "export_parquet")
        )
        report["extra"]["airflow_site_and_extract_s"] = round(not_in_pipeline, 2)
        report["extra"]["airflow_same_work_over_pipeline"] = round(
            (airflow["wall_s"] - not_in_pipeline) / pipeline["wall_s"], 2
        )
    if "pipeline" in report["runs"] and "naive" in report["runs"]:
        report["extra"]["naive_over_pipeline"] = round(
            report["runs"]["naive"]["wall_s"] / report["runs"]["pipeline"]["wall_s"], 2
        )
    report["machine"]["load_avg_before"] = [round(x, 2) for x in load_before]
    report["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


#: The standard's 3-row worked example (docs/flex-data-standard.md).
def _worked_example() -> Path:
    from flexbench.settings import PROJECT_ROOT

    return PROJECT_ROOT / "docs" / "templates" / "worked-example-summary.csv"


def _timed(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - started, proc


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def measure_validate_small(rounds: int = 3) -> dict:
    """``flexbench validate`` on the 3-row worked example and a bare ``import
    great_expectations``, each a fresh process (interpreter start included in both), taken
    in turn ``rounds`` times; medians and every figure."""
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "PYTHONWARNINGS": "ignore"}
    validate_cmd = [
        sys.executable,
        "-m",
        "flexbench.cli",
        "validate",
        str(_worked_example()),
        "--org",
        "RXX",
        "--today",
        "2025-01-15",
    ]
    gx_cmd = [sys.executable, "-c", "import great_expectations"]
    validate_runs, gx_runs = [], []
    for _ in range(rounds):
        took, proc = _timed(validate_cmd, env)
        if proc.returncode != 0 or not proc.stdout.startswith("accepted"):
            raise BenchError(f"flexbench validate on the worked example: {proc.stdout[:200]}")
        validate_runs.append(round(took, 3))
        took, proc = _timed(gx_cmd, env)
        if proc.returncode != 0:
            raise BenchError(f"import great_expectations failed: {proc.stderr[-200:]}")
        gx_runs.append(round(took, 3))
    validate_s, gx_s = _median(validate_runs), _median(gx_runs)
    return {
        "validate_s": round(validate_s, 3),
        "gx_import_s": round(gx_s, 3),
        "over_gx_import_s": round(validate_s - gx_s, 3),
        "validate_runs": validate_runs,
        "gx_import_runs": gx_runs,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


#: What each task of the publications DAG imports before it works (under Celery a task
#: instance is a process of its own, so it pays these once per instance).
TASK_IMPORTS = {
    "bare interpreter": "pass",
    "fetch": "import flexbench.handoff, flexbench.pipeline.publications, requests, urllib3",
    "validate": "import flexbench.handoff, flexbench.pipeline.publications, flexbench.validate, "
    "great_expectations, pandas, pyarrow",
    "load": "import flexbench.handoff, flexbench.pipeline.publications, warehouse, duckdb, pandas",
}


def measure_task_imports() -> dict[str, float]:
    """Wall seconds of a fresh process importing what each publications task imports."""
    from flexbench.settings import PROJECT_ROOT

    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    out = {}
    for task, statement in TASK_IMPORTS.items():
        took, proc = _timed([sys.executable, "-c", statement], env)
        out[task] = round(took, 3) if proc.returncode == 0 else None
    return out


def time_demo(folder: Path) -> float:
    """Wall seconds of ``flexbench demo`` with a fresh Airflow home (migration included)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "FLEXBENCH_AIRFLOW_HOME": str(folder / "airflow-home"),
        "FLEXBENCH_WAREHOUSE": str(folder / "flexbench.duckdb"),
    }
    exe = Path(sys.executable).with_name("flexbench")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "flexbench.cli"]
    started = time.perf_counter()
    with open(folder / "demo.log", "wb") as fh:
        proc = subprocess.run(
            [*cmd, "demo", "--quiet"], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=folder
        )
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"flexbench demo failed (exit {proc.returncode}); see {folder}/demo.log")
    return took


def format_table(report: dict) -> list[str]:
    """The short table printed after a bench run."""
    w = report["workload"]
    lines = [
        f"flexbench bench — scale {report['scale']}: {w['trusts']} trusts, {w['files']} files, "
        f"{w['rows']:,} rows",
        f"{'run':<12} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'PSS MB':>8} {'rows/s':>10} "
        f"{'× floor':>8}",
    ]
    for name in (*RUNS, "incremental_ask_all"):
        r = report["runs"].get(name)
        if not r:
            continue
        ratio = r.get("ratio_to_floor")
        lines.append(
            f"{name:<12} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['peak_rss_mb']:>8.0f} "
            f"{r.get('peak_pss_mb', 0):>8.0f} {r['rows_per_s']:>10,.0f} "
            f"{'' if ratio is None else f'{ratio:.1f}':>8}"
        )
    for dag_id, s in report["dag_parse_s"].items():
        again = report.get("dag_reparse_s", {}).get(dag_id)
        lines.append(
            f"parse {dag_id:<28} {s:.3f} s"
            + (f" (again {again:.3f} s)" if again is not None else "")
        )
    small = report.get("validate_small")
    if small:
        lines.append(
            f"validate worked example {small['validate_s']:.2f} s; "
            f"import great_expectations {small['gx_import_s']:.2f} s "
            f"(+{small['over_gx_import_s']:.2f} s)"
        )
    for task, took in (report.get("task_imports_s") or {}).items():
        lines.append(f"imports of task {task:<20} {took} s")
    for key, value in report["extra"].items():
        lines.append(f"{key:<34} {value}")
    m = report["machine"]
    lines.append(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_gb']} GB; load "
        f"{m['load_avg_before']} → {m['load_avg_after']}"
    )
    return lines


# --- `flexbench validate` on a large XLSX --------------------------------------------------

#: Shared strings in the XLSX of :func:`measure_validate_xlsx` (the size that once took 34 s
#: and 799 MB to validate).
XLSX_SHARED_STRINGS = 4_000_000


def shared_strings_xlsx(path: Path, strings: int) -> Path:
    """Write a summary-form XLSX whose shared-strings table holds ``strings`` distinct texts.

    The data sheet is the worked example's header and one valid row (its texts taken from
    the table); the rest of the table is texts no cell uses, as a careless export may carry.
    Written as a stream, so building a table of millions costs little memory.
    """
    import zipfile

    from transforms.publications import SUMMARY_COLUMNS

    header = list(SUMMARY_COLUMNS)
    texts = [*header, "RXX", "2024-04-01", "2024-06-30", "All staff groups"]
    counts = [120, 70, 25, 15, 4, 6, 18, 5, 2, 100, 2, 4, 3, 1, 1, 0, 0, 1, 3]
    cells = [f'<c t="s"><v>{i}</v></c>' for i in range(len(header))]
    row = [f'<c t="s"><v>{len(header) + i}</v></c>' for i in range(4)]
    row += [f"<c><v>{n}</v></c>" for n in counts]
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    sheet = (
        f'<worksheet xmlns="{main}"><sheetData><row r="1">{"".join(cells)}</row>'
        f'<row r="2">{"".join(row)}</row></sheetData></worksheet>'
    )
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats'
            '-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
            'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
            'sharedStrings+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets><sheet name="data" '
            'sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
            'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" '
            f'Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": sheet,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for name, text in parts.items():
            book.writestr(name, text)
        with book.open("xl/sharedStrings.xml", "w", force_zip64=True) as out:
            total = max(strings, len(texts))
            out.write(f'<sst xmlns="{main}" count="{total}" uniqueCount="{total}">'.encode())
            for t in texts:
                out.write(f"<si><t>{t}</t></si>".encode())
            chunk = 100_000
            for start in range(len(texts), total, chunk):
                stop = min(total, start + chunk)
                out.write("".join(f"<si><t>{i:x}</t></si>" for i in range(start, stop)).encode())
            out.write(b"</sst>")
    return path


def _validate_child(path: str, out_path: str) -> int:
    """Child of :func:`measure_validate_xlsx`: ``flexbench validate`` in a fresh process,
    then its wall time, exit status and its own peak resident memory (VmHWM)."""
    import contextlib
    import io

    started = time.perf_counter()
    from flexbench.validate import main as validate_main

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown):
        code = validate_main([path, "--org", "RXX", "--today", "2025-01-15"])
    Path(out_path).write_text(
        json.dumps(
            {
                "wall_s": time.perf_counter() - started,
                "cpu_s": _usage()["cpu_s"],
                "peak_rss_mb": _peak_rss_kib() / 1024,
                "exit": code,
                "output": shown.getvalue().strip().splitlines()[:3],
            }
        )
    )
    return 0


def measure_validate_xlsx(workdir: Path, strings: int = XLSX_SHARED_STRINGS) -> dict:
    """Time and peak memory of ``flexbench validate`` on an XLSX of ``strings`` shared
    strings, in a fresh process (GX import included), with the file's size."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = shared_strings_xlsx(workdir / f"shared-strings-{strings}.xlsx", strings)
    out = workdir / f"validate-{strings}.json"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flexbench.bench", "--child-validate", str(path), str(out)],
        check=True,
        env={**os.environ, "GX_ANALYTICS_ENABLED": "false", "PYTHONWARNINGS": "ignore"},
    )
    result = json.loads(out.read_text())
    result.update(
        shared_strings=strings,
        file_mb=round(path.stat().st_size / 1e6, 2),
        process_wall_s=time.perf_counter() - started,
    )
    return result


# --- the command ---------------------------------------------------------------------------


def add_bench_parser(sub) -> None:
    """Add ``flexbench bench`` to the CLI's subparsers."""
    p = sub.add_parser("bench", help="national-scale performance harness (takes minutes)")
    p.add_argument("--scale", type=float, default=1.0, help="N × the national workload")
    p.add_argument("--json", dest="json_path", help="write the report as JSON to this file")
    p.add_argument("--workdir", help="keep the workload and warehouses here (default: a temp dir)")
    p.add_argument(
        "--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}"
    )
    p.add_argument(
        "--trusts",
        type=int,
        default=None,
        help="trusts per national workload (default 215; smaller for a smoke test)",
    )
    p.add_argument("--no-dag-parse", action="store_true", help="skip the DAG parse timing")
    p.add_argument("--no-demo", action="store_true", help="skip timing `flexbench demo`")
    p.add_argument(
        "--no-validate",
        action="store_true",
        help="skip timing `flexbench validate` on the worked example beside GX's import",
    )
    p.add_argument("--profile", action="store_true", help="cProfile the pandas/pipeline runs")
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--validate-xlsx",
        nargs="?",
        type=int,
        const=XLSX_SHARED_STRINGS,
        metavar="STRINGS",
        help="only measure `flexbench validate` on an XLSX with this many shared strings "
        f"(default {XLSX_SHARED_STRINGS:,})",
    )


def cmd_bench(args) -> int:
    runs = tuple(r.strip() for r in args.runs.split(",") if r.strip())
    echo = (lambda *a, **k: None) if args.quiet else print
    if getattr(args, "validate_xlsx", None):
        return _cmd_validate_xlsx(args, echo)
    report = run_bench(
        scale=args.scale,
        workdir=Path(args.workdir) if args.workdir else None,
        runs=runs,
        trusts_per_nation=args.trusts,
        dag_parse=not args.no_dag_parse,
        demo=not args.no_demo,
        profile=args.profile,
        echo=echo,
        validate_small=not getattr(args, "no_validate", False),
    )
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str))
    for line in format_table(report):
        echo(line)
    return 0


def _cmd_validate_xlsx(args, echo) -> int:
    """``flexbench bench --validate-xlsx [N]``: the large-XLSX measure alone."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.workdir) if args.workdir else Path(tmp)
        report = {"validate_xlsx": [measure_validate_xlsx(base, args.validate_xlsx)]}
    report["machine"] = machine_info()
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2, default=str))
    for r in report["validate_xlsx"]:
        echo(
            f"validate XLSX {r['shared_strings']:>10,} shared strings ({r['file_mb']} MB): "
            f"{r['wall_s']:.2f} s ({r['cpu_s']:.2f} s CPU), peak {r['peak_rss_mb']:.0f} MB, "
            f"exit {r['exit']}: "
            f"{(r['output'] or [''])[0]}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flexbench.bench``: the child mode, or the command on its own."""
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child_main(*argv[1:4])
    if argv[:1] == ["--child-validate"]:
        return _validate_child(*argv[1:3])
    parser = argparse.ArgumentParser(prog="flexbench")
    add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", *argv])
    try:
        return cmd_bench(args)
    except BenchError as exc:
        print(f"flexbench: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
