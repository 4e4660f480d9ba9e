-- marts.icb_benchmark: one row per integrated care board (ICB) per benchmark window.
-- Keys: icb_code, window_start, window_end.
-- Rule (methodology, "Regions and ICBs"): as marts.region_benchmark, for the ICB of each trust
-- (the ODS etr's high-level health geography). icb_name is the ICB's latest name in NHS
-- Workforce Statistics (intermediate.int_icb_names, e.g. "South East London"); an ICB no loaded
-- workforce file names keeps its code with its region's name ("QKK (London)").
with trust_benchmark as (
    select * from marts.trust_benchmark
),

funnels as (
    select * from intermediate.int_area_funnels where area_kind = 'icb'
),

names as (
    select * from (values {{ region_names }}) as t(region_code, region_name)
),

icb_names as (
    select * from intermediate.int_icb_names
),

icbs as (
    select icb_code, window_start, window_end,
        any_value(region_code order by region_code) as region_code,
        count(*) as trusts,
        count(*) filter (where has_data) as trusts_with_data,
        sum(requests_received) as requests_received, sum(approved) as approved,
        sum(declined) as declined, sum(decided) as decided, sum(escalated) as escalated,
        sum(decided_within_2_months) as decided_within_2_months,
        sum(declined_other) as declined_other,
        sum(headcount) filter (where has_data) as headcount_with_data,
        sum(requests_received * 12.0 / nullif(months_covered, 0)) as requests_a_year
    from trust_benchmark
    where icb_code is not null
    group by icb_code, window_start, window_end
),

outside as (
    select area_code as icb_code,
        count(*) filter (where funnel like 'High%') as trusts_above_icb_funnel,
        count(*) filter (where funnel like 'Low%') as trusts_below_icb_funnel
    from funnels
    group by area_code
),

final as (
    select i.icb_code,
        coalesce(k.icb_name, i.icb_code || ' (' || coalesce(n.region_name, i.region_code) || ')')
            as icb_name,
        i.region_code, coalesce(n.region_name, i.region_code) as region_name,
        i.window_start, i.window_end, i.trusts, i.trusts_with_data, i.requests_received,
        i.approved, i.declined, i.decided, i.escalated, i.decided_within_2_months,
        i.declined_other,
        i.approved / nullif(i.decided, 0) as approval_rate,
        wilson_lower(i.approved, i.decided, {{ z95 }}) as approval_rate_lower95,
        wilson_upper(i.approved, i.decided, {{ z95 }}) as approval_rate_upper95,
        wilson_lower(i.approved, i.decided, {{ z998 }}) as approval_rate_lower998,
        wilson_upper(i.approved, i.decided, {{ z998 }}) as approval_rate_upper998,
        i.declined / nullif(i.decided, 0) as decline_rate,
        wilson_lower(i.declined, i.decided, {{ z95 }}) as decline_rate_lower95,
        wilson_upper(i.declined, i.decided, {{ z95 }}) as decline_rate_upper95,
        i.decided_within_2_months / nullif(i.decided, 0) as timeliness_rate,
        wilson_lower(i.decided_within_2_months, i.decided, {{ z95 }}) as timeliness_rate_lower95,
        wilson_upper(i.decided_within_2_months, i.decided, {{ z95 }}) as timeliness_rate_upper95,
        i.requests_a_year / nullif(i.headcount_with_data, 0) * 100 as requests_per_100_staff,
        coalesce(o.trusts_above_icb_funnel, 0) as trusts_above_icb_funnel,
        coalesce(o.trusts_below_icb_funnel, 0) as trusts_below_icb_funnel
    from icbs as i
    left join names as n on n.region_code = i.region_code
    left join icb_names as k on k.icb_code = i.icb_code
    left join outside as o on o.icb_code = i.icb_code
)

select * from final
