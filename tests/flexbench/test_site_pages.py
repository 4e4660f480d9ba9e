"""The indicator pages, per-measure trends, peer caterpillar and downloads of the site, and
public.trust_measure_quarters (docs/analysts.md, "Public tables"; docs/methodology.md,
"Disclosure control")."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import warehouse  # noqa: E402
from flexbench.site.builder import CARD_MEASURES  # noqa: E402
from flexbench.site.plots import measure_trend_plot  # noqa: E402
from tests.flexbench.test_site import (  # noqa: E402
    DECLINE_OUTLIER,
    tiny_site_once,
    tiny_warehouse_once,
)
from transforms.indicators import INDICATORS  # noqa: E402


@pytest.fixture(scope="module")
def wh(shared_build) -> Path:
    return tiny_warehouse_once(shared_build)


@pytest.fixture(scope="module")
def site(shared_build) -> Path:
    return tiny_site_once(shared_build)


def _pub(wh):
    return warehouse.connect_public(wh)


def test_measure_quarters_tell_nothing_the_quarterly_counts_do_not(wh):
    con = _pub(wh)
    try:
        mq = con.execute("select * from public.trust_measure_quarters").df()
        q = con.execute("select * from public.trust_quarters").df()
    finally:
        con.close()
    # Every rate a trust's page shows (its card's seven and uptake), in the page's order.
    order = mq[["measure_order", "measure"]].drop_duplicates().sort_values("measure_order")
    assert list(order["measure"]) == [*(m[1] for m in CARD_MEASURES), "requests_per_100_staff"]
    merged = mq.merge(q, on=["org_code", "quarter_start"])
    for measure in ("approval_rate", "decline_rate", "timeliness_rate", "escalation_rate",
                    "appeal_rate", "appeals_upheld_rate", "requests_per_100_staff"):  # fmt: skip
        m = merged[merged["measure"] == measure]
        # The same value and status as the quarterly table publishes.
        assert (m["status"].to_numpy() == m[f"{measure}_status"].fillna("no_data").to_numpy()).all()
        same = (m["rate"].isna() & m[measure].isna()) | (m["rate"] == m[measure])
        assert same.all(), measure
    # Where a quarter's numerator is withheld, so is its rate and its interval.
    withheld = mq[mq["status"] != "published"]
    assert withheld[["rate", "rate_lower95", "rate_upper95"]].isna().all().all()


@pytest.mark.parametrize(
    "measure",
    [
        "approval_rate",
        "decline_rate",
        "escalation_rate",
        "non_statutory_decline_share",
        # decided_within_2_months is rounded apart from decided (approved + declined as
        # published): a quarter whose rounding gave 50 of 45 withholds it instead.
        "timeliness_rate",
        "appeal_rate",
        "appeals_upheld_rate",
    ],
)
def test_published_quarterly_rates_lie_in_their_interval_and_in_0_1(wh, measure):
    con = _pub(wh)
    try:
        pub = con.execute(
            "select * from public.trust_measure_quarters where status = 'published' "
            "and measure = ?",
            [measure],
        ).df()
    finally:
        con.close()
    assert len(pub)
    assert pub["rate"].between(0, 1).all()
    assert ((pub["rate_lower95"] <= pub["rate"]) & (pub["rate"] <= pub["rate_upper95"])).all()


def test_no_published_quarter_has_more_of_a_count_than_the_count_that_bounds_it(wh):
    # decided within two months <= decided, appeals upheld <= appeals <= declined: as the
    # marts' counts, so the published ones (the fixture has a quarter whose rounding gave
    # 50 decided within two months of 45 decided).
    con = _pub(wh)
    try:
        q = con.execute("select * from public.trust_quarters").df()
    finally:
        con.close()
    for small, large in (("decided_within_2_months", "decided"), ("appeals_upheld", "appeals"),
                         ("appeals", "declined")):  # fmt: skip
        both = q[q[small].notna() & q[large].notna()]
        assert len(both), small
        assert (both[small] <= both[large]).all(), (small, large)


def test_quarterly_uptake_is_worked_out_from_the_published_counts_with_a_poisson_interval(wh):
    con = _pub(wh)
    try:
        up = con.execute(
            "select m.*, q.headcount, q.months_covered, q.requests_received "
            "from public.trust_measure_quarters m join public.trust_quarters q "
            "using (org_code, quarter_start) where m.measure = 'requests_per_100_staff'"
        ).df()
    finally:
        con.close()
    published = up[up["status"] == "published"]
    assert len(published)
    again = (
        published["requests_received"]
        * 1200
        / (published["headcount"] * published["months_covered"])
    )
    assert (again.round(1) - published["rate"]).abs().max() < 1e-9
    assert (published["rate_lower95"] <= published["rate"]).all()
    assert (published["rate"] <= published["rate_upper95"]).all()
    # The Garwood interval of a count of 0 still has room above it.
    assert (published["rate_upper95"] > 0).all()
    # Withheld requests: no uptake, no interval.
    withheld = up[up["status"] != "published"]
    assert withheld[["rate", "rate_lower95", "rate_upper95"]].isna().all().all()


def test_trend_chart_never_draws_a_line_across_a_withheld_quarter():
    rows = pd.DataFrame(
        {
            "quarter": ["2025 Q1", "2025 Q2", "2025 Q3", "2025 Q4", "2026 Q1"],
            "rate": [0.8, 0.82, None, 0.85, 0.86],
            "rate_lower95": [0.7, 0.72, None, 0.75, 0.76],
            "rate_upper95": [0.9, 0.92, None, 0.95, 0.96],
            "status": ["published", "published", "withheld", "published", "published"],
        }
    )
    svg = str(measure_trend_plot(rows, plot_id="t", title="T", y_title="Approval rate (%)"))
    lines = re.findall(r'<polyline class="series" points="([^"]*)"', svg)
    # Two segments (Q1-Q2 and Q4-Q1), none across Q3.
    assert [len(p.split()) for p in lines] == [2, 2]
    assert "[c]" in svg and "Quarter" in svg and "Approval rate (%)" in svg
    assert "2025 Q3: not published (withheld)" in svg


def test_every_trust_page_has_a_trend_per_measure_and_links_its_figures(site, wh):
    con = _pub(wh)
    try:
        measures = [r[0] for r in con.execute(
            "select distinct measure from public.trust_measure_quarters where org_code = ?",
            [DECLINE_OUTLIER]).fetchall()]  # fmt: skip
    finally:
        con.close()
    html = (site / "trusts" / f"{DECLINE_OUTLIER}.html").read_text()
    for m in measures:
        assert f'id="trend-{m}"' in html and f'id="trend-{m.replace("_", "-")}"' in html
    # One chart per rate the page shows: the card's rates and uptake, and no other chart.
    shown = _page_rates(html)
    assert len(shown) == len(CARD_MEASURES) == 7
    assert "requests per 100 staff a year" in html
    assert html.count('class="plot trend"') == len(measures) == len(shown) + 1
    assert 'id="trend-approval"' not in html  # the approval-only chart is gone
    assert 'href="../indicators/approval-rate.html"' in html
    assert 'id="peer-caterpillar"' in html and 'class="cat this"' in html


def test_at_least_six_indicator_pages_with_definitions_and_distribution(site):
    pages = sorted((site / "indicators").glob("*.html"))
    names = {p.stem for p in pages} - {"index"}
    assert len(names) >= 6 and {i.slug for i in INDICATORS} == names
    html = (site / "indicators" / "escalation-rate.html").read_text()
    for word in ("Numerator", "Denominator", "Unit", "Polarity", "Source", "Method", "Caveats"):
        assert f"<dt>{word}</dt>" in html
    assert "not_agreed_first_stage" in html and 'id="dist-escalation-rate"' in html
    uptake = (site / "indicators" / "requests-per-100-staff.html").read_text()
    assert "Garwood" in uptake and "Wilson" not in uptake


def _as_number(shown: str) -> float:
    """A percentage as the page shows it ("93%", "91.2%") as a proportion."""
    return float(shown.strip().rstrip("%")) / 100


def _page_rates(html: str) -> dict[str, str]:
    """The card's rates as the page shows them: label -> "91.2%"."""
    rows = re.findall(
        r'<tr data-measure="[a-z_0-9]+"><th scope="row"><a href="[^"]*">([^<]+)</a></th>'
        r'<td class="num rate"[^>]*>([^<]+)',
        html,
    )
    return {label: value.strip() for label, value in rows}


