"""An outsider's attack on the public outputs: bound every withheld or rounded count by linear
programming over every relation a reader can use (docs/methodology.md, "Disclosure control").

The attacker reads only what is published: the window and quarterly extracts (the Parquet
files; the CSV and XLSX files are checked to say the same) and the public layer's national,
regional, ICB and peer-group aggregates and flags (the site shows them). Each published count
becomes a variable boxed by what it says (0 exact; [c] 0-4; a rounded v from v - 2 to v + 2 and
at least 5); then every relation is added:

- in a trust's window: the five outcomes sum to requests_received, the nine decline reasons to
  declined, approved = in full + with changes, decided = approved + declined, clinical +
  non-clinical = all staff (approved and decided); in both kinds of row decided within two
  months <= decided, appeals upheld <= appeals <= declined;
- in a quarter: decided = approved + declined; the quarters of the window sum to the window
  (every quarterly count, appeals and appeals upheld too; where the quarters' appeals are
  withheld all together, each reads as any [c]: 0-4, or, above 4, a secondary [c] the attacker
  is told of and bounds by the relations alone);
- aggregates: each national, regional, ICB and peer-group figure is the sum of its trusts';
- rates: a published rate that is not the ratio of its published counts would bound the true
  counts (its band times the denominator, narrowed by the order of ranks; "too few" saying the
  denominator is under 10): the attacker checks each rate and uses any that is not; so too
  the quarterly uptake (requests per 100 staff a year, from the published requests, headcount
  and months covered);
- flags: "declines without escalation" says declined > escalated, "non-statutory declines"
  that declined_other >= 1.

The truth (the marts) is used only to keep the relations that hold for a row (an attacker who
guesses a relation right is stronger, never weaker) and to check that the bounds contain it.
Each trust's cells (window and quarters) are bounded by LP (HiGHS, the solver
scipy.optimize.linprog uses), integer-rounded, then every aggregate sum is propagated over its
trusts, and the two repeat until nothing more falls out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from transforms.disclosure import MAX_SUPPRESSED_COUNT, MIN_RATE_DENOMINATOR, RATE_DECIMALS

W_COUNTS = (
    "requests_received", "approved_in_full", "approved_with_changes", "declined", "withdrawn",
    "pending", "approved", "decided", "escalated", "appeals", "appeals_upheld",
    "decided_within_2_months", "declined_costs", "declined_demand", "declined_reorganise",
    "declined_recruit", "declined_quality", "declined_performance", "declined_insufficient_work",
    "declined_structural_changes", "declined_other", "clinical_approved", "clinical_decided",
    "non_clinical_approved", "non_clinical_decided",
)  # fmt: skip
Q_COUNTS = (
    "requests_received", "approved", "declined", "decided", "escalated", "appeals",
    "appeals_upheld", "decided_within_2_months", "declined_other",
)  # fmt: skip
REASONS = tuple(c for c in W_COUNTS if c.startswith("declined_"))

#: Equalities of a window row: total = sum(parts).
W_SUMS = (
    ("requests_received", ("approved_in_full", "approved_with_changes", "declined", "withdrawn",
                           "pending")),
    ("declined", REASONS),
    ("approved", ("approved_in_full", "approved_with_changes")),
    ("decided", ("approved", "declined")),
    ("decided", ("clinical_decided", "non_clinical_decided")),
    ("approved", ("clinical_approved", "non_clinical_approved")),
)  # fmt: skip
Q_SUMS = (("decided", ("approved", "declined")),)
#: Totals the public layer publishes as the sum of their published parts when all are published.
DERIVED = ("declined", "approved", "decided", "requests_received")
#: Inequalities small <= large (both kinds of row).
LEQ = (
    ("decided_within_2_months", "decided"),
    ("appeals_upheld", "appeals"),
    ("appeals", "declined"),
)

W_RATES = {
    "approval_rate": ("approved", "decided"),
    "decline_rate": ("declined", "decided"),
    "timeliness_rate": ("decided_within_2_months", "decided"),
    "escalation_rate": ("escalated", "not_agreed_first_stage"),
    "appeal_rate": ("appeals", "declined"),
    "appeals_upheld_rate": ("appeals_upheld", "appeals"),
    "non_statutory_decline_share": ("declined_other", "declined"),
    "clinical_approval_rate": ("clinical_approved", "clinical_decided"),
    "non_clinical_approval_rate": ("non_clinical_approved", "non_clinical_decided"),
}
Q_RATES = {
    k: v
    for k, v in W_RATES.items()
    if k
    in (
        "approval_rate",
        "decline_rate",
        "timeliness_rate",
        "escalation_rate",
        "appeal_rate",
        "appeals_upheld_rate",
    )
}
#: Uptake: requests per 100 staff a year, to 0.1 (quarter rows).
UPTAKE = "requests_per_100_staff"
UPTAKE_DECIMALS = 1


def _names(value) -> set[str]:
    return set(value.split(";")) if isinstance(value, str) and value else set()


#: What [c] says about a withheld count: 0 to 4 (zeros sharing a relation with a withheld count
#: are withheld too, so a reader cannot take a withheld count to be at least 1).
WITHHELD_BOX = (0.0, float(MAX_SUPPRESSED_COUNT))


#: A count withheld so that it does not narrow a small one (secondary suppression): the attacker
#: is told which [c] these are (a stronger attacker than a reader), and bounds them by the
#: relations alone.
SECONDARY_BOX = (0.0, 1e9)


def count_box(value, withheld: bool, truth=None) -> tuple[float, float] | None:
    """What a published count says about its true value (None: no data, no variable); a
    withheld count whose ``truth`` is above 4 is a secondary [c] (:data:`SECONDARY_BOX`)."""
    if withheld:
        if truth is not None and pd.notna(truth) and float(truth) > MAX_SUPPRESSED_COUNT:
            return SECONDARY_BOX
        return WITHHELD_BOX
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    v = int(value)
    if v == 0:
        return 0.0, 0.0
    return float(max(v - 2, MAX_SUPPRESSED_COUNT + 1)), float(v + 2)


@dataclass
class Problem:
    """Variables (cells) with boxes, and linear rows lower <= sum(coef * var) <= upper."""

    names: list[tuple] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)
    published_exact: list[bool] = field(default_factory=list)
    withheld: list[bool] = field(default_factory=list)
    box_value: list = field(default_factory=list)
    index: dict[tuple, int] = field(default_factory=dict)
    rows: list[tuple[float, float, dict[int, float], object]] = field(default_factory=list)

    def var(self, name, box, truth, value=None) -> None:
        self.box_value.append(None if value is None or pd.isna(value) else int(value))
        self.index[name] = len(self.names)
        self.names.append(name)
        self.lower.append(box[0])
        self.upper.append(box[1])
        self.truth.append(float(truth))
        self.published_exact.append(box[0] == box[1])
        self.withheld.append(tuple(box) in (WITHHELD_BOX, SECONDARY_BOX))

    def free(self, name) -> None:
        """A published sum of published parts: bounded by its parts alone (0 stays 0: its
        parts are all 0)."""
        j = self.index[name]
        if self.box_value[j] == 0:
            return
        self.lower[j], self.upper[j] = 0.0, 1e9
        self.published_exact[j] = False

    def has(self, *names) -> bool:
        return all(n in self.index for n in names)

    def row(self, lower, upper, coefs: dict[tuple, float], block) -> None:
        self.rows.append((lower, upper, {self.index[n]: c for n, c in coefs.items()}, block))

    def holds(self, coefs: dict[tuple, float], lower: float, upper: float) -> bool:
        value = sum(self.truth[self.index[n]] * c for n, c in coefs.items())
        return lower - 1e-9 <= value <= upper + 1e-9


def build_problem(window, quarters, aggregates, flags, truth_window, truth_quarters) -> Problem:
    """The attacker's problem from the published tables (and the truth, see the module)."""
    p = Problem()
    tw = truth_window.set_index("org_code")
    tq = truth_quarters.set_index(["org_code", "quarter_start"])

    # Rate bands, narrowed by the order of ranks.
    bands: dict[tuple, list[float]] = {}

    from_true: set[tuple] = set()  # rates that are not a function of the published counts
    uptake_bands: dict[tuple, tuple[float, float]] = {}  # uptake not from published requests

    def band(key, rate, den_published, num_published=None):
        half = 0.5 * 10**-RATE_DECIMALS
        bands[key] = [max(float(rate) - half, 0.0), min(float(rate) + half, 1.0)]
        if num_published is None or pd.isna(num_published) or pd.isna(den_published):
            from_true.add(key)
            return
        again = float(num_published) / float(den_published)
        if abs(again - float(rate)) > half + 1e-9:  # not a rounding of the published ratio
            from_true.add(key)

    for r in window.itertuples(index=False):
        if not r.has_data:
            continue
        code = r.org_code
        withheld = _names(r.withheld)
        for c in W_COUNTS:
            box = count_box(getattr(r, c), c in withheld, tw.at[code, c])
            if box is not None and pd.notna(tw.at[code, c]):
                p.var(("w", code, c), box, tw.at[code, c], getattr(r, c))
        for rate, (num, den) in W_RATES.items():
            if getattr(r, f"{rate}_status") == "published":
                band(("w", code, rate), getattr(r, rate), getattr(r, den), getattr(r, num))
    for scope in ("national", "peer"):
        ranked = window[window[f"{scope}_rank"].notna()]
        groups = ranked.groupby("peer_group") if scope == "peer" else [(None, ranked)]
        for _, g in groups:
            g = g.sort_values(f"{scope}_rank")
            keys = [("w", c, "approval_rate") for c in g["org_code"]]
            if not any(k in from_true for k in keys):
                continue  # ranks of rates worked out from published counts add nothing
            ranks = list(g[f"{scope}_rank"])
            # rank i above rank j (smaller rank) => rate_i >= rate_j; equal ranks => equal rates
            for i in range(len(keys)):
                for j in range(len(keys)):
                    if ranks[i] < ranks[j]:  # i at least as high as j
                        bands[keys[j]][1] = min(bands[keys[j]][1], bands[keys[i]][1])
                        bands[keys[i]][0] = max(bands[keys[i]][0], bands[keys[j]][0])
                    elif ranks[i] == ranks[j] and i != j:
                        bands[keys[j]][1] = min(bands[keys[j]][1], bands[keys[i]][1])
                        bands[keys[j]][0] = max(bands[keys[j]][0], bands[keys[i]][0])

    for r in quarters.itertuples(index=False):
        code, qs = r.org_code, pd.Timestamp(r.quarter_start)
        withheld = _names(r.withheld)
        for c in Q_COUNTS:
            box = count_box(getattr(r, c), c in withheld, tq.at[(code, qs), c])
            if box is not None and pd.notna(tq.at[(code, qs), c]):
                p.var(("q", code, qs, c), box, tq.at[(code, qs), c], getattr(r, c))
        for rate, (num, den) in Q_RATES.items():
            if getattr(r, f"{rate}_status") == "published":
                band(("q", code, qs, rate), getattr(r, rate), getattr(r, den), getattr(r, num))
        if getattr(r, f"{UPTAKE}_status", None) == "published":
            # requests = rate x staff x months / 1200: from the published requests it bounds
            # nothing; from any other it would bound the true requests.
            scale = float(r.headcount) * float(r.months_covered) / 1200
            half = 0.5 * 10**-UPTAKE_DECIMALS
            again = round(float(r.requests_received) / scale, UPTAKE_DECIMALS)
            if abs(again - float(getattr(r, UPTAKE))) > 1e-9:
                uptake_bands[("q", code, qs, "requests_received")] = (
                    (float(getattr(r, UPTAKE)) - half) * scale,
                    (float(getattr(r, UPTAKE)) + half) * scale,
                )

    def add_rates(prefix, row_status, rates, block):
        for rate, (num, den) in rates.items():
            status = row_status(rate)
            n, d = (*prefix, num), (*prefix, den)
            if not p.has(d):
                continue
            if status == "too_few" and (*prefix, rate) in from_true:
                p.row(-np.inf, MIN_RATE_DENOMINATOR - 1, {d: 1.0}, block)
            elif status == "published" and (*prefix, rate) in from_true and p.has(n):
                # a rate not worked out from the published counts bounds the true ones
                p.row(MIN_RATE_DENOMINATOR, np.inf, {d: 1.0}, block)
                lo, hi = bands[(*prefix, rate)]
                p.row(0.0, np.inf, {n: 1.0, d: -lo}, block)
                p.row(-np.inf, 0.0, {n: 1.0, d: -hi}, block)

    def add_sums(prefix, sums, block):
        for total, parts in sums:
            names = [(*prefix, total), *[(*prefix, x) for x in parts]]
            if p.has(*names):
                coefs = {names[0]: 1.0, **{n: -1.0 for n in names[1:]}}
                if p.holds(coefs, 0, 0):
                    p.row(0.0, 0.0, coefs, block)
                    # A total whose parts are all published is published as their sum
                    # (docs/methodology.md): it bounds nothing by itself.
                    published = [not p.withheld[p.index[n]] for n in names]
                    if total in DERIVED and parts[0] != "clinical_decided" and all(published[1:]):
                        if parts[0] != "clinical_approved":
                            p.free(names[0])
                    if parts[0].startswith("clinical_") and published[0] and published[1]:
                        # non-clinical = all - clinical when that is a publishable count
                        j_total, j_clin = p.index[names[0]], p.index[names[1]]
                        diff = p.box_value[j_total] - p.box_value[j_clin]
                        if (
                            p.box_value[j_total] is not None
                            and diff == p.box_value[p.index[names[2]]]
                            and diff > MAX_SUPPRESSED_COUNT
                        ):
                            p.free(names[2])
        for small, large in LEQ:
            a, b = (*prefix, small), (*prefix, large)
            if p.has(a, b) and p.holds({a: 1.0, b: -1.0}, -np.inf, 0.0):
                p.row(-np.inf, 0.0, {a: 1.0, b: -1.0}, block)

    for r in window.itertuples(index=False):
        if not r.has_data:
            continue
        add_sums(("w", r.org_code), W_SUMS, r.org_code)
        add_rates(("w", r.org_code), lambda rate, r=r: getattr(r, f"{rate}_status"), W_RATES,
                  r.org_code)  # fmt: skip
    by_trust = defaultdict(list)
    for r in quarters.itertuples(index=False):
        qs = pd.Timestamp(r.quarter_start)
        by_trust[r.org_code].append(r)
        add_sums(("q", r.org_code, qs), Q_SUMS, r.org_code)
        add_rates(("q", r.org_code, qs), lambda rate, r=r: getattr(r, f"{rate}_status"), Q_RATES,
                  r.org_code)  # fmt: skip
        requests = ("q", r.org_code, qs, "requests_received")
        if requests in uptake_bands and p.has(requests):
            p.row(*uptake_bands[requests], {requests: 1.0}, r.org_code)
    # Quarters of the window sum to the window (where the trust's periods make it so).
    for r in window.itertuples(index=False):
        if not r.has_data:
            continue
        inside = [
            q for q in by_trust[r.org_code]
            if pd.Timestamp(q.quarter_start) >= pd.Timestamp(r.window_start)
            and pd.Timestamp(q.quarter_end) <= pd.Timestamp(r.window_end)
        ]  # fmt: skip
        for c in Q_COUNTS:
            names = [("q", r.org_code, pd.Timestamp(q.quarter_start), c) for q in inside]
            w = ("w", r.org_code, c)
            if names and p.has(w, *names):
                coefs = {w: 1.0, **{n: -1.0 for n in names}}
                if p.holds(coefs, 0, 0):
                    p.row(0.0, 0.0, coefs, r.org_code)
                    # published as the sum of its published quarters (docs/methodology.md)
                    if not any(p.withheld[p.index[n]] for n in names):
                        p.free(w)
    # Flags.
    for f in flags.itertuples(index=False):
        if f.flag == "declines_without_escalation" and p.has(
            ("w", f.org_code, "declined"), ("w", f.org_code, "escalated")
        ):
            p.row(1.0, np.inf, {("w", f.org_code, "declined"): 1.0,
                                ("w", f.org_code, "escalated"): -1.0}, f.org_code)  # fmt: skip
        if f.flag == "non_statutory_declines" and p.has(("w", f.org_code, "declined_other")):
            p.row(1.0, np.inf, {("w", f.org_code, "declined_other"): 1.0}, f.org_code)
    # Aggregates: the sum of their trusts.
    scope_col = {"region": "region_code", "peer_group": "peer_group", "icb": "icb_code"}
    members = {}
    for a in aggregates.itertuples(index=False):
        if a.period == "window":
            rows = window[window["has_data"].fillna(False)]
            keyed = [("w", code) for code in rows["org_code"]]
            groups = rows
        else:
            qs = pd.Timestamp(a.period_start)
            rows = quarters[pd.to_datetime(quarters["quarter_start"]) == qs]
            keyed = [("q", code, qs) for code in rows["org_code"]]
            groups = rows
        if a.scope != "national":
            mask = (groups[scope_col[a.scope]] == a.group_code).to_numpy()
            keyed = [k for k, m in zip(keyed, mask, strict=True) if m]
        members[(a.scope, a.group_code, a.period, pd.Timestamp(a.period_start))] = keyed
        withheld = _names(a.withheld)
        for c in Q_COUNTS:
            parts = [(*k, c) for k in keyed]
            if c not in aggregates or not parts or not p.has(*parts):
                continue
            true_sum = sum(p.truth[p.index[x]] for x in parts)
            box = count_box(getattr(a, c), c in withheld, true_sum)
            if box is None:
                continue
            name = ("a", a.scope, a.group_code, pd.Timestamp(a.period_start), c)
            p.var(name, box, true_sum, getattr(a, c))
            p.row(0.0, 0.0, {name: 1.0, **{x: -1.0 for x in parts}}, "aggregates")
            if not any(p.withheld[p.index[x]] for x in parts):
                p.free(name)  # the sum of its trusts' published figures
        add_sums(("a", a.scope, a.group_code, pd.Timestamp(a.period_start)), Q_SUMS, "aggregates")
    return p


