"""The `flexbench` command.

    flexbench run       [--sources FILE] [--warehouse PATH] [--as-of YYYY-MM-DD] [--quiet]
    flexbench demo      [--warehouse PATH] [--trusts N] [--port N] [--quiet]
    flexbench ui        [--port N]
    flexbench trust     CODE [--warehouse PATH] [--json]
    flexbench status    [--warehouse PATH] [--only stale|rejected|problems] [--json]
    flexbench site      [--out DIR] [--warehouse PATH]
    flexbench extract   --format csv|xlsx|parquet [--region ..] [--peer-group ..] [--trusts ..]
                        [--from .. --to ..] --out FILE
    flexbench bench     [--scale N] [--json FILE]
    flexbench validate  FILE [--org CODE] [--today YYYY-MM-DD]
    flexbench serve     [--host 127.0.0.1] [--port N] [--quiet]

Errors are one line on stderr and a non-zero exit: 1 when the work failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from flexbench.display import trust_name


class CommandError(Exception):
    """A problem the user can fix, shown as one line (exit 1)."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flexbench",
        description="The national benchmark of flexible working in the English NHS.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the whole refresh through Airflow (every DAG, in order)")
    run.add_argument("--sources", help="sources registry (default sources.yml)")
    run.add_argument("--warehouse", help="DuckDB file (default data/flexbench.duckdb)")
    run.add_argument("--as-of", type=_date, default=None, help="benchmark as of this date")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors")

    demo = sub.add_parser("demo", help="benchmark a synthetic nation served on loopback")
    demo.add_argument("--warehouse", help="DuckDB file (default data/flexbench.duckdb)")
    demo.add_argument("--trusts", type=int, default=200, help="number of synthetic trusts")
    demo.add_argument("--port", type=int, default=None, help="loopback port to serve on")
    demo.add_argument("--quiet", action="store_true")

    ui = sub.add_parser(
        "ui", help="open the Airflow UI on 127.0.0.1 over the runs of `run` and `demo`"
    )
    ui.add_argument("--port", type=int, default=8080, help="loopback port (default 8080)")

    trust = sub.add_parser("trust", help="show one trust's benchmark card")
    trust.add_argument("code", help="ODS code of the trust, e.g. RJ1")
    trust.add_argument("--warehouse")
    trust.add_argument("--json", action="store_true", help="print the card as JSON")

    from flexbench import cli_outputs

    cli_outputs.add_status_parser(sub)
    cli_outputs.add_site_parser(sub)
    cli_outputs.add_extract_parser(sub)

    from flexbench import bench

    bench.add_bench_parser(sub)

    val = sub.add_parser(
        "validate", help="check a publication against the Flex Data Standard", add_help=False
    )
    val.add_argument("rest", nargs=argparse.REMAINDER)

    from flexbench.serve import DEFAULT_PORT

    serve = sub.add_parser("serve", help="the file checker as a web page (loopback by default)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    serve.add_argument("--quiet", action="store_true", help="log warnings only")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "validate":
        from flexbench.validate import main as validate_main

        return validate_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return _commands()[args.command](args)
    except KeyboardInterrupt:
        print("flexbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`flexbench status | head`): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # one clear line, never a traceback
        from flexbench.cli_outputs import OutputError
        from flexbench.fetch import FetchError
        from flexbench.runner import RunError
        from flexbench.settings import SettingsError
        from warehouse import WarehouseBusyError

        known = (
            CommandError,
            OutputError,
            SettingsError,
            RunError,
            FetchError,
            WarehouseBusyError,
            FileNotFoundError,
        )
        if isinstance(exc, known):
            print(f"flexbench: error: {exc}", file=sys.stderr)
            return 1
        print(f"flexbench: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _commands() -> dict:
    from flexbench import cli_outputs

    return {
        "run": cmd_run,
        "demo": cmd_demo,
        "ui": cmd_ui,
        "trust": cmd_trust,
        "status": cli_outputs.cmd_status,
        "site": cli_outputs.cmd_site,
        "extract": cli_outputs.cmd_extract,
        "bench": _bench,
        "serve": cmd_serve,
    }


def _bench(args) -> int:
    from flexbench import bench

    return bench.cmd_bench(args)


def cmd_serve(args) -> int:
    from flexbench.serve import serve

    return serve(args.host, args.port, args.quiet)


def _warehouse_path(arg: str | None) -> Path:
    from flexbench import settings

    return settings.load(warehouse=arg, require_sources=False).warehouse_path


def cmd_run(args) -> int:
    from flexbench import runner, settings

    s = settings.load(sources=args.sources, warehouse=args.warehouse)
    as_of = args.as_of or date.today()
    runner.run_all(s, as_of, quiet=args.quiet)
    if not args.quiet:
        print(f"Warehouse: {s.warehouse_path}")
    return 0


def cmd_ui(args) -> int:
    from flexbench import ui

    return ui.serve(port=args.port)


def cmd_demo(args) -> int:
    from flexbench import demo, settings

    s = settings.load(warehouse=args.warehouse, require_sources=False)
    data_dir = s.warehouse_path.parent
    out = demo.run_demo(
        data_dir, s.warehouse_path, n_trusts=args.trusts, port=args.port, quiet=args.quiet
    )
    if not args.quiet:
        print()
        print(f"Warehouse:          {s.warehouse_path}")
        print(f"Landing zone:       {data_dir / 'landing'}")
        print(f"Validation reports: {data_dir / 'reports' / 'validation'}")
        print(f"Site:               {data_dir / 'site' / 'index.html'}")
        print(f"Airflow home:       {runner_home()}  (see the runs: flexbench ui)")
        print()
        for line in demo.national_summary(s.warehouse_path):
            print(line)
        example = _ranked_example(s.warehouse_path) or out["manifest"].iloc[0]["org_code"]
        print()
        print(f"Try: .venv/bin/flexbench trust {example}")
    return 0


def runner_home() -> Path:
    from flexbench.runner import airflow_home

    return airflow_home().resolve()


def _ranked_example(path: Path) -> str | None:
    """A trust worth looking at first: the one ranked lowest on approval."""
    import warehouse

    con = warehouse.connect_public(path)
    try:
        row = con.execute(
            "select org_code from public.trust_window where national_rank is not null "
            "order by national_rank desc, org_code limit 1"
        ).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def _open_public(arg: str | None):
    """The warehouse's public layer only: the trust card is a public output."""
    import warehouse

    path = _warehouse_path(arg)
    if not path.exists():
        raise CommandError(f"no warehouse at {path}: run `flexbench run` (or `make demo`) first")
    return warehouse.connect_public(path)


def trust_card(con, code: str) -> dict:
    """One trust's card from the public layer (public.trust_window), as published: withheld
    values are None and named in ``withheld``; CommandError for an unknown or closed trust."""
    import difflib

    code = "".join(ch for ch in code.upper() if ch.isalnum())
    df = con.execute("select * from public.trust_window where org_code = ?", [code]).df()
    if df.empty:
        known = con.execute(
            "select org_code, name, close_date, region_code from public.organisations "
            "where org_code = ?",
            [code],
        ).fetchone()
        if known and known[2] is not None:
            raise CommandError(
                f"{code} ({trust_name(known[1])}) closed on {known[2]}: "
                "it is not in the current benchmark"
            )
        if known and not str(known[3] or "").startswith("Y"):
            raise CommandError(
                f"{code} ({trust_name(known[1])}) is not an English trust: "
                "it is not in the benchmark"
            )
        codes = [r[0] for r in con.execute("select org_code from public.trust_window").fetchall()]
        close = difflib.get_close_matches(code, codes, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CommandError(f"unknown trust code {code}{hint}")
    card = _record(df.iloc[0].to_dict())
    card["peer_rank"] = {
        "peer_group": card.get("peer_group"),
        "rank": card.get("peer_rank"),
        "of": card.get("peer_ranked"),
        "quartile": card.get("peer_quartile"),
        "status": card.get("rank_status"),
    }
    card["flags"] = [
        _record(r)
        for r in _public_rows(
            con,
            "select flag, rule, threshold, severity, evidence from public.flags "
            "where org_code = ? order by severity, flag",
            code,
        )
    ]
    pledge = _public_rows(
        con, "select * exclude (org_code) from public.pledge where org_code = ?", code
    )
    card["pledge"] = _record(pledge[0]) if pledge else None
    status = _public_rows(
        con, "select * exclude (org_code) from public.trust_status where org_code = ?", code
    )
    card["latest_file"] = _record(status[0]) if status else None
    return card


def _public_rows(con, sql: str, code: str) -> list[dict]:
    """Rows of a public query for one trust as dicts (none when the table is absent)."""
    import duckdb

    try:
        cur = con.execute(sql, [code])
    except duckdb.CatalogException:
        return []
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _record(row: dict) -> dict:
    """A public row as plain JSON-able values: missing as None, whole-number columns as int."""
    out = {k: (None if _isna(v) else _plain(v)) for k, v in row.items()}
    # Ranks and counts are whole numbers, whatever column type the mart gave them.
    for key, value in out.items():
        if isinstance(value, float) and value.is_integer() and _is_whole_number_column(key):
            out[key] = int(value)
    return out


def _is_whole_number_column(name: str) -> bool:
    from transforms.vocabulary import COUNT_COLUMNS

    return (
        name in COUNT_COLUMNS
        or name in {"approved", "decided", "periods", "months_covered", "headcount"}
        or name.endswith(("_rank", "_ranked", "_quartile"))
    )


def _isna(v) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(v)) if not isinstance(v, (list, dict)) else False
    except (TypeError, ValueError):
        return False


def _plain(v):
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _pct(v) -> str:
    return "—" if v is None else f"{v:.1%}"


def cmd_trust(args) -> int:
    con = _open_public(args.warehouse)
    try:
        card = trust_card(con, args.code)
    finally:
        con.close()
    if args.json:
        print(json.dumps(card, indent=2, default=str))
        return 0
    print(f"{trust_name(card['name'])} ({card['org_code']})")
    print(f"  Region {card['region_code']}, peer group: {card.get('peer_group') or 'unknown'}")
    print(f"  Window {str(card['window_start'])[:10]} to {str(card['window_end'])[:10]}")
    for line in _file_lines(card.get("latest_file")):
        print(line)
    if card.get("has_data"):
        _print_measures(card)
    else:
        print("  No accepted data in this window.")
    for line in _pledge_lines(card.get("pledge")) + _flag_lines(card["flags"]):
        print(line)
    return 0


def _file_lines(latest: dict | None) -> list[str]:
    """The latest file's status (public.trust_status), with the reasons if it was rejected."""
    if not latest or not latest.get("last_attempt_status"):
        return ["  Latest file: none fetched yet"]
    when = str(latest.get("last_attempt_at") or "")[:10]
    lines = [f"  Latest file: {latest['last_attempt_status']} ({when})"]
    reasons = latest.get("last_attempt_reasons")
    if reasons and latest["last_attempt_status"] != "accepted":
        lines.append(f"    Why: {reasons}")
    if latest.get("last_accepted_at"):
        lines.append(f"    Last accepted {str(latest['last_accepted_at'])[:10]}")
    if latest.get("stale"):
        lines.append("    Stale: no accepted file recent enough (docs/methodology.md)")
    return lines


def _pledge_lines(pledge: dict | None) -> list[str]:
    """Pledge status (public.pledge; docs/pledge-matching.md)."""
    if not pledge or not pledge.get("pledged"):
        return ["  Pledge: not signed"]
    line = f"  Pledge: signed {str(pledge.get('signed_on') or '')[:10]}".rstrip()
    if pledge.get("withdrawn_on"):
        line += f", withdrawn {str(pledge['withdrawn_on'])[:10]}"
    return [line]


def _flag_lines(flags: list[dict]) -> list[str]:
    """Policy-practice gap flags with their evidence (public.flags)."""
    if not flags:
        return ["  Flags: none"]
    lines = [f"  Flags ({len(flags)}):"]
    for f in flags:
        lines.append(f"    {f['flag']} [{f.get('severity') or ''}]: {f.get('evidence') or ''}")
    return lines


def _print_measures(card: dict) -> None:
    from transforms.disclosure import STATUS_WORDS, SUPPRESSION_MARKER

    withheld = set((card.get("withheld") or "").split(";"))

    def count(column: str) -> str:
        if column in withheld:
            return SUPPRESSION_MARKER
        return "—" if card.get(column) is None else f"{card[column]:,}"

    def rate(column: str) -> str:
        status = card.get(f"{column}_status")
        if status in ("withheld", "too_few"):
            return f"({STATUS_WORDS[status]})"
        return _pct(card.get(column))

    lo, hi = card.get("approval_rate_lower95"), card.get("approval_rate_upper95")
    interval = f"  (95% CI {_pct(lo)}–{_pct(hi)})" if lo is not None else ""
    print(f"  Requests received   {count('requests_received'):>8}")
    print(f"  Approval rate       {rate('approval_rate'):>8}{interval}")
    print(f"  Decline rate        {rate('decline_rate'):>8}")
    print(f"  Escalation rate     {rate('escalation_rate'):>8}")
    print(f"  Decided in 2 months {rate('timeliness_rate'):>8}")
    uptake = card.get("requests_per_100_staff")
    print(f"  Requests per 100 staff a year {uptake:.1f}" if uptake is not None else "")
    if card.get("national_rank") is not None:
        print(f"  National rank (approval) {card['national_rank']} of {card['national_ranked']}")
        peer = card["peer_rank"]
        if peer.get("rank") is not None:
            print(
                f"  Peer rank (approval) {peer['rank']} of {peer['of']} in {peer['peer_group']}"
                f" (quartile {peer['quartile']})"
            )
    else:
        status = card.get("rank_status")
        print(f"  Not ranked: {STATUS_WORDS.get(status, 'no data')}")
    print(f"  {SUPPRESSION_MARKER}: withheld to protect confidentiality; counts rounded to the "
          "nearest 5 (docs/methodology.md, \"Disclosure control\")")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
