-- public.aggregates: one row per scope (national | region | peer_group), group and period
-- (the benchmark window, and each quarter of marts.trust_trends).
-- Keys: scope, group_code, period_start, period_end.
-- Sums over the trusts with data of marts.trust_benchmark (the window) and marts.trust_trends
-- (quarters), with pooled rates (sum of numerators / sum of denominators) and 95% Wilson
-- intervals; group_code is 'ENG' for England, the region code, or the peer group. The same
-- disclosure control as public.trust_window (docs/methodology.md, "Disclosure control"): an
-- aggregate is rounded from its true sum, never summed from rounded trusts.
with benchmark as (
    select * from marts.trust_benchmark
),

trends as (
    select * from marts.trust_trends
),

window_rows as (
    select 'window' as period, window_start as period_start, window_end as period_end,
        cast(null as varchar) as quarter, org_code, region_code, peer_group,
        requests_received, approved, declined, decided, escalated, decided_within_2_months, declined_other
    from benchmark
    where has_data
),

quarter_rows as (
    select 'quarter' as period, t.quarter_start as period_start, t.quarter_end as period_end,
        t.quarter, t.org_code, b.region_code, b.peer_group,
        t.requests_received, t.approved, t.declined, t.decided, t.escalated, t.decided_within_2_months, t.declined_other
    from trends as t
    inner join benchmark as b on b.org_code = t.org_code
),

all_rows as (
    select * from window_rows
    union all
    select * from quarter_rows
),

scoped as (
    select 'national' as scope, 'ENG' as group_code, * from all_rows
    union all
    select 'region' as scope, region_code as group_code, * from all_rows
    where region_code is not null
    union all
    select 'peer_group' as scope, peer_group as group_code, * from all_rows
    where peer_group is not null
),

sums as (
    select scope, group_code, period, period_start, period_end, quarter,
        count(*) as trusts,
        sum(requests_received) as requests_received,
        sum(approved) as approved,
        sum(declined) as declined,
        sum(decided) as decided,
        sum(escalated) as escalated,
        sum(decided_within_2_months) as decided_within_2_months,
        sum(declined_other) as declined_other
    from scoped
    group by scope, group_code, period, period_start, period_end, quarter
),

m as (
    select *,
        approved / nullif(decided, 0) as approval_rate,
        wilson_lower(approved, decided, {{ z95 }}) as approval_rate_lower95,
        wilson_upper(approved, decided, {{ z95 }}) as approval_rate_upper95,
        declined / nullif(decided, 0) as decline_rate,
        decided_within_2_months / nullif(decided, 0) as timeliness_rate,
        escalated / nullif(requests_received, 0) as escalation_rate
    from sums
),

s as (
    select m.scope, m.group_code, m.period_start, m.period_end,
        sdc_rate_status(m.approved, m.decided, {{ min_denominator }}, {{ small_max }}) as approval_rate_status,
        sdc_rate_status(m.declined, m.decided, {{ min_denominator }}, {{ small_max }}) as decline_rate_status,
        sdc_rate_status(m.decided_within_2_months, m.decided, {{ min_denominator }}, {{ small_max }}) as timeliness_rate_status,
        sdc_rate_status(m.escalated, m.requests_received, {{ min_denominator }}, {{ small_max }}) as escalation_rate_status
    from m
),

final as (
    select
        m.scope, m.group_code, m.period, m.period_start, m.period_end, m.quarter, m.trusts,
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
        s.* exclude (scope, group_code, period_start, period_end),
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
    inner join s on s.scope = m.scope and s.group_code = m.group_code
        and s.period_start = m.period_start and s.period_end = m.period_end
)

select * from final
