"""An outsider attacks the equity, flex-type and area tables of two generated nations
(docs/methodology.md, "Disclosure control", "Breakdowns"): from the published tables (read as
every public output reads them, through warehouse.connect_public) and the site pages that show
them, linear programming over every relation a reader can use must recover no withheld or
rounded count, and must narrow no withheld breakdown count below "0 to 4" (not even to "not 0").

The relations, on top of everything tests/flexbench/disclosure_attack.py already uses (each
trust's window, quarters, aggregates and flags):

- a trust's groups of a dimension add up to its window's requests received, approved, declined
  and decided (public.trust_window);
- approved + declined = decided, and decided <= requests received, in every group;
- each peer-group and England figure of a group is the sum of its trusts';
- each region's and ICB's figures (public.areas) are checked to be public.aggregates' region
  and ICB rows, which are in the problem with every trust, as in the main attack
  (tests/flexbench/test_disclosure_attack.py): the two sets of relations are attacked
  together;
- rates and relative likelihoods: each must be worked out from the published counts (checked
  here), so they add nothing.

Slow (a few minutes on two cores): it builds each nation with its request-level breakdowns.
"""

from __future__ import annotations

import html
import re
from collections import Counter

import duckdb
import numpy as np
import pandas as pd
import pytest
from disclosure_attack import attack, build_problem, judge
from equity_nation import build_equity_nation
from nation_warehouse import build_site_in

import warehouse
from flexbench.sample.nation import DEFAULT_SEED
from transforms import breakdown_disclosure as bd

pytestmark = pytest.mark.slow

NATIONS = {"demo": (DEFAULT_SEED, 200), "seed-7": (7, 120)}
COUNTS = bd.COUNTS
#: No upper bound (as disclosure_attack.Problem.free uses).
BIG = 1e9
AREA_COUNTS = ("requests_received", "approved", "declined", "decided", "escalated")


@pytest.fixture(scope="module", params=list(NATIONS))
def published(request, shared_build):
    """A nation's equity warehouse and its site (built once a session: test_site_equity.py
    reads seed 7's too)."""
    seed, n_trusts = NATIONS[request.param]
    path = shared_build("equity-nation", build_equity_nation, seed=seed, n_trusts=n_trusts)
    site = shared_build("site", build_site_in, path)
    con = warehouse.connect_public(path)
    try:
        tables = {
            t: con.execute(f"select * from public.{t}").df()
            for t in ("trust_window", "trust_quarters", "aggregates", "flags", "equity",
                      "flex_type_mix", "areas")
        }  # fmt: skip
    finally:
        con.close()
    truth = duckdb.connect(str(path), read_only=True)  # only to keep relations that hold
    try:
        for t in ("trust_benchmark", "trust_trends", "equity_benchmark"):
            tables[f"truth_{t}"] = truth.execute(f"select * from marts.{t}").df()
    finally:
        truth.close()
    return request.param, tables, site


def _withheld(r) -> set[str]:
    return set(r.withheld.split(";")) if isinstance(r.withheld, str) and r.withheld else set()


