"""The whole benchmark, end to end, through Airflow, on a small generated nation.

The sample is served on loopback HTTP so the real fetch code runs; all four DAGs run through
Airflow (a DAG run each in the metadata DB); the marts' numbers are then checked against
numbers computed here, independently, from the generated truth — not from the pipeline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

N_TRUSTS = 40


@pytest.fixture(scope="module")
def benchmarked(tmp_path_factory):
    from flexbench import demo, runner, settings

    tmp = tmp_path_factory.mktemp("e2e")
    port = demo._free_port(0)
    base = f"http://127.0.0.1:{port}"
    made = demo.generate(tmp / "served", base, n_trusts=N_TRUSTS)
    import yaml

    sources = tmp / "sources.yml"
    sources.write_text(yaml.safe_dump(made["sources"]))
    s = settings.load(sources=sources, warehouse=tmp / "data" / "flexbench.duckdb")
    with demo.serve(tmp / "served", port):
        results = runner.run_all(s, demo.DEMO_AS_OF, quiet=True)
    import warehouse

    con = warehouse.connect(s.warehouse_path, read_only=True)
    yield {"settings": s, "results": results, "con": con, **made}
    con.close()


def test_every_dag_ran_through_airflow_and_succeeded(benchmarked):
    assert [r["dag_id"] for r in benchmarked["results"]] == [
        "flexbench_reference",
        "flexbench_pledge",
        "flexbench_publications",
        "flexbench_benchmark",
    ]
    for dag_id in (
        "flexbench_reference",
        "flexbench_pledge",
        "flexbench_publications",
        "flexbench_benchmark",
    ):
        out = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "list-runs", dag_id, "-o", "json"],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            check=True,
        )
        runs = json.loads(out.stdout[out.stdout.index("[") :])
        assert [r["state"] for r in runs] == ["success"], dag_id


def test_each_task_hands_on_one_small_xcom_of_paths_and_counts(benchmarked):
    # A task's dict is one XCom, not one more per key; the publications DAG's carry paths
    # and counts, never a per-file record.
    import sqlite3

    from flexbench import runner

    run_ids = [r["run_id"] for r in benchmarked["results"]]
    with sqlite3.connect(runner.airflow_home() / "airflow.db") as db:
        rows = db.execute(
            "select dag_id, task_id, map_index, key, value from xcom "
            f"where run_id in ({', '.join('?' * len(run_ids))})",
            run_ids,
        ).fetchall()
    assert {dag for dag, *_ in rows} == {r["dag_id"] for r in benchmarked["results"]}
    assert {key for _, _, _, key, _ in rows} == {"return_value"}
    instances = [(dag, task, index) for dag, task, index, _, _ in rows]
    assert len(instances) == len(set(instances))
    for dag, task, _, _, value in rows:
        text = value if isinstance(value, str) else bytes(value).decode()
        if dag == "flexbench_publications":
            assert len(text) < 2000, (dag, task)
            assert "sha256" not in text and "org_code" not in text, (task, text)
        else:
            # The reference and pledge DAGs' fetches hand on a record per source they
            # fetched (a handful, whatever the number of trusts): small for each.
            items = json.loads(text)
            bound = 600 * len(items) if isinstance(items, list) else 2000
            assert len(text) < bound, (dag, task)


def _window(made):
    manifest = made["manifest"]
    accepted = manifest[manifest["expected"] == "accepted"]
    end = pd.to_datetime(accepted["last_period_end"]).max()
    start = end - pd.DateOffset(months=12) + pd.Timedelta(days=1)
    return start, end


def _expected_counts(made) -> pd.DataFrame:
    """Each accepted trust's window totals, from the generator's true counts."""
    nation, manifest = made["nation"], made["manifest"]
    start, end = _window(made)
    accepted = manifest[manifest["expected"] == "accepted"]
    truth = nation.summary[nation.summary["staff_group"] == "All staff groups"].copy()
    truth["period_start"] = pd.to_datetime(truth["period_start"])
    truth["period_end"] = pd.to_datetime(truth["period_end"])
    rows = []
    for f in accepted.itertuples():
        t = truth[
            (truth["org_code"] == f.org_code)
            & (truth["period_start"] >= pd.Timestamp(f.first_period_start))
            & (truth["period_end"] <= pd.Timestamp(f.last_period_end))
            & (truth["period_start"] >= start)
            & (truth["period_end"] <= end)
        ]
        if len(t):
            rows.append(
                t.drop(columns=["period_start", "period_end", "staff_group"])
                .groupby("org_code")
                .sum()
                .reset_index()
            )
    exp = pd.concat(rows, ignore_index=True)
    exp["approved"] = exp["approved_in_full"] + exp["approved_with_changes"]
    exp["decided"] = exp["approved"] + exp["declined"]
    return exp.set_index("org_code")


def test_window_is_the_latest_twelve_months_with_data(benchmarked):
    start, end = _window(benchmarked)
    ws, we = (
        benchmarked["con"]
        .execute("select window_start, window_end from intermediate.int_benchmark_window")
        .fetchone()
    )
    assert (pd.Timestamp(ws), pd.Timestamp(we)) == (start, end)


def test_every_trust_that_published_valid_data_has_its_true_numbers(benchmarked):
    exp = _expected_counts(benchmarked)
    mart = (
        benchmarked["con"]
        .execute("select * from marts.trust_benchmark where has_data")
        .df()
        .set_index("org_code")
    )
    trusts = benchmarked["nation"].trusts.set_index("org_code")
    english_open = {c for c in exp.index if str(trusts.loc[c, "region_code"]).startswith("Y")}
    assert english_open <= set(mart.index)
    for code in english_open:
        for col in ("requests_received", "approved", "declined", "decided", "escalated"):
            assert mart.loc[code, col] == exp.loc[code, col], (code, col)
        assert mart.loc[code, "approval_rate"] == pytest.approx(
            exp.loc[code, "approved"] / exp.loc[code, "decided"], rel=1e-12
        )
        assert mart.loc[code, "decline_rate"] == pytest.approx(
            exp.loc[code, "declined"] / exp.loc[code, "decided"], rel=1e-12
        )


def test_national_rank_shares_ties_and_orders_by_approval(benchmarked):
    exp = _expected_counts(benchmarked)
    mart = (
        benchmarked["con"]
        .execute("select org_code, national_rank from marts.trust_benchmark where has_data")
        .df()
        .set_index("org_code")
    )
    exp = exp.loc[[c for c in exp.index if c in mart.index]]
    ranked = exp[exp["decided"] >= 10]
    expected_rank = (ranked["approved"] / ranked["decided"]).rank(method="min", ascending=False)
    for code, rank in expected_rank.items():
        assert mart.loc[code, "national_rank"] == rank, code


def test_rejected_sample_files_are_audited_with_their_reasons(benchmarked):
    manifest = benchmarked["manifest"]
    rejected = manifest[manifest["expected"] == "rejected"]
    audit = (
        benchmarked["con"]
        .execute("select org_code, status, reasons from audit.publication_files")
        .df()
    )
    got = audit[audit["status"] == "rejected"]
    assert set(got["org_code"]) == set(rejected["org_code"])
    assert got["reasons"].str.len().min() > 20
    accepted = set(manifest.loc[manifest["expected"] == "accepted", "org_code"])
    assert set(audit.loc[audit["status"] == "accepted", "org_code"]) == accepted


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "flexbench.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_trust_card_shows_rank_and_rates(benchmarked):
    code = (
        benchmarked["con"]
        # the card reads the public layer, whose ranks are those of the published rates
        .execute("select org_code from public.trust_window where national_rank = 1 limit 1")
        .fetchone()[0]
    )
    out = _cli("trust", code, "--warehouse", str(benchmarked["settings"].warehouse_path))
    assert out.returncode == 0, out.stderr
    assert f"({code})" in out.stdout and "National rank (approval) 1 of" in out.stdout
    ws, we = (
        benchmarked["con"]
        .execute("select window_start, window_end from intermediate.int_benchmark_window")
        .fetchone()
    )
    assert f"Window {str(ws)[:10]} to {str(we)[:10]}\n" in out.stdout
    as_json = _cli(
        "trust", code.lower(), "--json", "--warehouse", str(benchmarked["settings"].warehouse_path)
    )
    card = json.loads(as_json.stdout)
    assert card["org_code"] == code and card["national_rank"] == 1


def test_unknown_trust_code_is_one_clear_line(benchmarked):
    out = _cli("trust", "ZZ9", "--warehouse", str(benchmarked["settings"].warehouse_path))
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "unknown trust code ZZ9" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_unreachable_url_fails_the_run_with_one_clear_line(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sources = tmp_path / "sources.yml"
    sources.write_text(
        f"allow_local_urls: true\nods_trusts: {{url: http://127.0.0.1:{port}/etr.csv}}\n"
    )
    out = _cli(
        "run", "--sources", str(sources), "--warehouse", str(tmp_path / "w.duckdb"), "--quiet"
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout
    line = out.stderr.strip()
    assert line.count("\n") == 0, line
    assert "flexbench_reference" in line and "unreachable" in line and str(port) in line


def test_output_cut_short_by_the_reader_ends_quietly(benchmarked):
    # `flexbench status | head`: the reader goes away. Here it has gone before the command
    # writes anything, so every write fails: no error line, no traceback.
    warehouse_path = str(benchmarked["settings"].warehouse_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flexbench.cli", "status", "--warehouse", warehouse_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    assert stderr == ""


def test_with_the_pledge_feed_unreachable_the_other_dags_still_run_and_the_run_names_it(
    tmp_path,
):
    # Every trust's publication is in the sources registry, and the pledge feed is down (a
    # loopback port nobody listens on): publications still load, the benchmark is still built,
    # and `flexbench run` exits non-zero naming the pledge DAG, and only it.
    import socket

    import yaml

    from flexbench import demo
    from flexbench.sample import publications as pubs_mod

    port = demo._free_port(0)
    base = f"http://127.0.0.1:{port}"
    made = demo.generate(tmp_path / "served", base, n_trusts=N_TRUSTS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    sources = dict(made["sources"])
    registry = pubs_mod.publications_registry(made["manifest"], base)
    sources["publications"] = [
        {"org_code": r.org_code, "url": r.url} for r in registry.itertuples()
    ]
    sources["pledge_signups"] = {"url": f"http://127.0.0.1:{dead}/pledge/page-1.json"}
    (tmp_path / "sources.yml").write_text(yaml.safe_dump(sources))
    wh = tmp_path / "data" / "flexbench.duckdb"
    with demo.serve(tmp_path / "served", port):
        out = _cli(
            "run",
            "--sources",
            str(tmp_path / "sources.yml"),
            "--warehouse",
            str(wh),
            "--as-of",
            demo.DEMO_AS_OF.isoformat(),
            env={"FLEXBENCH_AIRFLOW_HOME": str(tmp_path / "airflow")},
        )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    error = out.stderr.strip()
    assert error.count("\n") == 0, error
    assert "1 of 4 DAG runs failed: flexbench_pledge failed" in error and str(dead) in error
    for dag_id in ("flexbench_reference", "flexbench_publications", "flexbench_benchmark"):
        assert f"{dag_id:<26} success" in out.stdout, out.stdout
    import warehouse

    con = warehouse.connect(wh, read_only=True)
    try:
        manifest = made["manifest"]
        accepted = set(manifest.loc[manifest["expected"] == "accepted", "org_code"])
        audited = set(
            r[0]
            for r in con.execute("select distinct org_code from audit.publication_files").fetchall()
        )
        loaded = set(
            r[0]
            for r in con.execute("select distinct org_code from staging.publications").fetchall()
        )
        benchmarked = set(
            r[0]
            for r in con.execute(
                "select org_code from marts.trust_benchmark where has_data"
            ).fetchall()
        )
        trusts = made["nation"].trusts.set_index("org_code")
    finally:
        con.close()
    assert audited == set(manifest["org_code"])  # every trust's file was fetched and judged
    assert loaded == accepted
    # Every English trust with accepted data in the window is benchmarked (as in the full run).
    in_window = set(_expected_counts(made).index)
    english = {c for c in in_window if str(trusts.loc[c, "region_code"]).startswith("Y")}
    assert english and english <= benchmarked
