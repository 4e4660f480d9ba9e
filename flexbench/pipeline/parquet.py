"""Parquet copies of the marts, beside the warehouse, for R and Excel users (docs/analysts.md).

``<warehouse folder>/parquet/marts/<table>.parquet``, one file per mart, rewritten after each
benchmark build. Each file is written under a temporary name and then moved into place, so a
reader never sees half a file; files of marts that no longer exist are removed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import warehouse

log = logging.getLogger(__name__)


def parquet_dir(warehouse_path: Path) -> Path:
    return Path(warehouse_path).parent / "parquet" / "marts"


def export_marts(warehouse_path: Path) -> dict[str, int]:
    """Write every ``marts`` table to Parquet; returns rows written per table."""
    out = parquet_dir(warehouse_path)
    out.mkdir(parents=True, exist_ok=True)
    con = warehouse.connect(warehouse_path, read_only=True)
    try:
        tables = [
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'marts' order by table_name"
            ).fetchall()
        ]
        rows = {}
        for name in tables:
            tmp = out / f".{name}.parquet.tmp"
            con.execute(
                f'copy marts."{name}" to {warehouse.sql_literal(str(tmp))} '
                "(format parquet, compression zstd)"
            )
            tmp.replace(out / f"{name}.parquet")
            (rows[name],) = con.execute(f'select count(*) from marts."{name}"').fetchone()
    finally:
        con.close()
    for stale in out.glob("*.parquet"):
        if stale.stem not in rows:
            stale.unlink()
    log.info("wrote %d marts as Parquet to %s", len(rows), out)
    return rows
