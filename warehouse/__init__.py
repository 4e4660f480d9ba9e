"""The DuckDB warehouse: schema, SQL models by layer, and atomic builds.

Layers (schemas):

- ``raw``: every accepted load, append-only, with the file it came from (sha256) and when;
- ``audit``: what was fetched and what became of it (``audit.publication_files`` …);
- ``staging``: one model per source entity, renamed and typed, the current version
  (``staging.ods_trusts``, ``staging.publications`` …);
- ``intermediate``: joins and the benchmark's rules;
- ``marts``: what analysts read, unsuppressed (``marts.trust_benchmark`` …);
- ``public``: the only source of every public output (site, extracts, trust card), with the
  disclosure control of docs/methodology.md ("Disclosure control") applied once to everything
  published together. Outputs open it with :func:`connect_public`, which can see nothing else.

Each model is one file under ``models/<layer>/``; the file name is the table name. A SQL
model starts with a comment block stating its grain and keys, then import CTEs, named logic
CTEs and ``select * from final``. A few models are computed in Python (``<name>.py``): the
module's docstring states the grain and keys, ``READS`` names the tables it reads and
``build(con, params)`` writes the table. :func:`build_layers` rebuilds models in dependency
order across layers (read from each model's references), inside the caller's transaction:
either every table of the build is replaced, or none is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
SCHEMA_SQL = Path(__file__).resolve().parent / "schema.sql"
LAYERS = ("staging", "intermediate", "marts", "public")


class WarehouseBusyError(RuntimeError):
    """The warehouse file is open for writing by another process."""


#: The on-disk storage version the warehouse is written in: the newest that DuckDB 1.x clients
#: (the DuckDB CLI 1.5.x, R's duckdb, DBeaver) read. DuckDB 2.0 writes a newer one by default.
#: docs/analysts.md says which version analysts' tools need.
STORAGE_VERSION = "v1.4.0"


def connect(path: str | Path, read_only: bool = False):
    """Open the warehouse. Read-only opens never create the file.

    A writable open creates a new file in :data:`STORAGE_VERSION`, and converts a file an
    older flexbench wrote in DuckDB 2.0's own format (once, in place), so that every writer
    leaves a file DuckDB 1.x clients can open.
    """
    import duckdb

    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse not found: {path} (run `flexbench run` first)")
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {} if read_only else {"storage_compatibility_version": STORAGE_VERSION}
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config)
        if not read_only and storage_version(con) != STORAGE_VERSION:
            con.close()
            _rewrite_in_storage_version(path)
            con = duckdb.connect(str(path), config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusyError(
                f"warehouse {path} is being written by another process; try again when it finishes"
            ) from None
        raise
    return con


def storage_version(con) -> str:
    """The storage version of the connection's database file, e.g. ``v1.4.0``."""
    (tags,) = con.execute(
        "select tags from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    return str((tags or {}).get("storage_version", "")).rstrip("+")


def _rewrite_in_storage_version(path: Path) -> None:
    """Copy every schema and table of ``path`` into a new file in :data:`STORAGE_VERSION` and
    put it in place (the old file is replaced only once the copy is complete)."""
    import duckdb

    tmp = path.with_name(path.name + ".convert")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"attach {sql_literal(str(path))} as old (read_only)")
        version = sql_literal(STORAGE_VERSION)
        con.execute(f"attach {sql_literal(str(tmp))} as new (storage_version {version})")
        con.execute("copy from database old to new")
    finally:
        con.close()
    tmp.replace(path)
    Path(str(path) + ".wal").unlink(missing_ok=True)


@contextmanager
def transaction(con):
    """BEGIN … COMMIT, rolled back on any error: the warehouse moves from one consistent state
    to the next, never to a half-written one."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    else:
        con.execute("commit")


def table_exists(con, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists (a new warehouse, or one older than a model)."""
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def apply_schema(con) -> None:
    """Create the schemas and the loaded (raw/audit) tables if they do not exist."""
    con.execute(SCHEMA_SQL.read_text(encoding="utf-8"))


def model_files(layer: str) -> list[Path]:
    """The model files of a layer: ``<table>.sql`` and Python models ``<table>.py``."""
    folder = MODELS_DIR / layer
    return sorted(
        p for p in (*folder.glob("*.sql"), *folder.glob("*.py")) if not p.name.startswith("_")
    )


_REF = re.compile(r"\b(staging|intermediate|marts|public)\.([a-z_][a-z0-9_]*)\b")


def _python_model(path: Path):
    """The module of a Python model file (its ``READS`` and ``build``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"warehouse_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_reads(path: Path) -> set[str]:
    """The tables (``schema.name``) a model reads: the references of a SQL model, the
    ``READS`` of a Python model."""
    if path.suffix == ".py":
        return set(_python_model(path).READS)
    return {f"{schema}.{name}" for schema, name in _REF.findall(_strip_comments(path.read_text()))}


def model_header(path: Path) -> str:
    """The comment block (SQL) or docstring (Python) stating a model's grain and keys."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        import ast

        return ast.get_docstring(ast.parse(text)) or ""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return "\n".join(lines)


def model_keys(path: Path) -> list[str]:
    """The key columns a model's header states ("Keys: a, b."); [] when it states none (a
    one-row model says "exactly one row")."""
    header = " ".join(model_header(path).split())
    match = re.search(r"Keys: ([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*)", header)
    return match.group(1).split(", ") if match else []