def add_breakdowns(p, t) -> dict:
    """Add the equity and flex-type cells and their relations to the attacker's problem
    ``p`` (built by disclosure_attack.build_problem); return the breakdown cells' names."""
    equity, window = t["equity"], t["trust_window"]
    truth = t["truth_equity_benchmark"].set_index(["level", "org_code", "dimension",
                                                   "group_value"])  # fmt: skip
    cells = {}
    for r in equity.itertuples(index=False):
        key = (r.level, r.org_code, r.dimension, r.group_value)
        gone = _withheld(r)
        block = r.org_code if r.level == "trust" else "aggregates"
        for c in COUNTS:
            true = truth.at[key, c] if key in truth.index else 0
            true = 0 if pd.isna(true) else true
            name = ("e", *key, c)
            if r.dimension_status == "withheld":
                box = (0.0, BIG)  # withheld as a whole: any value
            else:
                box = tuple(min(b, BIG) for b in bd.box(getattr(r, c), c in gone))
            p.var(name, box, true, None if c in gone else getattr(r, c))
            j = p.index[name]
            p.withheld[j] = r.dimension_status == "published" and c in gone
            if r.dimension_status == "withheld":
                p.published_exact[j] = True  # not a published cell: not judged, only used
            cells[name] = r.level
        if r.dimension_status == "published" and not gone & {"approved", "declined"}:
            if float(r.decided) == float(r.approved) + float(r.declined):
                p.free(("e", *key, "decided"))  # published as approved + declined
        # approved + declined = decided; decided <= requests received
        p.row(0.0, 0.0, {("e", *key, "decided"): 1.0, ("e", *key, "approved"): -1.0,
                         ("e", *key, "declined"): -1.0}, block)  # fmt: skip
        if block != "aggregates":
            p.row(-np.inf, 0.0, {("e", *key, "decided"): 1.0,
                                 ("e", *key, "requests_received"): -1.0}, block)  # fmt: skip
    trusts = equity[equity["level"] == "trust"]
    has_window = set(p.index)
    # The groups of a trust's dimension add up to its window's totals.
    for (code, dim), g in trusts.groupby(["org_code", "dimension"]):
        for c in COUNTS:
            total = ("w", code, c)
            if total not in has_window:
                continue
            coefs = {total: 1.0, **{("e", "trust", code, dim, v, c): -1.0
                                    for v in g["group_value"]}}  # fmt: skip
            if p.holds(coefs, 0, 0):
                p.row(0.0, 0.0, coefs, code)
    # Peer groups and England are the sums of their trusts.
    peer = window.set_index("org_code")["peer_group"]
    for r in equity[equity["level"] != "trust"].itertuples(index=False):
        members = trusts[trusts["dimension"] == r.dimension]
        if r.level == "peer_group":
            members = members[members["org_code"].map(peer) == r.org_code]
        members = members[members["group_value"] == r.group_value]
        for c in COUNTS:
            coefs = {("e", r.level, r.org_code, r.dimension, r.group_value, c): 1.0}
            coefs.update({("e", "trust", m, r.dimension, r.group_value, c): -1.0
                          for m in members["org_code"]})  # fmt: skip
            assert p.holds(coefs, 0, 0), (r.level, r.org_code, r.group_value, c)
            p.row(0.0, 0.0, coefs, "aggregates")
            gone = _withheld(r)
            if r.dimension_status == "published" and c not in gone:
                shown = members[c]
                if shown.notna().all() and float(shown.sum()) == float(getattr(r, c)):
                    p.free(("e", r.level, r.org_code, r.dimension, r.group_value, c))
    return cells


def _areas_are_the_aggregates(t) -> int:
    """Each region's and ICB's count is its window row of public.aggregates (the figure the main
    attack bounds with its trusts), or withheld as there; where every trust's figure is
    published, it is their sum."""
    window = t["trust_window"]
    with_data = window[window["has_data"].fillna(False)].set_index("org_code")
    agg = t["aggregates"]
    agg = agg[agg["scope"].isin(["region", "icb"]) & (agg["period"] == "window")]
    agg = agg.set_index(["scope", "group_code"])
    checked = 0
    for a in t["areas"].itertuples(index=False):
        assert isinstance(a.area_name, str) and a.area_name, a.area_code
        col = "region_code" if a.area_kind == "region" else "icb_code"
        shown = with_data[with_data[col] == a.area_code]
        assert a.trusts_with_data == len(shown)
        if shown.empty:
            assert all(pd.isna(getattr(a, c)) for c in AREA_COUNTS)
            continue
        same = agg.loc[(a.area_kind, a.area_code)]
        assert _withheld(a) == _withheld(same), a.area_code
        for c in AREA_COUNTS:
            value = getattr(a, c)
            if c in _withheld(a):
                assert pd.isna(value), (a.area_code, c)
            else:
                assert float(value) == float(same[c]), (a.area_code, c)
                if shown[c].notna().all():
                    assert float(value) == float(shown[c].sum()), (a.area_code, c)
            checked += 1
        if a.approval_rate_status == "published":
            assert a.approval_rate == round(float(a.approved) / float(a.decided), 3)
    return checked


def problem(t):
    """The attacker's problem: every relation of disclosure_attack.build_problem (every trust's
    window, quarters and flags, and every national, region, ICB and peer-group aggregate, as
    the main attack has them), and the breakdowns' relations on top, so that a count neither
    set of relations gives away alone is sought from both together."""
    p = build_problem(
        t["trust_window"],
        t["trust_quarters"],
        t["aggregates"],
        t["flags"],
        t["truth_trust_benchmark"],
        t["truth_trust_trends"],
    )
    add_breakdowns(p, t)
    return p


