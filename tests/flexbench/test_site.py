"""The static site (docs/analysts.md, "The site"): pages, escaping, disclosure control, offline
links.

The warehouse is built in seconds without Airflow: the synthetic nation of the demo (25
trusts) is written straight into the raw/audit tables and the real SQL models are built on
top, so the marts are the ones `make demo` gives. Three trusts are changed to test what users
would notice: one has markup in its name, one reports tiny numbers (and a name a spreadsheet
would run as a formula), one had its latest file rejected.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

# tests/ is on sys.path, where the folder tests/warehouse would shadow the real `warehouse`
# package (see test_pipeline_pledge.py): put the project root first.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
if "warehouse" in sys.modules and getattr(sys.modules["warehouse"], "__file__", None) is None:
    del sys.modules["warehouse"]

import warehouse  # noqa: E402
from flexbench.site import build_site, display_name  # noqa: E402

MARKUP_TRUST = "RD7"
MARKUP_NAME = "<script>window.__pwned = 1</script> Ashbury & <b>District</b> NHS Trust"
TINY_TRUST = "RLT"
FORMULA_NAME = '=HYPERLINK("http://attacker.example/","Click") NHS TRUST'
REJECTED_TRUST = "RY7"
DECLINE_OUTLIER = "R9N"
REPORT_MARKUP = "<img src=x onerror=alert(2)>"
AS_OF = "2026-10-31"

#: The tiny trust's only quarter: 3 declines, 1 withdrawn, 1 approved with changes, 1 appeal
#: (all from 1 to 4, so withheld), 13 decided.
TINY_COUNTS = dict(
    requests_received=14, approved_in_full=9, approved_with_changes=1, declined=3, withdrawn=1,
    pending=0, escalated=3, appeals=1, appeals_upheld=0, decided_within_2_months=13,
    declined_costs=3, declined_demand=0, declined_reorganise=0, declined_recruit=0,
    declined_quality=0, declined_performance=0, declined_insufficient_work=0,
    declined_structural_changes=0, declined_other=0,
)  # fmt: skip


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    con.register("frame_to_insert", frame)
    con.execute(f"insert into {table} by name select * from frame_to_insert")
    con.unregister("frame_to_insert")


def make_warehouse(folder: Path) -> Path:
    """A demo-like warehouse of 25 synthetic trusts, built by the real SQL models."""
    from flexbench.pipeline import benchmark
    from flexbench.sample.nation import build_nation
    from flexbench.settings import Settings

    folder.mkdir(parents=True, exist_ok=True)
    nation = build_nation(n_trusts=25)
    loaded = datetime(2026, 10, 31, 6, tzinfo=UTC)
    trusts = nation.trusts.copy()
    trusts.loc[trusts["org_code"] == MARKUP_TRUST, "name"] = MARKUP_NAME
    trusts.loc[trusts["org_code"] == TINY_TRUST, "name"] = FORMULA_NAME
    ods = trusts[
        ["org_code", "name", "region_code", "icb_code", "postcode", "open_date", "close_date"]
    ].assign(  # fmt: skip
        sha256="ods",
        loaded_at=loaded,
        country=trusts["region_code"].map(lambda r: "England" if r.startswith("Y") else "Wales"),
    )
    summary = nation.summary[~nation.summary["org_code"].isin([TINY_TRUST, REJECTED_TRUST])]
    q_start, q_end = nation.quarters[-1]
    tiny = pd.DataFrame([{
        "org_code": TINY_TRUST, "period_start": pd.Timestamp(q_start),
        "period_end": pd.Timestamp(q_end), "staff_group": "All staff groups", **TINY_COUNTS,
    }])  # fmt: skip
    rows = pd.concat([summary, tiny], ignore_index=True)
    rows = rows.assign(file_sha256="sha-" + rows["org_code"], fetched_at=loaded)

    report_path = folder / "reports" / "validation" / f"{REJECTED_TRUST}-abc.json"
    report_path.parent.mkdir(parents=True)
    report_path.write_text(json.dumps({
        "org_code": REJECTED_TRUST, "url": "http://127.0.0.1:9/RY7.csv", "sha256": "abc",
        "fetched_at": "2026-10-30T09:00:00+00:00", "accepted": False, "form": "summary",
        "sheet": None, "rows": 88, "warnings": [],
        "failures": [{
            "rule": "outcomes-sum", "column": "approved_in_full+declined vs requests_received",
            "description": "the five outcomes must add up to requests_received",
            "rows": [55, 61],
            "example_rows": [{"row": 55, "approved_in_full": REPORT_MARKUP,
                              "requests_received": "11"}],
        }],
    }))  # fmt: skip
    files = [
        {"org_code": code, "url": f"http://127.0.0.1:9/{code}.csv", "sha256": f"sha-{code}",
         "fetched_at": loaded, "status": "accepted", "reasons": None, "form": "summary",
         "rows": 1, "http_status": 200, "report_path": None, "run_id": "test"}
        for code in sorted(rows["org_code"].unique())
    ] + [
        {"org_code": REJECTED_TRUST, "url": "http://127.0.0.1:9/RY7.csv", "sha256": "abc",
         "fetched_at": loaded, "status": "rejected",
         "reasons": "outcomes-sum: the five outcomes must add up (rows 55, 61)",
         "form": "summary", "rows": 0, "http_status": 200, "report_path": str(report_path),
         "run_id": "test"},
    ]  # fmt: skip
    signup = pd.DataFrame([{
        "signup_id": "S1", "organisation_name": "Ashbury", "org_code": MARKUP_TRUST,
        "match_method": "ods_code", "status": "signed", "signed_at": loaded,
        "commits_lead": True, "commits_target": True, "commits_train": False,
        "action_plan_url": "javascript:alert(3)", "managers_trained_pct": 40.0,
        "is_current": True, "valid_from": loaded, "updated_at": loaded,
    }])  # fmt: skip

    path = folder / "flexbench.duckdb"
    con = warehouse.connect(path)
    try:
        warehouse.apply_schema(con)
        _insert(con, "raw.ods_trusts", ods)
        _insert(con, "raw.workforce", nation.workforce.assign(sha256="wf", loaded_at=loaded))
        _insert(
            con,
            "raw.staff_survey",
            nation.staff_survey.assign(
                sha256="nss", loaded_at=loaded, unit_kind="trust", is_ods_trust=True
            ),
        )
        _insert(con, "raw.publication_rows", rows)
        _insert(con, "audit.publication_files", pd.DataFrame(files))
        _insert(con, "raw.pledge_signups_history", signup)
    finally:
        con.close()
    # The benchmark DAG's own build step (every model, and any measures it computes).
    settings = Settings(
        sources_path=folder / "sources.yml", warehouse_path=path, data_dir=folder,
        allow_local_urls=True,
    )  # fmt: skip
    benchmark.build(settings, date.fromisoformat(AS_OF))
    return path


def tiny_warehouse_once(shared_build) -> Path:
    """The warehouse of :func:`make_warehouse`, built once a session (test_site_pages,
    test_extract and test_site_browser read it too: a test that changes it works on a copy)."""
    return shared_build("tiny-warehouse", make_warehouse)


def tiny_site_once(shared_build) -> Path:
    """The site of that warehouse, built once a session (build_site_in checks it answers with
    the index page)."""
    from nation_warehouse import build_site_in

    return shared_build("site", build_site_in, tiny_warehouse_once(shared_build))


@pytest.fixture(scope="module")
def tiny_warehouse(shared_build) -> Path:
    return tiny_warehouse_once(shared_build)


@pytest.fixture(scope="module")
def site(shared_build) -> Path:
    return tiny_site_once(shared_build)


def _benchmark_codes(path: Path) -> list[str]:
    con = warehouse.connect(path, read_only=True)
    try:
        return [r[0] for r in con.execute("select org_code from marts.trust_benchmark").fetchall()]
    finally:
        con.close()


def _text(html: str) -> str:
    """The visible text of a page, tags removed and entities decoded (as a reader sees it)."""
    import html as html_mod

    return " ".join(html_mod.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_site_has_a_national_page_a_methodology_page_and_a_page_per_trust(site, tiny_warehouse):
    codes = _benchmark_codes(tiny_warehouse)
    assert len(codes) > 15
    pages = sorted(p.stem for p in (site / "trusts").glob("*.html"))
    assert pages == sorted(codes)
    for name in ("index.html", "methodology.html", "assets/site.css", "assets/site.js"):
        assert (site / name).is_file(), name
    index = (site / "index.html").read_text()
    for code in codes:  # every trust is linked from the national table
        assert f'href="trusts/{code}.html"' in index


def test_every_page_says_when_the_data_is_from(site):
    for page in [site / "index.html", site / "methodology.html", *site.glob("trusts/*.html")]:
        text = _text(page.read_text())
        assert "Data as of 31 October 2026" in text, page.name
        assert "1 October 2025 to 30 September 2026" in text, page.name


def test_a_trust_name_with_markup_shows_as_text(site):
    for page in (site / "index.html", site / "trusts" / f"{MARKUP_TRUST}.html"):
        html = page.read_text()
        assert "<script>window.__pwned" not in html
        assert "<b>District</b>" not in html
        assert "&lt;script&gt;window.__pwned" in html
    trust = (site / "trusts" / f"{MARKUP_TRUST}.html").read_text()
    assert "<script>window.__pwned = 1</script>" in _text(trust)
    # The pledge's action plan link from the feed is not a javascript: URL.
    assert "javascript:" not in trust


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.refs.append((tag, a[key], a))


def test_pages_load_nothing_from_the_network_and_links_are_relative(site):
    for page in [site / "index.html", site / "methodology.html", *site.glob("trusts/*.html")]:
        parser = _Refs()
        parser.feed(page.read_text())
        for tag, ref, attrs in parser.refs:
            external = re.match(r"^[a-z][a-z0-9+.-]*:|^//", ref, re.I)
            if tag != "a":  # scripts, styles, images: always shipped files
                assert not external, (page.name, ref)
                assert (page.parent / ref).resolve().is_file(), (page.name, ref)
            elif external:  # only the trust's own action plan, opened by the reader
                assert ref.startswith(("https://", "http://")) and "noopener" in attrs["rel"]
            elif not ref.startswith("#"):
                assert (page.parent / ref.split("#")[0]).resolve().is_file(), (page.name, ref)


def test_small_numbers_are_withheld_on_the_trust_page(site):
    html = (site / "trusts" / f"{TINY_TRUST}.html").read_text()
    counts = dict(re.findall(r'<th scope="row">([^<]+)</th><td class="num">([^<]+)</td>', html))
    # 3 declined, 1 withdrawn, 1 appeal: from 1 to 4, withheld (and not recoverable from totals)
    assert counts["Declined"] == "[c]"
    assert counts["Withdrawn"] == "[c]"
    assert counts["Appeals"] == "[c]"
    assert counts["Escalated"] == "[c]"
    text = _text(html)
    assert re.search(r"Decline rate (\S+)", text)[1] == "[c]"  # 3 of 13 would reveal them
    assert "withheld to protect confidentiality" in text


def test_funnel_plots_show_the_trusts_and_name_the_outlier(site, tiny_warehouse):
    html = (site / "index.html").read_text()
    for key in ("approval", "decline"):
        svg = re.search(rf'<svg class="plot funnel" id="funnel-{key}".*?</svg>', html, re.S)[0]
        assert "<title" in svg and "<desc" in svg
        assert svg.count('class="limit-95"') >= 2 and svg.count('class="limit-998"') >= 2
        codes = re.findall(r'<circle class="pt [^"]*"[^>]*data-code="([^"]+)"', svg)
        assert len(codes) > 10 and len(set(codes)) == len(codes)
        assert TINY_TRUST not in codes or key == "approval"
    # The planted decline-rate outlier sits above the outer limit, on its card too.
    card = _text((site / "trusts" / f"{DECLINE_OUTLIER}.html").read_text())
    assert re.search(r"Decline rate\s+\S+%.*?Above the 99\.8% limit", card, re.S)


def test_rejected_file_shows_its_validation_report(site):
    html = (site / "trusts" / f"{REJECTED_TRUST}.html").read_text()
    text = _text(html)
    assert "Why the latest file was rejected" in text
    assert "the five outcomes must add up to requests_received" in text
    assert "Rows: 55, 61" in text
    assert REPORT_MARKUP not in html and "&lt;img src=x" in html
    accepted = _text((site / "trusts" / f"{MARKUP_TRUST}.html").read_text())
    assert "Latest file: accepted" in accepted and "was rejected" not in accepted


def test_flags_are_shown_escaped(tiny_warehouse, tmp_path):
    # Whatever text a flag carries reaches the page as text, never markup.
    copy = tmp_path / "with-markup.duckdb"
    copy.write_bytes(tiny_warehouse.read_bytes())
    con = warehouse.connect(copy)
    con.execute(
        "update public.flags set evidence = 'decline rate 35% <i>vs</i> 9%' "
        f"where org_code = '{DECLINE_OUTLIER}'"
    )
    con.close()
    out = build_site(copy, tmp_path / "site").parent
    html = (out / "trusts" / f"{DECLINE_OUTLIER}.html").read_text()
    assert "decline rate high outlier" in _text(html)
    assert "decline rate 35% <i>vs</i> 9%" in _text(html) and "<i>vs</i>" not in html


def test_flag_evidence_quotes_only_published_values(site, tiny_warehouse):
    con = warehouse.connect_public(tiny_warehouse)
    try:
        flags = con.execute("select org_code, flag, evidence from public.flags").df()
        trusts = con.execute("select * from public.trust_window").df().set_index("org_code")
    finally:
        con.close()
    with_counts = flags[flags["flag"].isin(["declines_without_escalation",
                                            "non_statutory_declines"])]  # fmt: skip
    assert len(with_counts)
    for r in with_counts.itertuples():
        published = trusts.loc[r.org_code]
        # every whole number in the evidence is one of the trust's published counts (rounded
        # to 5), and a withheld one reads [c]
        numbers = [int(n.replace(",", "")) for n in re.findall(r"(?<![\d.])\d[\d,]*(?![\d.%])",
                                                            r.evidence)]  # fmt: skip
        assert numbers and all(n % 5 == 0 for n in numbers), r.evidence
        page = _text((site / "trusts" / f"{r.org_code}.html").read_text())
        assert r.evidence in page
        assert all(n in set(published.dropna().values) for n in numbers), r.evidence


def test_site_refuses_to_overwrite_a_folder_that_is_not_a_site(tiny_warehouse, tmp_path):
    from flexbench.extract import ExtractError

    folder = tmp_path / "my-documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ExtractError, match="not a flexbench site"):
        build_site(tiny_warehouse, folder)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_rebuilding_replaces_the_site(tiny_warehouse, tmp_path):
    out = tmp_path / "site"
    build_site(tiny_warehouse, out)
    (out / "trusts" / "OLD.html").write_text("a trust no longer in the benchmark")
    build_site(tiny_warehouse, out)
    assert not (out / "trusts" / "OLD.html").exists()
    assert (out / "index.html").is_file()


def _site_files(root: Path) -> dict[str, bytes | list]:
    """Every file of a site, less the time of the build: the "Site built" line of a page and
    the save time in a workbook's properties."""
    import zipfile

    saved_at = re.compile(rb"<dcterms:(created|modified)[^>]*>[^<]*</dcterms:\1>")
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                data = [(n, saved_at.sub(b"", z.read(n))) for n in z.namelist()]
        else:
            data = re.sub(rb"Site built [^<]*\.", b"", data)
        files[path.relative_to(root).as_posix()] = data
    return files


