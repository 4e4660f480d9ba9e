-- public.aggregates: one row per scope (national | region | peer_group | icb), group and period
-- (the benchmark window, and each quarter of marts.trust_trends; an ICB the window only).
-- Keys: scope, group_code, period_start, period_end.
-- Sums over the trusts with data of marts.trust_benchmark (the window) and marts.trust_trends
-- (quarters); group_code is 'ENG' for England, the region code, the peer group or the ICB code.
-- The one source of every published region and ICB figure: public.areas reads its window rows. The same
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
        cast(null as varchar) as quarter, org_code, region_code, icb_code, peer_group,
        requests_received, approved, declined, decided, escalated, decided_within_2_months, declined_other
    from benchmark
    where has_data
),

quarter_rows as (
    select 'quarter' as period, t.quarter_start as period_start, t.quarter_end as period_end,
        t.quarter, t.org_code, b.region_code, b.icb_code, b.peer_group,
        t.requests_received, t.approved, t.declined, t.decided, t.escalated, t.decided_within_2_months, t.declined_other
    from trends as t
    inner join benchmark as b on b.org_code = t.org_code
),

published_rows as (
    select 'window' as period, w.window_start as period_start, w.window_end as period_end,
        w.org_code, w.region_code, w.icb_code, w.peer_group,
        w.requests_received, w.approved, w.declined, w.decided, w.escalated, w.decided_within_2_months, w.declined_other,
        b.requests_received as t_requests_received, b.approved as t_approved, b.declined as t_declined, b.decided as t_decided, b.escalated as t_escalated, b.decided_within_2_months as t_decided_within_2_months, b.declined_other as t_declined_other
    from public.trust_window as w
    inner join benchmark as b on b.org_code = w.org_code
    where w.has_data
    union all
    select 'quarter' as period, q.quarter_start as period_start, q.quarter_end as period_end,
        q.org_code, q.region_code, q.icb_code, q.peer_group,
        q.requests_received, q.approved, q.declined, q.decided, q.escalated, q.decided_within_2_months, q.declined_other,
        t.requests_received as t_requests_received, t.approved as t_approved, t.declined as t_declined, t.decided as t_decided, t.escalated as t_escalated, t.decided_within_2_months as t_decided_within_2_months, t.declined_other as t_declined_other
    from public.trust_quarters as q
    inner join trends as t on t.org_code = q.org_code and t.quarter_start = q.quarter_start
),

published_scoped as (
    select 'national' as scope, 'ENG' as group_code, * from published_rows
    union all
    select 'region' as scope, region_code as group_code, * from published_rows
    where region_code is not null
    union all
    select 'peer_group' as scope, peer_group as group_code, * from published_rows
    where peer_group is not null
    union all
    select 'icb' as scope, icb_code as group_code, * from published_rows
    where icb_code is not null and period = 'window'
),

