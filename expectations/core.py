"""Run a Great Expectations suite, kept as code, on a pandas DataFrame.

Every incoming dataset is validated by a suite defined in this package. A suite is a list
of :class:`Rule` objects: each names the rule in the project's words (the id a trust HR lead
sees in a validation report) and builds the GX expectation that checks it.

GX is imported lazily (it costs seconds to import), the context is ephemeral, progress bars
and analytics are off so task logs stay readable. One context is built per process and reused.

Validation can be batched: many files concatenated into one frame with a ``_file`` column
are validated in one GX run (GX's fixed cost is paid once, not per small file) and each
failure is reported against the file and the row it came from.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

ROW_COLUMN = "_row"  # row number as a person sees it in the file (header is row 1)
FILE_COLUMN = "_file"  # which file a row came from, for batched validation

_lock = threading.Lock()
_context: Any = None


@dataclass(frozen=True)
class Rule:
    """One documented rule of a data standard, checked by one GX expectation.

    Parameters
    ----------
    name : str
        Stable rule id, e.g. ``"sum-outcomes"``; shown in reports and CLI output.
    column : str
        The column (or columns, joined by ``+``) a person should look at.
    description : str
        The rule in words a trust HR lead can act on.
    build : callable
        ``build(gx_expectations_module) -> Expectation``; called when the suite runs so the
        GX import stays inside tasks.
    """

    name: str
    column: str
    description: str
    build: Callable[[Any], Any]


@dataclass
class RuleFailure:
    """A rule that failed, with the rows (per file) where it failed."""

    rule: str
    column: str
    description: str
    rows: dict[str, list[int]] = field(default_factory=dict)  # file -> row numbers
    examples: list[Any] = field(default_factory=list)

    def rows_for(self, file: str = "") -> list[int]:
        return self.rows.get(file, [])

    def line(self, file: str = "") -> str:
        """One line: the rule, the column, the rows."""
        rows = self.rows_for(file) if file or len(self.rows) <= 1 else sum(self.rows.values(), [])
        if not rows and len(self.rows) == 1:
            rows = next(iter(self.rows.values()))
        return f"{self.rule}: column {self.column}: {self.description}{_rows_text(rows)}"


def _rows_text(rows: Sequence[int]) -> str:
    if not rows:
        return ""
    rows = sorted(set(rows))
    shown = ", ".join(str(r) for r in rows[:10])
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    return f" (row{'s' if len(rows) > 1 else ''} {shown}{more})"


#: Packages Great Expectations imports but never uses to validate a frame (charts for its
#: Data Docs, statistics for distribution expectations the standard does not have): their
#: modules are made when GX imports them and run only when something first reads from them.
#: Saves about 0.8 s of CPU and 80 MB per process that imports GX (each validation worker).
DEFERRED_BY_GX = ("altair", "scipy")


class _DeferredFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of ``packages`` on the path as Python's path finder does, with a
    loader that runs each module only when first read from
    (:class:`importlib.util.LazyLoader`). Only for imports made by the thread that made it:
    another thread importing meanwhile gets its modules as always."""

    def __init__(self, packages: Sequence[str]):
        self.packages = frozenset(packages)
        self.thread = threading.get_ident()

    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] not in self.packages or threading.get_ident() != self.thread:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


@contextmanager
def deferred_imports(packages: Sequence[str]):
    """Within the block, a module of ``packages`` that this thread imports for the first time
    is run only when first read from; a module already imported is as it was. Use it around
    an import that pulls in packages it rarely needs; the modules stay deferred after the
    block. (On Python 3.11 a deferred module should first be read from by one thread at a
    time: its loading has no lock before 3.12. Here GX is imported once a process, and
    scipy is first read from by the benchmark build or a worker's validation, one thread.)"""
    finder = _DeferredFinder(packages)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        try:
            sys.meta_path.remove(finder)
        except ValueError:  # someone else took it out: nothing left to undo
            pass


