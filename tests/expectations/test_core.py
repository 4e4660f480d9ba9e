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