-- The sum of the published figures of the group's trusts, where every one is published.
published_sums as (
    select scope, group_code, period_start, period_end,
        case when count(requests_received) = count(*) then sum(requests_received) end as requests_received,
        sum(coalesce(sdc_low(requests_received, {{ small_max }}, {{ round_to }}), 0)) as requests_received_low,
        sum(coalesce(sdc_high(requests_received, {{ round_to }}), 0)) as requests_received_high,
        case when count(*) filter (where requests_received is null and t_requests_received > {{ small_max }}) = 0
            then count(*) filter (where requests_received is null and t_requests_received is not null) else 0 end as requests_received_withheld,
        case when count(approved) = count(*) then sum(approved) end as approved,
        sum(coalesce(sdc_low(approved, {{ small_max }}, {{ round_to }}), 0)) as approved_low,
        sum(coalesce(sdc_high(approved, {{ round_to }}), 0)) as approved_high,
        case when count(*) filter (where approved is null and t_approved > {{ small_max }}) = 0
            then count(*) filter (where approved is null and t_approved is not null) else 0 end as approved_withheld,
        case when count(declined) = count(*) then sum(declined) end as declined,
        sum(coalesce(sdc_low(declined, {{ small_max }}, {{ round_to }}), 0)) as declined_low,
        sum(coalesce(sdc_high(declined, {{ round_to }}), 0)) as declined_high,
        case when count(*) filter (where declined is null and t_declined > {{ small_max }}) = 0
            then count(*) filter (where declined is null and t_declined is not null) else 0 end as declined_withheld,
        case when count(decided) = count(*) then sum(decided) end as decided,
        sum(coalesce(sdc_low(decided, {{ small_max }}, {{ round_to }}), 0)) as decided_low,
        sum(coalesce(sdc_high(decided, {{ round_to }}), 0)) as decided_high,
        case when count(*) filter (where decided is null and t_decided > {{ small_max }}) = 0
            then count(*) filter (where decided is null and t_decided is not null) else 0 end as decided_withheld,
        case when count(escalated) = count(*) then sum(escalated) end as escalated,
        sum(coalesce(sdc_low(escalated, {{ small_max }}, {{ round_to }}), 0)) as escalated_low,
        sum(coalesce(sdc_high(escalated, {{ round_to }}), 0)) as escalated_high,
        case when count(*) filter (where escalated is null and t_escalated > {{ small_max }}) = 0
            then count(*) filter (where escalated is null and t_escalated is not null) else 0 end as escalated_withheld,
        case when count(decided_within_2_months) = count(*) then sum(decided_within_2_months) end as decided_within_2_months,
        sum(coalesce(sdc_low(decided_within_2_months, {{ small_max }}, {{ round_to }}), 0)) as decided_within_2_months_low,
        sum(coalesce(sdc_high(decided_within_2_months, {{ round_to }}), 0)) as decided_within_2_months_high,
        case when count(*) filter (where decided_within_2_months is null and t_decided_within_2_months > {{ small_max }}) = 0
            then count(*) filter (where decided_within_2_months is null and t_decided_within_2_months is not null) else 0 end as decided_within_2_months_withheld,
        case when count(declined_other) = count(*) then sum(declined_other) end as declined_other,
        sum(coalesce(sdc_low(declined_other, {{ small_max }}, {{ round_to }}), 0)) as declined_other_low,
        sum(coalesce(sdc_high(declined_other, {{ round_to }}), 0)) as declined_other_high,
        case when count(*) filter (where declined_other is null and t_declined_other > {{ small_max }}) = 0
            then count(*) filter (where declined_other is null and t_declined_other is not null) else 0 end as declined_other_withheld
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
    union all
    select 'icb' as scope, icb_code as group_code, * from all_rows
    where icb_code is not null and period = 'window'
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
-- A 0 with a withheld trust figure is withheld: that trust's 0 is withheld (marts.withheld_cells).
-- A figure whose rounding would narrow its trusts' withheld figures (or its own withheld
-- approved or declined) is withheld with them (sdc_total_keeps: secondary suppression); a trust
-- figure withheld as secondary (above {{ small_max }}) leaves the sum free.
summed as (
    select r.* replace (
        case when ps.requests_received is null and m.requests_received = 0 then null
            when not sdc_total_keeps(r.requests_received, ps.requests_received_low, ps.requests_received_high, ps.requests_received_withheld,
                {{ small_max }}, {{ round_to }}) then null
            else coalesce(ps.requests_received, r.requests_received) end as requests_received,
        case when ps.approved is null and m.approved = 0 then null
            when not sdc_total_keeps(r.approved, ps.approved_low, ps.approved_high, ps.approved_withheld,
                {{ small_max }}, {{ round_to }}) then null
            else coalesce(ps.approved, r.approved) end as approved,
        case when ps.declined is null and m.declined = 0 then null
            when not sdc_total_keeps(r.declined, ps.declined_low, ps.declined_high, ps.declined_withheld,
                {{ small_max }}, {{ round_to }}) then null
            else coalesce(ps.declined, r.declined) end as declined,
        case when ps.escalated is null and m.escalated = 0 then null
            when not sdc_total_keeps(r.escalated, ps.escalated_low, ps.escalated_high, ps.escalated_withheld,
                {{ small_max }}, {{ round_to }}) then null
            else coalesce(ps.escalated, r.escalated) end as escalated,
        case when ps.decided_within_2_months is null and m.decided_within_2_months = 0 then null
            when not sdc_total_keeps(r.decided_within_2_months, ps.decided_within_2_months_low, ps.decided_within_2_months_high, ps.decided_within_2_months_withheld,
                {{ small_max }}, {{ round_to }}) then null
            else coalesce(ps.decided_within_2_months, r.decided_within_2_months) end as decided_within_2_months,
        case when ps.declined_other is null and m.declined_other = 0 then null
            when not sdc_total_keeps(r.declined_other, ps.declined_other_low, ps.declined_other_high, ps.declined_other_withheld,
                {{ small_max }}, {{ round_to }}) then null
            else coalesce(ps.declined_other, r.declined_other) end as declined_other
    )
    from rounded as r
    inner join m on m.scope = r.scope and m.group_code = r.group_code
        and m.period_start = r.period_start and m.period_end = r.period_end
    left join published_sums as ps on ps.scope = r.scope and ps.group_code = r.group_code
        and ps.period_start = r.period_start and ps.period_end = r.period_end
),