def test_every_trust_page_downloads_exactly_the_numbers_it_shows(site, wh):
    con = _pub(wh)
    try:
        codes = [r[0] for r in con.execute("select org_code from public.trust_window").fetchall()]
    finally:
        con.close()
    for code in codes:
        html = (site / "trusts" / f"{code}.html").read_text()
        for f in ("card.csv", "trends.csv", "data.xlsx", "datapackage.json"):
            assert f'href="{code}/{f}"' in html, (code, f)
            assert (site / "trusts" / code / f).exists()
    html = (site / "trusts" / f"{DECLINE_OUTLIER}.html").read_text()
    card = pd.read_csv(site / "trusts" / DECLINE_OUTLIER / "card.csv", dtype=str).iloc[0]
    shown = _page_rates(html)
    for label, column in (("Approval rate", "approval_rate"), ("Decline rate", "decline_rate")):
        assert _as_number(shown[label]) == pytest.approx(float(card[column]), abs=1e-9)
    # The trend tables equal trends.csv.
    trends = pd.read_csv(site / "trusts" / DECLINE_OUTLIER / "trends.csv", dtype=str)
    approval = trends[(trends["measure"] == "approval_rate") & (trends["status"] == "published")]
    block = html.split('id="trend-approval_rate"')[1].split("</table>")[0]
    page_values = re.findall(r'<td class="num">([^<]+)</td>', block)
    assert page_values
    assert [_as_number(v) for v in page_values if v.endswith("%")] == pytest.approx(
        [float(v) for v in approval["rate"]], abs=1e-9
    )
    # The metadata names every column, its unit, the marker and the as-of date.
    package = json.loads((site / "trusts" / DECLINE_OUTLIER / "datapackage.json").read_text())
    assert package["data_as_of"] and package["suppression_marker"] == "[c]"
    for resource in package["resources"]:
        frame = pd.read_csv(site / "trusts" / DECLINE_OUTLIER / resource["path"], dtype=str)
        fields = resource["schema"]["fields"]
        assert [f["name"] for f in fields] == list(frame.columns)
        assert all(f["description"] for f in fields), [
            f["name"] for f in fields if not f["description"]
        ]
        assert "[c]" in resource["schema"]["missingValues"]
    units = {f["name"]: f.get("unit") for f in package["resources"][0]["schema"]["fields"]}
    assert units["approval_rate"].startswith("proportion")
    assert units["requests_received"].startswith("requests")


