"""Bad input on the command line: one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "flexbench.cli", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "--sources", "/nonexistent/sources.yml"], 1, "sources file not found"),
        (["trust", "RJ1", "--warehouse", "/nonexistent/w.duckdb"], 1, "no warehouse at"),
        (["status", "--warehouse", "/nonexistent/w.duckdb"], 1, "no warehouse at"),
        (["run", "--as-of", "31/10/2026"], 2, "not a date"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_bad_input_gives_one_clear_line(args, code, message):
    out = _cli(*args)
    assert out.returncode == code
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.strip().splitlines()[-1].count(message) == 1


def test_invalid_yaml_sources_file_is_named(tmp_path):
    bad = tmp_path / "sources.yml"
    bad.write_text("ods_trusts: {url: [unclosed\n")
    out = _cli("run", "--sources", str(bad))
    assert out.returncode == 1
    assert f"sources file {bad} is not valid YAML" in out.stderr
    assert "Traceback" not in out.stderr


def test_http_url_is_refused_unless_local_use_is_on(tmp_path):
    from flexbench.fetch import FetchPolicy, UnsafeURLError, check_url

    with pytest.raises(UnsafeURLError, match="only https"):
        check_url("http://127.0.0.1:9/etr.csv", FetchPolicy(allow_local=False))
    with pytest.raises(UnsafeURLError, match="file:// URLs are allowed only for local use"):
        check_url(f"file://{tmp_path}/etr.csv", FetchPolicy(allow_local=False))
    check_url("http://127.0.0.1:9/etr.csv", FetchPolicy(allow_local=True))  # allowed


def test_ui_on_a_port_in_use_is_one_clear_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _cli("ui", "--port", str(port))
    assert out.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_help_lists_the_commands():
    out = _cli("--help")
    assert out.returncode == 0
    for command in ("run", "demo", "ui", "trust", "status", "validate"):
        assert command in out.stdout
