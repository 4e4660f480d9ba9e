"""Disclosure control of every public output: the method, its parameters and what a reader can
work out from a published value (docs/methodology.md, "Disclosure control").

The method is the small-number rule NHS England (formerly NHS Digital) applies to Hospital
Episode Statistics (HES Analysis Guide, "Small numbers"), applied once, in the warehouse's
``public`` layer (warehouse/models/public/, macros ``sdc_*`` in warehouse/schema.sql), to
everything published together:

1. a request count of 1 to :data:`MAX_SUPPRESSED_COUNT` is withheld (the ONS marker
   :data:`SUPPRESSION_MARKER`); a 0 is shown unless it shares a published relation with a
   withheld count (:func:`cells_to_withhold`, secondary suppression of zeros), so a withheld
   count reads 0 to :data:`MAX_SUPPRESSED_COUNT`; every other count is rounded to the nearest
   :data:`ROUND_TO`, each from its own true value (totals, quarters and aggregates are never
   summed from rounded parts);
2. a total whose parts are all published is published as the sum of the published parts
   (controlled totals: windows from their quarters, declined from its reasons, decided from
   approved and declined, aggregates from their trusts ...);
   a total whose rounding would narrow a withheld part below 0 to
   :data:`MAX_SUPPRESSED_COUNT` is withheld with it (macro ``sdc_total_keeps``); the counts of
   :data:`QUARTERS_TOGETHER` are published for all the quarters of a trust's window or for none
   (:func:`cells_to_withhold`), so a window's appeals are rounded from their own value where
   the quarters' are withheld;
3. a rate is worked out from the published counts (so it tells nothing they do not), published
   where the published denominator is at least :data:`MIN_RATE_DENOMINATOR` ("too few to
   publish" otherwise) and not where the numerator is withheld ("withheld to protect
   confidentiality"), to :data:`RATE_DECIMALS` decimals; its 95% interval is the Wilson
   interval widened over every count the rounding allows, rounded outwards to 1 point.

This module holds the parameters and the reading of published values; it does no I/O.
Analysts' marts are not suppressed.
"""

from __future__ import annotations

import math

from transforms.benchmark import MIN_DECIDED

#: The ONS marker for a value withheld to protect confidentiality.
SUPPRESSION_MARKER = "[c]"

#: Counts from 1 to this value are withheld.
MAX_SUPPRESSED_COUNT = 4

#: Every other count is rounded to the nearest multiple of this.
ROUND_TO = 5

#: Rates (and ranks) need at least this denominator: the benchmark's minimum number of decided
#: requests (one definition, transforms.benchmark.MIN_DECIDED).
MIN_RATE_DENOMINATOR = MIN_DECIDED

#: Decimals of a published rate (a proportion): 0.1 percentage point.
RATE_DECIMALS = 3

#: What each status of a value means, in the words the site and the extracts use.
STATUS_WORDS = {
    "published": "published",
    "too_few": "too few to publish",
    "withheld": "withheld to protect confidentiality",
}

METHOD_NAME = (
    "NHS England's small-number rule for Hospital Episode Statistics (HES Analysis Guide): "
    f"counts from 1 to {MAX_SUPPRESSED_COUNT} withheld, all other counts rounded to the nearest "
    f"{ROUND_TO}"
)

#: The rules, one line each (extract notes, site methodology page).
RULES = (
    f"Counts from 1 to {MAX_SUPPRESSED_COUNT} are withheld and read {SUPPRESSION_MARKER}. A 0 is "
    f"shown, except where it shares a total with a withheld count (outcomes and requests, "
    "decline reasons and declines, approved and declined and decided, clinical and "
    f"non-clinical, quarters and their window): then it is withheld too. So {SUPPRESSION_MARKER} "
    f"means a count from 0 to {MAX_SUPPRESSED_COUNT}. Every other count is rounded to the "
    f"nearest {ROUND_TO}, from its own true value: totals, quarters and national, regional and "
    "peer-group figures are rounded themselves, never added up from rounded parts, so they need "
    "not add up exactly.",
    "Where every part of a total is published, the total is the sum of the published parts: a "
    "trust's window is the sum of its published quarters, declined the sum of its reasons, "
    "decided approved + declined, a region or peer group the sum of its trusts. So the "
    "published figures add up, and a total tells nothing its parts do not.",
    "Where a part of a total is withheld and the rounded total would show that the withheld "
    f"part is not 0, or not {MAX_SUPPRESSED_COUNT} (a window of 15 from four withheld quarters "
    f"says each is at least 3), the total is withheld too and also reads {SUPPRESSION_MARKER}, "
    "with the rates it is the denominator of (withheld to protect confidentiality).",
    "A trust's appeals and appeals upheld are shown for every quarter of its window or for "
    f"none: where one quarter's is withheld, every quarter's reads {SUPPRESSION_MARKER}, "
    "whatever its value (appeals upheld with appeals), and the window's count is rounded from "
    "its own value.",
    "Rates are worked out from the published counts, so they tell nothing the counts do not. A "
    f"rate is published where its published denominator is at least {MIN_RATE_DENOMINATOR} "
    "(otherwise: too few to publish), and not where its numerator or denominator is withheld "
    "(withheld to protect confidentiality: the rate would give it back). Its 95% interval is "
    "the Wilson interval widened over every count the rounding allows, so it contains the true "
    "one.",
    "Ranks and quartiles are among the trusts whose approval rate is published (1 = highest; "
    "ties share a rank), so they run from 1 to the number ranked without a gap.",
    "Flag evidence quotes the published values only. A flag that would itself say a withheld "
    "count is at least 1 is not published.",
)

