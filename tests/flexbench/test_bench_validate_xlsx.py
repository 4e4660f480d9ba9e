"""`flexbench bench --validate-xlsx`: the large-XLSX measure runs and reports (not timed here;
the figures belong to the bench, docs/flex-data-standard.md "Limits")."""

from __future__ import annotations

import json
import zipfile

from flexbench import bench
from transforms.publications import read_publication


def test_the_shared_strings_workbook_holds_the_strings_asked_for(tmp_path):
    path = bench.shared_strings_xlsx(tmp_path / "s.xlsx", 5_000)
    table = zipfile.ZipFile(path).read("xl/sharedStrings.xml")
    assert table.count(b"<si>") == 5_000
    parsed = read_publication(path.read_bytes(), "s.xlsx")
    assert parsed.sheet == "data" and len(parsed.frame) == 1


def test_measure_reports_time_memory_and_the_verdict(tmp_path, capsys):
    code = bench.main(["--validate-xlsx", "2000", "--workdir", str(tmp_path), "--json",
                       str(tmp_path / "r.json")])  # fmt: skip
    assert code == 0
    (result,) = json.loads((tmp_path / "r.json").read_text())["validate_xlsx"]
    assert result["shared_strings"] == 2000 and result["exit"] == 0
    assert result["wall_s"] > 0 and result["peak_rss_mb"] > 0 and result["cpu_s"] > 0
    assert result["output"][0].startswith("accepted: 1 rows, form summary, sheet data")
    assert "2,000 shared strings" in capsys.readouterr().out
