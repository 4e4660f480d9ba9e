-- public.trust_window: one row per trust in the benchmark population for the benchmark window.
-- Keys: org_code.
-- What the site, the extracts and the trust card publish about a trust's window, read from
-- marts.trust_benchmark with the disclosure control of docs/methodology.md ("Disclosure
-- control") applied once for everything published (the small-number rule NHS England applies
-- to Hospital Episode Statistics):
--   * every request count: 0 shown, 1 to {{ small_max }} withheld (null, named in withheld), any
--     other count rounded to the nearest {{ round_to }};
--   * every rate computed from the true counts, published only where its denominator is at least
--     {{ min_denominator }} (else named in too_few) and neither its numerator nor denominator -
--     numerator is a count from 1 to {{ small_max }} (else named in withheld: the rate and the
--     denominator would give that count back); rounded to sdc_rate_step of the published
--     denominator, interval limits rounded outwards;
--   * <rate>_status: published | too_few | withheld (null without data);
--   * requests_per_100_staff from the published (rounded) requests_received;
--   * ranks and quartiles of the approval rate among the trusts whose approval rate is
--     published (1 = highest; ties share a rank), so ranks run 1..national_ranked with no gap;
--     rank_status: ranked | too_few | withheld;
--   * funnel positions only where the rate is published.
-- Staff Survey results and headcount are published statistics and are shown as they are.
with benchmark as (
    select * from marts.trust_benchmark
),

m as (
    select * from benchmark
),

s as (
    select m.org_code,
        sdc_rate_status(m.approved, m.decided, {{ min_denominator }}, {{ small_max }}) as approval_rate_status,
        sdc_rate_status(m.declined, m.decided, {{ min_denominator }}, {{ small_max }}) as decline_rate_status,
        sdc_rate_status(m.decided_within_2_months, m.decided, {{ min_denominator }}, {{ small_max }}) as timeliness_rate_status,
        sdc_rate_status(m.escalated, m.requests_received, {{ min_denominator }}, {{ small_max }}) as escalation_rate_status,
        sdc_rate_status(m.appeals, m.declined, {{ min_denominator }}, {{ small_max }}) as appeal_rate_status,
        sdc_rate_status(m.appeals_upheld, m.appeals, {{ min_denominator }}, {{ small_max }}) as appeals_upheld_rate_status,
        sdc_rate_status(m.declined_other, m.declined, {{ min_denominator }}, {{ small_max }}) as non_statutory_decline_share_status,
        sdc_rate_status(m.clinical_approved, m.clinical_decided, {{ min_denominator }}, {{ small_max }}) as clinical_approval_rate_status,
        sdc_rate_status(m.non_clinical_approved, m.non_clinical_decided, {{ min_denominator }}, {{ small_max }}) as non_clinical_approval_rate_status
    from m
),

ranked as (
    select m.org_code,
        rank() over (order by m.approval_rate desc) as national_rank,
        count(*) over () as national_ranked,
        case when m.peer_group is not null
            then rank() over (partition by m.peer_group order by m.approval_rate desc) end
            as peer_rank,
        case when m.peer_group is not null
            then count(*) over (partition by m.peer_group) end as peer_ranked
    from m
    inner join s on s.org_code = m.org_code
    where s.approval_rate_status = 'published'
),