def test_downloads_hold_only_public_values(site, wh):
    # A withheld count reads [c] in the download, as on the page: nothing new to an attacker.
    con = _pub(wh)
    try:
        row = con.execute(
            "select org_code, withheld from public.trust_window where withheld <> '' "
            "and ';' || withheld || ';' like '%;declined;%' limit 1"
        ).fetchone()
    finally:
        con.close()
    if row is None:
        pytest.skip("no trust with a withheld declined count in this warehouse")
    card = pd.read_csv(site / "trusts" / row[0] / "card.csv", dtype=str).iloc[0]
    assert card["declined"] == "[c]"


def test_national_indicator_and_methodology_pages_offer_downloads(site):
    for page, folder in (
        ("index.html", "index"),
        ("methodology.html", "methodology"),
        ("indicators/approval-rate.html", "indicators/approval-rate"),
    ):
        html = (site / page).read_text()
        assert 'data-download="datapackage.json"' in html, page
        assert (site / folder / "datapackage.json").exists() and (
            site / folder / "data.xlsx"
        ).exists()


def test_each_page_download_is_typed_from_its_own_table(tmp_path):
    """An area's table of trusts is cut for its page and dropped after it, so Python may give
    the next page's table the same id: its datapackage.json must still type its own columns
    (a number column is "number", a text column "string"), whatever came before."""
    from flexbench import extract
    from flexbench.site import downloads

    as_of = extract.DataAsOf(None, None, None)
    for i in range(40):
        table = pd.DataFrame({"x": [1.5] if i % 2 else ["text"]})
        resource = downloads.Resource("r", "r", table, types_from=table)
        downloads.write_downloads(tmp_path / str(i), "page", [resource], as_of)
        del table, resource
        package = json.loads((tmp_path / str(i) / "datapackage.json").read_text())
        fields = package["resources"][0]["schema"]["fields"]
        assert [f["type"] for f in fields] == ["number" if i % 2 else "string"], i


