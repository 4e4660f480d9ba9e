"""The benchmark build on the demo nation, without Airflow: planted gaps are found, and the
unplanted trusts are flagged no more often than chance allows.

To stay fast the publications and reference data are loaded straight from the generated
nation's frames (what the validated files hold), skipping file parsing and GX; the pledge feed
runs through the real pledge pipeline, served on loopback by ``flexbench.demo.serve``.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from nation_warehouse import load_nation as _load_nation  # noqa: E402  (tests/flexbench)
from scipy.stats import binom

import warehouse
from flexbench import demo, settings
from flexbench.pipeline import benchmark, pledge
from flexbench.sample import nation as nation_mod
from flexbench.sample import pledge as pledge_mod
from transforms import stats

AS_OF = nation_mod.DEFAULT_AS_OF

# The flags each planted feature must raise (flexbench/sample/nation.py, Nation.truth.planted).
EXPECTED_FLAG = {
    "decline_outlier": "decline_rate_high_outlier",
    "non_statutory_declines": "non_statutory_declines",
    "no_escalation": "declines_without_escalation",
    "late_decisions": "decisions_outside_two_months",
    "clinical_gap": "clinical_approval_gap",
    "voice_below_peers": "voice_below_peers",
    "low_uptake_low_voice": "low_uptake_low_voice",
    "pledged_not_publishing": "pledged_not_publishing",
    "stale": "data_stale_or_rejected",
    "rejected_file": "data_stale_or_rejected",
}


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmark-demo")
    nation = nation_mod.build_nation(n_trusts=200)
    path = root / "flexbench.duckdb"
    con = warehouse.connect(path)
    try:
        warehouse.apply_schema(con)
        _load_nation(con, nation)
    finally:
        con.close()
    port = demo._free_port(0)
    base_url = f"http://127.0.0.1:{port}"
    served = root / "served"
    pledge_mod.write_pledge_feed(nation, served, base_url)
    sources = root / "sources.yml"
    sources.write_text(yaml.safe_dump({
        "allow_local_urls": True,
        "ods_trusts": {"url": f"{base_url}/reference/etr.csv"},
        "pledge_signups": {"url": f"{base_url}/pledge/page-1.json"},
    }))  # fmt: skip
    s = settings.load(sources=sources, warehouse=path)
    with demo.serve(served, port):
        pledge.load(s, pledge.fetch(s))
    result = benchmark.build(s, AS_OF)
    con = warehouse.connect(path, read_only=True)
    try:
        tables = {
            name: con.execute(f"select * from marts.{name}").df()
            for name in ("trust_benchmark", "policy_practice_gaps", "trust_trends")
        }
    finally:
        con.close()
    return nation, result, tables


def test_the_build_reports_the_demo_window_and_every_benchmark_trust(demo_build):
    nation, result, tables = demo_build
    assert (result["window_start"], result["window_end"]) == ("2025-10-01", "2026-09-30")
    in_benchmark = set(nation.truth.loc[nation.truth["in_benchmark"], "org_code"])
    assert in_benchmark <= set(tables["trust_benchmark"]["org_code"])
    assert result["flags"] == len(tables["policy_practice_gaps"])


@pytest.mark.parametrize("feature", sorted(EXPECTED_FLAG))
def test_each_planted_gap_is_flagged(demo_build, feature):
    nation, _, tables = demo_build
    gaps = tables["policy_practice_gaps"]
    flagged = set(gaps.loc[gaps["flag"] == EXPECTED_FLAG[feature], "org_code"])
    planted = set(nation.planted(feature))
    if feature == "clinical_gap":
        # The generator plants a gap of ~10 points on trusts of 5,000+ staff: about 100
        # non-clinical decisions a year, so the expected z is only ~3 and one planted trust in
        # three can fall short of 95% significance by chance (reported to the generator's owner).
        assert len(planted & flagged) >= len(planted) - 1, (planted, flagged)
    else:
        assert planted <= flagged, planted - flagged


def _unplanted(nation, tables) -> set[str]:
    truth = nation.truth
    have = set(tables["trust_benchmark"].loc[tables["trust_benchmark"]["has_data"], "org_code"])
    return set(truth.loc[truth["planted"] == "", "org_code"]) & have


def test_unplanted_trusts_fall_outside_the_99_8_funnel_no_more_often_than_chance(demo_build):
    # Each trust has a 0.2% chance of falling outside the 99.8% limits of a calibrated funnel
    # (either side). Approval and decline rates are mirror images (one test), so the count of
    # unplanted trusts outside is at most Binomial(n, 0.002); the bound is its 99.9% quantile
    # (for n ~ 150 that is 3): a larger count means the limits are too narrow.
    nation, _, tables = demo_build
    b = tables["trust_benchmark"].set_index("org_code")
    unplanted = sorted(_unplanted(nation, tables))
    outside = b.loc[unplanted, "approval_rate_funnel_adjusted"].isin(
        [stats.HIGH_OUTER, stats.LOW_OUTER]
    )
    assert int(outside.sum()) <= binom.ppf(0.999, len(unplanted), 0.002), b.loc[
        outside[outside].index, ["approval_rate", "decided"]
    ]


def test_unplanted_trusts_get_high_severity_flags_no_more_often_than_chance(demo_build):
    # Only the statistical flags can fire on an unplanted trust, and their "high" level needs
    # a Benjamini-Hochberg q-value of at most 0.05 over every trust x tested flag, far rarer
    # than a 99.8% test (0.2% two-sided per test) on ordinary trusts; three such tests per
    # trust (decline outlier, clinical gap, staff voice). Bound: the 99.9% quantile of
    # Binomial(n, 3 x 0.002).
    nation, _, tables = demo_build
    gaps = tables["policy_practice_gaps"]
    unplanted = _unplanted(nation, tables)
    high = gaps[gaps["org_code"].isin(unplanted) & (gaps["severity"] == "high")]
    assert len(high) <= binom.ppf(0.999, len(unplanted), 3 * 0.002), high
    # Flags with no statistics behind them never fire on a trust behaving like the NHS.
    rule_based = {"non_statutory_declines", "declines_without_escalation",
                  "decisions_outside_two_months", "pledged_not_publishing",
                  "data_stale_or_rejected", "low_uptake_low_voice"}  # fmt: skip
    assert not set(gaps.loc[gaps["org_code"].isin(unplanted), "flag"]) & rule_based


def test_no_gap_test_on_small_groups_and_tested_flags_carry_p_and_q(demo_build):
    _, _, tables = demo_build
    b = tables["trust_benchmark"].set_index("org_code")
    gaps = tables["policy_practice_gaps"]
    small = (b["clinical_decided"] < 10) | (b["non_clinical_decided"] < 10)
    assert b.loc[small, "clinical_gap_p_value"].isna().all()
    clinical = gaps.loc[gaps["flag"] == "clinical_approval_gap", "org_code"]
    assert not small.reindex(clinical).any()
    tested = gaps[gaps["flag"].isin(["decline_rate_high_outlier", "clinical_approval_gap",
                                     "decisions_outside_two_months", "voice_below_peers",
                                     "low_uptake_low_voice"])]  # fmt: skip
    assert len(tested) and tested["p_value"].notna().all()
    assert (tested["p_value"] <= tested["q_value"]).all() and (tested["q_value"] <= 1).all()


def test_every_ranked_trust_has_a_rank_interval(demo_build):
    _, _, tables = demo_build
    b = tables["trust_benchmark"]
    for scope in ("national", "peer"):
        ranked = b[b[f"{scope}_rank"].notna()]
        assert len(ranked) > 100
        assert (ranked[f"{scope}_rank_lower95"] <= ranked[f"{scope}_rank"]).all()
        assert (ranked[f"{scope}_rank"] <= ranked[f"{scope}_rank_upper95"]).all()
        assert ranked[f"{scope}_quartile_supported"].notna().all()
    unranked = b[b["national_rank"].isna()]
    assert unranked["national_rank_lower95"].isna().all()


def test_the_overdispersed_demo_funnel_is_adjusted(demo_build):
    # True approval rates differ between trusts (85-97%), so phi > 1 and the adjusted funnel
    # names fewer trusts than the unadjusted one.
    _, _, tables = demo_build
    b = tables["trust_benchmark"]
    assert b["approval_rate_phi"].iloc[0] > 1 and b["approval_rate_tau2"].iloc[0] > 0
    outer = [stats.HIGH_OUTER, stats.LOW_OUTER]
    assert (
        b["approval_rate_funnel_adjusted"].isin(outer).sum()
        < b["approval_rate_funnel"].isin(outer).sum()
    )


def test_trends_give_four_quarters_of_the_window_for_a_regular_publisher(demo_build):
    nation, _, tables = demo_build
    trends = tables["trust_trends"]
    code = nation.planted("decline_outlier")[0]
    mine = trends[trends["org_code"] == code].sort_values("quarter_start")
    assert list(mine["quarter"])[-4:] == ["2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"]
    summary = nation.summary[
        (nation.summary["org_code"] == code) & (nation.summary["staff_group"] == "All staff groups")
    ]
    last = summary[summary["period_start"] == pd.Timestamp("2026-07-01")].iloc[0]
    row = mine.iloc[-1]
    assert (
        row["decided"]
        == last["approved_in_full"] + last["approved_with_changes"] + last["declined"]
    )
    assert row["approval_rate_lower95"] < row["approval_rate"] < row["approval_rate_upper95"]
