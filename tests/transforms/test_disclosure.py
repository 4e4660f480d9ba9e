"""Tests of transforms/disclosure.py: what a reader can work out from a published value, and
that the warehouse's disclosure macros (warehouse/schema.sql) publish what it says."""

from __future__ import annotations

import random

import duckdb
import pytest

from transforms import disclosure
from transforms.disclosure import (
    MAX_SUPPRESSED_COUNT,
    MIN_RATE_DENOMINATOR,
    ROUND_TO,
    cells_to_withhold,
    count_bounds,
)


@pytest.fixture(scope="module")
def macros():
    import warehouse

    con = duckdb.connect()
    con.execute("create schema raw; create schema audit")
    warehouse.apply_schema(con)
    yield con
    con.close()


@pytest.mark.parametrize(
    ("published", "withheld", "bounds"),
    [(0, False, (0, 0)), (None, True, (0, 4)), (5, False, (5, 7)), (10, False, (8, 12)),
     (1235, False, (1233, 1237)), (None, False, None)],
)  # fmt: skip
def test_a_published_count_says_where_its_true_value_lies(published, withheld, bounds):
    assert count_bounds(published, withheld) == bounds


def test_every_count_is_published_as_the_method_says_and_within_what_it_tells(macros):
    rows = macros.execute(
        f"select x, sdc_count(x, {MAX_SUPPRESSED_COUNT}, {ROUND_TO}) from range(0, 2000) t(x)"
    ).fetchall()
    for true, shown in rows:
        if 1 <= true <= MAX_SUPPRESSED_COUNT:
            assert shown is None  # withheld
            low, high = count_bounds(None, True)
        else:
            assert shown % ROUND_TO == 0 and (shown == 0) == (true == 0)
            low, high = count_bounds(shown, False)
        assert low <= true <= high


def test_a_rate_is_published_from_ten_and_not_from_a_withheld_numerator(macros):
    def status(num, den, den_true=None):
        den_true = den if den_true is None else den_true
        return macros.execute(
            "select sdc_rate_status(?, ?, ?, ?)", [num, den, den_true, MIN_RATE_DENOMINATOR]
        ).fetchone()[0]

    assert status(5, 10) == "published"
    assert status(5, 5) == "too_few"
    assert status(None, None, den_true=3) == "too_few"  # a withheld small denominator
    assert status(None, None, den_true=0) == "too_few"  # a withheld zero
    # a denominator withheld with a small count (secondary): withheld, not too few
    assert status(None, None, den_true=40) == "withheld"
    assert status(None, 120) == "withheld"  # the rate would give the count back
    assert status(0, 120) == "published"
    assert macros.execute("select sdc_rate_status(1, null, null, 10)").fetchone()[0] is None


def test_published_rates_are_to_a_tenth_of_a_point_and_limits_rounded_outwards(macros):
    for value in (0.8333333, 0.5, 0.98765, 0.0):
        nearest, down, up = macros.execute(
            "select sdc_rate(?, 'published', 'nearest'), sdc_rate(?, 'published', 'down'), "
            "sdc_rate(?, 'published', 'up')",
            [value] * 3,
        ).fetchone()
        assert abs(nearest - value) <= 0.5 * 10**-disclosure.RATE_DECIMALS + 1e-12
        assert down <= value <= up and up - down <= 0.01 + 1e-12
    assert macros.execute("select sdc_rate(0.5, 'too_few', 'nearest')").fetchone()[0] is None


def test_the_notes_name_the_method_and_what_can_and_cannot_be_worked_out():
    assert "Hospital Episode Statistics" in disclosure.METHOD_NAME
    text = " ".join(disclosure.KNOWABLE)
    assert "You can" in text and "You cannot" in text
    assert set(disclosure.STATUS_WORDS) == {"published", "too_few", "withheld"}


def _counts(**values):
    return {"requests_received": None, **values}


def test_a_zero_sharing_a_total_with_a_withheld_count_is_withheld_too():
    # Three quarters of 1 and one of 0 make a window of 3: were the 0 shown, each withheld
    # quarter would read 1 to 2 and the window 3 to 4. The 0 is withheld with them.
    window = {"window": _counts(escalated=3, declined=20)}
    quarters = {
        q: _counts(escalated=e, declined=5) for q, e in zip("abcd", (1, 1, 1, 0), strict=True)
    }
    assert cells_to_withhold(window, quarters) == {("d", "escalated"): "zero"}
    # A 0 that shares no relation with a withheld count is shown.
    quarters["d"]["escalated"] = 0
    window["window"]["escalated"] = 10
    for q, e in zip("abc", (5, 5, 0), strict=True):
        quarters[q]["escalated"] = e
    assert cells_to_withhold(window, quarters) == {}


def test_zeros_are_withheld_along_every_relation_they_share():
    # declined_costs 2 is withheld: the zero reasons go with it, and through declined (withheld,
    # a part of requests received) the zero outcomes too.
    row = {c: 0 for c in ("declined_demand", "declined_reorganise", "declined_recruit",
                          "declined_quality", "declined_performance", "declined_insufficient_work",
                          "declined_structural_changes", "declined_other")}  # fmt: skip
    row.update(declined=2, declined_costs=2, approved_in_full=40, approved_with_changes=0,
               approved=40, decided=42, withdrawn=0, pending=0, requests_received=42)  # fmt: skip
    hidden = cells_to_withhold({"window": row}, {})
    assert ("window", "declined_other") in hidden and ("window", "declined_demand") in hidden
    # requests = outcomes holds declined (withheld): withdrawn, pending and with-changes 0 go
    assert {("window", "withdrawn"), ("window", "pending")} <= hidden.keys()
    assert ("window", "approved_with_changes") in hidden
    assert ("window", "approved_in_full") not in hidden  # only zeros are withheld this way


