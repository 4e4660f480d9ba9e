"""The equity section, the flex-type mix and the region and ICB pages of the site, on a
generated nation whose request-level trusts publish breakdowns (docs/methodology.md, "Equity",
"Regions and ICBs"): what a reader sees, read back from the pages."""

from __future__ import annotations

import html
import re

import pytest
from equity_nation import build_equity_nation
from nation_warehouse import build_site_in

import warehouse
from flexbench.site.areas import area_page

pytestmark = pytest.mark.slow  # a 120-trust nation with its breakdowns, and its site


@pytest.fixture(scope="module")
def built(shared_build):
    """The nation's equity warehouse and its site (built once a session: the equity disclosure
    attack reads them too)."""
    path = shared_build("equity-nation", build_equity_nation, seed=7, n_trusts=120)
    site = shared_build("site", build_site_in, path)
    con = warehouse.connect_public(path)
    try:
        equity = con.execute("select * from public.equity").df()
        areas = con.execute("select * from public.areas").df()
        window = con.execute("select * from public.trust_window").df()
    finally:
        con.close()
    return site, equity, areas, window


def test_region_and_icb_pages_exist_with_names_and_their_trusts(built):
    site, _, areas, window = built
    index = (site / "index.html").read_text(encoding="utf-8")
    assert set(areas["area_kind"]) == {"region", "icb"}
    for a in areas.itertuples():
        href = f"areas/{area_page(a.area_kind, a.area_code)}"
        assert f'href="{href}"' in index  # linked from the national page
        page = (site / href).read_text(encoding="utf-8")
        assert f"<h1>{html.escape(a.area_name)}</h1>" in page
        col = "region_code" if a.area_kind == "region" else "icb_code"
        for code in window.loc[window[col] == a.area_code, "org_code"]:
            assert f'href="../trusts/{code}.html"' in page
        if a.approval_rate_status == "published":
            assert f"{100 * a.approval_rate:.1f}%" in page
            assert '<svg class="funnel' in page or "funnel" in page
    # regions carry their NHS England names, not codes
    regions = areas[areas["area_kind"] == "region"]
    assert "London" in set(regions["area_name"])


def test_trusts_with_breakdowns_show_equity_and_the_flex_type_mix(built):
    site, equity, _, window = built
    trusts = set(equity.loc[equity["level"] == "trust", "org_code"])
    assert len(trusts) >= 10
    for code in trusts:
        page = (site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        assert 'id="equity"' in page and 'id="flex-mix"' in page
        assert "<script>" not in page  # no inline script
        assert re.search(r"<caption>Sex: requests and approvals", page) or "Withheld" in page
    for code in set(window["org_code"]) - trusts:
        page = (site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        assert 'id="equity"' not in page
    # A published relative likelihood is drawn (forest plot with a text alternative) and tabled.
    rl = equity[(equity["level"] == "trust") & equity["relative_likelihood"].notna()]
    r = rl.iloc[0]
    page = (site / "trusts" / f"{r.org_code}.html").read_text(encoding="utf-8")
    assert '<svg class="forest" role="img"' in page
    assert f"{html.escape(r.group_value)}: {r.relative_likelihood:.2f} (95% CI" in page
    # A withheld breakdown count shows [c]; a breakdown withheld as a whole says so.
    small = equity[(equity["level"] == "trust") & (equity["dimension_status"] == "published")
                   & equity["withheld"].str.contains("requests_received")]  # fmt: skip
    assert len(small) > 0
    s = small.iloc[0]
    page = (site / "trusts" / f"{s.org_code}.html").read_text(encoding="utf-8")
    group = re.escape(html.escape(s.group_value))
    row = re.search(
        rf'<tr data-group="{s.dimension}"><th scope="row">{group}</th><td class="num">([^<]+)</td>',
        page,
    )
    assert row and row.group(1) == "[c]"
    national = (site / "index.html").read_text(encoding="utf-8")
    assert 'id="equity"' in national and 'id="flex-mix"' in national
