"""Disclosure control of the breakdown tables (equity dimensions and flex types): the rule of
docs/methodology.md ("Disclosure control", "Breakdowns"), pure (no I/O).

Breakdowns are where small numbers are most common, so they are controlled more strictly than
the trust's totals:

1. a group's count (requests received, approved, declined) from 1 to 4 is withheld; every other
   non-zero count is rounded to the nearest 5; decided is approved + declined as published where
   both are, else controlled like the others;
2. a 0 is withheld too when it shares a relation with a withheld count (the groups of the same
   count, or the same group's counts), so in a breakdown "[c]" means 0 to 4;
3. a trust's breakdown by a dimension is published only where no relation a reader can use (the
   groups add up to the trust's published total; approved + declined = decided) narrows a
   withheld count below 0 to 4, and the published groups agree with the trust's published
   total (some true counts give both); otherwise every count of that dimension is withheld
   (``dimension_status`` "withheld", any value);
4. a peer-group or England figure of a group is the sum of its trusts' published figures where
   every one is published, else its own rounding; its breakdown is withheld as a whole where a
   figure would be withheld or would narrow a trust's withheld figure;
5. rates, their intervals and relative likelihoods are worked out from the published counts.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd

from transforms.disclosure import MAX_SUPPRESSED_COUNT, MIN_RATE_DENOMINATOR, ROUND_TO

#: The counts of a breakdown cell (decided derived from approved and declined).
COUNTS = ("requests_received", "approved", "declined", "decided")
HALF = ROUND_TO // 2


def round_count(x: int) -> float | None:
    """1-4 withheld (None), 0 kept, others to the nearest 5 (half up, as DuckDB's round)."""
    if x == 0:
        return 0.0
    if x <= MAX_SUPPRESSED_COUNT:
        return None
    return float(math.floor(x / ROUND_TO + 0.5) * ROUND_TO)


def box(value, withheld: bool, derived: bool = False) -> tuple[float, float]:
    """What a published breakdown count says about its true value."""
    if withheld:
        return 0.0, float(MAX_SUPPRESSED_COUNT)
    # (a float is checked for NaN without pandas: this runs for every cell of every check)
    if value is None or (value != value if isinstance(value, float) else pd.isna(value)):
        return 0.0, math.inf
    v = float(value)
    if v == 0:
        return 0.0, 0.0
    if derived:  # a sum of published parts: bounded by its parts
        return 0.0, math.inf
    return max(v - HALF, MAX_SUPPRESSED_COUNT + 1.0), v + HALF


def box_bounds(values, withheld) -> tuple[np.ndarray, np.ndarray]:
    """:func:`box` of many published counts at once (``values`` NaN where there is none): the
    lower and the upper bounds."""
    values = np.asarray(values, dtype=float)
    withheld = np.asarray(withheld, dtype=bool)
    missing = np.isnan(values)
    lower = np.where(
        withheld | missing | (values == 0),
        0.0,
        np.maximum(values - HALF, MAX_SUPPRESSED_COUNT + 1.0),
    )
    upper = np.where(
        withheld,
        float(MAX_SUPPRESSED_COUNT),
        np.where(missing, math.inf, np.where(values == 0, 0.0, values + HALF)),
    )
    return lower, upper


def relation_safe(cells: list[tuple[float, tuple[float, float], bool]]) -> bool:
    """Whether sum(coef * x) = 0 over ``cells`` (coef, box, withheld) leaves every withheld
    cell the whole range 0 to 4 (interval arithmetic over the other cells' boxes): a reader
    cannot tell a withheld count from 0, as in the main tables.

    The other cells' bounds of each withheld cell are the relation's sums less its own term:
    one pass over the relation, not one per withheld cell (a national figure has thousands of
    trusts). The bounds are whole numbers (or infinite, counted apart), so the sums are exact.
    """
    if not any(w for _, _, w in cells):
        return True
    terms = [(min(k * b[0], k * b[1]), max(k * b[0], k * b[1])) for k, b, _ in cells]
    lo_sum, lo_inf = _finite_sum(t[0] for t in terms)
    hi_sum, hi_inf = _finite_sum(t[1] for t in terms)
    for j, (c, _, w) in enumerate(cells):
        if not w:
            continue
        own_lo, own_hi = terms[j]
        if math.isinf(own_lo):
            rest_lo = -math.inf if lo_inf > 1 else lo_sum
        else:
            rest_lo = -math.inf if lo_inf else lo_sum - own_lo
        if math.isinf(own_hi):
            rest_hi = math.inf if hi_inf > 1 else hi_sum
        else:
            rest_hi = math.inf if hi_inf else hi_sum - own_hi
        lo, hi = sorted((-rest_hi / c, -rest_lo / c))
        if lo > 0 or hi < MAX_SUPPRESSED_COUNT:
            return False
    return True


def _finite_sum(values) -> tuple[float, int]:
    """The sum of the finite values and how many are infinite."""
    total, infinite = 0.0, 0
    for v in values:
        if math.isinf(v):
            infinite += 1
        else:
            total += v
    return total, infinite


def lp_safe(boxes: list[tuple[float, float]], withheld: list[bool], rows: list) -> bool:
    """Whether every withheld cell keeps the whole range 0 to 4 under linear programming over
    ``rows`` (lower, upper, {cell: coef}) with the cells in ``boxes``: the strongest bounds a
    reader can work out from these relations (HiGHS, as scipy.optimize.linprog uses).

    Where bound propagation (:func:`narrowed_by_bounds`) already proves a withheld cell
    narrowed, or the relations infeasible, the answer is no without solving: the linear
    programs would find the same, as the bounds it works out hold for every solution.
    """
    if any(withheld) and narrowed_by_bounds(boxes, withheld, rows):
        return False
    return lp_solved_safe(boxes, withheld, rows)


def lp_solved_safe(boxes: list[tuple[float, float]], withheld: list[bool], rows: list) -> bool:
    """:func:`lp_safe` by the linear programs alone: the least and greatest value of each
    withheld cell (HiGHS).

    Each least value is 0 and each greatest 4 exactly when some solution of the relations
    puts the cell there (its box is 0 to 4). So the withheld cells are first taken together:
    one program minimises (then maximises) their sum, and every cell its solution puts at 0
    (at 4) needs no program of its own; the program is solved again for the cells left, and
    a cell is solved alone only where that moves no cell. The answer is the cell-by-cell
    one (two programs per withheld cell; tests/transforms/test_breakdown_disclosure.py
    holds it to that), with about a third of the programs.
    """
    import highspy

    h = _highs(boxes, rows)
    cells = [j for j, w in enumerate(withheld) if w]
    optimal = highspy.HighsModelStatus.kOptimal
    for sense, at_bound in (
        (highspy.ObjSense.kMinimize, lambda v: v <= 1e-6),
        (highspy.ObjSense.kMaximize, lambda v: v >= MAX_SUPPRESSED_COUNT - 1e-6),
    ):
        h.changeObjectiveSense(sense)
        todo = cells
        while todo:
            for j in todo:
                h.changeColCost(j, 1.0)
            h.run()
            if h.getModelStatus() != optimal:
                return False
            x = h.getSolution().col_value
            left = [j for j in todo if not at_bound(x[j])]
            for j in todo:
                h.changeColCost(j, 0.0)
            if len(left) == len(todo):  # no cell moved: the first alone
                alone = todo[0]
                h.changeColCost(alone, 1.0)
                h.run()
                if h.getModelStatus() != optimal or not at_bound(
                    h.getInfo().objective_function_value
                ):
                    return False
                x = h.getSolution().col_value
                h.changeColCost(alone, 0.0)
                left = [j for j in left[1:] if not at_bound(x[j])]
            todo = left
    return True


#: One HiGHS instance per thread, given each model afresh (passing a model clears the last
#: one's solution and basis: the same solutions, step by step, as a new instance), since a new
#: instance's first solve costs several times what these small programs take.
_SOLVER = threading.local()


def _highs(boxes: list[tuple[float, float]], rows: list):
    """A HiGHS model of the cells in ``boxes`` under ``rows`` (lower, upper, {cell: coef}),
    with no objective, passed whole to the thread's instance (:data:`_SOLVER`)."""
    import highspy

    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = len(boxes)
    lp.num_row_ = len(rows)
    lp.col_cost_ = np.zeros(len(boxes))
    lp.col_lower_ = np.array([b[0] for b in boxes], dtype=float)
    lp.col_upper_ = np.array([inf if math.isinf(b[1]) else b[1] for b in boxes], dtype=float)
    lp.row_lower_ = np.array([r[0] for r in rows], dtype=float)
    lp.row_upper_ = np.array([r[1] for r in rows], dtype=float)
    starts, index, value = [0], [], []
    for _, _, coefs in rows:
        index.extend(coefs)
        value.extend(coefs.values())
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    h = getattr(_SOLVER, "highs", None)
    if h is None:
        h = _SOLVER.highs = highspy.Highs()
        h.setOptionValue("output_flag", False)
        # a few dozen cells: presolving costs more than it saves (the same answers, tested
        # against the cell-by-cell programs, which presolve)
        h.setOptionValue("presolve", "off")
    h.passModel(lp)
    return h


#: Slack on the bounds :func:`narrowed_by_bounds` proves, far above rounding error and the
#: linear programs' tolerances (the counts and boxes are whole numbers), so that it says "no"
#: only where the linear programs of :func:`lp_safe` say it too.
_PROOF_MARGIN = 1e-3
#: Rounds of propagation over every relation: a proof needs one to three on the breakdowns.
_PROPAGATION_ROUNDS = 10


def narrowed_by_bounds(boxes: list[tuple[float, float]], withheld: list[bool], rows: list) -> bool:
    """Whether bound propagation over ``rows`` (lower, upper, {cell: coef}) from the cells'
    ``boxes`` proves a withheld cell narrowed below 0 to 4, or the relations infeasible.

    Each round bounds every cell of every relation by the other cells' bounds (interval
    arithmetic, as :func:`relation_safe` does for one relation) and keeps the tighter bound.
    Every bound it works out holds for every solution of the relations, so "yes" (by more
    than :data:`_PROOF_MARGIN`) means the linear programs of :func:`lp_safe` find the cell
    narrowed (or no solution) too; "no" proves nothing, and :func:`lp_safe` solves them.
    """
    lo = [float(b[0]) for b in boxes]
    hi = [float(b[1]) for b in boxes]
    inf = math.inf
    for _ in range(_PROPAGATION_ROUNDS):
        changed = False
        for row_lo, row_hi, coefs in rows:
            terms = []
            min_sum = max_sum = 0.0
            min_inf = max_inf = 0  # terms without a finite lower / upper bound
            for k, a in coefs.items():
                if a == 0:
                    continue
                t_min, t_max = (a * lo[k], a * hi[k]) if a > 0 else (a * hi[k], a * lo[k])
                if t_min == -inf:
                    min_inf += 1
                else:
                    min_sum += t_min
                if t_max == inf:
                    max_inf += 1
                else:
                    max_sum += t_max
                terms.append((k, a, t_min, t_max))
            if (not min_inf and min_sum > row_hi + _PROOF_MARGIN) or (
                not max_inf and max_sum < row_lo - _PROOF_MARGIN
            ):
                return True  # no solution at all
            for k, a, t_min, t_max in terms:
                # a * x_k = row - (the other terms): bounded by the others' bounds
                if t_min == -inf:
                    others_min = -inf if min_inf > 1 else min_sum
                else:
                    others_min = -inf if min_inf else min_sum - t_min
                if t_max == inf:
                    others_max = inf if max_inf > 1 else max_sum
                else:
                    others_max = inf if max_inf else max_sum - t_max
                upper = row_hi - others_min  # bound on a * x_k
                lower = row_lo - others_max
                new_lo, new_hi = (lower / a, upper / a) if a > 0 else (upper / a, lower / a)
                if new_lo > lo[k] + 1e-9:
                    lo[k], changed = new_lo, True
                if new_hi < hi[k] - 1e-9:
                    hi[k], changed = new_hi, True
                if lo[k] > hi[k] + _PROOF_MARGIN:
                    return True  # no solution at all
                if withheld[k] and (
                    lo[k] > 1e-6 + _PROOF_MARGIN
                    or hi[k] < MAX_SUPPRESSED_COUNT - 1e-6 - _PROOF_MARGIN
                ):
                    return True
        if not changed:
            break
    return False


def control_trust_dimension(groups: pd.DataFrame, totals: dict) -> tuple[pd.DataFrame, str]:
    """One trust's groups of one dimension (true counts, every group of the dimension, 0 where
    the trust has none) -> the published counts (NaN withheld), a ``<count>_withheld`` flag
    each, and the dimension's status ("published" or "withheld").

    ``totals`` maps each count to the trust's published (value, withheld) in its window.
    """
    published, withheld, status = control_counts(
        {c: [int(v) for v in groups[c]] for c in COUNTS}, totals
    )
    out = groups.copy()
    for c in COUNTS:
        out[c] = published[c]
        out[f"{c}_withheld"] = withheld[c]
    return out, status


def control_counts(
    true: dict[str, list[int]], totals: dict
) -> tuple[dict[str, list[float]], dict[str, list[bool]], str]:
    """:func:`control_trust_dimension` on plain lists: ``true`` maps each count to the true
    count of each group; returns the published counts (NaN withheld), the withheld flags and
    the dimension's status (:func:`control_dimensions` of one dimension)."""
    values, flags = [], []
    for c in COUNTS:
        value, withheld = totals.get(c, (None, False))
        values.append(float(value) if _present(value) else math.nan)
        flags.append(bool(withheld))
    counts = np.array([[[int(v) for v in true[c]] for c in COUNTS]], dtype=np.int64)
    published, withheld, shown = control_dimensions(counts, np.array([values]), np.array([flags]))
    return (
        {c: published[0, k].tolist() for k, c in enumerate(COUNTS)},
        {c: withheld[0, k].tolist() for k, c in enumerate(COUNTS)},
        "published" if shown[0] else "withheld",
    )


def control_dimensions(
    true: np.ndarray, totals: np.ndarray, totals_withheld: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The control of many trusts' dimensions of as many groups each, at once: ``true`` the
    true counts (dimension, count of :data:`COUNTS`, group), ``totals`` each trust's published
    totals (dimension, count; NaN where it has none) and ``totals_withheld`` whether each is
    withheld. Returns the published counts (NaN withheld), the withheld flags (both shaped as
    ``true``) and whether each dimension is published (else withheld as a whole).

    Rounding, the zeros and the totals' agreement are worked out on the arrays; the linear
    programs (:func:`lp_safe`) are solved dimension by dimension, with the same cells and
    relations as one dimension alone gives."""
    true = np.asarray(true, dtype=np.int64)
    pub = _round_counts(true)
    # decided is approved + declined as published where both are, else its own rounding
    both = ~np.isnan(pub[:, 1]) & ~np.isnan(pub[:, 2])
    pub[:, 3] = np.where(both, pub[:, 1] + pub[:, 2], pub[:, 3])
    withheld = np.isnan(pub)
    # Zeros sharing a relation (same count, or same group) with a withheld count: withheld,
    # until no published 0 shares one (the order cells are taken in cannot change the end).
    zero = pub == 0
    while True:
        shares = withheld.any(axis=2, keepdims=True) | withheld.any(axis=1, keepdims=True)
        newly = zero & shares & ~withheld
        if not newly.any():
            break
        withheld |= newly
    # each cell's box and each total's (a total without a value is unbounded)
    lo, hi = box_bounds(pub, withheld)
    total_lo, total_hi = box_bounds(totals, totals_withheld)
    # the published groups must agree with the trust's published total: some true counts
    # give both (else the page would contradict itself); the bounds are whole numbers, so the
    # sums are exact in any order
    shown = ~((lo.sum(axis=2) > total_hi) | (hi.sum(axis=2) < total_lo)).any(axis=1)
    # Linear programming over every relation of the dimension, with the trust's totals known
    # exactly (a reader can never know more): no withheld count narrowed below 0 to 4.
    # The cells count by count, group by group: cell k * n + i is count k of group i. The
    # relations of a group's counts are every dimension's (the same objects, never changed);
    # the counts' sums are each trust's.
    n = true.shape[2]
    received, approved, declined, decided = (k * n for k in range(len(COUNTS)))
    group_rows = []
    for i in range(n):
        group_rows.append((0.0, 0.0, {decided + i: 1.0, approved + i: -1.0,
                                      declined + i: -1.0}))  # fmt: skip
        group_rows.append((-1e30, 0.0, {decided + i: 1.0, received + i: -1.0}))
    sum_coefs = [{k * n + i: 1.0 for i in range(n)} for k in range(len(COUNTS))]
    sums = true.sum(axis=2).astype(float).tolist()
    for d in np.flatnonzero(shown & withheld.any(axis=(1, 2))).tolist():
        boxes = list(zip(lo[d].ravel().tolist(), hi[d].ravel().tolist(), strict=True))
        rows = [*group_rows, *((t, t, coefs) for t, coefs in zip(sums[d], sum_coefs, strict=True))]
        if not lp_safe(boxes, withheld[d].ravel().tolist(), rows):
            shown[d] = False
    kept = withheld | ~shown[:, None, None]
    return np.where(kept, np.nan, pub), kept, shown


def _round_counts(true: np.ndarray) -> np.ndarray:
    """:func:`round_count` of every count (NaN withheld), the same floats."""
    x = true.astype(float)
    rounded = np.floor(x / ROUND_TO + 0.5) * ROUND_TO
    return np.where(true == 0, 0.0, np.where(true <= MAX_SUPPRESSED_COUNT, np.nan, rounded))


def wilson(x: float, n: float, z: float) -> tuple[float, float]:
    if n <= 0:
        return math.nan, math.nan
    p = x / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def published_rate(approved, decided, z: float) -> tuple[str, float, float, float]:
    """(status, rate, lower95, upper95) of approved / decided from published counts: the
    Wilson interval widened over every count the rounding allows, rounded outwards to 1
    point; too_few under MIN_RATE_DENOMINATOR published decided, withheld if approved is."""
    if not _present(decided) or decided < MIN_RATE_DENOMINATOR:
        return "too_few", math.nan, math.nan, math.nan
    if not _present(approved):
        return "withheld", math.nan, math.nan, math.nan
    a, d = float(approved), float(decided)

    def lo_of(v):
        return 0.0 if v == 0 else max(v - HALF, MAX_SUPPRESSED_COUNT + 1)

    def hi_of(v):
        return 0.0 if v == 0 else v + HALF

    lower = max(wilson(lo_of(a), hi_of(d), z)[0], 0.0)
    upper = min(wilson(min(hi_of(a), lo_of(d)), lo_of(d), z)[1], 1.0)
    return (
        "published",
        round(a / d, 3),
        math.floor(lower * 100) / 100,
        math.ceil(upper * 100) / 100,
    )


def relative_likelihood(ref_a, ref_d, a, d, z: float) -> tuple[float, float, float]:
    """Reference group's approval rate / this group's, 95% interval by the log method, from
    published counts (NaN where either count is withheld, a group has under 10 published
    decided, a rate is 0, or both rates are 100%)."""
    vals = [ref_a, ref_d, a, d]
    if not all(_present(v) for v in vals):
        return math.nan, math.nan, math.nan
    ref_a, ref_d, a, d = (float(v) for v in vals)
    if min(ref_d, d) < MIN_RATE_DENOMINATOR or a == 0 or ref_a == 0:
        return math.nan, math.nan, math.nan
    if a == d and ref_a == ref_d:  # both all approved: the log method has no interval
        return math.nan, math.nan, math.nan
    rl = (ref_a / ref_d) / (a / d)
    se = math.sqrt(max(1 / ref_a - 1 / ref_d + 1 / a - 1 / d, 0.0))
    return round(rl, 2), round(rl * math.exp(-z * se), 2), round(rl * math.exp(z * se), 2)


def _present(v) -> bool:
    """``pd.notna`` of one value, without pandas for a float or None."""
    if v is None:
        return False
    return v == v if isinstance(v, float) else bool(pd.notna(v))


#: What :func:`control_aggregate` reads of the trusts' cells (published value, withheld) of a
#: figure, as :func:`member_sums` adds them up.
MEMBER_SUMS = ("unpublished", "published", "withheld", "lower", "upper", "unbounded")


def member_sums(values, withheld, figure, figures: int) -> np.ndarray:
    """The trusts' cells of each figure added up, one row per figure (numbered 0 to
    ``figures`` - 1; ``figure`` the number of each cell's figure), one column per
    :data:`MEMBER_SUMS`: how many cells are not published (withheld, or no value: NaN), the sum
    of the published values, how many are withheld, the sums of the cells' lower bounds and of
    their finite upper bounds (:func:`box`) and how many have none. The values and bounds are
    whole numbers, so the sums are exact in any order."""
    values = np.asarray(values, dtype=float)
    withheld = np.asarray(withheld, dtype=bool)
    figure = np.asarray(figure, dtype=np.intp)
    missing = np.isnan(values)
    lower, upper = box_bounds(values, withheld)
    unbounded = ~withheld & missing
    columns = (
        withheld | missing,
        np.where(withheld | missing, 0.0, values),
        withheld,
        lower,
        np.where(unbounded, 0.0, upper),
        unbounded,
    )
    # (as floats even where there are no cells: bincount gives integers then)
    return np.stack(
        [np.bincount(figure, weights=c.astype(float), minlength=figures) for c in columns],
        axis=1,
        dtype=float,
    )


def _sum_safe(total: float, sums) -> bool:
    """:func:`relation_safe` of ``total - sum(cells) = 0`` (``sums`` the cells'
    :func:`member_sums`): every withheld cell has the box 0 to 4 and coefficient -1, so one
    bound of the others serves them all."""
    _, _, withheld, lower, upper, unbounded = sums
    if not withheld:
        return True
    # a withheld cell's term is -4 to 0: the others' bounds less its own
    rest_lo = -math.inf if unbounded else total - upper - (-float(MAX_SUPPRESSED_COUNT))
    lo, hi = sorted((total - lower, rest_lo))
    return not (lo > 0 or hi < MAX_SUPPRESSED_COUNT)


def control_aggregate(
    true: dict[str, list[int]], members: dict[str, np.ndarray]
) -> tuple[dict[str, list[float | None]], str]:
    """A peer group's or England's groups of one dimension: ``true`` its true counts per
    group, ``members`` per count the :func:`member_sums` of each group's trusts that give the
    dimension (a trust whose dimension is withheld as a whole has no value). A figure is the
    sum of its trusts' published figures where all are published, else its own rounding; the
    dimension is withheld as a whole where a figure would be withheld (0 to 4 with a trust's
    figure in it withheld) or a sum would narrow a trust's withheld figure."""
    out: dict[str, list[float | None]] = {}
    status = "published"
    for c in ("requests_received", "approved", "declined", "decided"):
        values = []
        for i, sums in enumerate(np.asarray(members[c]).tolist()):
            if not sums[0]:  # every trust's figure published
                values.append(sums[1])
                continue
            v = round_count(int(true[c][i]))
            if v == 0 and sums[2]:
                v = None  # a 0 would pin every withheld trust figure in it to 0
            values.append(v)
            # the sum known exactly (a reader can never know more)
            if status == "published" and not _sum_safe(float(true[c][i]), sums):
                status = "withheld"
        out[c] = values
    out["decided"] = [
        a + d if a is not None and d is not None else t
        for a, d, t in zip(out["approved"], out["declined"], out["decided"], strict=True)
    ]
    for i in range(len(out["decided"])):
        cells = [
            (k, box(out[c][i], out[c][i] is None), out[c][i] is None)
            for k, c in ((1.0, "decided"), (-1.0, "approved"), (-1.0, "declined"))
        ]
        if not relation_safe(cells):
            status = "withheld"
    # A small figure of a peer group or England (0 to 4 where a trust's figure in it is
    # withheld) withholds the whole breakdown: with its trusts' figures and the group's other
    # counts it could be narrowed below 0 to 4.
    if any(v is None for c in out for v in out[c]):
        status = "withheld"
    return out, status