def test_trust_pages_written_by_two_processes_are_those_one_writes(
    tiny_warehouse, tmp_path, monkeypatch
):
    from flexbench.site import builder

    # every trust counts as enough for a process, and the processes take 3 pages at a time
    monkeypatch.setattr(builder, "TRUSTS_PER_WORKER", 1)
    monkeypatch.setattr(builder, "PAGES_PER_TASK", 3)
    build_site(tiny_warehouse, tmp_path / "one", workers=1)
    build_site(tiny_warehouse, tmp_path / "two", workers=2)
    one, two = _site_files(tmp_path / "one"), _site_files(tmp_path / "two")
    assert len([f for f in one if f.startswith("trusts/") and f.endswith(".html")]) > 20
    assert one.keys() == two.keys()
    assert [f for f in one if one[f] != two[f]] == []


def test_where_no_process_can_be_forked_the_trust_pages_are_written_in_one(
    tiny_warehouse, tmp_path, monkeypatch
):
    # A daemonic process (a Celery pool's) may not have children: the pages are still written,
    # all of them, and the same as ever.
    import multiprocessing

    from flexbench.site import builder

    monkeypatch.setattr(builder, "TRUSTS_PER_WORKER", 1)
    build_site(tiny_warehouse, tmp_path / "one", workers=1)

    def build_in_a_daemon():
        build_site(tiny_warehouse, tmp_path / "daemon", workers=2)

    worker = multiprocessing.get_context("fork").Process(target=build_in_a_daemon, daemon=True)
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0
    one, daemon = _site_files(tmp_path / "one"), _site_files(tmp_path / "daemon")
    assert one.keys() == daemon.keys()
    assert [f for f in one if one[f] != daemon[f]] == []