final as (
    select
        m.org_code, m.name, m.region_code, m.icb_code, m.peer_group, m.cluster_group,
        m.window_start, m.window_end, m.as_of as data_as_of, m.has_data, m.part_window,
        m.months_covered, cast(round(m.headcount) as bigint) as headcount,
        sdc_count(m.requests_received, {{ small_max }}, {{ round_to }}) as requests_received,
        sdc_count(m.approved_in_full, {{ small_max }}, {{ round_to }}) as approved_in_full,
        sdc_count(m.approved_with_changes, {{ small_max }}, {{ round_to }}) as approved_with_changes,
        sdc_count(m.declined, {{ small_max }}, {{ round_to }}) as declined,
        sdc_count(m.withdrawn, {{ small_max }}, {{ round_to }}) as withdrawn,
        sdc_count(m.pending, {{ small_max }}, {{ round_to }}) as pending,
        sdc_count(m.approved, {{ small_max }}, {{ round_to }}) as approved,
        sdc_count(m.decided, {{ small_max }}, {{ round_to }}) as decided,
        sdc_count(m.escalated, {{ small_max }}, {{ round_to }}) as escalated,
        sdc_count(m.appeals, {{ small_max }}, {{ round_to }}) as appeals,
        sdc_count(m.appeals_upheld, {{ small_max }}, {{ round_to }}) as appeals_upheld,
        sdc_count(m.decided_within_2_months, {{ small_max }}, {{ round_to }}) as decided_within_2_months,
        sdc_count(m.declined_costs, {{ small_max }}, {{ round_to }}) as declined_costs,
        sdc_count(m.declined_demand, {{ small_max }}, {{ round_to }}) as declined_demand,
        sdc_count(m.declined_reorganise, {{ small_max }}, {{ round_to }}) as declined_reorganise,
        sdc_count(m.declined_recruit, {{ small_max }}, {{ round_to }}) as declined_recruit,
        sdc_count(m.declined_quality, {{ small_max }}, {{ round_to }}) as declined_quality,
        sdc_count(m.declined_performance, {{ small_max }}, {{ round_to }}) as declined_performance,
        sdc_count(m.declined_insufficient_work, {{ small_max }}, {{ round_to }}) as declined_insufficient_work,
        sdc_count(m.declined_structural_changes, {{ small_max }}, {{ round_to }}) as declined_structural_changes,
        sdc_count(m.declined_other, {{ small_max }}, {{ round_to }}) as declined_other,
        sdc_count(m.clinical_approved, {{ small_max }}, {{ round_to }}) as clinical_approved,
        sdc_count(m.clinical_decided, {{ small_max }}, {{ round_to }}) as clinical_decided,
        sdc_count(m.non_clinical_approved, {{ small_max }}, {{ round_to }}) as non_clinical_approved,
        sdc_count(m.non_clinical_decided, {{ small_max }}, {{ round_to }}) as non_clinical_decided,
        sdc_rate(m.approval_rate, s.approval_rate_status, m.decided, {{ round_to }}, 'nearest') as approval_rate,
        sdc_rate(m.approval_rate_lower95, s.approval_rate_status, m.decided, {{ round_to }}, 'down') as approval_rate_lower95,
        sdc_rate(m.approval_rate_upper95, s.approval_rate_status, m.decided, {{ round_to }}, 'up') as approval_rate_upper95,
        sdc_rate(m.decline_rate, s.decline_rate_status, m.decided, {{ round_to }}, 'nearest') as decline_rate,
        sdc_rate(m.decline_rate_lower95, s.decline_rate_status, m.decided, {{ round_to }}, 'down') as decline_rate_lower95,
        sdc_rate(m.decline_rate_upper95, s.decline_rate_status, m.decided, {{ round_to }}, 'up') as decline_rate_upper95,
        sdc_rate(m.timeliness_rate, s.timeliness_rate_status, m.decided, {{ round_to }}, 'nearest') as timeliness_rate,
        sdc_rate(m.timeliness_rate_lower95, s.timeliness_rate_status, m.decided, {{ round_to }}, 'down') as timeliness_rate_lower95,
        sdc_rate(m.timeliness_rate_upper95, s.timeliness_rate_status, m.decided, {{ round_to }}, 'up') as timeliness_rate_upper95,
        sdc_rate(m.escalation_rate, s.escalation_rate_status, m.requests_received, {{ round_to }}, 'nearest') as escalation_rate,
        sdc_rate(m.escalation_rate_lower95, s.escalation_rate_status, m.requests_received, {{ round_to }}, 'down') as escalation_rate_lower95,
        sdc_rate(m.escalation_rate_upper95, s.escalation_rate_status, m.requests_received, {{ round_to }}, 'up') as escalation_rate_upper95,
        sdc_rate(m.appeal_rate, s.appeal_rate_status, m.declined, {{ round_to }}, 'nearest') as appeal_rate,
        sdc_rate(m.appeal_rate_lower95, s.appeal_rate_status, m.declined, {{ round_to }}, 'down') as appeal_rate_lower95,
        sdc_rate(m.appeal_rate_upper95, s.appeal_rate_status, m.declined, {{ round_to }}, 'up') as appeal_rate_upper95,
        sdc_rate(m.appeals_upheld_rate, s.appeals_upheld_rate_status, m.appeals, {{ round_to }}, 'nearest') as appeals_upheld_rate,
        sdc_rate(m.appeals_upheld_rate_lower95, s.appeals_upheld_rate_status, m.appeals, {{ round_to }}, 'down') as appeals_upheld_rate_lower95,
        sdc_rate(m.appeals_upheld_rate_upper95, s.appeals_upheld_rate_status, m.appeals, {{ round_to }}, 'up') as appeals_upheld_rate_upper95,
        sdc_rate(m.non_statutory_decline_share, s.non_statutory_decline_share_status, m.declined, {{ round_to }}, 'nearest') as non_statutory_decline_share,
        sdc_rate(m.non_statutory_decline_share_lower95, s.non_statutory_decline_share_status, m.declined, {{ round_to }}, 'down') as non_statutory_decline_share_lower95,
        sdc_rate(m.non_statutory_decline_share_upper95, s.non_statutory_decline_share_status, m.declined, {{ round_to }}, 'up') as non_statutory_decline_share_upper95,
        sdc_rate(m.clinical_approval_rate, s.clinical_approval_rate_status, m.clinical_decided, {{ round_to }}, 'nearest') as clinical_approval_rate,
        sdc_rate(m.non_clinical_approval_rate, s.non_clinical_approval_rate_status, m.non_clinical_decided, {{ round_to }}, 'nearest') as non_clinical_approval_rate,
        s.* exclude (org_code),
        case when s.approval_rate_status = 'published' then m.approval_rate_funnel_adjusted end
            as approval_rate_funnel_adjusted,
        case when s.decline_rate_status = 'published' then m.decline_rate_funnel_adjusted end
            as decline_rate_funnel_adjusted,
        round(sdc_count(m.requests_received, {{ small_max }}, {{ round_to }})
            / nullif(m.headcount, 0) * 100 * 12 / nullif(m.months_covered, 0), 1)
            as requests_per_100_staff,
        r.national_rank, r.national_ranked,
        cast(1 + floor(4 * (r.national_rank - 1) / r.national_ranked) as bigint)
            as national_quartile,
        r.peer_rank, r.peer_ranked,
        cast(1 + floor(4 * (r.peer_rank - 1) / r.peer_ranked) as bigint) as peer_quartile,
        case when s.approval_rate_status is null then null
            when s.approval_rate_status = 'published' then 'ranked'
            else s.approval_rate_status end as rank_status,
        m.survey_year, m.q4d_pct_satisfied, m.q4d_pct_satisfied_peer_median, m.q6d_pct_agree,
        m.q6d_pct_agree_peer_median, m.we_work_flexibly_score,
        m.we_work_flexibly_score_peer_median, m.staff_voice_below_peers,
        concat_ws(';',
            case when sdc_small(m.requests_received, {{ small_max }}) then 'requests_received' end,
            case when sdc_small(m.approved_in_full, {{ small_max }}) then 'approved_in_full' end,
            case when sdc_small(m.approved_with_changes, {{ small_max }}) then 'approved_with_changes' end,
            case when sdc_small(m.declined, {{ small_max }}) then 'declined' end,
            case when sdc_small(m.withdrawn, {{ small_max }}) then 'withdrawn' end,
            case when sdc_small(m.pending, {{ small_max }}) then 'pending' end,
            case when sdc_small(m.approved, {{ small_max }}) then 'approved' end,
            case when sdc_small(m.decided, {{ small_max }}) then 'decided' end,
            case when sdc_small(m.escalated, {{ small_max }}) then 'escalated' end,
            case when sdc_small(m.appeals, {{ small_max }}) then 'appeals' end,
            case when sdc_small(m.appeals_upheld, {{ small_max }}) then 'appeals_upheld' end,
            case when sdc_small(m.decided_within_2_months, {{ small_max }}) then 'decided_within_2_months' end,
            case when sdc_small(m.declined_costs, {{ small_max }}) then 'declined_costs' end,
            case when sdc_small(m.declined_demand, {{ small_max }}) then 'declined_demand' end,
            case when sdc_small(m.declined_reorganise, {{ small_max }}) then 'declined_reorganise' end,
            case when sdc_small(m.declined_recruit, {{ small_max }}) then 'declined_recruit' end,
            case when sdc_small(m.declined_quality, {{ small_max }}) then 'declined_quality' end,
            case when sdc_small(m.declined_performance, {{ small_max }}) then 'declined_performance' end,
            case when sdc_small(m.declined_insufficient_work, {{ small_max }}) then 'declined_insufficient_work' end,
            case when sdc_small(m.declined_structural_changes, {{ small_max }}) then 'declined_structural_changes' end,
            case when sdc_small(m.declined_other, {{ small_max }}) then 'declined_other' end,
            case when sdc_small(m.clinical_approved, {{ small_max }}) then 'clinical_approved' end,
            case when sdc_small(m.clinical_decided, {{ small_max }}) then 'clinical_decided' end,
            case when sdc_small(m.non_clinical_approved, {{ small_max }}) then 'non_clinical_approved' end,
            case when sdc_small(m.non_clinical_decided, {{ small_max }}) then 'non_clinical_decided' end,
            case when s.approval_rate_status = 'withheld' then 'approval_rate' end,
            case when s.decline_rate_status = 'withheld' then 'decline_rate' end,
            case when s.timeliness_rate_status = 'withheld' then 'timeliness_rate' end,
            case when s.escalation_rate_status = 'withheld' then 'escalation_rate' end,
            case when s.appeal_rate_status = 'withheld' then 'appeal_rate' end,
            case when s.appeals_upheld_rate_status = 'withheld' then 'appeals_upheld_rate' end,
            case when s.non_statutory_decline_share_status = 'withheld' then 'non_statutory_decline_share' end,
            case when s.clinical_approval_rate_status = 'withheld' then 'clinical_approval_rate' end,
            case when s.non_clinical_approval_rate_status = 'withheld' then 'non_clinical_approval_rate' end
        ) as withheld,
        concat_ws(';',
            case when s.approval_rate_status = 'too_few' then 'approval_rate' end,
            case when s.decline_rate_status = 'too_few' then 'decline_rate' end,
            case when s.timeliness_rate_status = 'too_few' then 'timeliness_rate' end,
            case when s.escalation_rate_status = 'too_few' then 'escalation_rate' end,
            case when s.appeal_rate_status = 'too_few' then 'appeal_rate' end,
            case when s.appeals_upheld_rate_status = 'too_few' then 'appeals_upheld_rate' end,
            case when s.non_statutory_decline_share_status = 'too_few' then 'non_statutory_decline_share' end,
            case when s.clinical_approval_rate_status = 'too_few' then 'clinical_approval_rate' end,
            case when s.non_clinical_approval_rate_status = 'too_few' then 'non_clinical_approval_rate' end
        ) as too_few

    from m
    inner join s on s.org_code = m.org_code
    left join ranked as r on r.org_code = m.org_code
)

select * from final
