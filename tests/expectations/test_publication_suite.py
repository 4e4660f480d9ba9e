"""The check frames' helpers that read a column once per distinct value give what reading
each row gives (expectations/publications.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from expectations import publications as checks
from transforms.publications import APPEALS, OUTCOMES

#: Values a column may hold: codes, other text, blanks of both kinds, numbers of three types
#: that compare equal (1, 1.0, True), spaces and case.
ODD = ["declined", "Declined", " rj1 ", "RJ1", None, float("nan"), 1, 1.0, True, "", "none"]


def _columns():
    rng = np.random.default_rng(7)
    yield np.array(ODD, dtype=object)
    yield np.array([], dtype=object)
    yield np.array([None, None], dtype=object)
    yield np.array(["rj1 ", None, "RRL", float("nan"), " rj1 "] * 3, dtype=object)  # text
    for _ in range(50):
        yield np.array([ODD[i] for i in rng.integers(0, len(ODD), 12)], dtype=object)


def test_a_column_is_looked_up_in_a_vocabulary_as_each_row_is():
    for values in _columns():
        for allowed in (OUTCOMES, APPEALS, ("none",)):
            got = checks._isin(values, allowed)
            assert got.dtype == bool
            assert got.tolist() == np.isin(values, allowed).tolist(), (values, allowed)


def test_an_expected_ods_code_is_upper_cased_as_each_row_is():
    for values in _columns():
        each = [None if v is None else str(v).strip().upper() for v in values]
        got = checks._per_row(pd.Series(values, dtype=object), pd.RangeIndex(len(values)), True)
        assert got.dtype == object and got.tolist() == each, values
    one = checks._per_row(" rj1 ", pd.RangeIndex(3), upper=True)
    assert one.tolist() == ["RJ1"] * 3