@pytest.mark.parametrize(
    ("ods_name", "shown"),
    [
        ("GUY'S AND ST THOMAS' NHS FOUNDATION TRUST", "Guy's and St Thomas' NHS Foundation Trust"),
        ("ISLE OF WIGHT NHS TRUST", "Isle of Wight NHS Trust"),
        ("BARKING, HAVERING AND REDBRIDGE UNIVERSITY HOSPITALS NHS TRUST",
         "Barking, Havering and Redbridge University Hospitals NHS Trust"),
        # a name that is not all capitals is shown as published
        ("Oxleas NHS Foundation Trust", "Oxleas NHS Foundation Trust"),
    ],
)  # fmt: skip
def test_trust_names_are_shown_in_normal_case(ods_name, shown):
    assert display_name(ods_name) == shown


def test_a_trusts_row_is_read_as_the_table_gives_it():
    # SiteData.trust_row: every trust's values worked out once, a column at a time, each
    # value what public.loc[code] gives (a numpy scalar from a numpy column, NA, NaN, text)
    from flexbench.site.builder import cross_sections

    frame = pd.DataFrame(
        {
            "org_code": pd.array(["RA1", "RB2", "RC3"], dtype="str"),
            "requests": pd.array([10, None, 30], dtype="Int64"),
            "rate": [0.5, float("nan"), 0.25],
            "has_data": [True, False, True],
            "months": [12, 3, 12],
            "region": pd.array(["Y56", None, "Y58"], dtype="str"),
            "signed_on": [date(2025, 1, 2), None, date(2025, 3, 4)],
            "checked_at": pd.to_datetime(["2026-01-01", "2026-02-01", None]),
        }
    ).set_index("org_code", drop=False)
    columns, positions, values = cross_sections(frame)
    for code in frame.index:
        given = frame.loc[code].to_numpy()
        made = values[positions[code]]
        assert columns == list(frame.columns)
        assert [type(v) for v in made] == [type(v) for v in given]
        pairs = zip(made, given, strict=True)
        assert all(a is b or a == b or (pd.isna(a) and pd.isna(b)) for a, b in pairs)
    assert cross_sections(frame.select_dtypes("number")) is None  # a row of floats, not objects