def _solve_block(p: Problem, cols: list[int], rows: list, lower, upper) -> bool:
    """Bound each variable of one block by LP (min and max); tighten lower/upper in place."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    local = {j: i for i, j in enumerate(cols)}
    inf = highspy.kHighsInf
    for j in cols:
        h.addVar(lower[j], upper[j])
    for lo, hi, coefs, _ in rows:
        idx = [local[j] for j in coefs]
        h.addRow(
            -inf if lo == -np.inf else lo,
            inf if hi == np.inf else hi,
            len(idx),
            np.array(idx, dtype=np.int32),
            np.array(list(coefs.values()), dtype=float),
        )
    changed = False
    for j in cols:
        if lower[j] == upper[j]:
            continue
        bounds = []
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            h.changeColCost(local[j], 1.0)
            h.changeObjectiveSense(sense)
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                raise AssertionError(f"attack LP not optimal for {p.names[j]}")
            bounds.append(h.getInfo().objective_function_value)
            h.changeColCost(local[j], 0.0)
        lo, hi = math.ceil(bounds[0] - 1e-6), math.floor(bounds[1] + 1e-6)
        if lo > lower[j] or hi < upper[j]:
            changed = True
            lower[j], upper[j] = max(lower[j], lo), min(upper[j], hi)
            h.changeColBounds(local[j], lower[j], upper[j])
    return changed


def attack(p: Problem, max_rounds: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Integer bounds of every cell: each trust's block by LP, then the aggregate sums, until
    nothing changes."""
    lower, upper = list(p.lower), list(p.upper)
    blocks: dict[object, list] = defaultdict(list)
    for row in p.rows:
        blocks[row[3]].append(row)
    trust_blocks = {b: rows for b, rows in blocks.items() if b != "aggregates"}
    for _ in range(max_rounds):
        changed = False
        for rows in trust_blocks.values():
            cols = sorted({j for r in rows for j in r[2]})
            changed |= _solve_block(p, cols, rows, lower, upper)
        for lo_r, hi_r, coefs, _ in blocks.get("aggregates", []):
            if lo_r != 0 or hi_r != 0:
                continue  # inequalities of an aggregate row add nothing to its trusts
            # one equality sum(coef * x) = 0: interval propagation is exact for it
            for j, c in coefs.items():
                rest_lo = sum(min(k * lower[i], k * upper[i]) for i, k in coefs.items() if i != j)
                rest_hi = sum(max(k * lower[i], k * upper[i]) for i, k in coefs.items() if i != j)
                # c * x_j = -rest  =>  x_j in [-rest_hi / c, -rest_lo / c] (c = +-1)
                lo, hi = sorted((-rest_hi / c, -rest_lo / c))
                lo, hi = math.ceil(lo - 1e-6), math.floor(hi + 1e-6)
                if lo > lower[j] or hi < upper[j]:
                    changed = True
                    lower[j], upper[j] = max(lower[j], lo), min(upper[j], hi)
        if not changed:
            break
    return np.array(lower), np.array(upper)