def ordered_models(layers: Iterable[str]) -> list[tuple[str, Path]]:
    """Every model of ``layers`` as (``schema.name``, file), each after the models it reads
    (across layers: a mart an intermediate model reads is built before it)."""
    models = {f"{layer}.{p.stem}": p for layer in layers for p in model_files(layer)}
    deps = {
        name: {ref for ref in model_reads(path) if ref in models and ref != name}
        for name, path in models.items()
    }
    ordered: list[tuple[str, Path]] = []
    done: set[str] = set()

    def visit(name: str, stack: tuple[str, ...] = ()) -> None:
        if name in done:
            return
        if name in stack:
            raise ValueError(f"models form a cycle: {' -> '.join(stack + (name,))}")
        for dep in sorted(deps[name]):
            visit(dep, stack + (name,))
        done.add(name)
        ordered.append((name, models[name]))

    layer_order = {layer: i for i, layer in enumerate(LAYERS)}
    for name in sorted(models, key=lambda n: (layer_order.get(n.split(".")[0], 9), n)):
        visit(name)
    return ordered


def _ordered(paths: Iterable[Path], layer: str) -> list[Path]:
    """Order models of one layer so each runs after the models of that layer it reads."""
    paths = {p.stem: p for p in paths}
    return [p for name, p in ordered_models([layer]) if name.split(".", 1)[1] in paths]


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def render(sql: str, params: dict[str, str] | None = None) -> str:
    """Fill ``{{ name }}`` placeholders with SQL literals given by the caller."""
    params = params or {}

    def sub(match: re.Match) -> str:
        key = match.group(1)
        if key not in params:
            raise KeyError(f"model needs parameter {key!r}")
        return params[key]

    return re.sub(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}", sub, sql)


def build_layers(con, layers: Iterable[str], params: dict[str, str] | None = None) -> list[str]:
    """Rebuild every model of ``layers`` (in order) inside the caller's transaction.

    Returns the tables built, as ``schema.name``.
    """
    layers = list(layers)
    built = []
    for table, path in ordered_models(layers):
        build_model(con, table, path, params)
        built.append(table)
    drop_stale_tables(con, layers, set(built))
    return built


def drop_stale_tables(con, layers: Iterable[str], models: set[str]) -> list[str]:
    """Drop the tables of ``layers`` that no model builds any more (a model removed or
    renamed, e.g. ``marts.withheld_zeros`` → ``marts.withheld_cells``): an analyst reading the
    warehouse never meets a table the build stopped refreshing. Returns those dropped."""
    layers = list(layers)
    if not layers:
        return []
    found = con.execute(
        "select table_schema, table_name, table_type from information_schema.tables "
        f"where table_schema in ({', '.join('?' * len(layers))})",
        layers,
    ).fetchall()
    dropped = []
    for schema, name, kind in found:
        table = f"{schema}.{name}"
        if table not in models:
            con.execute(f'drop {"view" if kind == "VIEW" else "table"} {schema}."{name}"')
            dropped.append(table)
    return sorted(dropped)


def build_model(con, table: str, path: Path, params: dict[str, str] | None = None) -> None:
    """(Re)build one model: run its SQL, or its Python ``build``."""
    if path.suffix == ".py":
        _python_model(path).build(con, params or {})
        return
    sql = render(path.read_text(encoding="utf-8"), params)
    con.execute(f"create or replace table {table} as\n{sql}")
    _narrow_hugeints(con, table)


def _narrow_hugeints(con, table: str) -> None:
    """Store a model's HUGEINT columns (DuckDB's type for ``sum`` of integers) as BIGINT, so
    counts read into pandas (``.df()``) stay integers (docs/analysts.md, "Data dictionary")."""
    # (the types from the table's own description: no catalog query per model)
    described = con.execute(f"select * from {table} limit 0").description
    for column, kind, *_ in described:
        if str(kind) == "HUGEINT":
            con.execute(f'alter table {table} alter column "{column}" type bigint')


def build_layers_named(con, tables: Iterable[str], params: dict[str, str] | None = None) -> None:
    """Rebuild the named models (``schema.name``), in the order given."""
    for table in tables:
        layer, name = table.split(".", 1)
        path = MODELS_DIR / layer / f"{name}.sql"
        if not path.exists():
            path = path.with_suffix(".py")
        build_model(con, table, path, params)


def connect_public(path: str | Path):
    """A connection that sees the ``public`` layer and nothing else: what every public output
    (site, extracts, trust card) reads.

    The ``public.*`` tables are copied into an in-memory database, the warehouse file is
    detached and external access is switched off (and the setting locked), so a query of any
    other schema (``marts``, ``staging``, ``audit`` …) fails and the file cannot be attached
    again: a public output cannot publish what disclosure control has not seen.
    """
    import duckdb

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"warehouse not found: {path} (run `flexbench run` first)")
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"attach {sql_literal(str(path))} as source (read_only)")
    except duckdb.IOException as exc:
        con.close()
        if "lock" in str(exc).lower():
            raise WarehouseBusyError(
                f"warehouse {path} is being written by another process; try again when it finishes"
            ) from None
        raise
    con.execute("create schema public")
    tables = con.execute(
        "select table_name from duckdb_tables() where database_name = 'source' "
        "and schema_name = 'public' order by table_name"
    ).fetchall()
    for (table,) in tables:
        con.execute(f'create table public."{table}" as select * from source.public."{table}"')
    con.execute("use memory.public")
    con.execute("detach source")
    # No way back to the file: no attaching, no reading files, and the settings locked.
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con


def write_frame(con, table: str, frame) -> None:
    """Replace ``table`` with the rows of a DataFrame (a Python model's output)."""
    con.register("model_frame", frame)
    try:
        con.execute(f"create or replace table {table} as select * from model_frame")
    finally:
        con.unregister("model_frame")


def sql_literal(value) -> str:
    """A SQL literal for a date/str/number parameter."""
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"
