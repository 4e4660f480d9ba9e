-- public.trust_quarters: one row per trust per calendar quarter of marts.trust_trends.
-- Keys: org_code, quarter_start.
-- The quarterly numbers every public output shows (the trend on a trust's page, `flexbench
-- extract --by quarter`), read from marts.trust_trends alone, so they are the mart's numbers
-- (a trust that publishes months and quarters that overlap is counted once, as the mart
-- counts it), with the disclosure control of public.trust_window (docs/methodology.md,
-- "Disclosure control"): counts 0 shown, 1-{{ small_max }} withheld, others rounded to the
-- nearest {{ round_to }}; rates published only from {{ min_denominator }} and where they give no
-- count from 1 to {{ small_max }} back, rounded to sdc_rate_step.
with trends as (
    select * from marts.trust_trends
),

trusts as (
    select org_code, name, region_code, icb_code, peer_group, cluster_group, as_of
    from marts.trust_benchmark
),

m as (
    select t.*, b.name, b.region_code, b.icb_code, b.peer_group, b.cluster_group, b.as_of
    from trends as t
    inner join trusts as b on b.org_code = t.org_code
),

s as (
    select m.org_code, m.quarter_start,
        sdc_rate_status(m.approved, m.decided, {{ min_denominator }}, {{ small_max }}) as approval_rate_status,
        sdc_rate_status(m.declined, m.decided, {{ min_denominator }}, {{ small_max }}) as decline_rate_status,
        sdc_rate_status(m.decided_within_2_months, m.decided, {{ min_denominator }}, {{ small_max }}) as timeliness_rate_status,
        sdc_rate_status(m.escalated, m.requests_received, {{ min_denominator }}, {{ small_max }}) as escalation_rate_status
    from m
),

final as (
    select
        m.org_code, m.name, m.region_code, m.icb_code, m.peer_group, m.cluster_group,
        m.quarter, m.quarter_start, m.quarter_end, m.as_of as data_as_of, m.months_covered,
        sdc_count(m.requests_received, {{ small_max }}, {{ round_to }}) as requests_received,
        sdc_count(m.approved, {{ small_max }}, {{ round_to }}) as approved,
        sdc_count(m.declined, {{ small_max }}, {{ round_to }}) as declined,
        sdc_count(m.decided, {{ small_max }}, {{ round_to }}) as decided,
        sdc_count(m.escalated, {{ small_max }}, {{ round_to }}) as escalated,
        sdc_count(m.decided_within_2_months, {{ small_max }}, {{ round_to }}) as decided_within_2_months,
        sdc_count(m.declined_other, {{ small_max }}, {{ round_to }}) as declined_other,
        sdc_rate(m.approval_rate, s.approval_rate_status, m.decided, {{ round_to }}, 'nearest') as approval_rate,
        sdc_rate(m.approval_rate_lower95, s.approval_rate_status, m.decided, {{ round_to }}, 'down') as approval_rate_lower95,
        sdc_rate(m.approval_rate_upper95, s.approval_rate_status, m.decided, {{ round_to }}, 'up') as approval_rate_upper95,
        sdc_rate(m.decline_rate, s.decline_rate_status, m.decided, {{ round_to }}, 'nearest') as decline_rate,
        sdc_rate(m.timeliness_rate, s.timeliness_rate_status, m.decided, {{ round_to }}, 'nearest') as timeliness_rate,
        sdc_rate(m.escalation_rate, s.escalation_rate_status, m.requests_received, {{ round_to }}, 'nearest') as escalation_rate,
        s.* exclude (org_code, quarter_start),
        concat_ws(';',
            case when sdc_small(m.requests_received, {{ small_max }}) then 'requests_received' end,
            case when sdc_small(m.approved, {{ small_max }}) then 'approved' end,
            case when sdc_small(m.declined, {{ small_max }}) then 'declined' end,
            case when sdc_small(m.decided, {{ small_max }}) then 'decided' end,
            case when sdc_small(m.escalated, {{ small_max }}) then 'escalated' end,
            case when sdc_small(m.decided_within_2_months, {{ small_max }}) then 'decided_within_2_months' end,
            case when sdc_small(m.declined_other, {{ small_max }}) then 'declined_other' end,
            case when s.approval_rate_status = 'withheld' then 'approval_rate' end,
            case when s.decline_rate_status = 'withheld' then 'decline_rate' end,
            case when s.timeliness_rate_status = 'withheld' then 'timeliness_rate' end,
            case when s.escalation_rate_status = 'withheld' then 'escalation_rate' end
        ) as withheld,
        concat_ws(';',
            case when s.approval_rate_status = 'too_few' then 'approval_rate' end,
            case when s.decline_rate_status = 'too_few' then 'decline_rate' end,
            case when s.timeliness_rate_status = 'too_few' then 'timeliness_rate' end,
            case when s.escalation_rate_status = 'too_few' then 'escalation_rate' end
        ) as too_few
    from m
    inner join s on s.org_code = m.org_code and s.quarter_start = m.quarter_start
)

select * from final
