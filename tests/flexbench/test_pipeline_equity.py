"""Equity on the demo nation, end to end: the request-level files are served on loopback,
fetched, validated and loaded by the real publications pipeline, and the benchmark is built.

The equity marts must hold every dimension for every request-level trust, their counts must
equal a recount made here, independently, from the accepted files in the landing zone, and
the planted equity gaps must be flagged (docs/methodology.md, "Equity gap flag").
"""

from __future__ import annotations

import io
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy.stats import binom

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
if "warehouse" in sys.modules and getattr(sys.modules["warehouse"], "__file__", None) is None:
    del sys.modules["warehouse"]

import warehouse  # noqa: E402
from flexbench import demo, settings  # noqa: E402
from flexbench.pipeline import benchmark, publications  # noqa: E402
from flexbench.sample import nation as nation_mod  # noqa: E402
from flexbench.sample import publications as sample_publications  # noqa: E402

AS_OF = nation_mod.DEFAULT_AS_OF
LOADED_AT = pd.Timestamp(datetime(2026, 11, 1, tzinfo=UTC))
SEVEN = {"sex", "ethnic_group", "disability", "age_band", "pay_band", "staff_group", "flex_type"}


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    columns = set(con.execute(f"select * from {table} limit 0").df().columns)
    con.register("frame", frame[[c for c in frame.columns if c in columns]])
    con.execute(f"insert into {table} by name select * from frame")
    con.unregister("frame")


@pytest.fixture(scope="module")
def equity_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("equity-demo")
    nation = nation_mod.build_nation(n_trusts=200)
    served = root / "served"
    manifest = sample_publications.write_publications(nation, served)
    request_level = manifest[(manifest["form"] == "request_level")]
    assert (request_level["expected"] == "accepted").all()
    path = root / "data" / "flexbench.duckdb"
    con = warehouse.connect(path)
    try:
        warehouse.apply_schema(con)
        trusts = nation.trusts.assign(
            country=lambda t: t["region_code"].map(
                lambda r: "England" if r.startswith("Y") else "Wales"
            ),
            sha256="ods",
            loaded_at=LOADED_AT,
        )
        _insert(con, "raw.ods_trusts", trusts)
        _insert(con, "raw.workforce", nation.workforce.assign(sha256="wf", loaded_at=LOADED_AT))
        warehouse.build_layers_named(con, ["staging.ods_trusts", "staging.workforce"])
    finally:
        con.close()
    port = demo._free_port(0)
    base = f"http://127.0.0.1:{port}/publications/"
    sources = root / "sources.yml"
    sources.write_text(
        yaml.safe_dump(
            {
                "allow_local_urls": True,
                "publications": [
                    {"org_code": r.org_code, "url": base + r.filename}
                    for r in request_level.itertuples()
                ],
            }
        )
    )
    s = settings.load(sources=sources, warehouse=path)
    with demo.serve(served, port):
        outcomes = []
        for batch in publications.batches(publications.registry(s)):
            fetched = publications.fetch_batch(s, batch)
            outcomes += publications.validate_batch(s, fetched, AS_OF)
    counts = publications.load(s, outcomes, "equity-run", AS_OF)
    assert counts == {"accepted": len(request_level)}
    benchmark.build(s, AS_OF)
    con = warehouse.connect(path, read_only=True)
    try:
        tables = {
            name: con.execute(f"select * from marts.{name}").df()
            for name in ("equity_benchmark", "equity_gaps", "flex_type_mix")
        }
        files = con.execute(
            "select org_code, url, sha256 from audit.publication_files where status = 'accepted'"
        ).df()
    finally:
        con.close()
    return nation, s, request_level, tables, files


def test_every_request_level_trust_has_all_seven_dimensions(equity_build):
    nation, _, request_level, tables, _ = equity_build
    trust_rows = tables["equity_benchmark"].query("level == 'trust'")
    have = trust_rows.groupby("org_code")["dimension"].agg(set)
    # Every request-level trust with requests in the window (a stale one has none there).
    start, end = trust_rows["window_start"].iloc[0], trust_rows["window_end"].iloc[0]
    received = nation.requests["received_date"]
    in_window = nation.requests[(received >= start) & (received <= end)]
    expected = set(request_level["org_code"]) & set(in_window["org_code"])
    assert len(expected) >= 20
    assert set(have.index) == expected
    for org, dims in have.items():
        assert SEVEN <= dims, (org, SEVEN - dims)
    # Half the trusts write the detailed 2021 Census groups: they get that dimension too.
    detailed = set(trust_rows.loc[trust_rows["dimension"] == "ethnic_group_detailed", "org_code"])
    assert 0 < len(detailed) < len(have)
    # National and peer-group rows carry the same measures.
    eb = tables["equity_benchmark"]
    assert set(eb["level"]) == {"trust", "peer_group", "england"}
    # The documented grain: keys unique and never null.
    keys = ["org_code", "window_start", "window_end", "dimension", "group_value"]
    assert eb[keys].notna().all().all() and not eb.duplicated(keys).any()


