"""`flexbench run` (flexbench.runner.run_all, dag.test()): one task at a time in one process,
so the publications DAG's validation is one task that uses every core."""

from __future__ import annotations

import json
import sqlite3

import pytest

pytestmark = pytest.mark.slow


def test_flexbench_run_validates_every_group_in_one_task_on_every_core(tmp_path, monkeypatch):
    import yaml

    from flexbench import demo, runner, settings
    from flexbench.pipeline import publications

    # A small nation in many groups, each worth a worker of its own: under a scheduler, one
    # mapped validate task per group; under dag.test(), one task for them all.
    monkeypatch.setattr(publications, "BATCH_SIZE", 8)
    monkeypatch.setattr(publications, "FILES_PER_WORKER", 1)
    monkeypatch.setenv("FLEXBENCH_VALIDATE_WORKERS", "2")
    port = demo._free_port(0)
    made = demo.generate(tmp_path / "served", f"http://127.0.0.1:{port}", n_trusts=30)
    sources = tmp_path / "sources.yml"
    sources.write_text(yaml.safe_dump(made["sources"]))
    s = settings.load(sources=sources, warehouse=tmp_path / "data" / "flexbench.duckdb")
    with demo.serve(tmp_path / "served", port):
        results = runner.run_all(s, demo.DEMO_AS_OF, dag_ids=runner.DAG_ORDER[:3], quiet=True)

    run_id = next(r["run_id"] for r in results if r["dag_id"] == "flexbench_publications")
    with sqlite3.connect(runner.airflow_home() / "airflow.db") as db:
        validate = db.execute(
            "select map_index, state from task_instance where dag_id = ? and run_id = ? "
            "and task_id = 'validate'",
            ("flexbench_publications", run_id),
        ).fetchall()
        (planned,) = db.execute(
            "select value from xcom where dag_id = ? and run_id = ? "
            "and task_id = 'plan_validation'",
            ("flexbench_publications", run_id),
        ).fetchone()
    assert validate == [(0, "success")]
    groups = json.loads(planned)
    assert len(groups) == 1 and len(groups[0]) > 2

    import warehouse

    con = warehouse.connect(s.warehouse_path, read_only=True)
    try:
        audit = dict(con.execute("select org_code, status from audit.publication_files").fetchall())
    finally:
        con.close()
    manifest = made["manifest"]
    for status in ("accepted", "rejected"):
        expected = set(manifest.loc[manifest["expected"] == status, "org_code"])
        assert {o for o, st in audit.items() if st == status} == expected, status
