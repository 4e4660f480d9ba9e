-- public.aggregates: one row per scope (national | region | peer_group), group and period
-- (the benchmark window, and each quarter of marts.trust_trends).
-- Keys: scope, group_code, period_start, period_end.
-- Sums over the trusts with data of marts.trust_benchmark (the window) and marts.trust_trends
-- (quarters); group_code is 'ENG' for England, the region code, or the peer group. The same
-- disclosure control as public.trust_window (docs/methodology.md, "Disclosure control"): an
-- aggregate count is rounded from its true sum (never summed from rounded trusts), and its
-- pooled rates are worked out from its published counts.
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

published_rows as (
    select 'window' as period, window_start as period_start, window_end as period_end,
        org_code, region_code, peer_group,
        requests_received, approved, declined, decided, escalated, decided_within_2_months, declined_other
    from public.trust_window
    where has_data
    union all
    select 'quarter' as period, quarter_start as period_start, quarter_end as period_end,
        org_code, region_code, peer_group,
        requests_received, approved, declined, decided, escalated, decided_within_2_months, declined_other
    from public.trust_quarters
),

published_scoped as (
    select 'national' as scope, 'ENG' as group_code, * from published_rows
    union all
    select 'region' as scope, region_code as group_code, * from published_rows
    where region_code is not null
    union all
    select 'peer_group' as scope, peer_group as group_code, * from published_rows
    where peer_group is not null
),

-- The sum of the published figures of the group's trusts, where every one is published.
published_sums as (
    select scope, group_code, period_start, period_end,
        case when count(requests_received) = count(*) then sum(requests_received) end as requests_received,
        case when count(approved) = count(*) then sum(approved) end as approved,
        case when count(declined) = count(*) then sum(declined) end as declined,
        case when count(decided) = count(*) then sum(decided) end as decided,
        case when count(escalated) = count(*) then sum(escalated) end as escalated,
        case when count(decided_within_2_months) = count(*) then sum(decided_within_2_months) end as decided_within_2_months,
        case when count(declined_other) = count(*) then sum(declined_other) end as declined_other
    from published_scoped
    group by scope, group_code, period_start, period_end
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
    select * from sums
),

rounded as (
    select m.scope, m.group_code, m.period_start, m.period_end,
        sdc_count(m.requests_received, {{ small_max }}, {{ round_to }}) as requests_received,
        sdc_count(m.approved, {{ small_max }}, {{ round_to }}) as approved,
        sdc_count(m.declined, {{ small_max }}, {{ round_to }}) as declined,
        sdc_count(m.decided, {{ small_max }}, {{ round_to }}) as decided,
        sdc_count(m.escalated, {{ small_max }}, {{ round_to }}) as escalated,
        sdc_count(m.decided_within_2_months, {{ small_max }}, {{ round_to }}) as decided_within_2_months,
        sdc_count(m.declined_other, {{ small_max }}, {{ round_to }}) as declined_other
    from m
),

-- Controlled totals: a figure is the sum of its trusts' published figures where every one is
-- published; else decided is approved + declined as published where both are; else rounded.
summed as (
    select r.* replace (
        coalesce(ps.requests_received, r.requests_received) as requests_received,
        coalesce(ps.approved, r.approved) as approved,
        coalesce(ps.declined, r.declined) as declined,
        coalesce(ps.escalated, r.escalated) as escalated,
        coalesce(ps.decided_within_2_months, r.decided_within_2_months) as decided_within_2_months,
        coalesce(ps.declined_other, r.declined_other) as declined_other
    )
    from rounded as r
    left join published_sums as ps on ps.scope = r.scope and ps.group_code = r.group_code
        and ps.period_start = r.period_start and ps.period_end = r.period_end
),

p as (
    select r.* replace (
        case when ps.decided is not null then ps.decided
            when r.approved is not null and r.declined is not null
            then r.approved + r.declined else r.decided end as decided
    )
    from summed as r
    left join published_sums as ps on ps.scope = r.scope and ps.group_code = r.group_code
        and ps.period_start = r.period_start and ps.period_end = r.period_end
),

s as (
    select m.scope, m.group_code, m.period_start, m.period_end,
        sdc_rate_status(p.approved, p.decided, m.decided is not null, {{ min_denominator }}) as approval_rate_status,
        sdc_rate_status(p.declined, p.decided, m.decided is not null, {{ min_denominator }}) as decline_rate_status,
        sdc_rate_status(p.decided_within_2_months, p.decided, m.decided is not null, {{ min_denominator }}) as timeliness_rate_status,
        sdc_rate_status(p.escalated, p.requests_received, m.requests_received is not null, {{ min_denominator }}) as escalation_rate_status
    from m
    inner join p on m.scope = p.scope and m.group_code = p.group_code and m.period_start = p.period_start and m.period_end = p.period_end
),

final as (
    select
        m.scope, m.group_code, m.period, m.period_start, m.period_end, m.quarter, m.trusts,
        p.requests_received,
        p.approved,
        p.declined,
        p.decided,
        p.escalated,
        p.decided_within_2_months,
        p.declined_other,
        sdc_rate(p.approved / nullif(p.decided, 0), s.approval_rate_status, 'nearest') as approval_rate,
        sdc_rate(greatest(wilson_lower(sdc_low(p.approved, {{ small_max }}, {{ round_to }}), sdc_high(p.decided, {{ round_to }}), {{ z95 }}), 0), s.approval_rate_status, 'down')
            as approval_rate_lower95,
        sdc_rate(least(wilson_upper(least(sdc_high(p.approved, {{ round_to }}), sdc_low(p.decided, {{ small_max }}, {{ round_to }})),
            sdc_low(p.decided, {{ small_max }}, {{ round_to }}), {{ z95 }}), 1), s.approval_rate_status, 'up') as approval_rate_upper95,
        sdc_rate(p.declined / nullif(p.decided, 0), s.decline_rate_status, 'nearest') as decline_rate,
        sdc_rate(p.decided_within_2_months / nullif(p.decided, 0), s.timeliness_rate_status, 'nearest') as timeliness_rate,
        sdc_rate(p.escalated / nullif(p.requests_received, 0), s.escalation_rate_status, 'nearest') as escalation_rate,
        s.* exclude (scope, group_code, period_start, period_end),
        concat_ws(';',
            case when p.requests_received is null and m.requests_received is not null then 'requests_received' end,
            case when p.approved is null and m.approved is not null then 'approved' end,
            case when p.declined is null and m.declined is not null then 'declined' end,
            case when p.decided is null and m.decided is not null then 'decided' end,
            case when p.escalated is null and m.escalated is not null then 'escalated' end,
            case when p.decided_within_2_months is null and m.decided_within_2_months is not null then 'decided_within_2_months' end,
            case when p.declined_other is null and m.declined_other is not null then 'declined_other' end,
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
    inner join p on m.scope = p.scope and m.group_code = p.group_code and m.period_start = p.period_start and m.period_end = p.period_end
    inner join s on m.scope = s.scope and m.group_code = s.group_code and m.period_start = s.period_start and m.period_end = s.period_end
)

select * from final
