"""The commands that give users what they read: ``site``, ``extract`` and ``status``.

    flexbench site     [--warehouse PATH] [--out DIR] [--quiet]
    flexbench extract  --out FILE [--format csv|xlsx|parquet] [--by window|quarter]
                       [--region CODE ..] [--peer-group NAME ..] [--trusts CODE,..]
                       [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--warehouse PATH] [--quiet]
    flexbench status   [--warehouse PATH] [--only stale|rejected|problems] [--sources] [--json]

``flexbench/cli.py`` routes to :func:`cmd_site`, :func:`cmd_extract` and :func:`cmd_status`;
their parsers are made by :func:`add_site_parser`, :func:`add_extract_parser` and
:func:`add_status_parser`. Errors a user can fix raise :class:`OutputError` (one line, exit 1).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path


class OutputError(Exception):
    """A problem the user can fix (shown by the CLI as one line, exit 1)."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _settings(warehouse: str | None):
    from flexbench import settings

    return settings.load(warehouse=warehouse, require_sources=False)


def _connect(warehouse_path: Path):
    import warehouse

    if not warehouse_path.exists():
        raise OutputError(
            f"no warehouse at {warehouse_path}: run `flexbench run` (or `make demo`) first"
        )
    return warehouse.connect(warehouse_path, read_only=True)


def _connect_public(warehouse_path: Path):
    """The public layer only (what every public output reads: docs/methodology.md,
    "Disclosure control")."""
    import warehouse

    if not warehouse_path.exists():
        raise OutputError(
            f"no warehouse at {warehouse_path}: run `flexbench run` (or `make demo`) first"
        )
    return warehouse.connect_public(warehouse_path)


# --------------------------------------------------------------------------------------------
# site
# --------------------------------------------------------------------------------------------


