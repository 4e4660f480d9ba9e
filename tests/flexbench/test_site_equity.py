"""The equity section, the flex-type mix and the region and ICB pages of the site, on a
generated nation whose request-level trusts publish breakdowns (docs/methodology.md, "Equity",
"Regions and ICBs"): what a reader sees, read back from the pages."""

from __future__ import annotations

import html
import json
import re

import openpyxl
import pandas as pd
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


# --- downloads: each page's numbers as CSV and XLSX with a datapackage.json ------------------


def _cell(text: str):
    """A page's cell as the download writes it: [c] as is, a count or a rate as a number,
    nothing ("–") as None."""
    text = html.unescape(text).strip()
    if text in ("[c]", "too few to publish", "too few"):
        return text
    if text in ("–", ""):
        return None
    if text.endswith("%"):
        return round(float(text[:-1]) / 100, 4)
    return float(text.replace(",", ""))


def _csv_cell(value, rate: bool):
    if pd.isna(value) or value == "":
        return None
    if value == "[c]":
        return value
    return round(float(value), 4) if rate else float(value)


def _package_names_every_column(folder) -> None:
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    assert package["data_as_of"] and package["suppression_marker"] == "[c]"
    sheets = openpyxl.load_workbook(folder / "data.xlsx", read_only=True).sheetnames
    for resource in package["resources"]:
        frame = pd.read_csv(folder / resource["path"], dtype=str, keep_default_na=False)
        fields = resource["schema"]["fields"]
        assert [f["name"] for f in fields] == list(frame.columns)
        assert all(f["description"] for f in fields), [f["name"] for f in fields
                                                       if not f["description"]]  # fmt: skip
        assert "[c]" in resource["schema"]["missingValues"]
        assert resource["path"].removesuffix(".csv") in sheets


def _links(page: str, base: str) -> set[str]:
    return set(re.findall(rf'href="{re.escape(base)}([^"/]+)" download', page))


AREA_ROWS = {
    "Requests received": ("requests_received", False),
    "Decided": ("decided", False),
    "Approved": ("approved", False),
    "Declined": ("declined", False),
    "Escalated": ("escalated", False),
    "Decided within two months": ("decided_within_2_months", False),
    "Decline rate": ("decline_rate", True),
    "Timeliness rate": ("timeliness_rate", True),
    "Escalation rate": ("escalation_rate", True),
}


def test_every_area_page_downloads_exactly_the_numbers_it_shows(built):
    site, _, areas, _ = built
    checked = 0
    for a in areas.itertuples():
        stem = area_page(a.area_kind, a.area_code).removesuffix(".html")
        page = (site / "areas" / f"{stem}.html").read_text(encoding="utf-8")
        folder = site / "areas" / stem
        assert _links(page, f"{stem}/") == {"area.csv", "trusts.csv", "data.xlsx",
                                            "datapackage.json"}  # fmt: skip
        _package_names_every_column(folder)
        row = pd.read_csv(folder / "area.csv", dtype=str, keep_default_na=False).iloc[0]
        assert (row["area_code"], row["area_name"]) == (a.area_code, a.area_name)
        shown = dict(re.findall(r'<tr><th scope="row">([^<]+)</th><td class="num">([^<]+)', page))
        for label, (column, rate) in AREA_ROWS.items():
            want = _cell(shown[label])
            got = _csv_cell(row[column], rate)
            if isinstance(want, str) and want.startswith("too few"):
                assert row[f"{column}_status"] == "too_few", (a.area_code, column)
                continue
            assert got == want, (a.area_code, label, got, want)
            checked += 1
        approval = _cell(shown["Approval rate"].split("<")[0])
        assert (
            approval == _csv_cell(row["approval_rate"], True) or approval == row["approval_rate"]
        ), a.area_code
        # the table of trusts: each row's requests, decided and approval rate
        trusts = pd.read_csv(folder / "trusts.csv", dtype=str, keep_default_na=False)
        listed = re.findall(
            r'<tr><th scope="row"><a href="\.\./trusts/([^.]+)\.html">[^<]+</a></th>'
            r'<td class="num">([^<]+)</td><td class="num">([^<]+)</td><td class="num">([^<]+)',
            page,
        )
        assert [code for code, *_ in listed] == list(trusts["org_code"])
        for (code, requests, decided, rate), t in zip(listed, trusts.itertuples(), strict=True):
            if t.has_data != "True":
                continue
            assert _cell(requests) == _csv_cell(t.requests_received, False), code
            assert _cell(decided) == _csv_cell(t.decided, False), code
            if t.approval_rate_status == "published":
                assert _cell(rate) == _csv_cell(t.approval_rate, True), code
    assert checked > 200


