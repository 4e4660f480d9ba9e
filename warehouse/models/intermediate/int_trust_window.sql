-- intermediate.int_trust_window: one row per trust in the benchmark population.
-- Keys: org_code.
-- The inputs of the benchmark's measures for the window: who the trust is, its peer group and
-- staff in post (int_trust_peers), the window's summed counts (int_publications_window; null
-- when the trust has no accepted data in the window) and its staff voice
-- (int_trust_staff_voice). The peer group is the workforce BENCHMARK_GROUP, or the Staff
-- Survey benchmarking group where the trust has no workforce record (methodology, "Peer groups").
-- approved = approved_in_full + approved_with_changes; decided = approved + declined.
with population as (
    select * from intermediate.int_trust_population
),

peers as (
    select * from intermediate.int_trust_peers
),

counts as (
    select * from intermediate.int_publications_window
),

staff_voice as (
    select * from intermediate.int_trust_staff_voice
),

benchmark_window as (
    select * from intermediate.int_benchmark_window
),

final as (
    select
        p.org_code, p.name, p.region_code, p.icb_code,
        coalesce(peers.peer_group, v.survey_benchmarking_group) as peer_group,
        peers.cluster_group, peers.headcount, w.window_start, w.window_end, w.as_of,
        p.part_window,
        c.org_code is not null as has_data,
        c.periods, c.months_covered, c.requests_received, c.approved_in_full,
        c.approved_with_changes, c.declined, c.withdrawn, c.pending, c.escalated, c.appeals,
        c.appeals_upheld, c.decided_within_2_months,
        c.declined_costs, c.declined_demand, c.declined_reorganise, c.declined_recruit,
        c.declined_quality, c.declined_performance, c.declined_insufficient_work,
        c.declined_structural_changes, c.declined_other,
        approved_count(c.approved_in_full, c.approved_with_changes) as approved,
        decided_count(c.approved_in_full, c.approved_with_changes, c.declined) as decided,
        v.survey_year, v.q4d_pct_satisfied, v.q6b_pct_agree, v.q6c_pct_agree, v.q6d_pct_agree,
        v.we_work_flexibly_score, v.survey_benchmarking_group, v.responses
    from population as p
    cross join benchmark_window as w
    left join peers on peers.org_code = p.org_code
    left join counts as c on c.org_code = p.org_code
    left join staff_voice as v on v.org_code = p.org_code
)

select * from final
