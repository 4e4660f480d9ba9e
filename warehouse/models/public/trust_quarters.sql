-- public.trust_quarters: one row per trust per calendar quarter of marts.trust_trends.
-- Keys: org_code, quarter_start.
-- The quarterly numbers every public output shows (the trend on a trust's page, `flexbench
-- extract --by quarter`), read from marts.trust_trends alone, so they are the mart's numbers
-- (a trust that publishes months and quarters that overlap is counted once, as the mart
-- counts it), with the disclosure control of public.trust_window (docs/methodology.md,
-- "Disclosure control"): counts 0 shown, 1-{{ small_max }} withheld, others rounded to the
-- nearest {{ round_to }}, decided the sum of approved and declined as published; rates worked out
-- from the published counts (published from a denominator of {{ min_denominator }}).
-- Published orders hold as the marts' counts do (docs/methodology.md, "Disclosure control"):
-- appeals_upheld <= appeals <= declined (each rounded from its own value, rounding keeps the
-- order) and decided_within_2_months <= decided (decided is a sum of rounded parts: a
-- decided_within_2_months whose rounding would exceed it is withheld with its rate).
-- Uptake (requests_per_100_staff) is the published requests_received per 100 of the published
-- staff in post (headcount, as public.trust_window publishes it), a year (x 12 /
-- months_covered); withheld where requests_received is.
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

-- Counts withheld beyond the small-number rule (marts.withheld_cells): zeros withheld with the
-- small counts they share a relation with; appeals and appeals upheld of every quarter of the
-- window where any quarter's is withheld (published all or none over the window's quarters).
hidden as (
    select org_code, period_start, list(count_name) as names
    from marts.withheld_cells
    where period = 'quarter'
    group by org_code, period_start
),

rounded as (
    select m.org_code, m.quarter_start,
        sdc_count_kept(m.requests_received, list_contains(h.names, 'requests_received'), {{ small_max }}, {{ round_to }}) as requests_received,
        sdc_count_kept(m.approved, list_contains(h.names, 'approved'), {{ small_max }}, {{ round_to }}) as approved,
        sdc_count_kept(m.declined, list_contains(h.names, 'declined'), {{ small_max }}, {{ round_to }}) as declined,
        sdc_count_kept(m.decided, list_contains(h.names, 'decided'), {{ small_max }}, {{ round_to }}) as decided,
        sdc_count_kept(m.escalated, list_contains(h.names, 'escalated'), {{ small_max }}, {{ round_to }}) as escalated,
        sdc_count_kept(m.appeals, list_contains(h.names, 'appeals'), {{ small_max }}, {{ round_to }}) as appeals,
        sdc_count_kept(m.appeals_upheld, list_contains(h.names, 'appeals_upheld'), {{ small_max }}, {{ round_to }}) as appeals_upheld,
        sdc_count_kept(m.decided_within_2_months, list_contains(h.names, 'decided_within_2_months'), {{ small_max }}, {{ round_to }}) as decided_within_2_months,
        sdc_count_kept(m.declined_other, list_contains(h.names, 'declined_other'), {{ small_max }}, {{ round_to }}) as declined_other
    from m
    left join hidden as h on h.org_code = m.org_code and cast(h.period_start as date) = m.quarter_start
),

-- decided is approved + declined as published where both are (controlled rounding); where
-- one is withheld, decided is withheld with it unless it leaves the withheld one free from 0 to
-- {{ small_max }} (sdc_total_keeps: secondary suppression).
added as (
    select r.* replace (
        case when r.approved is not null and r.declined is not null
            then r.approved + r.declined else r.decided end as decided
    )
    from rounded as r
),

kept as (
    select a.org_code, a.quarter_start, sdc_total_keeps(a.decided,
                coalesce(sdc_low(a.approved, {{ small_max }}, {{ round_to }}), 0)
                    + coalesce(sdc_low(a.declined, {{ small_max }}, {{ round_to }}), 0),
                coalesce(sdc_high(a.approved, {{ round_to }}), 0)
                    + coalesce(sdc_high(a.declined, {{ round_to }}), 0),
                cast(a.approved is null and m.approved is not null as integer)
                    + cast(a.declined is null and m.declined is not null as integer),
                {{ small_max }}, {{ round_to }}) as decided_kept
    from added as a
    inner join m on m.org_code = a.org_code and m.quarter_start = a.quarter_start
),

-- A withheld decided takes decided within two months with it (never more than decided, it
-- would bound it from below); so does a published decided that is less than it (decided is
-- approved + declined as published, and may round below it): decided_within_2_months <=
-- decided holds in everything published.
p as (
    select a.* replace (
        case when k.decided_kept then a.decided end as decided,
        case when k.decided_kept
                and (a.decided is null or a.decided_within_2_months is null
                    or a.decided_within_2_months <= a.decided)
            then a.decided_within_2_months end as decided_within_2_months
    )
    from added as a
    inner join kept as k on k.org_code = a.org_code and k.quarter_start = a.quarter_start
),

s as (
    select m.org_code, m.quarter_start,
        sdc_rate_status(p.approved, p.decided, m.decided, {{ min_denominator }}) as approval_rate_status,
        sdc_rate_status(p.declined, p.decided, m.decided, {{ min_denominator }}) as decline_rate_status,
        sdc_rate_status(p.decided_within_2_months, p.decided, m.decided, {{ min_denominator }}) as timeliness_rate_status,
        sdc_rate_status(p.escalated, not_agreed_first_stage(p.escalated, p.declined), not_agreed_first_stage(m.escalated, m.declined), {{ min_denominator }}) as escalation_rate_status,
        sdc_rate_status(p.appeals, p.declined, m.declined, {{ min_denominator }}) as appeal_rate_status,
        sdc_rate_status(p.appeals_upheld, p.appeals, m.appeals, {{ min_denominator }}) as appeals_upheld_rate_status,
        case when m.requests_received is null or not coalesce(m.headcount > 0, false)
                or not coalesce(m.months_covered > 0, false) then null
            when p.requests_received is null then 'withheld'
            else 'published' end as requests_per_100_staff_status
    from m
    inner join p on p.org_code = m.org_code and p.quarter_start = m.quarter_start
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
        m.org_code, m.name, m.region_code, m.icb_code, m.peer_group, m.cluster_group,
        m.quarter, m.quarter_start, m.quarter_end, m.as_of as data_as_of, m.months_covered,
        p.requests_received,
        p.approved,
        p.declined,
        p.decided,
        p.escalated,
        p.appeals,
        p.appeals_upheld,
        p.decided_within_2_months,
        p.declined_other,
        cast(round(m.headcount) as bigint) as headcount,
        sdc_rate(p.approved / nullif(p.decided, 0), s.approval_rate_status, 'nearest') as approval_rate,
        sdc_rate(p.approval_rate_lower95, s.approval_rate_status, 'down') as approval_rate_lower95,
        sdc_rate(p.approval_rate_upper95, s.approval_rate_status, 'up') as approval_rate_upper95,
        sdc_rate(p.declined / nullif(p.decided, 0), s.decline_rate_status, 'nearest') as decline_rate,
        sdc_rate(p.decided_within_2_months / nullif(p.decided, 0), s.timeliness_rate_status, 'nearest') as timeliness_rate,
        not_agreed_first_stage(p.escalated, p.declined) as not_agreed_first_stage,
        sdc_rate(p.escalated / nullif(not_agreed_first_stage(p.escalated, p.declined), 0), s.escalation_rate_status, 'nearest') as escalation_rate,
        sdc_rate(p.appeals / nullif(p.declined, 0), s.appeal_rate_status, 'nearest') as appeal_rate,
        sdc_rate(p.appeals_upheld / nullif(p.appeals, 0), s.appeals_upheld_rate_status, 'nearest') as appeals_upheld_rate,
        case when s.requests_per_100_staff_status = 'published' then
            round(p.requests_received / round(m.headcount) * 100 * 12 / m.months_covered, 1)
        end as requests_per_100_staff,
        s.* exclude (org_code, quarter_start),
        concat_ws(';',
            case when p.requests_received is null and m.requests_received is not null then 'requests_received' end,
            case when p.approved is null and m.approved is not null then 'approved' end,
            case when p.declined is null and m.declined is not null then 'declined' end,
            case when p.decided is null and m.decided is not null then 'decided' end,
            case when p.escalated is null and m.escalated is not null then 'escalated' end,
            case when p.appeals is null and m.appeals is not null then 'appeals' end,
            case when p.appeals_upheld is null and m.appeals_upheld is not null then 'appeals_upheld' end,
            case when p.decided_within_2_months is null and m.decided_within_2_months is not null then 'decided_within_2_months' end,
            case when p.declined_other is null and m.declined_other is not null then 'declined_other' end,
            case when s.approval_rate_status = 'withheld' then 'approval_rate' end,
            case when s.decline_rate_status = 'withheld' then 'decline_rate' end,
            case when s.timeliness_rate_status = 'withheld' then 'timeliness_rate' end,
            case when s.escalation_rate_status = 'withheld' then 'escalation_rate' end,
            case when s.appeal_rate_status = 'withheld' then 'appeal_rate' end,
            case when s.appeals_upheld_rate_status = 'withheld' then 'appeals_upheld_rate' end,
            case when s.requests_per_100_staff_status = 'withheld' then 'requests_per_100_staff' end
        ) as withheld,
        concat_ws(';',
            case when s.approval_rate_status = 'too_few' then 'approval_rate' end,
            case when s.decline_rate_status = 'too_few' then 'decline_rate' end,
            case when s.timeliness_rate_status = 'too_few' then 'timeliness_rate' end,
            case when s.escalation_rate_status = 'too_few' then 'escalation_rate' end,
            case when s.appeal_rate_status = 'too_few' then 'appeal_rate' end,
            case when s.appeals_upheld_rate_status = 'too_few' then 'appeals_upheld_rate' end
        ) as too_few

    from m
    inner join limits as p on p.org_code = m.org_code and p.quarter_start = m.quarter_start
    inner join s on s.org_code = m.org_code and s.quarter_start = m.quarter_start
)

select * from final
