"""`make demo`: a synthetic nation served on loopback HTTP, benchmarked by the real pipeline.

Generates about 200 synthetic trusts with reference files in the real official formats, their
publications in the Flex Data Standard (some with the mistakes validation must catch) and a
pledge feed; serves them on 127.0.0.1; writes a sources file pointing at that server (with
local URLs switched on); runs every DAG through Airflow; prints where things are and a short
national summary.
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from datetime import date
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from flexbench.display import trust_name

DEMO_AS_OF = date(2026, 10, 31)
DEFAULT_PORT = 8765


#: Seconds a kept-alive connection may stay idle before the server closes it (real web
#: servers close idle connections after a few seconds too).
IDLE_TIMEOUT = 15


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files over HTTP/1.1 with keep-alive, as real web servers do: a client sends its
    requests one after another on one connection (each answer has its Content-Length, a
    ``304 Not Modified`` none), and an idle connection is closed after :data:`IDLE_TIMEOUT`."""

    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK of the headers (about 40 ms a request on a kept-alive
    # connection). Real servers set it (nginx's tcp_nodelay is on by default).
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        pass


class _Server(ThreadingHTTPServer):
    # A kept-alive connection holds its thread until the client goes or the idle timeout;
    # closing the server must not wait for those (they are daemon threads).
    block_on_close = False


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free loopback port")


@contextmanager
def serve(root: Path, port: int):
    """Serve ``root`` on 127.0.0.1:port (HTTP/1.1, keep-alive) in a background thread while
    the block runs."""
    handler = partial(_QuietHandler, directory=str(root))
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def generate(
    out: Path, base_url: str, n_trusts: int = 200, seed: int = 20261122, as_of: date = DEMO_AS_OF
) -> dict:
    """Write the whole synthetic nation under ``out`` (the served root) and a sources file."""
    from flexbench.sample import nation as nation_mod
    from flexbench.sample import pledge as pledge_mod
    from flexbench.sample import publications as pubs_mod
    from flexbench.sample import reference as ref_mod

    out.mkdir(parents=True, exist_ok=True)
    nation = nation_mod.build_nation(n_trusts=n_trusts, seed=seed, as_of=as_of)
    ref = out / "reference"
    ref.mkdir(exist_ok=True)
    ref_mod.write_etr(nation.trusts, ref / "etr.csv")
    years = sorted(int(y) for y in nation.staff_survey["survey_year"].unique())
    for year in years:
        ref_mod.write_staff_survey(
            nation.staff_survey[nation.staff_survey["survey_year"] == year],
            ref / f"NSS{str(year)[2:]}_detailed_spreadsheets.xlsx",
            year,
        )
    ref_mod.write_workforce(nation.workforce, ref / "workforce_staff_group_organisation.csv")
    manifest = pubs_mod.write_publications(nation, out)
    pledge_manifest = pledge_mod.write_pledge_feed(nation, out, base_url)
    # Trusts that signed the pledge are found through their sign-up's data_url; the others
    # are in the registry the analysts keep (here, the sources file).
    current = pledge_manifest[
        (pledge_manifest["expected_match"] != "review")
        & (pledge_manifest["status"] == "signed")
        & pledge_manifest["data_url"].fillna("").astype(str).str.len().gt(0)
    ]
    pledged = set(current["intended_org_code"].dropna())
    registry = pubs_mod.publications_registry(manifest, base_url)
    sources = {
        "allow_local_urls": True,
        "ods_trusts": {"url": f"{base_url}/reference/etr.csv"},
        "staff_survey": [
            {"year": y, "url": f"{base_url}/reference/NSS{str(y)[2:]}_detailed_spreadsheets.xlsx"}
            for y in years
        ],
        "workforce": [{"url": f"{base_url}/reference/workforce_staff_group_organisation.csv"}],
        "pledge_signups": {"url": f"{base_url}/pledge/page-1.json"},
        "publications": [
            {"org_code": r.org_code, "url": r.url}
            for r in registry.itertuples()
            if r.org_code not in pledged
        ],
    }
    return {"nation": nation, "manifest": manifest, "pledge": pledge_manifest, "sources": sources}


def run_demo(
    data_dir: Path,
    warehouse: Path,
    echo=print,
    n_trusts: int = 200,
    port: int | None = None,
    quiet: bool = False,
) -> dict:
    """Generate, serve, run; return what the caller needs to summarise."""
    from flexbench import runner, settings

    root = data_dir / "demo" / "served"
    port = _free_port(port or DEFAULT_PORT)
    base_url = f"http://127.0.0.1:{port}"
    if not quiet:
        echo(f"Generating a synthetic nation of {n_trusts} trusts …")
    made = generate(root, base_url, n_trusts=n_trusts)
    sources_path = data_dir / "demo" / "sources.yml"
    sources_path.write_text(
        "# Written by `flexbench demo`: the sample nation served on loopback.\n"
        + yaml.safe_dump(made["sources"], sort_keys=False)
    )
    s = settings.load(sources=sources_path, warehouse=warehouse)
    with serve(root, port):
        if not quiet:
            echo(f"Serving it on {base_url}; sources file {sources_path}")
        results = runner.run_all(s, DEMO_AS_OF, echo=echo, quiet=quiet)
    return {"settings": s, "results": results, **made}


def national_summary(warehouse: Path) -> list[str]:
    """A few lines on the nation, read back from the warehouse marts."""
    import warehouse as wh

    con = wh.connect(warehouse, read_only=True)
    try:
        row = con.execute(
            """
            select min(window_start), max(window_end), count(*),
                count(*) filter (where has_data), sum(requests_received), sum(approved),
                sum(decided), sum(declined_other)
            from marts.trust_benchmark
            """
        ).fetchone()
        files = dict(
            con.execute(
                "select status, count(*) from audit.publication_files group by status"
            ).fetchall()
        )
        review = (
            con.execute(
                "select signup_id, organisation_name, reason, candidates from audit.pledge_review "
                "order by signup_id"
            ).fetchall()
            if wh.table_exists(con, "audit", "pledge_review")
            else []
        )
        bottom = con.execute(
            "select org_code, name, approval_rate from marts.trust_benchmark "
            "where national_rank is not null order by approval_rate asc limit 3"
        ).fetchall()
    finally:
        con.close()
    ws, we, trusts, with_data, received, approved, decided, other = row
    lines = [
        f"Benchmark window {ws} to {we}: {trusts} English trusts, {with_data} with accepted data.",
        f"Requests received {received:,}; approved {approved / decided:.1%} of decided; "
        f"{other:,} declines on non-statutory grounds."
        if decided
        else "No decided requests.",
        "Publication files: " + ", ".join(f"{v} {k}" for k, v in sorted(files.items())),
        "Lowest approval rates: " + "; ".join(f"{c} {trust_name(n)} {r:.1%}" for c, n, r in bottom),
        f"Pledge sign-ups for review (not matched to one trust): {len(review)}",
    ]
    for signup_id, name, reason, candidates in review:
        hint = f" — candidates: {candidates}" if candidates else ""
        lines.append(f"  {signup_id}  {name!r}: {reason}{hint}")
    return lines