def test_a_zero_that_bounds_a_withheld_count_from_above_is_withheld_too():
    # The window's appeals upheld (2) is withheld, so is each quarter's (0 to 4, zeros too);
    # a quarter with no declines then has appeals 0 and appeals upheld 0: were its declined 0
    # or appeals 0 shown, its withheld appeals upheld would read exactly 0, and the other
    # quarters' would be narrowed with it. Both zeros are withheld.
    window = {"window": _counts(declined=12, appeals=6, appeals_upheld=2)}
    quarters = {
        "a": _counts(declined=7, appeals=5, appeals_upheld=2),
        "b": _counts(declined=5, appeals=1, appeals_upheld=0),
        "c": _counts(declined=0, appeals=0, appeals_upheld=0),
    }
    hidden = cells_to_withhold(window, quarters)
    assert {("b", "appeals_upheld"), ("c", "appeals_upheld")} <= hidden.keys()
    assert hidden[("c", "declined")] == "zero"  # declined 0 bounds the withheld appeals
    assert ("c", "appeals") in hidden  # appeals 0 bounds it too
    # A 0 below a withheld count says nothing of it: shown (declined 3 is withheld, appeals 0
    # and appeals upheld 0 under it are not).
    alone = cells_to_withhold({}, {"q": _counts(declined=3, appeals=0, appeals_upheld=0)})
    assert alone == {}


def test_quarterly_appeals_are_withheld_all_or_none_over_the_window():
    # One quarter's appeals of 2 is withheld: the others (7, 0, 6) go with it, whatever their
    # value, so the window's 15 cannot be differenced against published quarters; appeals
    # upheld goes with appeals (a published 5 would bound a withheld appeals from below).
    window = {"window": _counts(declined=40, appeals=15, appeals_upheld=5)}
    quarters = {
        q: _counts(declined=10, appeals=a, appeals_upheld=u)
        for q, a, u in zip("abcd", (2, 7, 0, 6), (0, 5, 0, 0), strict=True)
    }
    withheld = cells_to_withhold(window, quarters)
    assert {(q, "appeals") for q in "bcd"} <= withheld.keys()
    assert withheld[("b", "appeals")] == withheld[("d", "appeals")] == "quarters"
    assert {(q, "appeals_upheld") for q in "abcd"} <= withheld.keys()
    assert ("window", "appeals") not in withheld  # the window keeps its own rounding
    # Quarters whose appeals are all publishable are published (the window is their sum).
    for q, a in zip("abcd", (5, 7, 0, 6), strict=True):
        quarters[q]["appeals"] = a
    withheld = cells_to_withhold({"window": _counts(declined=40, appeals=18, appeals_upheld=5)},
                                 quarters)  # fmt: skip
    assert not any(c == "appeals" for _, c in withheld)
    # Quarters without a window (outside it) stand alone: nothing is published over them.
    outside = {
        "q": _counts(declined=10, appeals=2, appeals_upheld=0),
        "r": _counts(declined=10, appeals=7, appeals_upheld=0),
    }
    alone = cells_to_withhold({}, outside)
    assert alone == {}


def _cells_to_withhold_pass_by_pass(window, quarters):
    """cells_to_withhold as the rule reads: every relation checked again on every pass, each
    cell's value looked up where it is used."""
    from transforms.disclosure import _is_small, _missing, relations

    rows = {**window, **quarters}
    groups, orders, together, together_orders = relations(window, quarters)

    def value(cell):
        return rows[cell[0]].get(cell[1])

    withheld = {cell for g in groups for cell in g if _is_small(value(cell))}
    withheld |= {cell for pair in orders for cell in pair if _is_small(value(cell))}
    withheld |= {cell for cells in together.values() for cell in cells if _is_small(value(cell))}
    out = {}

    def hide(cell, reason):
        v = value(cell)
        if cell in out or cell in withheld or _missing(v):
            return False
        if reason == "zero" and v != 0:
            return False
        out[cell] = reason
        return True

    def held(cell):
        return cell in withheld or cell in out

    changed = True
    while changed:
        changed = False
        for g in groups:
            if any(held(cell) for cell in g):
                for cell in g:
                    changed |= hide(cell, "zero")
        for small, large in orders:
            if held(small):
                changed |= hide(large, "zero")
        for cells in together.values():
            if any(held(cell) for cell in cells):
                for cell in cells:
                    changed |= hide(cell, "quarters")
        for small, large in together_orders:
            if any(held(cell) for cell in together[large]):
                for cell in together[small]:
                    changed |= hide(cell, "quarters")
    return out


def test_the_cells_withheld_are_those_of_the_rule_checked_pass_by_pass():
    """Over random trusts (windows with up to five quarters, quarters alone; small counts,
    zeros, missing counts), cells_to_withhold withholds the same cells for the same reasons,
    in the same order, as every relation checked again on every pass."""
    rng = random.Random(4)

    def value():
        return rng.choice([0, 0, 1, 2, 3, 4, 5, 7, 12, 30, None, float("nan")])

    reasons = set()
    for _ in range(3000):
        window = {}
        if rng.random() < 0.7:
            window = {"window": {c: value() for c in disclosure.WINDOW_COUNTS}}
        quarters = {
            f"q{i}": {c: value() for c in disclosure.QUARTER_COUNTS}
            for i in range(rng.randint(0, 5))
        }
        got = cells_to_withhold(window, quarters)
        assert list(got.items()) == list(_cells_to_withhold_pass_by_pass(window, quarters).items())
        reasons |= set(got.values())
    assert reasons == {"zero", "quarters"}
