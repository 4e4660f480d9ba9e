"""The documentation's examples run: every ```sh and ```sql block of README.md and docs/*.md
is run against a warehouse of the demo's nation (the same trusts as `flexbench demo`), and the
data dictionary of docs/analysts.md names every column of every mart and public table.

A block that cannot run in a test (it opens a browser, a server or an interactive shell, or
runs the whole pipeline) is marked in the Markdown by a comment on the line before it:
``<!-- not run: <reason> -->``. The list is small and each says why.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flexbench import extract  # noqa: E402
from flexbench.site.downloads import EXTRA_COLUMNS  # noqa: E402
from tests.flexbench.nation_warehouse import build_nation_warehouse  # noqa: E402

#: The demo's nation (flexbench.demo): seed and size, so examples name trusts it has.
DEMO_SEED, DEMO_TRUSTS = 20261122, 200

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- not run: (?P<reason>[^>]*?) -->\s*\n)?^```(?P<lang>sh|sql)\n(?P<body>.*?)^```",
    re.S | re.M,
)


def blocks(lang: str | None = None):
    """(file, line, lang, body, not-run reason) of every sh and sql block of the docs."""
    out = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            if lang and m["lang"] != lang:
                continue
            line = text[: m.start("body")].count("\n")
            out.append((path.relative_to(ROOT), line, m["lang"], m["body"], m["reason"]))
    return out


def commands(body: str) -> list[str]:
    """The shell commands of a block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    return out


def statements(body: str) -> list[str]:
    """The SQL statements of a block; the DuckDB shell's ``.tables`` as ``show all tables``."""
    out = []
    for stmt in re.split(r";\s*(?:\n|$)", body):
        lines = []
        for line in stmt.splitlines():
            if line.strip() == ".tables":
                out.append("show all tables")
            elif line.strip():
                lines.append(line)
        if lines:
            out.append("\n".join(lines))
    return out


def _id(b):
    return f"{b[0]}:{b[1]}"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, shared_build) -> Path:
    """A working folder as after `flexbench demo`: data/flexbench.duckdb, and docs/ (the
    examples name files under docs/templates). The nation's warehouse is built once a session
    (the disclosure attack reads the demo's too); the examples run on a copy of its folder."""
    work = tmp_path_factory.mktemp("docs-demo")
    built = shared_build(
        "nation-warehouse", build_nation_warehouse, seed=DEMO_SEED, n_trusts=DEMO_TRUSTS
    )
    shutil.copytree(built.parent, work / "data", symlinks=True)
    (work / "docs").symlink_to(ROOT / "docs")
    return work


def test_the_docs_have_runnable_examples_and_few_marked_not_run():
    found = blocks()
    assert len([b for b in found if b[2] == "sql"]) >= 5
    assert len([b for b in found if b[2] == "sh" and not b[4]]) >= 4
    skipped = [b for b in found if b[4]]
    assert len(skipped) <= 6, [_id(b) for b in skipped]
    assert all(len(b[4]) > 10 for b in skipped)  # each says why


@pytest.mark.slow  # each command in its own process; three builds of the demo's site
@pytest.mark.parametrize("block", [b for b in blocks("sh") if not b[4]], ids=_id)
def test_shell_example_runs_on_the_demo(block, demo_dir):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FLEXBENCH_WAREHOUSE": str(demo_dir / "data" / "flexbench.duckdb"),
    }
    for command in commands(block[3]):
        words = shlex.split(command)
        program = words[0]
        assert program in ("flexbench", ".venv/bin/flexbench"), (
            f"{_id(block)}: {command!r} is not a flexbench command: mark the block "
            "<!-- not run: why --> or make it one"
        )
        out = subprocess.run(
            [sys.executable, "-m", "flexbench.cli", *words[1:]],
            cwd=demo_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, f"{_id(block)}: {command}\n{out.stdout}\n{out.stderr}"
        assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize("block", [b for b in blocks("sql") if not b[4]], ids=_id)
def test_sql_example_returns_rows_on_the_demo(block, demo_dir):
    con = duckdb.connect(str(demo_dir / "data" / "flexbench.duckdb"), read_only=True)
    try:
        for sql in statements(block[3]):
            rows = con.execute(sql).fetchall()
            if not rows and "marts.pledge_tracker" in sql:
                # The nation warehouse loads no pledge sign-ups (the demo does, through the
                # pledge feed): an example of the pledge tracker can only be run here.
                signups = con.execute("select count(*) from raw.pledge_signups_history")
                assert signups.fetchone()[0] == 0, f"{_id(block)}: no rows from\n{sql}"
                continue
            assert rows, f"{_id(block)}: no rows from\n{sql}"
    finally:
        con.close()


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = re.search(r"^#{2,3} ", text[start + len(heading) :], re.M)
    return text[start : start + len(heading) + (nxt.start() if nxt else len(text))]


def _patterns(text: str) -> list[re.Pattern]:
    """The column names a dictionary entry gives: `name`, `<measure>_lower95` (any prefix),
    `_upper95` (a suffix), `non_clinical_*` (a prefix)."""
    out = []
    for token in re.findall(r"`([^`\s]+)`", text):
        rx = re.escape(token)
        rx = re.sub(r"<[^>]*>|\\<[^>]*\\>", "[a-z0-9_]+", rx)
        rx = rx.replace(r"\*", "[a-z0-9_]*")
        if token.startswith("_"):
            rx = "[a-z0-9_]+" + rx
        out.append(re.compile(rx + "$"))
    return out


def test_the_data_dictionary_names_every_mart_and_public_column(demo_dir):
    text = (ROOT / "docs" / "analysts.md").read_text(encoding="utf-8")
    con = duckdb.connect(str(demo_dir / "data" / "flexbench.duckdb"), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('marts', 'public') order by 1, 2"
        ).fetchall()
        columns = {
            t: [r[0] for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position", list(t),
            ).fetchall()]
            for t in tables
        }  # fmt: skip
    finally:
        con.close()
    public_section = _section(text, "## Public tables")
    missing = {}
    for (schema, name), cols in columns.items():
        qualified = f"`{schema}.{name}`"
        if schema == "marts":
            heading = next((h for h in re.findall(r"^### .*$", text, re.M) if qualified in h), None)
            assert heading, f"{schema}.{name} has no section in the data dictionary"
            entry = _section(text, heading)
        else:
            rows = [r for r in public_section.splitlines() if r.startswith(f"| {qualified}")]
            assert rows, f"{schema}.{name} is not in the table of public tables"
            entry = rows[0]
        patterns = _patterns(entry)
        known = set(extract.COLUMNS) | set(EXTRA_COLUMNS) if schema == "public" else set()
        undocumented = [c for c in cols if c not in known and not any(p.match(c) for p in patterns)]
        if undocumented:
            missing[f"{schema}.{name}"] = undocumented
    assert not missing, missing


def test_count_columns_are_integers_in_pandas(demo_dir):
    # `.df()` keeps counts as integers (no HUGEINT, which pandas turns into floats).
    con = duckdb.connect(str(demo_dir / "data" / "flexbench.duckdb"), read_only=True)
    try:
        wide = con.execute(
            "select table_schema || '.' || table_name, column_name from "
            "information_schema.columns where table_schema in ('marts', 'public') "
            "and data_type = 'HUGEINT'"
        ).fetchall()
        df = con.execute("select requests_received, decided from marts.trust_benchmark").df()
    finally:
        con.close()
    assert not wide
    assert str(df["decided"].dtype).lower().startswith("int")