def _get_context():
    global _context
    with _lock:
        if _context is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            with deferred_imports(DEFERRED_BY_GX):
                import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig
            from great_expectations.execution_engine import pandas_execution_engine

            # GX fingerprints every in-memory batch (an md5 of a hash of the whole frame,
            # about 0.2 s per 100,000 rows) for batch metadata nobody here reads: off.
            pandas_execution_engine.HASH_THRESHOLD = 0
            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            ds = ctx.data_sources.add_pandas("flexbench")
            _context = (gx, ds)
        return _context


def warm_up() -> None:
    """Import GX and build this process's context now (seconds), so a later validation does
    not pay for it; used by worker processes started ahead of the work.

    What is made so far (GX's modules and context, pandas', DuckDB's: a few hundred thousand
    objects that live as long as the process) is then frozen out of the collector's reach:
    the full collections a batch's work sets off stop walking them again (about 0.1 CPU-s a
    group of 200 files, three in four groups), and a process forked after (a Celery worker's
    task, ``flexbench.preload``) does not copy the pages they lie in by collecting them.
    """
    import gc

    _get_context()
    gc.freeze()


#: Built suites, per suite name and rules (a process validates the same few suites again and
#: again: one per form, per batch). Bounded: rules built afresh per call never hit the cache.
_SUITES: dict[tuple, Any] = {}
_MAX_SUITES = 32


def _suite(gx, rules: Sequence[Rule], suite_name: str):
    """The GX suite of ``rules``, built once per (suite name, rules) and then reused.

    A :class:`Rule` is frozen, so the key holds each rule's name, column, description and
    ``build`` callable: rules that differ in any of them get their own suite.
    """
    key: tuple | None = (suite_name, tuple(rules))
    try:
        hash(key)
    except TypeError:  # a rule built with something unhashable: build it, do not keep it
        key = None
    with _lock:
        suite = _SUITES.get(key) if key is not None else None
        if suite is not None:
            return suite
    suite = gx.ExpectationSuite(name=suite_name)
    for i, rule in enumerate(rules):
        expectation = rule.build(gx.expectations)
        # GX does not keep the order expectations were added in: tag each with its rule.
        expectation.meta = {**(expectation.meta or {}), "flexbench_rule": i}
        suite.add_expectation(expectation)
    if key is None:
        return suite
    with _lock:
        if len(_SUITES) >= _MAX_SUITES:
            _SUITES.pop(next(iter(_SUITES)))
        _SUITES[key] = suite
    return suite


#: Largest whole number a float64 holds exactly (2**53): a nullable integer column within it is
#: compared by GX as float64, with the same results.
_EXACT_IN_FLOAT = 2**53
#: The dates a nanosecond ``datetime64`` holds (21 September 1677 to 11 April 2262).
_NS_MIN, _NS_MAX = pd.Timestamp.min, pd.Timestamp.max


def _comparable(df: pd.DataFrame, suite) -> pd.DataFrame:
    """``df`` with the columns of the suite's range rules (``ExpectColumnValuesToBeBetween``)
    in the dtypes GX compares a whole column at a time.

    GX's pandas engine compares int64, float64 and nanosecond datetime columns with one
    vectorised comparison, but every other dtype value by value in Python (about 10 µs a
    row): a nullable ``Int64`` count or a microsecond ``datetime64`` date. So, for GX only,
    an ``Int64`` column whose values fit a float64 exactly becomes float64 (missing as NaN,
    which GX leaves out as it left out NA), and a ``datetime64`` column of another unit whose
    dates all lie in the nanosecond range (1677-2262) becomes ``datetime64[ns]``. The same
    values, compared with the same bounds: the rows GX finds are the same. A column outside
    those ranges is left as it is (and compared value by value, as before).
    """
    columns = {
        getattr(e, "column", None)
        for e in suite.expectations
        if type(e).__name__ == "ExpectColumnValuesToBeBetween"
    }
    changed: dict[str, Any] = {}
    for c in columns:
        if c not in df.columns:
            continue
        values = df[c]
        dtype = values.dtype
        if isinstance(dtype, pd.Int64Dtype):
            known = values.dropna()
            if known.empty or int(known.abs().max()) < _EXACT_IN_FLOAT:
                changed[c] = values.astype("float64")
        elif (
            pd.api.types.is_datetime64_dtype(dtype)
            and not pd.api.types.is_datetime64_ns_dtype(dtype)
            and not isinstance(dtype, pd.DatetimeTZDtype)
        ):
            known = values.dropna()
            if known.empty or (known.min() >= _NS_MIN and known.max() <= _NS_MAX):
                changed[c] = values.astype("datetime64[ns]")
    return df.assign(**changed) if changed else df