def test_the_site_templates_read_a_contexts_key_as_jinja_does():
    from flexbench.site.builder import _environment

    env = _environment()
    # a key where the name is no attribute of a dict; the attribute where it is one, as
    # Jinja's own lookup finds it; a missing key undefined
    assert env.getattr({"name": "A"}, "name") == "A"
    context = {"items": 1}
    assert env.getattr(context, "items") == context.items
    template = env.from_string("{{ d.name }} {{ d.get('x', 'none') }}")
    assert template.render(d={"name": "<b>", "get": 2}) == "&lt;b&gt; none"
    with pytest.raises(Exception, match="missing"):
        env.from_string("{{ d.missing }}").render(d={})


def test_cli_site_command_builds_into_the_folder_asked(tiny_warehouse, tmp_path, capsys):
    from flexbench.cli_outputs import main

    out = tmp_path / "public"
    assert main(["site", "--warehouse", str(tiny_warehouse), "--out", str(out)]) == 0
    assert (out / "index.html").is_file()
    assert "file://" in capsys.readouterr().out
    assert main(["site", "--warehouse", str(tmp_path / "none.duckdb")]) == 1
    assert "no warehouse" in capsys.readouterr().err


def test_outputs_read_the_public_layer_and_nothing_else(tiny_warehouse, tmp_path):
    """The site, the extracts and the trust card are built from a warehouse that has nothing
    but public.* left: had any of them read a mart, staging or audit table, they would fail."""
    from flexbench import cli, extract
    from flexbench.cli_outputs import main

    copy = tmp_path / "public-only.duckdb"
    copy.write_bytes(tiny_warehouse.read_bytes())
    con = warehouse.connect(copy)
    for schema in ("raw", "audit", "staging", "intermediate", "marts"):
        con.execute(f"drop schema {schema} cascade")
    con.close()
    assert (build_site(copy, tmp_path / "site")).is_file()
    for by in ("window", "quarter"):
        out = tmp_path / f"{by}.xlsx"
        assert main(["extract", "--warehouse", str(copy), "--by", by, "--out", str(out),
                     "--quiet"]) == 0  # fmt: skip
    pub = extract.open_public(copy)
    try:
        assert cli.trust_card(pub, DECLINE_OUTLIER)["org_code"] == DECLINE_OUTLIER
    finally:
        pub.close()


def test_no_output_module_computes_a_benchmark_rule_or_names_another_layer():
    import inspect

    from flexbench import cli, extract
    from flexbench.site import builder, downloads, indicators, plots, trust_charts

    rules = ("wilson_interval(", "rank_with_ties(", "funnel_limits(", "funnel_significance(",
             "pooled_rate(", "overdispersion(", "quartile(", "wilson_lower(")  # fmt: skip
    for module in (extract, builder, plots, downloads, indicators, trust_charts, cli):
        source = inspect.getsource(module)
        assert not [r for r in rules if r in source], module.__name__
        queried = re.search(r"(from|join)\s+\W?(marts|staging|intermediate|audit|raw)\b", source)
        assert not queried, module.__name__
