"""transforms.benchmark: measures on tiny frames, and each gap flag on its case and a near-miss."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from transforms import benchmark as b
from transforms import stats


def _trust(code="RAA", **over):
    """One ordinary trust: 200 requests, 180 decided (162 approved), every decline escalated."""
    row = dict(org_code=code, peer_group="Acute - Large", headcount=2000.0, months_covered=12,
               requests_received=200, approved_in_full=120, approved_with_changes=42,
               declined=18, escalated=30, appeals=4, appeals_upheld=1,
               decided_within_2_months=175, q4d_pct_satisfied=55.0, q6d_pct_agree=65.0,
               we_work_flexibly_score=6.3, responses=800.0)  # fmt: skip
    for reason in b.DECLINE_REASONS:
        row[reason] = 0
    row["declined_demand"] = 18
    row.update(over)
    return row


def _peers(n=12, **over_first):
    """``n`` ordinary peers with slightly different voice; the first gets ``over_first``."""
    rows = [_trust(f"R{i:02d}", q4d_pct_satisfied=55.0 + (i % 5) - 2,
                   q6d_pct_agree=65.0 + (i % 3) - 1,
                   we_work_flexibly_score=6.3 + ((i % 5) - 2) / 20) for i in range(n)]  # fmt: skip
    rows[0].update(over_first)
    return pd.DataFrame(rows)


def _flags(trusts, staff_groups=None, **kwargs):
    frame = pd.DataFrame(trusts) if not isinstance(trusts, pd.DataFrame) else trusts
    measures = b.trust_measures(frame, staff_groups)
    return b.policy_practice_flags(frame.merge(measures, on="org_code"), as_of=date(2026, 10, 31),
                                   **kwargs)  # fmt: skip


def _flagged(flags, flag, code="R00"):
    return flags[(flags["org_code"] == code) & (flags["flag"] == flag)]


# ------------------------------------------------------------------------------------ measures


def test_rates_and_their_two_wilson_intervals():
    m = b.trust_measures(pd.DataFrame([_trust()]))
    row = m.iloc[0]
    assert row["approval_rate"] == pytest.approx(162 / 180)
    assert row["decline_rate"] == pytest.approx(18 / 180)
    # over the requests not agreed at the first stage, max(escalated 30, declined 18) [A3]
    assert row["not_agreed_first_stage"] == 30 and row["escalation_rate"] == pytest.approx(30 / 30)
    assert b.trust_measures(pd.DataFrame([_trust(escalated=9)])).iloc[0][
        "escalation_rate"
    ] == pytest.approx(9 / 18)
    assert row["timeliness_rate"] == pytest.approx(175 / 180)
    lo95, hi95 = stats.wilson_interval(162, 180, 0.95)
    lo998, hi998 = stats.wilson_interval(162, 180, 0.998)
    assert (row["approval_rate_lower95"], row["approval_rate_upper95"]) == pytest.approx(
        (lo95, hi95)
    )
    assert row["approval_rate_lower998"] < row["approval_rate_lower95"]
    assert (row["approval_rate_lower998"], row["approval_rate_upper998"]) == pytest.approx(
        (lo998, hi998)
    )
    assert row["decline_share_demand"] == 1.0 and row["decline_share_other"] == 0.0


def test_uptake_is_per_100_staff_a_year_with_an_exact_poisson_interval():
    # 50 requests in 6 months from 1,000 staff = 10 per 100 staff a year.
    m = b.trust_measures(pd.DataFrame([_trust(requests_received=50, months_covered=6,
                                              headcount=1000.0)]))  # fmt: skip
    row = m.iloc[0]
    assert row["requests_per_100_staff"] == pytest.approx(10.0)
    # Garwood 95% interval for 50 events: 37.11 to 65.92 (published tables).
    assert row["requests_per_100_staff_lower95"] == pytest.approx(37.11 * 0.2, abs=0.01)
    assert row["requests_per_100_staff_upper95"] == pytest.approx(65.92 * 0.2, abs=0.01)


def test_a_trust_without_data_has_no_rates_and_no_rank():
    m = b.trust_measures(
        pd.DataFrame(
            [
                _trust("RAA"),
                _trust(
                    "RBB",
                    requests_received=None,
                    approved_in_full=None,
                    approved_with_changes=None,
                    declined=None,
                ),
            ]
        )
    )
    no_data = m.set_index("org_code").loc["RBB"]
    assert np.isnan(no_data["approval_rate"]) and np.isnan(no_data["national_rank"])


def test_appeals_of_earlier_declines_do_not_break_the_interval():
    # A window can hold appeals against declines of the previous window: rate > 1, no interval.
    m = b.trust_measures(pd.DataFrame([_trust(appeals=20)]))
    assert m.iloc[0]["appeal_rate"] > 1 and np.isnan(m.iloc[0]["appeal_rate_lower95"])


@pytest.mark.parametrize(
    "approved, decided, expected",
    [
        ([90, 80, 80, 70], [100, 100, 100, 100], [1, 2, 2, 4]),  # ties share a rank
        ([90, 8, 70], [100, 9, 100], [1, np.nan, 2]),  # under 10 decided: no rank
    ],
)
def test_national_and_peer_ranks(approved, decided, expected):
    rows = [_trust(f"R{i}", approved_in_full=a, approved_with_changes=0, declined=d - a)
            for i, (a, d) in enumerate(zip(approved, decided, strict=True))]  # fmt: skip
    m = b.trust_measures(pd.DataFrame(rows))
    np.testing.assert_array_equal(m["national_rank"], expected)
    np.testing.assert_array_equal(m["peer_rank"], expected)  # one peer group
    assert m["national_quartile"].iloc[0] == 1


def test_staff_groups_split_into_clinical_and_non_clinical():
    groups = pd.DataFrame({
        "org_code": ["RAA"] * 4,
        "staff_group": ["Nurses & health visitors", "Support to ST&T staff", "Central functions",
                        "All staff groups"],
        "approved_in_full": [80, 10, 45, 135], "approved_with_changes": [0, 0, 5, 5],
        "declined": [10, 10, 0, 20],
    })  # fmt: skip
    split = b.clinical_split(groups).iloc[0]
    assert (split["clinical_approved"], split["clinical_decided"]) == (90, 110)
    assert (split["non_clinical_approved"], split["non_clinical_decided"]) == (50, 50)


def test_two_proportion_z_matches_the_textbook_example():
    # 120/200 vs 150/200: pooled 0.675, se = sqrt(.675 * .325 * (2/200)) = 0.04684, z = 3.2026.
    z = b.two_proportion_z(pd.Series([120]), pd.Series([200]), pd.Series([150]), pd.Series([200]))
    assert z.iloc[0] == pytest.approx(0.15 / np.sqrt(0.675 * 0.325 * 0.01))


# ---------------------------------------------------------------------------------------- flags


def _staff_groups(codes, clinical=(900, 1000), non_clinical=(450, 500)):
    rows = []
    for code in codes:
        rows.append(dict(org_code=code, staff_group="Nurses & health visitors",
                         approved_in_full=clinical[0], approved_with_changes=0,
                         declined=clinical[1] - clinical[0]))  # fmt: skip
        rows.append(dict(org_code=code, staff_group="Central functions",
                         approved_in_full=non_clinical[0], approved_with_changes=0,
                         declined=non_clinical[1] - non_clinical[0]))  # fmt: skip
    return pd.DataFrame(rows)


def test_an_ordinary_nation_raises_no_flag():
    assert _flags(_peers(), _staff_groups([f"R{i:02d}" for i in range(12)])).empty


@pytest.mark.parametrize(
    "flag, case, near_miss",
    [
        # any decline on a non-statutory ground / none
        (
            "non_statutory_declines",
            dict(declined_demand=17, declined_other=1),
            dict(declined_demand=18, declined_other=0),
        ),
        # 18 declined, 14 escalated in 12 months: 4 short, more than the ceil(14 x 2 / 12) = 3
        # escalations of the two months before the window that may be declined inside it /
        # 15 escalated: 3 short, within the ceil(15 x 2 / 12) = 3 allowed for timing [A3]
        ("declines_without_escalation", dict(escalated=14), dict(escalated=15)),
        # 140 of 180 within two months (upper 95% limit 83%) / 165 of 180 (upper 95% 95%)
        (
            "decisions_outside_two_months",
            dict(decided_within_2_months=140),
            dict(decided_within_2_months=165),
        ),
    ],
)
def test_rule_based_flags_fire_on_their_case_and_not_on_a_near_miss(flag, case, near_miss):
    assert len(_flagged(_flags(_peers(**case)), flag)) == 1
    assert _flagged(_flags(_peers(**near_miss)), flag).empty


def test_a_high_decline_rate_is_an_outlier_only_beyond_the_funnel():
    # 60 of 180 declined against 10% elsewhere: far above the 99.8% limit.
    far = _flags(_peers(approved_in_full=80, declined=60, declined_demand=60, escalated=60))
    hit = _flagged(far, "decline_rate_high_outlier")
    assert list(hit["severity"]) == ["high"]
    # 22 of 180 (12%) against 10%: inside the limits.
    near = _flags(_peers(approved_in_full=116, declined=22, declined_demand=22, escalated=30))
    assert _flagged(near, "decline_rate_high_outlier").empty


def test_a_significant_clinical_gap_is_flagged_and_a_small_one_is_not():
    codes = [f"R{i:02d}" for i in range(12)]
    gap = pd.concat([_staff_groups(codes[:1], clinical=(800, 1000), non_clinical=(475, 500)),
                     _staff_groups(codes[1:])])  # fmt: skip
    hit = _flagged(_flags(_peers(), gap), "clinical_approval_gap")
    assert list(hit["severity"]) == ["high"] and "clinical 80.0%" in hit["evidence"].iloc[0]
    # 4 points apart (86% vs 90%) on many requests: significant, but under the 5-point minimum.
    small = pd.concat([_staff_groups(codes[:1], clinical=(8600, 10000), non_clinical=(4500, 5000)),
                       _staff_groups(codes[1:])])  # fmt: skip
    assert _flagged(_flags(_peers(), small), "clinical_approval_gap").empty


def test_voice_below_peers_needs_good_numbers_and_two_low_measures():
    low_voice = dict(q4d_pct_satisfied=40.0, q6d_pct_agree=52.0, we_work_flexibly_score=5.5)
    hit = _flagged(_flags(_peers(**low_voice, approved_in_full=130)), "voice_below_peers")
    assert len(hit) == 1 and "Low (0.001)" in hit["evidence"].iloc[0]
    # Only Q4d low: not enough.
    assert _flagged(_flags(_peers(q4d_pct_satisfied=40.0, approved_in_full=130)),
                    "voice_below_peers").empty  # fmt: skip
    # Voice low but approval below the national rate: not "good on paper".
    poor = _flags(_peers(**low_voice, approved_in_full=100, declined=38, declined_demand=38,
                         escalated=38))  # fmt: skip
    assert _flagged(poor, "voice_below_peers").empty


def test_low_uptake_with_low_voice():
    low_voice = dict(q4d_pct_satisfied=40.0, q6d_pct_agree=52.0, we_work_flexibly_score=5.5)
    # 80 requests from 2,000 staff = 4 per 100 vs a peer median of 10: under half.
    few = dict(requests_received=80, approved_in_full=30, approved_with_changes=20, declined=6,
               declined_demand=6, escalated=6, decided_within_2_months=56, appeals=1)  # fmt: skip
    assert len(_flagged(_flags(_peers(**low_voice, **few)), "low_uptake_low_voice")) == 1
    # The same low uptake with ordinary voice: no flag.
    assert _flagged(_flags(_peers(**few)), "low_uptake_low_voice").empty


def test_pledge_and_publication_flags():
    trusts = _peers(3)
    status = pd.DataFrame({
        "org_code": ["R00", "R01", "R02"],
        "latest_period_end": [pd.NaT, pd.Timestamp("2025-09-30"), pd.Timestamp("2026-09-30")],
        "last_attempt_status": ["fetch_failed", "accepted", "rejected"],
        "last_attempt_reasons": ["HTTP 404", None, "outcomes do not add up (row 3)"],
        "stale": [True, True, False],
    })  # fmt: skip
    signups = pd.DataFrame({"org_code": ["R00", "R01", "R02", None],
                            "status": ["signed", "signed", "signed", "signed"],
                            "signed_at": pd.to_datetime(["2025-01-01"] * 4)})  # fmt: skip
    flags = _flags(trusts, publication_status=status, pledge_signups=signups)
    pledged = flags[flags["flag"] == "pledged_not_publishing"].set_index("org_code")["severity"]
    assert pledged.to_dict() == {"R00": "high", "R01": "medium"}  # R02 publishes current data
    stale = flags[flags["flag"] == "data_stale_or_rejected"].set_index("org_code")
    assert set(stale.index) == {"R00", "R01", "R02"}
    assert "outcomes do not add up" in stale.loc["R02", "evidence"]
    # Without sign-ups nobody is "pledged".
    assert "pledged_not_publishing" not in set(_flags(trusts, publication_status=status)["flag"])


def test_flags_have_the_documented_columns_and_severities():
    flags = _flags(_peers(declined_other=5, declined_demand=13, escalated=10))
    assert tuple(flags.columns) == b.FLAG_COLUMNS
    assert set(flags["severity"]) <= {"high", "medium", "low"}
    assert set(flags["flag"]) <= set(b.FLAGS)


# ------------------------------------------------------------- small numbers, FDR, intervals


def test_no_clinical_gap_test_under_ten_decided_in_either_group():
    codes = [f"R{i:02d}" for i in range(12)]
    # clinical 6 of 6 approved, non-clinical 0 of 3: a big gap on tiny groups, not tested.
    tiny = pd.concat([_staff_groups(codes[:1], clinical=(6, 6), non_clinical=(0, 3)),
                      _staff_groups(codes[1:])])  # fmt: skip
    frame = _peers()
    m = b.trust_measures(frame, tiny).set_index("org_code")
    assert np.isnan(m.loc["R00", "clinical_gap_p_value"]) and np.isnan(
        m.loc["R00", "clinical_gap_z"]
    )
    assert _flagged(_flags(frame, tiny), "clinical_approval_gap").empty
    # 10 of 10 against 0 of 10: both groups big enough, Fisher's exact test, flagged.
    ten = pd.concat([_staff_groups(codes[:1], clinical=(10, 10), non_clinical=(0, 10)),
                     _staff_groups(codes[1:])])  # fmt: skip
    m = b.trust_measures(frame, ten).set_index("org_code")
    assert m.loc["R00", "clinical_gap_p_value"] == pytest.approx(2 / 184756, rel=1e-9)
    hit = _flagged(_flags(frame, ten), "clinical_approval_gap")
    assert len(hit) == 1 and "non-clinical staff approved" in hit["rule"].iloc[0]


def test_group_rates_and_decline_reason_shares_have_both_wilson_intervals():
    codes = [f"R{i:02d}" for i in range(12)]
    m = b.trust_measures(_peers(), _staff_groups(codes)).set_index("org_code").loc["R00"]
    names = ["clinical_approval_rate", "non_clinical_approval_rate"] + [
        f"decline_share_{r.removeprefix('declined_')}" for r in b.DECLINE_REASONS
    ]
    assert len(names) == 11
    counts = {"clinical_approval_rate": (900, 1000), "non_clinical_approval_rate": (450, 500),
              "decline_share_demand": (18, 18), "decline_share_other": (0, 18)}  # fmt: skip
    for name in names:
        for confidence, suffix in ((0.95, "95"), (0.998, "998")):
            lower, upper = m[f"{name}_lower{suffix}"], m[f"{name}_upper{suffix}"]
            assert 0 <= lower <= m[name] <= upper <= 1, name
            if name in counts:
                x, n = counts[name]
                assert (lower, upper) == pytest.approx(stats.wilson_interval(x, n, confidence))


def test_flags_carry_p_and_q_values_p_raises_and_q_sets_severity():
    # 60 of 180 declined: p tiny, and still tiny after Benjamini-Hochberg over all tests: high.
    far = _flags(_peers(approved_in_full=80, declined=60, declined_demand=60, escalated=60))
    hit = _flagged(far, "decline_rate_high_outlier").iloc[0]
    assert 0 < hit["p_value"] <= hit["q_value"] <= b.FDR_HIGH and hit["severity"] == "high"
    # 28 of 138 declined: p < 0.05 on its own test, but among every trust's tests its q-value
    # is above 0.05: raised, low severity.
    frame = _peers(approved_in_full=110, declined=28, declined_demand=28, escalated=30)
    m = b.trust_measures(frame).set_index("org_code").loc["R00"]
    assert m["decline_rate_high_p_value"] < 0.05 < m["decline_rate_high_q_value"]
    hit = _flagged(_flags(frame), "decline_rate_high_outlier")
    assert list(hit["severity"]) == ["low"] and hit["q_value"].iloc[0] > b.FDR_HIGH
    # a decline rate significantly *low* is not a discovery for this flag: p near 1
    low = b.trust_measures(_peers(approved_in_full=160, declined=2, declined_demand=2))
    assert low.set_index("org_code").loc["R00", "decline_rate_high_p_value"] > 0.99
    # rule-based flags have no p-value
    rule = _flagged(_flags(_peers(declined_other=1, declined_demand=17)), "non_statutory_declines")
    assert np.isnan(rule["p_value"].iloc[0]) and np.isnan(rule["q_value"].iloc[0])


def test_timeliness_severity_comes_from_significance():
    # 140 of 180 (77.8%): above the 75% an observed threshold would have needed for "high",
    # but a discovery among all the tests (q at most 0.05): high.
    high = _flagged(_flags(_peers(decided_within_2_months=140)), "decisions_outside_two_months")
    assert list(high["severity"]) == ["high"] and high["q_value"].iloc[0] <= b.FDR_HIGH
    # 152 of 180 (84.4%): p = 0.013 on its own, q above 0.05 among all the tests: medium.
    medium = _flagged(_flags(_peers(decided_within_2_months=152)), "decisions_outside_two_months")
    assert list(medium["severity"]) == ["medium"]
    assert medium["p_value"].iloc[0] < b.FLAG_P < medium["q_value"].iloc[0]
    # 158 of 180 (87.8%): below 90%, but not significantly.
    assert _flagged(
        _flags(_peers(decided_within_2_months=158)), "decisions_outside_two_months"
    ).empty


def test_the_peer_median_leaves_the_trust_out():
    frame = _peers(q4d_pct_satisfied=10.0)
    m = b.trust_measures(frame).set_index("org_code")
    others = frame["q4d_pct_satisfied"].iloc[1:]
    assert m.loc["R00", "q4d_pct_satisfied_peer_median"] == pytest.approx(others.median())
    expected_r01 = frame["q4d_pct_satisfied"].drop(index=1).median()
    assert m.loc["R01", "q4d_pct_satisfied_peer_median"] == pytest.approx(expected_r01)
    # uptake too: 11 peers at 10 per 100 staff and R00 at 1 -> R00's peers' median is 10
    few = dict(requests_received=20, approved_in_full=10, approved_with_changes=2, declined=2,
               declined_demand=2, escalated=2, decided_within_2_months=14)  # fmt: skip
    few = _peers(**few)
    m = b.trust_measures(few).set_index("org_code")
    assert m.loc["R00", "peer_median_requests_per_100_staff"] == pytest.approx(10.0)
    assert m.loc["R01", "peer_median_requests_per_100_staff"] == pytest.approx(10.0)


def test_the_peer_median_is_the_median_of_the_others_for_every_trust():
    """The leave-one-out median read off each group's sorted values is, for every trust, the
    median of the other trusts of its group with a value (np.median of what is left when the
    trust is taken out), with missing and infinite values, ties, and trusts in no group."""
    rng = np.random.default_rng(5)
    for trial in range(300):
        n = int(rng.integers(1, 120))
        if trial % 2:
            v = rng.choice([np.nan, np.inf, 0.1, 0.2, 0.3, 1.0, 2.5], size=n)
        else:
            v = rng.normal(50, 10, n) * 1.7
        v[rng.random(n) < 0.2] = np.nan
        groups = rng.choice(np.array(["a", "b", "c", None, np.nan], dtype=object), size=n)
        value = pd.Series(v, index=[f"T{i}" for i in rng.permutation(n)])
        expected = pd.Series(np.nan, index=value.index)
        for i in range(n):
            if not isinstance(groups[i], str):
                continue
            others = [v[j] for j in range(n) if j != i and groups[j] == groups[i]]
            others = np.array([x for x in others if np.isfinite(x)])
            if others.size:
                expected.iloc[i] = float(np.median(others))
        got = b._leave_one_out_median(value, groups)
        pd.testing.assert_series_equal(got, expected, check_exact=True)


def test_the_composite_score_is_not_counted_with_its_parts():
    # Q4d and "We work flexibly" (which contains Q6d and Q4d) low, Q6d ordinary: no flag.
    frame = _peers(q4d_pct_satisfied=40.0, we_work_flexibly_score=5.0, approved_in_full=130)
    m = b.trust_measures(frame).set_index("org_code").loc["R00"]
    assert m["we_work_flexibly_score_vs_peers_significance"] in (stats.LOW_INNER, stats.LOW_OUTER)
    assert m["staff_voice_low_measures"] == 1
    assert _flagged(_flags(frame), "voice_below_peers").empty


def test_staff_voice_uses_the_question_base_and_the_design_effect():
    frame = _peers(q6d_pct_agree=60.0)
    frame["q6d_base"] = 400.0  # the question's own base, where published
    m = b.trust_measures(frame).set_index("org_code")
    y, p0 = 0.60, m.loc["R00", "q6d_pct_agree_peer_median"] / 100
    effective = 400.0 / b.VOICE_DESIGN_EFFECT
    # these peers differ no more than chance gives (tau2 = 0): z on the effective base alone
    z0 = (np.arcsin(np.sqrt(y)) - np.arcsin(np.sqrt(p0))) * 2 * np.sqrt(effective)
    got = m.loc["R00", "q6d_pct_agree_vs_peers_z"]
    assert got == pytest.approx(z0, rel=1e-9) and got < 0
    without_base = b.trust_measures(_peers(q6d_pct_agree=60.0)).set_index("org_code")
    assert abs(without_base.loc["R00", "q6d_pct_agree_vs_peers_z"]) > abs(got)  # base 800


def test_every_ranked_trust_has_a_rank_interval():
    rows = [_trust(f"R{i:02d}", approved_in_full=100 + 5 * i, declined=80 - 5 * i)
            for i in range(10)] + [_trust("RZZ", approved_in_full=5, approved_with_changes=0,
                                          declined=3)]  # fmt: skip
    m = b.trust_measures(pd.DataFrame(rows)).set_index("org_code")
    ranked = m[m["national_rank"].notna()]
    assert len(ranked) == 10 and np.isnan(m.loc["RZZ", "national_rank_lower95"])
    for scope in ("national", "peer"):
        lower, upper = ranked[f"{scope}_rank_lower95"], ranked[f"{scope}_rank_upper95"]
        assert (lower <= ranked[f"{scope}_rank"]).all() and (ranked[f"{scope}_rank"] <= upper).all()
    # 180 decided each, rates 5 points apart: neighbours overlap, the extremes do not.
    assert (
        ranked["national_rank_upper95"].max() == 10 and ranked["national_rank_lower95"].min() == 1
    )
    assert (ranked["national_rank_upper95"] - ranked["national_rank_lower95"]).min() >= 1
    supported = ranked["national_quartile_supported"]
    assert supported.dtype == "boolean" and not supported.all()