#: What a reader can and cannot work out (extract notes, docs/methodology.md).
KNOWABLE = (
    f"You can: read every count to within {ROUND_TO // 2} either way (a published "
    f"{ROUND_TO} means {ROUND_TO} to {ROUND_TO + ROUND_TO // 2}, since smaller counts are "
    f"withheld), read each withheld count as 0 to {MAX_SUPPRESSED_COUNT} (or, for a total "
    "withheld with its parts, as at least the sum of its published parts), and read every rate "
    "as the ratio of its published counts, with an interval that allows for their rounding.",
    "You cannot: recover a withheld count, or any count exactly, by adding and subtracting "
    "published figures (outcomes and their total, decline reasons and declines, clinical and "
    "non-clinical, quarters and the window, trusts and their region, peer group or England), "
    "or from rates, ranks and flags; nor narrow a withheld count below 0 to "
    f"{MAX_SUPPRESSED_COUNT}: the project's attacker test checks this with linear programming "
    "on every public file.",
)


def count_bounds(published: float | None, withheld: bool) -> tuple[int, int] | None:
    """What a published count tells a reader: the range its true value lies in.

    ``None`` when there is no data. 0 is exact; a withheld count is 0 to
    :data:`MAX_SUPPRESSED_COUNT` (or, a total withheld with one, any count); a rounded count v
    is v - 2 to v + 2, and at least
    :data:`MAX_SUPPRESSED_COUNT` + 1 (smaller counts would have been withheld).
    """
    if withheld:
        return 0, MAX_SUPPRESSED_COUNT
    if published is None or (isinstance(published, float) and math.isnan(published)):
        return None
    value = int(published)
    if value == 0:
        return 0, 0
    half = ROUND_TO // 2
    return max(value - half, MAX_SUPPRESSED_COUNT + 1), value + half


#: The counts of a trust's window and of its quarters that the public layer publishes.
WINDOW_COUNTS = (
    "requests_received", "approved_in_full", "approved_with_changes", "declined", "withdrawn",
    "pending", "approved", "decided", "escalated", "appeals", "appeals_upheld",
    "decided_within_2_months", "declined_costs", "declined_demand", "declined_reorganise",
    "declined_recruit", "declined_quality", "declined_performance", "declined_insufficient_work",
    "declined_structural_changes", "declined_other", "clinical_approved", "clinical_decided",
    "non_clinical_approved", "non_clinical_decided",
)  # fmt: skip
QUARTER_COUNTS = (
    "requests_received", "approved", "declined", "decided", "escalated", "appeals",
    "appeals_upheld", "decided_within_2_months", "declined_other",
)  # fmt: skip
DECLINE_REASONS = tuple(c for c in WINDOW_COUNTS if c.startswith("declined_"))

#: The published relations of a window row: a total and the parts it is the sum of.
WINDOW_SUMS = (
    ("requests_received", ("approved_in_full", "approved_with_changes", "declined", "withdrawn",
                           "pending")),
    ("declined", DECLINE_REASONS),
    ("approved", ("approved_in_full", "approved_with_changes")),
    ("decided", ("approved", "declined")),
    ("decided", ("clinical_decided", "non_clinical_decided")),
    ("approved", ("clinical_approved", "non_clinical_approved")),
)  # fmt: skip
#: The published relations of a quarter row.
QUARTER_SUMS = (("decided", ("approved", "declined")),)
#: The published orders of a window or quarter row, (small, large): the small count is never
#: more than the large one, so a large count of 0 would say its small one is 0.
ORDERS = (
    ("decided_within_2_months", "decided"),
    ("appeals", "declined"),
    ("appeals_upheld", "appeals"),
)


#: Quarterly counts published all or none over the quarters of a trust's window: where any
#: quarter's count is withheld, every quarter's is (:func:`cells_to_withhold`). Small and
#: common in quarters, these would otherwise leave the window's total to be differenced against
#: the published quarters; withheld together, the window is rounded from its own value.
QUARTERS_TOGETHER = ("appeals", "appeals_upheld")


def _is_small(value) -> bool:
    return value is not None and not _missing(value) and 1 <= value <= MAX_SUPPRESSED_COUNT