def add_site_parser(sub) -> argparse.ArgumentParser:
    """``flexbench site``: build the static benchmark site."""
    p = sub.add_parser("site", help="build the static benchmark site (works offline)")
    p.add_argument("--warehouse", help="DuckDB file (default data/flexbench.duckdb)")
    p.add_argument("--out", help="folder to write (default: site/ beside the warehouse)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return p


def cmd_site(args) -> int:
    from flexbench.extract import ExtractError
    from flexbench.site import build_site

    s = _settings(args.warehouse)
    if not s.warehouse_path.exists():
        raise OutputError(
            f"no warehouse at {s.warehouse_path}: run `flexbench run` (or `make demo`) first"
        )
    out = Path(args.out) if args.out else s.warehouse_path.parent / "site"
    try:
        index = build_site(s.warehouse_path, out, echo=None if args.quiet else print)
    except ExtractError as exc:
        raise OutputError(str(exc)) from None
    if not args.quiet:
        print(f"Open {index.as_uri()} in a browser.")
    return 0


# --------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------


def add_extract_parser(sub) -> argparse.ArgumentParser:
    """``flexbench extract``: a disclosure-controlled comparison extract."""
    p = sub.add_parser(
        "extract",
        help="write a comparison extract (CSV, XLSX or Parquet), disclosure-controlled",
        description="One row per trust and window, documented columns (see docs/analysts.md); "
        "filters combine (a row must match all).",
    )
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument(
        "--format",
        choices=("csv", "xlsx", "parquet"),
        help="file format (default: from the --out extension)",
    )
    p.add_argument(
        "--by",
        choices=("window", "quarter"),
        default="window",
        help="one row per trust for the benchmark window (default) or per quarter",
    )
    p.add_argument(
        "--region",
        action="append",
        default=[],
        help="NHS England region code, e.g. Y56 (repeat or comma-separate)",
    )
    p.add_argument(
        "--peer-group",
        action="append",
        default=[],
        help='peer group, e.g. "Acute - Teaching" (repeatable)',
    )
    p.add_argument(
        "--trusts", action="append", default=[], help="ODS codes, comma-separated, e.g. R1F,RXX"
    )
    p.add_argument(
        "--from", dest="date_from", type=_date, help="only windows starting on or after this date"
    )
    p.add_argument(
        "--to", dest="date_to", type=_date, help="only windows ending on or before this date"
    )
    p.add_argument("--warehouse", help="DuckDB file (default data/flexbench.duckdb)")
    p.add_argument("--quiet", action="store_true")
    return p


def _format(args) -> str:
    """The format to write: --format, or the suffix of --out; refused when they disagree (a
    Parquet file named .xlsx opens in no spreadsheet)."""
    suffix = Path(args.out).suffix.lower().lstrip(".")
    if args.format:
        if suffix in ("csv", "xlsx", "parquet") and suffix != args.format:
            raise OutputError(
                f"--format {args.format} contradicts --out {args.out} (a .{suffix} file): "
                f"name the file .{args.format} or drop --format"
            )
        return args.format
    if suffix in ("csv", "xlsx", "parquet"):
        return suffix
    raise OutputError("give --format csv, xlsx or parquet (the --out file has no such extension)")


def cmd_extract(args) -> int:
    from flexbench import extract

    fmt = _format(args)
    if args.date_from and args.date_to and args.date_from > args.date_to:
        raise OutputError("--from is after --to")
    if args.trusts and not any(t.strip(" ,") for t in args.trusts):
        raise OutputError("--trusts is empty: give ODS codes, e.g. --trusts RXX,RYY")
    s = _settings(args.warehouse)
    filters = extract.ExtractFilter(
        by=args.by,
        regions=args.region,
        peer_groups=args.peer_group,
        trusts=args.trusts,
        date_from=args.date_from,
        date_to=args.date_to,
    )
    con = _connect_public(s.warehouse_path)
    try:
        try:
            df = extract.extract_table(con, filters)
            path = extract.write_extract(con, df, Path(args.out), fmt, filters)
        except extract.ExtractError as exc:
            raise OutputError(str(exc)) from None
    finally:
        con.close()
    if not args.quiet:
        withheld = int(df[extract.WITHHELD].fillna("").ne("").sum()) if len(df) else 0
        print(
            f"Wrote {len(df)} rows to {path} ({fmt}); {withheld} rows have cells withheld "
            "by disclosure control."
        )
    return 0


# --------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------


def add_status_parser(sub) -> argparse.ArgumentParser:
    """``flexbench status``: each trust's publication status, for the weekly chase."""
    p = sub.add_parser("status", help="each trust's publication status (the weekly chase)")
    p.add_argument("--warehouse")
    p.add_argument(
        "--only",
        choices=("stale", "rejected", "problems"),
        help="only stale trusts, only rejected latest files, or both",
    )
    p.add_argument(
        "--sources",
        action="store_true",
        help="only each source's freshness: last successful fetch, and a failed last attempt",
    )
    p.add_argument("--json", action="store_true", help="print JSON records for scripts")
    return p


_AUDIT_COLUMNS = {
    "reference_loads": ["source", "url", "fetched_at", "loaded_at", "status", "reasons"],
    "pledge_loads": ["loaded_at", "fetched_at", "status", "reasons"],
    "publication_files": ["url", "fetched_at", "status", "reasons"],
}


def source_states(con):
    """One row per source (ODS, Staff Survey, Workforce, pledge feed, publications): its last
    successful fetch, its age in days, and what failed in its last attempt
    (:func:`transforms.freshness.source_freshness`, read from the audit tables)."""
    import pandas as pd

    import warehouse
    from flexbench.extract import query_frame
    from transforms.freshness import source_freshness

    frames = {}
    for table, columns in _AUDIT_COLUMNS.items():
        if warehouse.table_exists(con, "audit", table):
            frames[table] = query_frame(con, f"select {', '.join(columns)} from audit.{table}")
        else:
            frames[table] = pd.DataFrame(columns=columns)
    return source_freshness(
        frames["reference_loads"],
        frames["pledge_loads"],
        frames["publication_files"],
        pd.Timestamp.now(tz="UTC"),
    )


def _when(v) -> str:
    import pandas as pd

    if v is None or pd.isna(v):
        return "never"
    return f"{pd.Timestamp(v).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"


def _print_sources(sources) -> None:
    print("Sources (last successful fetch; a failed last attempt is named):")
    for r in sources.to_dict("records"):
        age = r["age_days"]
        line = f"  {r['source']:<15} {_when(r['last_success_at'])}"
        if age is not None and age == age:
            line += f" ({int(age)} day{'s' if int(age) != 1 else ''} ago)"
        if r["last_attempt_failed"]:
            why = r["failure"] if len(r["failure"]) <= 140 else r["failure"][:139] + "…"
            line += f"; last attempt FAILED {_when(r['last_attempt_at'])}: {why}"
        print(line)


STATE_ORDER = ("rejected", "fetch failed", "never published", "stale", "accepted")


def publication_states(con):
    """One row per trust: its publication state for the chase, worst first.

    ``state`` is ``rejected`` (latest file failed validation), ``fetch failed`` (latest
    fetch failed), ``never published`` (nothing ever fetched or accepted), ``stale`` (the
    latest accepted data ended more than about six months before the as-of date:
    methodology, "Stale") or ``accepted``.
    """
    import pandas as pd

    import warehouse
    from flexbench.extract import query_frame

    # The weekly chase is for analysts: it reads the (unsuppressed) marts.
    if not warehouse.table_exists(con, "marts", "publication_status"):
        raise OutputError("the warehouse has no publication status yet: run `flexbench run`")
    df = query_frame(con, "select * from marts.publication_status")

    def state(r) -> str:
        status = r.get("last_attempt_status")
        if status == "rejected":
            return "rejected"
        if status == "fetch_failed":
            return "fetch failed"
        if pd.isna(r.get("last_accepted_at")) and pd.isna(r.get("latest_period_end")):
            return "never published"
        return "stale" if bool(r.get("stale")) else "accepted"

    df["state"] = [state(r) for r in df.to_dict("records")] if len(df) else []
    df["order"] = df["state"].map({s: i for i, s in enumerate(STATE_ORDER)})
    df = df.sort_values(["order", "org_code"]).drop(columns="order").reset_index(drop=True)
    return df


def _day(v) -> str:
    import pandas as pd

    if v is None or pd.isna(v):
        return "never"
    return f"{pd.Timestamp(v):%Y-%m-%d}"


def cmd_status(args) -> int:
    s = _settings(args.warehouse)
    con = _connect(s.warehouse_path)
    try:
        sources = source_states(con)
        if args.sources:
            if args.json:
                print(sources.to_json(orient="records", date_format="iso", indent=2))
            else:
                _print_sources(sources)
            return 0
        df = publication_states(con)
    finally:
        con.close()
    if args.only == "stale":
        df = df[df["state"].isin(["stale", "never published"])]
    elif args.only == "rejected":
        df = df[df["state"] == "rejected"]
    elif args.only == "problems":
        df = df[df["state"] != "accepted"]
    if args.json:
        cols = [
            c
            for c in (
                "org_code",
                "name",
                "state",
                "last_accepted_at",
                "latest_period_end",
                "last_attempt_at",
                "last_attempt_status",
                "last_attempt_reasons",
                "last_attempt_url",
                "last_report_path",
                "stale",
            )
            if c in df
        ]
        print(df[cols].to_json(orient="records", date_format="iso", indent=2))
        return 0
    counts = df["state"].value_counts()
    print(
        f"{len(df)} trusts: "
        + ", ".join(f"{int(counts[s_])} {s_}" for s_ in STATE_ORDER if s_ in counts)
        + "."
    )
    if df.empty:
        _print_sources(sources)
        return 0
    print(
        f"{'trust':<7} {'state':<16} {'last accepted':<13} {'data to':<10} "
        f"{'last attempt':<12}  why"
    )
    for r in df.to_dict("records"):
        why = r.get("last_attempt_reasons")
        why = why if isinstance(why, str) and r["state"] in ("rejected", "fetch failed") else ""
        if len(why) > 90:
            why = why[:89] + "…"
        print(
            f"{r['org_code']:<7} {r['state']:<16} {_day(r.get('last_accepted_at')):<13} "
            f"{_day(r.get('latest_period_end')):<10} {_day(r.get('last_attempt_at')):<12}  {why}"
        )
    _print_sources(sources)
    print(
        "Validation reports: `flexbench status --json` gives each rejected file's report path.",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one of these commands on its own (the project CLI routes here too)."""
    parser = argparse.ArgumentParser(prog="flexbench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_site_parser(sub)
    add_extract_parser(sub)
    add_status_parser(sub)
    args = parser.parse_args(argv)
    try:
        return {"site": cmd_site, "extract": cmd_extract, "status": cmd_status}[args.command](args)
    except (OutputError, FileNotFoundError) as exc:
        print(f"flexbench: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