def _group_rows(page: str) -> dict[tuple[str, str], list[str]]:
    rows = re.findall(
        r'<tr data-group="([^"]+)"><th scope="row">([^<]+)</th>((?:<td class="num">[^<]*</td>)+)',
        page,
    )
    return {(dim, html.unescape(group)): re.findall(r'<td class="num">([^<]*)</td>', cells)
            for dim, group, cells in rows}  # fmt: skip


def _equity_download_matches(page: str, folder, base: str) -> int:
    assert _links(page, base) >= {"equity.csv", "data.xlsx", "datapackage.json"}
    _package_names_every_column(folder)
    equity = pd.read_csv(folder / "equity.csv", dtype=str, keep_default_na=False)
    shown = _group_rows(page)
    checked = 0
    for r in equity.itertuples():
        if r.dimension_status == "withheld" or r.dimension == "flex_type":
            continue
        cells = shown[(r.dimension, r.group_value)]
        for i, column in enumerate(("requests_received", "decided", "approved")):
            assert _cell(cells[i]) == _csv_cell(getattr(r, column), False), (r, column)
        if r.approval_rate_status == "published":
            assert _cell(cells[3]) == _csv_cell(r.approval_rate, True)
        if r.relative_likelihood:
            assert float(cells[5]) == pytest.approx(float(r.relative_likelihood), abs=0.005)
        checked += 1
    flex = pd.read_csv(folder / "flex_type_mix.csv", dtype=str, keep_default_na=False)
    kinds = dict(
        (html.unescape(k), v)
        for k, v in re.findall(
            r'<tr><th scope="row">([^<]+)</th><td class="num">([^<]+)</td>',
            page.split('id="flex-mix"')[1],
        )  # fmt: skip
    )
    for r in flex.itertuples():
        if r.dimension_status == "published":
            assert _cell(kinds[r.flex_type.replace("_", " ")]) == _csv_cell(
                r.requests_received, False
            )
            checked += 1
    return checked


def test_equity_sections_download_exactly_the_numbers_they_show(built):
    site, equity, _, _ = built
    national = (site / "index.html").read_text(encoding="utf-8")
    assert _equity_download_matches(national, site / "index" / "equity", "index/equity/") > 20
    checked = 0
    for code in sorted(set(equity.loc[equity["level"] == "trust", "org_code"])):
        page = (site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        checked += _equity_download_matches(page, site / "trusts" / code / "equity",
                                            f"{code}/equity/")  # fmt: skip
    assert checked > 50
    # a trust without breakdowns has no equity downloads
    window = built[3]
    other = sorted(set(window["org_code"]) - set(equity["org_code"]))[0]
    assert not (site / "trusts" / other / "equity").exists()


def test_the_national_page_downloads_englands_totals_as_it_states_them(built):
    site = built[0]
    page = (site / "index.html").read_text(encoding="utf-8")
    assert {"england.csv", "trusts.csv"} <= _links(page, "index/")
    _package_names_every_column(site / "index")
    england = pd.read_csv(site / "index" / "england.csv", dtype=str, keep_default_na=False)
    window = england[england["period"] == "window"].iloc[0]
    lead = re.search(
        r"([\d,]+) requests received;\s*nationally ([\d.]+%) of decided requests were approved"
        r"\s*and ([\d.]+%) declined",
        page,
    )
    assert lead, "the national page states England's totals"
    assert _cell(lead.group(1)) == _csv_cell(window["requests_received"], False)
    assert _cell(lead.group(2)) == _csv_cell(window["approval_rate"], True)
    assert _cell(lead.group(3)) == _csv_cell(window["decline_rate"], True)
    assert (england["period"] == "quarter").sum() >= 4