def _landed(settings, files, org: str) -> pd.DataFrame:
    """The accepted file of ``org`` as it lies in the landing zone, read with pandas only."""
    sha = files.loc[files["org_code"] == org, "sha256"].iloc[0]
    path = next(
        p
        for p in Path(settings.landing_dir).rglob(f"{sha}*")
        if p.is_file() and not p.name.endswith(".jsonl")  # not the provenance record
    )
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        sheets = pd.read_excel(io.BytesIO(data), sheet_name=None, header=None, dtype=str)
        raw = sheets.get("data", next(iter(sheets.values())))
    else:
        raw = pd.read_csv(io.BytesIO(data), dtype=str, encoding="utf-8-sig", header=None)
    names = raw.apply(lambda r: [str(v).strip().lower().replace(" ", "_") for v in r], axis=1)
    header = next(i for i, r in enumerate(names) if "received_date" in r)
    frame = raw.iloc[header + 1 :].reset_index(drop=True)
    frame.columns = names.iloc[header]
    return frame


_BROAD = {
    "White": "White",
    "Mixed": "Mixed",
    "Asian": "Asian or Asian British",
    "Black": "Black or Black British",
    "Other": "Other ethnic group",
}


def _recount(frame: pd.DataFrame, start, end) -> pd.DataFrame:
    received = pd.to_datetime(frame["received_date"].str[:10])
    f = frame[(received >= start) & (received <= end)].fillna("Not stated")
    f = f.assign(
        ethnic_group=f["ethnic_group"].map(
            lambda v: v if v == "Not stated" else _BROAD.get(v.split(":")[0].split(" ")[0], v)
        ),
        pay_band=f["band"],
        approved=f["outcome"].isin(["approved_in_full", "approved_with_changes"]),
        declined=f["outcome"] == "declined",
    )
    f["decided"] = f["approved"] | f["declined"]
    parts = []
    for dim in sorted(SEVEN):
        g = f.groupby(dim).agg(
            requests_received=("outcome", "size"),
            decided=("decided", "sum"),
            approved=("approved", "sum"),
            declined=("declined", "sum"),
        )
        parts.append(g.rename_axis("group_value").reset_index().assign(dimension=dim))
    return pd.concat(parts, ignore_index=True)


def test_counts_equal_an_independent_recount_of_the_landed_files(equity_build):
    _, s, request_level, tables, files = equity_build
    eb = tables["equity_benchmark"].query("level == 'trust'")
    picked = random.Random(17).sample(sorted(request_level["org_code"]), 5)
    for org in picked:
        mine = eb[(eb["org_code"] == org) & eb["dimension"].isin(SEVEN)]
        start, end = mine["window_start"].iloc[0], mine["window_end"].iloc[0]
        expected = _recount(_landed(s, files, org), start, end)
        got = mine[["dimension", "group_value", "requests_received", "decided", "approved",
                    "declined"]]  # fmt: skip
        merged = expected.merge(got, on=["dimension", "group_value"], how="outer",
                                suffixes=("_recount", "_mart"), indicator=True)  # fmt: skip
        assert (merged["_merge"] == "both").all(), (org, merged[merged["_merge"] != "both"])
        for c in ("requests_received", "decided", "approved", "declined"):
            assert (merged[f"{c}_recount"] == merged[f"{c}_mart"]).all(), (org, c)


def test_each_planted_equity_gap_is_flagged_and_few_others(equity_build):
    nation, _, _, tables, _ = equity_build
    gaps = tables["equity_gaps"]
    flagged = set(zip(gaps["org_code"], gaps["dimension"], gaps["group_value"], strict=True))
    planted = set()
    for org, text in nation.equity_gaps().items():
        dimension, groups = text.split(": ")
        planted |= {(org, dimension, g) for g in groups.split(", ")}
    assert len(planted) >= 3
    assert planted <= flagged, planted - flagged
    assert (gaps.loc[gaps["org_code"].isin(nation.equity_gaps()), "direction"]
            == "lower than reference").all()  # fmt: skip
    # BH keeps the false share of flags at 5% on average: a handful at most.
    assert len(flagged - planted) <= binom.ppf(0.999, len(flagged), 0.05)
    # Every flag says why, with the counts, in words.
    assert gaps["evidence"].str.contains("relative likelihood").all()
    assert gaps["q_value"].le(0.05).all()


def test_the_flex_type_mix_adds_up_for_each_trust_and_the_nation(equity_build):
    _, _, _, tables, _ = equity_build
    mix = tables["flex_type_mix"]
    totals = mix.groupby(["level", "org_code"])["share_requested"].sum()
    assert totals.round(9).eq(1).all()
    england = mix[mix["level"] == "england"].set_index("flex_type")
    trusts = mix[mix["level"] == "trust"].groupby("flex_type")["requests_received"].sum()
    assert england["requests_received"].sort_index().tolist() == trusts.sort_index().tolist()