@dataclass
class Verdict:
    cells: int  # withheld or rounded cells bounded
    withheld: int  # of them withheld as a count from 0 to 4
    recovered: list[tuple]  # cells whose true value the attacker knows exactly
    pinned: list[tuple]  # withheld cells narrowed below 0-4 ([c]), or any cell proven in 1-4
    narrowed: int  # rounded cells whose range the relations narrowed at all
    unsound: list[tuple]  # cells whose bounds miss the truth (an attacker bug)


def judge(p: Problem, lower, upper) -> Verdict:
    recovered, pinned, unsound = [], [], []
    cells = withheld = narrowed = 0
    for j, name in enumerate(p.names):
        if p.published_exact[j]:
            continue
        cells += 1
        small = p.withheld[j] and p.truth[j] <= MAX_SUPPRESSED_COUNT
        withheld += small
        if not lower[j] - 1e-6 <= p.truth[j] <= upper[j] + 1e-6:
            unsound.append((name, lower[j], upper[j], p.truth[j]))
        if lower[j] == upper[j]:
            recovered.append((name, lower[j]))
        elif small and (lower[j] > 0 or upper[j] < MAX_SUPPRESSED_COUNT):
            pinned.append((name, lower[j], upper[j]))
        elif 1 <= lower[j] and upper[j] <= MAX_SUPPRESSED_COUNT:
            pinned.append((name, lower[j], upper[j]))
        elif (lower[j], upper[j]) != (p.lower[j], p.upper[j]):
            narrowed += 1
    return Verdict(cells, withheld, recovered, pinned, narrowed, unsound)