def _missing(value) -> bool:
    try:
        return value is None or bool(value != value)  # NaN and pandas NA
    except TypeError:
        return True


Cell = tuple[str, str]  # (row key, column)


def relations(
    window: dict[str, dict[str, float]], quarters: dict[str, dict[str, float]]
) -> tuple[list[list[Cell]], list[tuple[Cell, Cell]], dict[str, list[Cell]], list[tuple[str, str]]]:
    """The published relations of one trust's counts that :func:`cells_to_withhold` keeps
    (arguments as there): ``groups``, each a total and its parts in one row, or a count of
    the window and the same count of its quarters; ``orders``, the (small, large) cells of
    each row of :data:`ORDERS` (a withheld small one takes a zero large one with it);
    ``together``, the quarters of each count of :data:`QUARTERS_TOGETHER`, published together
    (only against a window); ``together_orders``, the (small, large) counts of those: where
    the large count's quarters are withheld, so are the small one's."""
    rows = {**window, **quarters}
    orders = [((key, a), (key, b)) for key in rows for a, b in ORDERS]
    groups: list[list[Cell]] = []
    for key in window:
        groups += [[(key, t), *((key, x) for x in parts)] for t, parts in WINDOW_SUMS]
    for key in quarters:
        groups += [[(key, t), *((key, x) for x in parts)] for t, parts in QUARTER_SUMS]
    if window:
        (wkey,) = window
        for c in QUARTER_COUNTS:
            groups.append([(wkey, c), *((q, c) for q in quarters)])
    together = {c: [(q, c) for q in quarters] for c in QUARTERS_TOGETHER} if window else {}
    together_orders = [(a, b) for a, b in ORDERS if a in together and b in together]
    return groups, orders, together, together_orders


def cells_to_withhold(
    window: dict[str, dict[str, float]], quarters: dict[str, dict[str, float]]
) -> dict[tuple[str, str], str]:
    """The counts of one trust withheld beyond the small-number rule (secondary suppression,
    docs/methodology.md, "Disclosure control"), each with why: ``"zero"`` or ``"quarters"``.

    ``window`` maps ``"window"`` to the trust's true window counts (or is empty), ``quarters``
    maps each quarter of the window (any key) to its true counts.

    - ``"zero"``: a 0 is withheld when it shares a published relation (a total and its parts
      in one row, or a count of the window and the same count of its quarters) with a withheld
      count, so that a withheld value can be 0 and no reader can take it to be at least 1. A 0
      that bounds a withheld count from above (the large count of :data:`ORDERS`: appeals of 0
      would say a withheld appeals upheld is 0) is withheld with it.
    - ``"quarters"``: a count of :data:`QUARTERS_TOGETHER` is withheld in every quarter of the
      window where it is withheld in any (whatever its value), so no published quarter can be
      differenced against the window's total; and where a trust's quarterly appeals are
      withheld, so are its quarterly appeals upheld (a published appeals upheld would bound a
      withheld appeals from below, and through the window the others from above).

    The two feed each other until nothing changes. Returns ``{(row key, column): reason}``.
    """
    rows = {**window, **quarters}
    groups, orders, together, together_orders = relations(window, quarters)
    values = {cell: rows[cell[0]].get(cell[1]) for pair in orders for cell in pair}
    withheld = {cell for cell, v in values.items() if _is_small(v)}
    for g in groups:  # the cells of the relations that are not in an order
        for cell in g:
            if cell not in values:
                v = values[cell] = rows[cell[0]].get(cell[1])
                if _is_small(v):
                    withheld.add(cell)
    # (the quarters published together are in the orders: appeals, appeals upheld)
    if not withheld:  # nothing withheld: nothing shares a relation with a withheld count
        return {}
    out: dict[tuple[str, str], str] = {}
    held = set(withheld)  # withheld, or hidden below
    # What can still be hidden: a 0 for "zero", any value for "quarters" (not a cell withheld
    # or hidden already, nor a missing one).
    free = {cell for cell, v in values.items() if cell not in held and not _missing(v)}
    zeros = {cell for cell in free if values[cell] == 0}

    def hide(cells, reason) -> bool:
        hidden = False
        for cell in cells:
            if cell in (zeros if reason == "zero" else free):
                out[cell] = reason
                held.add(cell)
                free.discard(cell)
                zeros.discard(cell)
                hidden = True
        return hidden

    changed = True
    while changed:
        changed = False
        for g in groups:
            if not held.isdisjoint(g):
                changed |= hide(g, "zero")
        for small, large in orders:
            if small in held:
                changed |= hide((large,), "zero")
        for cells in together.values():
            if not held.isdisjoint(cells):
                changed |= hide(cells, "quarters")
        for small, large in together_orders:
            if not held.isdisjoint(together[large]):
                changed |= hide(together[small], "quarters")
    return out
