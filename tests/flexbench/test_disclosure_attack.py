"""An outsider attacks the public files of two generated nations (docs/methodology.md,
"Disclosure control"): from the extracts (window and quarter, every format), the site pages
(counts, rates, flag evidence) and the published aggregates alone, linear programming over every
relation a reader can use must recover no withheld or rounded count, nor narrow a withheld
count ([c]: 0 to 4) at all.

Slow (a few minutes on two cores): it builds each nation, writes every public file and bounds
some 10,000 cells per nation (tests/flexbench/disclosure_attack.py).
"""

from __future__ import annotations

import csv
import re
from collections import Counter

import duckdb
import pandas as pd
import pytest
from disclosure_attack import W_COUNTS, attack, build_problem, judge
from nation_warehouse import build_nation_warehouse

import warehouse
from flexbench.cli_outputs import main
from flexbench.sample.nation import DEFAULT_SEED
from flexbench.site import build_site
from transforms.disclosure import MIN_RATE_DENOMINATOR, STATUS_WORDS

pytestmark = pytest.mark.slow

#: The demo nation (`make demo`: 200 ODS rows, the default seed) and a second nation.
NATIONS = {"demo": (DEFAULT_SEED, 200), "seed-7": (7, 120)}

COUNT_LABELS = {
    "Requests received": "requests_received",
    "Approved in full": "approved_in_full",
    "Declined": "declined",
    "Escalated": "escalated",
}


@pytest.fixture(scope="module", params=list(NATIONS))
def published(request, tmp_path_factory, shared_build):
    """A nation's warehouse (built once a session: tests/docs reads the demo's too) and every
    public file made from it."""
    seed, n_trusts = NATIONS[request.param]
    root = tmp_path_factory.mktemp(f"attack-{request.param}")
    path = shared_build("nation-warehouse", build_nation_warehouse, seed=seed, n_trusts=n_trusts)
    files = {}
    for by in ("window", "quarter"):
        for fmt in ("csv", "xlsx", "parquet"):
            out = root / "extracts" / f"{by}.{fmt}"
            argv = ["extract", "--warehouse", str(path), "--by", by, "--out", str(out), "--quiet"]
            assert main(argv) == 0
            files[(by, fmt)] = out
    site = build_site(path, root / "site").parent
    return request.param, path, files, site


def _csv(path) -> pd.DataFrame:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return pd.DataFrame(list(csv.DictReader(f)))


def _same_cells(parquet: pd.DataFrame, shown: pd.DataFrame, columns) -> None:
    """The CSV/XLSX cells say what the Parquet file says: [c] where withheld, else the number."""
    for column in columns:
        for value, text, named in zip(
            parquet[column], shown[column], parquet["withheld"].fillna(""), strict=True
        ):
            if column in named.split(";"):
                assert str(text) == "[c]", column
            elif pd.isna(value):
                assert pd.isna(text) or str(text) in ("", "nan"), column
            else:
                assert float(text) == float(value), column


def test_no_withheld_or_rounded_count_can_be_recovered(published):
    name, path, files, site = published
    window = pd.read_parquet(files[("window", "parquet")])
    quarters = pd.read_parquet(files[("quarter", "parquet")])
    # Every format says the same.
    for by, frame in (("window", window), ("quarter", quarters)):
        counts = [c for c in W_COUNTS if c in frame]
        _same_cells(frame, _csv(files[(by, "csv")]), counts)
        _same_cells(frame, pd.read_excel(files[(by, "xlsx")], sheet_name="benchmark"), counts)
    # The site's pages show the extract's numbers, and no other.
    for r in window[window["has_data"]].itertuples():
        html = (site / "trusts" / f"{r.org_code}.html").read_text()
        shown = dict(re.findall(r'<th scope="row">([^<]+)</th><td class="num">([^<]+)</td>', html))
        for label, column in COUNT_LABELS.items():
            value = getattr(r, column)
            expected = "[c]" if column in (r.withheld or "").split(";") else f"{int(value):,}"
            assert shown[label] == expected, (r.org_code, label)
    public = warehouse.connect_public(path)
    try:
        aggregates = public.execute("select * from public.aggregates").df()
        flags = public.execute("select * from public.flags").df()
    finally:
        public.close()
    for f in flags.itertuples():
        page = (site / "trusts" / f"{f.org_code}.html").read_text()
        assert f.evidence.replace("&", "&amp;") in page or f.evidence in page
        mine = window[window["org_code"] == f.org_code].iloc[0]
        numbers = {int(n.replace(",", "")) for n in re.findall(r"(?<![\d.])\d[\d,]*(?![\d.%])",
                                                            f.evidence)}  # fmt: skip
        if f.flag in ("declines_without_escalation", "non_statutory_declines"):
            assert numbers <= {int(v) for v in mine[list(W_COUNTS)].dropna()}, f.evidence

    truth = duckdb.connect(str(path), read_only=True)  # only to keep relations that hold
    try:
        truth_window = truth.execute("select * from marts.trust_benchmark").df()
        truth_quarters = truth.execute("select * from marts.trust_trends").df()
    finally:
        truth.close()
    problem = build_problem(window, quarters, aggregates, flags, truth_window, truth_quarters)
    lower, upper = attack(problem)
    verdict = judge(problem, lower, upper)
    narrowed = Counter((int(lo), int(hi)) for _, lo, hi in verdict.pinned)
    print(
        f"{name}: {verdict.cells} withheld or rounded cells ({verdict.withheld} withheld as "
        f"0-4): {len(verdict.recovered)} recovered; withheld cells narrowed below 0-4 or cells "
        f"pinned inside 1-4 (by range): {dict(narrowed)}; rounded cells narrowed: "
        f"{verdict.narrowed}"
    )
    assert verdict.cells > 5000 and verdict.withheld > 500  # the attack had work to do
    assert not verdict.unsound, verdict.unsound[:5]  # the attacker's bounds hold the truth
    assert not verdict.recovered, verdict.recovered[:10]
    # [c] reads "a count from 0 to 4": no withheld count may be shown to be at least 1 or at
    # most 3, and no count at all may be shown to lie within 1 to 4.
    assert not verdict.pinned, verdict.pinned[:10]


def test_every_trust_with_ten_decided_has_a_rate_and_rank_or_says_why(published):
    name, path, files, site = published
    if name != "demo":
        pytest.skip("checked on the demo nation")
    window = pd.read_parquet(files[("window", "parquet")])
    truth = duckdb.connect(str(path), read_only=True)
    try:
        decided = dict(
            truth.execute("select org_code, decided from marts.trust_benchmark").fetchall()
        )
    finally:
        truth.close()
    enough = window[window["org_code"].map(decided).fillna(0) >= MIN_RATE_DENOMINATOR]
    assert len(enough) > 100
    for r in enough.itertuples():
        text = (site / "trusts" / f"{r.org_code}.html").read_text()
        if r.approval_rate_status == "published":
            assert pd.notna(r.approval_rate) and pd.notna(r.national_rank), r.org_code
            assert f"{int(r.national_rank)} of {int(r.national_ranked)}" in text
        else:
            assert STATUS_WORDS[r.approval_rate_status] in text, r.org_code
    # on the demo nothing is withheld from a trust with enough requests
    assert (enough["approval_rate_status"] == "published").all()
