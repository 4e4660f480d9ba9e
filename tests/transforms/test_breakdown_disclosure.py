"""Tests of transforms/breakdown_disclosure.py: the linear programming check of a trust's
breakdown (docs/methodology.md, "Disclosure control", "Breakdowns", rule 3) and the bound
propagation that answers it without solving where it can."""

from __future__ import annotations

import collections
import math
import random

import numpy as np
import pytest

from transforms import breakdown_disclosure as bd


def _breakdown(requests, approved, declined):
    """A trust's true counts of one dimension (decided = approved + declined) and its published
    totals, as public.trust_window publishes them (rounded, 1 to 4 withheld)."""
    true = {
        "requests_received": list(requests),
        "approved": list(approved),
        "declined": list(declined),
        "decided": [a + d for a, d in zip(approved, declined, strict=True)],
    }
    totals = {}
    for c, values in true.items():
        v = bd.round_count(sum(values))
        totals[c] = (v, v is None)
    return true, totals


@pytest.mark.parametrize(
    ("total", "safe"),
    [
        # A withheld count (0 to 4) and a count published as 10 (8 to 12) adding up to the
        # trust's 12: 12 - (8 to 12) is 0 to 4, the whole range.
        (12, True),
        # ... to 11: the withheld count is at most 3.
        (11, False),
        # ... to 9: at most 1.
        (9, False),
        # ... to 16: exactly 4.
        (16, False),
        # ... to 30: no true counts give it.
        (30, False),
    ],
)
def test_a_withheld_count_must_keep_the_whole_range_under_the_relations(total, safe):
    boxes = [bd.box(None, True), bd.box(10, False)]
    rows = [(float(total), float(total), {0: 1.0, 1: 1.0})]
    assert bd.lp_safe(boxes, [True, False], rows) is safe
    assert bd.lp_solved_safe(boxes, [True, False], rows) is safe
    # the propagated bounds prove every unsafe case here without solving
    assert bd.narrowed_by_bounds(boxes, [True, False], rows) is not safe


def _programs_of_random_breakdowns(check: str, rng: random.Random, count: int) -> list:
    """The (boxes, withheld, rows) every call of ``bd.<check>`` was given while ``count``
    random breakdowns (2 to 9 groups, small and larger counts) went through control_counts."""
    problems = []
    real = getattr(bd, check)

    def recording(boxes, withheld, rows):
        problems.append((boxes, withheld, rows))
        return real(boxes, withheld, rows)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bd, check, recording)
        for _ in range(count):
            n = rng.randint(2, 9)
            requests = [rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 12, 20, 37]) for _ in range(n)]
            approved = [rng.randint(0, r) for r in requests]
            declined = [rng.randint(0, r - a) for r, a in zip(requests, approved, strict=True)]
            bd.control_counts(*_breakdown(requests, approved, declined))
    return problems


def test_bound_propagation_never_changes_the_linear_programs_answer():
    """Over many random breakdowns, whenever the propagated bounds say a withheld count is
    narrowed (and the linear programs are skipped), the linear programs say so too; and the
    check gives the linear programs' answer in every case."""
    real = bd.lp_safe
    problems = _programs_of_random_breakdowns("lp_safe", random.Random(20), 400)
    proved = 0
    for boxes, withheld, rows in problems:
        solved = bd.lp_solved_safe(boxes, withheld, rows)
        if bd.narrowed_by_bounds(boxes, withheld, rows):
            proved += 1
            assert not solved
        assert real(boxes, withheld, rows) == solved
    # the random breakdowns exercise both ways: proofs without solving, and solved cases
    assert 0 < proved < len(problems)


def test_withheld_cells_taken_together_give_the_cell_by_cell_answer():
    """lp_solved_safe solves for the withheld cells together and alone only where that moves
    none: over random breakdowns (the control's own relations, and the same with the totals
    moved so that cells are narrowed or no counts fit), its answer is that of two linear
    programs per withheld cell."""
    rng = random.Random(33)
    problems = _programs_of_random_breakdowns("lp_solved_safe", rng, 1500)
    moved = []
    for boxes, withheld, rows in problems:
        shifted = [
            (lo + d, hi + d, coefs) if lo == hi else (lo, hi, coefs)
            for (lo, hi, coefs), d in zip(rows, [rng.choice([-3, -1, 0, 1, 2]) for _ in rows],
                                          strict=True)
        ]  # fmt: skip
        moved.append((boxes, withheld, shifted))
    answers = collections.Counter()
    for boxes, withheld, rows in problems + moved:
        answer = bd.lp_solved_safe(boxes, withheld, rows)
        assert answer == _lp_cell_by_cell_safe(boxes, withheld, rows)
        answers[answer] += 1
    # both answers, many times over
    assert len(problems) > 50 and min(answers[True], answers[False]) > 20


