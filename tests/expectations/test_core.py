"""expectations.core: running a suite on a frame."""

import gc
import weakref

import pandas as pd

from expectations.core import ROW_COLUMN, Rule, run_rules

NOT_NULL = Rule(
    "not-null",
    "org_code",
    "org_code is given",
    lambda gx: gx.ExpectColumnValuesToNotBeNull(column="org_code"),
)


def test_a_validated_frame_is_not_kept_after_the_run():
    # A worker validates group after group: GX must not keep each form's last frame alive
    # (about 150 MB for a group of request-level files).
    frame = pd.DataFrame({"org_code": ["RJ1", None, "R1F"], ROW_COLUMN: [2, 3, 4]})
    kept = weakref.ref(frame)

    failures = run_rules(frame, [NOT_NULL], "test_core_release")

    assert [(f.rule, f.rows_for("")) for f in failures] == [("not-null", [3])]
    del frame
    gc.collect()
    assert kept() is None


def test_the_same_suite_runs_again_after_its_frame_is_released():
    first = pd.DataFrame({"org_code": [None], ROW_COLUMN: [2]})
    second = pd.DataFrame({"org_code": ["RJ1", None], ROW_COLUMN: [2, 3]})

    assert [f.rows_for("") for f in run_rules(first, [NOT_NULL], "test_core_again")] == [[2]]
    assert [f.rows_for("") for f in run_rules(second, [NOT_NULL], "test_core_again")] == [[3]]


_GX_IN_A_FRESH_PROCESS = """
import sys
from datetime import date
from pathlib import Path

from expectations.core import warm_up

warm_up()
# GX imported its charting and statistics packages without running them.
print(sorted(m for m in ("altair.vegalite", "scipy.stats._stats_py") if m in sys.modules))

from flexbench.validate import validate_publication

data = Path("docs/templates/worked-example-summary.csv").read_bytes()
print(validate_publication(data, "worked-example-summary.csv", today=date(2026, 11, 30)).accepted)
bad = data.replace(b",120,70,", b",121,70,", 1)  # received no longer the sum
print(validate_publication(bad, "bad.csv", today=date(2026, 11, 30)).accepted)

import scipy.stats  # what GX did not run runs when first used

print(round(float(scipy.stats.norm.ppf(0.975)), 2))
"""


def test_gx_is_imported_without_its_charts_and_statistics_and_still_validates():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _GX_IN_A_FRESH_PROCESS],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    assert out == ["[]", "True", "False", "1.96"], out


def test_deferred_imports_leave_modules_already_imported_as_they_were():
    import json
    import sys

    from expectations.core import deferred_imports

    finders = list(sys.meta_path)
    with deferred_imports(["json"]):
        import json as again
    assert again is json and type(again) is type(sys)
    assert again.loads("[1]") == [1]
    assert sys.meta_path == finders


def _package(root, name: str, ran) -> None:
    """A package whose body records that it ran (in the file ``ran``)."""
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(
        f"open({str(ran)!r}, 'a').write({name!r} + '\\n')\nVALUE = 42\n"
    )


def test_a_deferred_module_runs_when_first_read_and_other_threads_import_as_always(
    tmp_path, monkeypatch
):
    import importlib
    import sys
    import threading

    from expectations.core import deferred_imports

    ran = tmp_path / "ran.txt"
    ran.touch()
    for name in ("fbdefer_here", "fbdefer_there"):
        _package(tmp_path, name, ran)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("fbdefer_here", "fbdefer_there"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()

    other: list = []
    with deferred_imports(["fbdefer_here", "fbdefer_there"]):
        here = importlib.import_module("fbdefer_here")
        assert ran.read_text() == ""  # made, not run
        # Another thread importing meanwhile gets its module run at once.
        thread = threading.Thread(
            target=lambda: other.append(importlib.import_module("fbdefer_there"))
        )
        thread.start()
        thread.join(30)
    assert ran.read_text() == "fbdefer_there\n"
    assert here.VALUE == 42  # first read: now it runs
    assert ran.read_text() == "fbdefer_there\nfbdefer_here\n"
    assert other[0].VALUE == 42