def _rates_from_published(equity: pd.DataFrame) -> None:
    """Every published rate and relative likelihood is a function of the published counts."""
    pub = equity[equity["approval_rate_status"] == "published"]
    assert len(pub) > 50
    again = pub["approved"].astype(float) / pub["decided"].astype(float)
    assert (again.round(3) - pub["approval_rate"]).abs().max() < 1e-9
    assert (pub["decided"] >= 10).all()
    keys = ["level", "org_code", "dimension"]
    ref = equity[equity["is_reference"]].set_index(keys)
    rl = equity[equity["relative_likelihood"].notna()]
    assert len(rl) > 50
    for r in rl.itertuples(index=False):
        f = ref.loc[(r.level, r.org_code, r.dimension)]
        assert min(float(f.decided), float(r.decided)) >= 10
        expect = (float(f.approved) / float(f.decided)) / (float(r.approved) / float(r.decided))
        assert abs(round(expect, 2) - r.relative_likelihood) < 1e-9


def _site_shows_the_tables(site, equity: pd.DataFrame) -> None:
    """The trust pages show the public table's counts and no other."""
    trusts = equity[(equity["level"] == "trust") & (equity["dimension"] == "sex")]
    checked = 0
    for code, g in trusts.groupby("org_code"):
        page = (site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        rows = dict(
            (html.unescape(k), v)
            for k, v in re.findall(
                r'<tr data-group="sex"><th scope="row">([^<]+)</th><td class="num">([^<]+)</td>',
                page,
            )
        )
        for r in g.itertuples(index=False):
            if r.dimension_status == "withheld":
                continue
            want = "[c]" if "requests_received" in _withheld(r) else f"{int(r.requests_received):,}"
            assert rows[r.group_value] == want, (code, r.group_value)
            checked += 1
    assert checked > 10


def test_no_breakdown_or_area_count_can_be_recovered(published):
    name, t, site = published
    equity = t["equity"]
    # the flex-type mix is the equity table's flex_type rows
    flex = t["flex_type_mix"].set_index(["level", "org_code", "flex_type"])
    mine = equity[equity["dimension"] == "flex_type"].set_index(["level", "org_code",
                                                                 "group_value"])  # fmt: skip
    assert len(flex) == len(mine) > 0
    for c in COUNTS:
        assert flex[c].equals(mine.loc[flex.index, c])
    _rates_from_published(equity)
    assert _areas_are_the_aggregates(t) > 100
    _site_shows_the_tables(site, equity)

    p = problem(t)
    cells = [n for n in p.names if n[0] == "e"]
    lower, upper = attack(p)
    verdict = judge(p, lower, upper)
    breakdown = [p.index[n] for n in cells if not p.published_exact[p.index[n]]]
    small = [j for j in breakdown if p.withheld[j]]
    below = [(p.names[j], lower[j], upper[j], p.truth[j]) for j in small
             if lower[j] > 1e-6 or upper[j] < bd.MAX_SUPPRESSED_COUNT - 1e-6]  # fmt: skip
    widths = Counter(int(upper[j] - lower[j] + 1) for j in small)
    print(
        f"{name}: {len(breakdown)} withheld or rounded breakdown cells ({len(small)} withheld); "
        f"recovered {len(verdict.recovered)}; withheld cells narrowed below 0-4: {len(below)}; "
        f"widths of withheld cells: {dict(sorted(widths.items()))}; all cells bounded: "
        f"{verdict.cells}, pinned: {len(verdict.pinned)}"
    )
    assert len(breakdown) > 500 and len(small) > 20  # the attack had work to do
    assert not verdict.unsound, verdict.unsound[:5]
    # no cell recovered: breakdown, window, quarter and aggregate cells alike
    assert not verdict.recovered, verdict.recovered[:10]
    assert not below, below[:10]
    # nor, with the breakdowns' relations added, a withheld window, quarter or aggregate count
    # narrowed below 0-4, or any count shown to lie within 1-4
    assert not verdict.pinned, verdict.pinned[:10]