def test_trust_card_json_has_peer_rank_flags_pledge_and_latest_file(wh, capsys):
    from flexbench.cli import main

    assert main(["trust", DECLINE_OUTLIER, "--json", "--warehouse", str(wh)]) == 0
    card = json.loads(capsys.readouterr().out)
    assert {"peer_rank", "flags", "pledge", "latest_file"} <= set(card)
    con = _pub(wh)
    try:
        rank, of = con.execute(
            "select peer_rank, peer_ranked from public.trust_window where org_code = ?",
            [DECLINE_OUTLIER],
        ).fetchone()
        flags = con.execute(
            "select flag, evidence from public.flags where org_code = ?", [DECLINE_OUTLIER]
        ).fetchall()
    finally:
        con.close()
    assert card["peer_rank"]["rank"] == rank and card["peer_rank"]["of"] == of
    assert {(f["flag"], f["evidence"]) for f in card["flags"]} == set(flags) and flags
    assert card["latest_file"]["last_attempt_status"] == "accepted"
    assert set(card["pledge"]) >= {"pledged", "signed_on"}
    assert main(["trust", DECLINE_OUTLIER, "--warehouse", str(wh)]) == 0
    text = capsys.readouterr().out
    assert f"Peer rank (approval) {rank} of {of}" in text
    assert "decline_rate_high_outlier" in text and "Latest file: accepted" in text


def test_trust_card_names_why_the_latest_file_was_rejected(wh, capsys):
    from flexbench.cli import main
    from tests.flexbench.test_site import REJECTED_TRUST

    assert main(["trust", REJECTED_TRUST, "--warehouse", str(wh)]) == 0
    text = capsys.readouterr().out
    assert "Latest file: rejected" in text and "Why: " in text
    assert main(["trust", REJECTED_TRUST, "--json", "--warehouse", str(wh)]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["latest_file"]["last_attempt_status"] == "rejected"
    assert card["latest_file"]["last_attempt_reasons"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.xlsx", "--format", "parquet"], "contradicts --out"),
        (["--out", "x.csv", "--trusts", ""], "--trusts is empty"),
        (["--out", "x.csv", "--trusts", " , "], "--trusts is empty"),
    ],
)
def test_extract_refuses_contradictions(wh, tmp_path, capsys, args, message):
    from flexbench.cli import main

    out = [a if not a.startswith("x.") else str(tmp_path / a) for a in args]
    assert main(["extract", *out, "--warehouse", str(wh)]) == 1
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_extract_names_regions_and_icbs_and_its_notes_match_the_methodology(wh, tmp_path):
    from flexbench.cli import main
    from transforms.vocabulary import REGIONS

    path = tmp_path / "x.csv"
    assert main(["extract", "--out", str(path), "--warehouse", str(wh), "--quiet"]) == 0
    df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    cols = list(df.columns)
    assert cols.index("region_name") == cols.index("region_code") + 1
    assert cols.index("icb_name") == cols.index("icb_code") + 1
    assert (df["region_name"] == df["region_code"].map(REGIONS)).all()
    assert df["icb_name"].notna().all()
    notes = (tmp_path / "x.csv.notes.txt").read_text()
    per100 = next(line for line in notes.splitlines() if line.startswith("requests_per_100_staff"))
    assert "Garwood" in per100 and "Wilson" not in per100
    assert "escalated / not_agreed_first_stage" in notes
    assert "excluding the trust itself" in notes


def test_icb_pages_show_the_icb_name_from_the_workforce_file_not_its_code(site, wh):
    from flexbench.sample.nation import build_nation
    from flexbench.site.areas import area_page

    # the names the nation's workforce file gives (ICS_NAME), as make_warehouse loads it
    workforce = build_nation(n_trusts=25).workforce
    published = dict(zip(workforce["ics_code"], workforce["ics_name"], strict=True))
    con = _pub(wh)
    try:
        icbs = con.execute(
            "select area_code, area_name from public.areas where area_kind = 'icb'"
        ).fetchall()
    finally:
        con.close()
    assert len(icbs) >= 5
    index = (site / "index.html").read_text(encoding="utf-8")
    for code, name in icbs:
        assert name == published[code] and code not in name, (code, name)
        page = (site / "areas" / area_page("icb", code)).read_text(encoding="utf-8")
        assert f"<h1>{html.escape(name)}</h1>" in page
        assert f'href="areas/{area_page("icb", code)}">{html.escape(name)}<' in index
