-- marts.policy_practice_gaps: one row per trust per policy-practice gap flag raised.
-- Keys: org_code, flag, window_start, window_end.
-- The flags of docs/methodology.md ("Policy-practice gap flags"), computed by the benchmark
-- build (transforms/benchmark.py, policy_practice_flags) into
-- intermediate.int_policy_practice_flags in the same transaction: pledged_not_publishing,
-- decline_rate_high_outlier, non_statutory_declines, declines_without_escalation,
-- decisions_outside_two_months, clinical_approval_gap, voice_below_peers,
-- low_uptake_low_voice, data_stale_or_rejected. Each row carries its rule, threshold, the
-- trust's values (evidence) and a severity (high | medium | low). Flags decided by a test
-- (decline_rate_high_outlier, decisions_outside_two_months, clinical_approval_gap,
-- voice_below_peers, low_uptake_low_voice) carry its p_value and its Benjamini-Hochberg
-- q_value over every trust x tested flag; the q-value decides the flag (docs/methodology.md,
-- "Many comparisons"). Rule-based flags have neither.
with flags as (
    select * from intermediate.int_policy_practice_flags
),

population as (
    select * from intermediate.int_trust_population
),

benchmark_window as (
    select * from intermediate.int_benchmark_window
),

final as (
    select f.org_code, p.name, p.region_code, f.flag, f.rule, f.threshold, f.evidence,
        f.severity, w.window_start, w.window_end, w.as_of, f.p_value, f.q_value
    from flags as f
    cross join benchmark_window as w
    left join population as p on p.org_code = f.org_code
)

select * from final