p as (
    select r.* replace (
        case when ps.decided is not null then ps.decided
            when m.decided = 0 then null
            when not sdc_total_keeps(r.decided, ps.decided_low, ps.decided_high,
                ps.decided_withheld, {{ small_max }}, {{ round_to }}) then null
            when r.approved is not null and r.declined is not null
            then r.approved + r.declined
            when not sdc_total_keeps(r.decided,
                coalesce(sdc_low(r.approved, {{ small_max }}, {{ round_to }}), 0)
                    + coalesce(sdc_low(r.declined, {{ small_max }}, {{ round_to }}), 0),
                coalesce(sdc_high(r.approved, {{ round_to }}), 0)
                    + coalesce(sdc_high(r.declined, {{ round_to }}), 0),
                cast(r.approved is null and m.approved is not null as integer)
                    + cast(r.declined is null and m.declined is not null as integer),
                {{ small_max }}, {{ round_to }}) then null
            else r.decided end as decided
    )
    from summed as r
    inner join m on m.scope = r.scope and m.group_code = r.group_code
        and m.period_start = r.period_start and m.period_end = r.period_end
    left join published_sums as ps on ps.scope = r.scope and ps.group_code = r.group_code
        and ps.period_start = r.period_start and ps.period_end = r.period_end
),

s as (
    select m.scope, m.group_code, m.period_start, m.period_end,
        sdc_rate_status(p.approved, p.decided, m.decided, {{ min_denominator }}) as approval_rate_status,
        sdc_rate_status(p.declined, p.decided, m.decided, {{ min_denominator }}) as decline_rate_status,
        sdc_rate_status(p.decided_within_2_months, p.decided, m.decided, {{ min_denominator }}) as timeliness_rate_status,
        sdc_rate_status(p.escalated, not_agreed_first_stage(p.escalated, p.declined), not_agreed_first_stage(m.escalated, m.declined), {{ min_denominator }}) as escalation_rate_status
    from m
    inner join p on m.scope = p.scope and m.group_code = p.group_code and m.period_start = p.period_start and m.period_end = p.period_end
),

-- The range each published count of the approval rate gives its true value, once a count
-- (sdc_lower95).
ranges as (
    select p.*,
        sdc_low(p.approved, {{ small_max }}, {{ round_to }}) as approved_low,
        sdc_high(p.approved, {{ round_to }}) as approved_high,
        sdc_low(p.decided, {{ small_max }}, {{ round_to }}) as decided_low,
        sdc_high(p.decided, {{ round_to }}) as decided_high
    from p
),

-- The approval rate's 95% interval from the published counts, before sdc_rate publishes it.
limits as (
    select r.*,
        sdc_lower95(r.approved_low, r.decided_high, {{ z95 }}) as approval_rate_lower95,
        sdc_upper95(r.approved_high, r.decided_low, {{ z95 }}) as approval_rate_upper95
    from ranges as r
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
        sdc_rate(p.approval_rate_lower95, s.approval_rate_status, 'down') as approval_rate_lower95,
        sdc_rate(p.approval_rate_upper95, s.approval_rate_status, 'up') as approval_rate_upper95,
        sdc_rate(p.declined / nullif(p.decided, 0), s.decline_rate_status, 'nearest') as decline_rate,
        sdc_rate(p.decided_within_2_months / nullif(p.decided, 0), s.timeliness_rate_status, 'nearest') as timeliness_rate,
        not_agreed_first_stage(p.escalated, p.declined) as not_agreed_first_stage,
        sdc_rate(p.escalated / nullif(not_agreed_first_stage(p.escalated, p.declined), 0), s.escalation_rate_status, 'nearest') as escalation_rate,
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
    inner join limits as p on m.scope = p.scope and m.group_code = p.group_code and m.period_start = p.period_start and m.period_end = p.period_end
    inner join s on m.scope = s.scope and m.group_code = s.group_code and m.period_start = s.period_start and m.period_end = s.period_end
)

select * from final
