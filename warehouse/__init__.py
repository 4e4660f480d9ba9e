"""The DuckDB warehouse: schema, SQL models by layer, and atomic builds.

Layers (schemas):

- ``raw``: every accepted load, append-only, with the file it came from (sha256) and when;
- ``audit``: what was fetched and what became of it (``audit.publication_files`` …);
- ``staging``: one model per source entity, renamed and typed, the current version
  (``staging.ods_trusts``, ``staging.publications`` …);
- ``intermediate``: joins and the benchmark's rules;
- ``marts``: what users read (``marts.trust_benchmark`` …).

Each model is one SQL file under ``models/<layer>/``; the file name is the table name.
A model file starts with a comment block stating its grain and keys, then import CTEs,
named logic CTEs and ``select * from final``. :func:`build_layers` rebuilds models in one
transaction: either every table of the build is replaced, or none is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
SCHEMA_SQL = Path(__file__).resolve().parent / "schema.sql"
LAYERS = ("staging", "intermediate", "marts")


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
    folder = MODELS_DIR / layer
    return sorted(folder.glob("*.sql"))


_REF = re.compile(r"\b(staging|intermediate|marts)\.([a-z_][a-z0-9_]*)\b")


def _ordered(paths: Iterable[Path], layer: str) -> list[Path]:
    """Order models of one layer so each runs after the models of that layer it reads."""
    paths = list(paths)
    names = {p.stem: p for p in paths}
    deps = {
        p.stem: {
            name
            for schema, name in _REF.findall(_strip_comments(p.read_text()))
            if schema == layer and name in names and name != p.stem
        }
        for p in paths
    }
    ordered: list[Path] = []
    done: set[str] = set()

    def visit(name: str, stack: tuple[str, ...] = ()) -> None:
        if name in done:
            return
        if name in stack:
            raise ValueError(f"models form a cycle: {' -> '.join(stack + (name,))}")
        for dep in sorted(deps[name]):
            visit(dep, stack + (name,))
        done.add(name)
        ordered.append(names[name])

    for name in sorted(names):
        visit(name)
    return ordered


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
    built = []
    for layer in layers:
        for path in _ordered(model_files(layer), layer):
            sql = render(path.read_text(encoding="utf-8"), params)
            con.execute(f"create or replace table {layer}.{path.stem} as\n{sql}")
            built.append(f"{layer}.{path.stem}")
    return built


def build_layers_named(con, tables: Iterable[str], params: dict[str, str] | None = None) -> None:
    """Rebuild the named models (``schema.name``), in the order given."""
    for table in tables:
        layer, name = table.split(".", 1)
        sql = render((MODELS_DIR / layer / f"{name}.sql").read_text(encoding="utf-8"), params)
        con.execute(f"create or replace table {layer}.{name} as\n{sql}")


def sql_literal(value) -> str:
    """A SQL literal for a date/str/number parameter."""
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"