def run_rules(df: pd.DataFrame, rules: Sequence[Rule], suite_name: str) -> list[RuleFailure]:
    """Validate ``df`` against ``rules`` in one GX run; return the failed rules.

    ``df`` should carry ``_row`` (and, when batched, ``_file``) so failures can name rows.
    A rule whose column is missing fails with no rows (the column check names it).
    """
    if df.empty:
        return []
    gx, ds = _get_context()
    with _lock:
        asset_name = f"{suite_name}"
        try:
            asset = ds.get_asset(asset_name)
        except LookupError:
            asset = ds.add_dataframe_asset(asset_name)
        try:
            bd = asset.get_batch_definition("whole")
        except (KeyError, LookupError, ValueError):
            bd = asset.add_batch_definition_whole_dataframe("whole")
    suite = _suite(gx, rules, suite_name)
    df = _comparable(df, suite)
    index_cols = [c for c in (FILE_COLUMN, ROW_COLUMN) if c in df.columns]
    batch = bd.get_batch(batch_parameters={"dataframe": df})
    try:
        result = batch.validate(
            suite,
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": index_cols,
                "partial_unexpected_count": 5,
            },
        )
    finally:
        _release(batch)
    failures: list[RuleFailure] = []
    for res in result.results:
        rule = rules[int(res.expectation_config.meta["flexbench_rule"])]
        if res.success:
            continue
        rows: dict[str, list[int]] = defaultdict(list)
        for item in res.result.get("unexpected_index_list") or []:
            if isinstance(item, dict):
                f = str(item.get(FILE_COLUMN, ""))
                r = item.get(ROW_COLUMN)
                if r is not None:
                    rows[f].append(int(r))
                else:
                    rows[f]
        failures.append(
            RuleFailure(
                rule=rule.name,
                column=rule.column,
                description=rule.description,
                rows=dict(rows),
                examples=list(res.result.get("partial_unexpected_list") or [])[:5],
            )
        )
    return failures


def _release(batch) -> None:
    """Drop the pandas execution engine's hold on ``batch``'s frame.

    The engine keeps the last batch of each asset (the frame and its batch object) until
    the next batch of that asset replaces it: a worker validating group after group kept
    the last check frame of each form, about 150 MB for 130,000 request-level rows.
    The next run of the asset loads its own batch, so nothing reads them again.
    """
    try:
        manager = batch.data.execution_engine.batch_manager
    except AttributeError:  # another engine, or a GX without these: nothing to drop
        return
    batch_id = batch.id
    manager.batch_cache.pop(batch_id, None)
    manager.batch_data_cache.pop(batch_id, None)


def failures_by_file(failures: Sequence[RuleFailure]) -> dict[str, list[RuleFailure]]:
    """Split batched failures into per-file lists (files with no failure are absent)."""
    out: dict[str, list[RuleFailure]] = defaultdict(list)
    for f in failures:
        for file, rows in f.rows.items():
            out[file].append(RuleFailure(f.rule, f.column, f.description, {file: rows}, f.examples))
    return dict(out)