def test_dimensions_controlled_together_give_each_ones_answer_alone():
    """control_dimensions of many trusts' dimensions at once (rounding, zeros and totals on
    arrays) gives each dimension what control_counts gives it alone, totals missing, withheld
    or disagreeing included."""
    rng = random.Random(12)
    for n in (1, 3, 7):
        true, totals, alone = [], [], []
        for _ in range(150):
            requests = [rng.choice([0, 0, 1, 3, 4, 5, 8, 20, 37]) for _ in range(n)]
            approved = [rng.randint(0, r) for r in requests]
            declined = [rng.randint(0, r - a) for r, a in zip(requests, approved, strict=True)]
            counts, published = _breakdown(requests, approved, declined)
            for c in rng.sample(bd.COUNTS, 2):  # some totals missing or off by a few
                published[c] = rng.choice([(None, False), (None, True), (15.0, False)])
            true.append([counts[c] for c in bd.COUNTS])
            totals.append(published)
            alone.append(bd.control_counts(counts, published))
        values = [[np.nan if t[c][0] is None else t[c][0] for c in bd.COUNTS] for t in totals]
        flags = [[t[c][1] for c in bd.COUNTS] for t in totals]
        published, withheld, shown = bd.control_dimensions(
            np.array(true), np.array(values), np.array(flags)
        )
        for d, (values_alone, withheld_alone, status) in enumerate(alone):
            assert shown[d] == (status == "published")
            for k, c in enumerate(bd.COUNTS):
                np.testing.assert_array_equal(published[d, k], values_alone[c])
                assert withheld[d, k].tolist() == withheld_alone[c]
        assert 0 < shown.sum() < len(alone)  # both answers


def test_a_figure_no_trust_gives_sums_to_zeros():
    """member_sums of a figure without cells: zeros, as floats like the others'."""
    sums = bd.member_sums([10.0, np.nan], [False, True], [0, 0], 2)
    assert sums.dtype == float and sums[1].tolist() == [0.0] * len(bd.MEMBER_SUMS)
    assert sums[0].tolist() == [1.0, 10.0, 1.0, 8.0, 16.0, 0.0]
    assert bd.member_sums([], [], [], 1).dtype == float


def test_the_threads_solver_gives_each_program_a_new_instances_solutions():
    """_highs passes every model to one HiGHS instance per thread: after the programs before
    it, each program's solutions (least and greatest sum of its withheld cells, then of each
    cell alone) are those of a new instance, bit for bit."""
    import highspy

    def solutions(h, withheld):
        found = []
        cells = [j for j, w in enumerate(withheld) if w]
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            h.changeObjectiveSense(sense)
            for group in [cells, *([j] for j in cells)]:
                for j in group:
                    h.changeColCost(j, 1.0)
                h.run()
                found.append((h.getModelStatus(), list(h.getSolution().col_value)))
                for j in group:
                    h.changeColCost(j, 0.0)
        return found

    problems = _programs_of_random_breakdowns("lp_solved_safe", random.Random(41), 300)
    assert len(problems) > 20
    for boxes, withheld, rows in problems:
        new = highspy.Highs()
        new.setOptionValue("output_flag", False)
        new.setOptionValue("presolve", "off")
        new.passModel(bd._highs(boxes, rows).getLp())  # the same model, on a new instance
        assert solutions(bd._highs(boxes, rows), withheld) == solutions(new, withheld)


def _lp_cell_by_cell_safe(boxes: list[tuple[float, float]], withheld: list[bool], rows: list):
    """lp_solved_safe as the rule reads: two linear programs per withheld cell, its least and
    greatest value (the reference the faster form is held to)."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    for lo, hi in boxes:
        h.addVar(lo, inf if math.isinf(hi) else hi)
    for lo, hi, coefs in rows:
        idx = np.array(list(coefs), dtype=np.int32)
        h.addRow(lo, hi, len(idx), idx, np.array(list(coefs.values()), dtype=float))
    for j, w in enumerate(withheld):
        if not w:
            continue
        bounds = []
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            h.changeColCost(j, 1.0)
            h.changeObjectiveSense(sense)
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return False
            bounds.append(h.getInfo().objective_function_value)
            h.changeColCost(j, 0.0)
        if bounds[0] > 1e-6 or bounds[1] < bd.MAX_SUPPRESSED_COUNT - 1e-6:
            return False
    return True


def _relation_safe_cell_by_cell(cells):
    """relation_safe as the rule reads: each withheld cell against the sum of the others."""
    for j, (c, _, w) in enumerate(cells):
        if not w:
            continue
        rest_lo = sum(min(k * b[0], k * b[1]) for i, (k, b, _) in enumerate(cells) if i != j)
        rest_hi = sum(max(k * b[0], k * b[1]) for i, (k, b, _) in enumerate(cells) if i != j)
        lo, hi = sorted((-rest_hi / c, -rest_lo / c))
        if lo > 0 or hi < bd.MAX_SUPPRESSED_COUNT:
            return False
    return True


def test_a_peer_group_or_national_figure_is_checked_against_each_withheld_trust_figure():
    """A group's known total less its trusts' figures must leave each withheld trust figure
    0 to 4; a trust whose dimension is withheld as a whole (no value) bounds nothing. Random
    relations of up to 300 trusts, with withheld, rounded, zero and unknown figures."""
    rng = random.Random(7)
    answers = set()
    for _ in range(600):
        n = rng.choice([1, 2, 3, 5, 20, 300])
        figures = []
        for _ in range(n):
            kind = rng.random()
            if kind < 0.3:
                figures.append((None, True))  # withheld
            elif kind < 0.4:
                figures.append((float("nan"), False))  # the trust's dimension withheld
            elif kind < 0.5:
                figures.append((0.0, False))
            else:
                figures.append((float(rng.choice([5, 10, 15, 40])), False))
        total = float(rng.randint(0, 20 * n))
        cells = [(1.0, (total, total), False)]
        cells += [(-1.0, bd.box(v, w), w) for v, w in figures]
        answer = bd.relation_safe(cells)
        assert answer == _relation_safe_cell_by_cell(cells)
        # the same relation, as aggregates use it: from the figures added up
        values = [np.nan if v is None else v for v, _ in figures]
        sums = bd.member_sums(values, [w for _, w in figures], np.zeros(n, dtype=int), 1)
        assert bd._sum_safe(total, sums[0].tolist()) == answer
        answers.add(answer)
    assert answers == {True, False}
