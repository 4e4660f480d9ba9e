"""`flexbench bench` at a tiny scale: the report's shape and that its figures are consistent."""

from __future__ import annotations

import json
import os

import pytest

from flexbench import bench
from flexbench.pipeline import publications
from flexbench.sample import workload as wl


def test_workload_scales_by_whole_nations_and_every_file_is_valid(tmp_path):
    from flexbench.validate import validate_many

    made = wl.write_workload(tmp_path, "http://127.0.0.1:9", scale=2, trusts_per_nation=20)
    # Two nations of 20 trusts side by side, trust codes unique across them.
    assert made.trusts == 40
    assert made.manifest["org_code"].is_unique
    # Half the publishers (every other one) publish request-level logs.
    forms = made.manifest["form"].value_counts()
    assert abs(forms["request_level"] - forms["summary"]) <= 2
    items = [
        (p.name, p.read_bytes(), p.name, org)
        for p, org in zip(made.files, made.manifest["org_code"], strict=True)
    ]
    verdicts = validate_many(items, today=made.as_of)
    assert [k for k, v in verdicts.items() if not v.accepted] == []
    # Republishing 5% of the files changes their bytes and keeps them valid.
    before = {p.name: p.read_bytes() for p in made.files}
    changed = wl.change_files(made, 0.05)
    assert len(changed) == max(1, round(0.05 * len(made.files)))
    after = {p.name: p.read_bytes() for p in made.files}
    assert {n for n in before if before[n] != after[n]} == set(changed)
    items = [(n, after[n], n, n.split("_")[0]) for n in changed]
    assert all(v.accepted for v in validate_many(items, today=made.as_of).values())


@pytest.mark.parametrize("scale", [0, -1])
def test_workload_refuses_a_scale_that_is_not_positive(tmp_path, scale):
    with pytest.raises(ValueError, match="positive"):
        wl.write_workload(tmp_path, "http://127.0.0.1:9", scale=scale)


def test_incremental_needs_the_pipeline_run(tmp_path):
    with pytest.raises(bench.BenchError, match="needs the pipeline"):
        bench.run_bench(workdir=tmp_path, runs=("floor", "incremental"), echo=lambda *a: None)


@pytest.mark.slow  # four child processes, each importing pandas/GX/DuckDB: ~30 s idle
def test_bench_smoke_report_shape_and_row_counts(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = bench.main(
        [
            "--scale",
            "0.05",
            "--trusts",
            "20",
            "--workdir",
            str(tmp_path / "work"),
            "--runs",
            "floor,pipeline,incremental",
            "--no-dag-parse",
            "--no-demo",
            "--no-validate",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["scale"] == 0.05
    assert set(report["runs"]) == {"floor", "pipeline", "incremental", "incremental_ask_all"}
    for name, run in report["runs"].items():
        assert {"wall_s", "cpu_s", "peak_rss_mb", "rows_per_s"} <= set(run), name
        assert run["rows_per_s"] > 0, name
        assert run["peak_rss_mb"] > 10, name
        # PSS counts a page shared by the process and its workers once: never more than RSS.
        assert 10 < run["peak_pss_mb"] <= run["peak_rss_mb"], name
    assert report["runs"]["floor"]["ratio_to_floor"] == 1.0
    assert {"cpu", "cores", "mem_gb", "python", "versions"} <= set(report["machine"])
    # Every run read the same files: the floor's rows are the files' rows, and the pipeline
    # accepted every file and read exactly those rows.
    rows = report["workload"]["rows"]
    assert report["runs"]["floor"]["detail"]["rows"] == rows
    # DuckDB sniffing the files, and reading the two forms apart (side figures), read the same
    # rows (the harness refuses to report them otherwise) and took time.
    assert report["extra"]["floor_sniffing_s"] > 0
    assert report["extra"]["floor_by_form_s"] > 0
    # The physical line is the files' bytes over one core's measured parse rate.
    extra = report["extra"]
    assert extra["parse_rate_one_core_mb_s"] > 0
    assert extra["physical_line_s"] == pytest.approx(
        report["workload"]["bytes"] / (extra["parse_rate_one_core_mb_s"] * 1e6), rel=0.01, abs=0.01
    )
    assert extra["pipeline_over_physical_line"] > 0
    # Validation had a worker per core, and put as many to work as the files were worth
    # (one per FILES_PER_WORKER files, at least one), each with a group of at most a batch.
    pipeline = report["runs"]["pipeline"]["detail"]
    files = report["workload"]["files"]
    assert pipeline["validate_workers"] == (os.cpu_count() or 1)
    used = max(1, min(os.cpu_count() or 1, files // publications.FILES_PER_WORKER))
    assert pipeline["validate_workers_used"] == used
    assert pipeline["validate_batches"] >= used
    assert pipeline["statuses"] == {"accepted": report["workload"]["files"]}
    assert pipeline["rows_read"] == rows
    # The incremental runs re-read only the changed files. Without updated_at every file is
    # asked about; with it, only the changed ones (the others not at all).
    for name in ("incremental", "incremental_ask_all"):
        changed = report["extra"][f"{name}_changed_files"]
        incremental = report["runs"][name]["detail"]
        assert incremental["statuses"].get("accepted") == changed, name
        assert incremental["rows_read"] == report["extra"][f"{name}_changed_rows"], name
        assert incremental["statuses"].get("unchanged") == files - changed, name
    assert report["runs"]["incremental_ask_all"]["detail"]["not_asked"] == 0
    assert report["runs"]["incremental"]["detail"]["not_asked"] == (
        files - report["extra"]["incremental_changed_files"]
    )

    # The short table names every run.
    printed = capsys.readouterr().out
    for name in report["runs"]:
        assert name in printed


@pytest.mark.slow  # four fresh processes importing GX: ~20 s idle
def test_validate_on_the_worked_example_is_measured_beside_gx_bare_import():
    small = bench.measure_validate_small(rounds=1)
    # Both figures from the same run, each a fresh process; the difference is reported.
    assert small["validate_s"] > 0 and small["gx_import_s"] > 0
    assert small["over_gx_import_s"] == pytest.approx(
        small["validate_s"] - small["gx_import_s"], abs=0.002
    )
    imports = bench.measure_task_imports()
    assert set(imports) == set(bench.TASK_IMPORTS)
    # The validation task imports GX, the fetch task does not.
    assert imports["validate"] > imports["fetch"] > 0
