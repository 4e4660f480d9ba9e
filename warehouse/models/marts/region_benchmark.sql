-- marts.region_benchmark: one row per NHS England region per benchmark window.
-- Keys: region_code, window_start, window_end.
-- Rule (methodology, "Regions and ICBs"): the counts of the region's trusts with data in the
-- window (marts.trust_benchmark) added up; the region's pooled rates with 95% and 99.8%
-- Wilson intervals; requests per 100 staff over the staff in post of those trusts (annualised
-- on their months covered); how many of its trusts fall outside the region's own funnel
-- (intermediate.int_area_funnels). region_name: the NHS England region's name.
with trust_benchmark as (
    select * from marts.trust_benchmark
),

funnels as (
    select * from intermediate.int_area_funnels where area_kind = 'region'
),

names as (
    select * from (values {{ region_names }}) as t(region_code, region_name)
),

regions as (
    select region_code, window_start, window_end,
        count(*) as trusts,
        count(*) filter (where has_data) as trusts_with_data,
        sum(requests_received) as requests_received, sum(approved) as approved,
        sum(declined) as declined, sum(decided) as decided, sum(escalated) as escalated,
        sum(decided_within_2_months) as decided_within_2_months,
        sum(declined_other) as declined_other,
        sum(headcount) filter (where has_data) as headcount_with_data,
        sum(requests_received * 12.0 / nullif(months_covered, 0)) as requests_a_year
    from trust_benchmark
    group by region_code, window_start, window_end
),

outside as (
    select area_code as region_code,
        count(*) filter (where funnel like 'High%') as trusts_above_region_funnel,
        count(*) filter (where funnel like 'Low%') as trusts_below_region_funnel
    from funnels
    group by area_code
),

final as (
    select r.region_code, coalesce(n.region_name, r.region_code) as region_name,
        r.window_start, r.window_end, r.trusts, r.trusts_with_data, r.requests_received,
        r.approved, r.declined, r.decided, r.escalated, r.decided_within_2_months,
        r.declined_other,
        r.approved / nullif(r.decided, 0) as approval_rate,
        wilson_lower(r.approved, r.decided, {{ z95 }}) as approval_rate_lower95,
        wilson_upper(r.approved, r.decided, {{ z95 }}) as approval_rate_upper95,
        wilson_lower(r.approved, r.decided, {{ z998 }}) as approval_rate_lower998,
        wilson_upper(r.approved, r.decided, {{ z998 }}) as approval_rate_upper998,
        r.declined / nullif(r.decided, 0) as decline_rate,
        wilson_lower(r.declined, r.decided, {{ z95 }}) as decline_rate_lower95,
        wilson_upper(r.declined, r.decided, {{ z95 }}) as decline_rate_upper95,
        r.decided_within_2_months / nullif(r.decided, 0) as timeliness_rate,
        wilson_lower(r.decided_within_2_months, r.decided, {{ z95 }}) as timeliness_rate_lower95,
        wilson_upper(r.decided_within_2_months, r.decided, {{ z95 }}) as timeliness_rate_upper95,
        r.escalated / nullif(r.requests_received, 0) as escalation_rate,
        wilson_lower(r.escalated, r.requests_received, {{ z95 }}) as escalation_rate_lower95,
        wilson_upper(r.escalated, r.requests_received, {{ z95 }}) as escalation_rate_upper95,
        r.requests_a_year / nullif(r.headcount_with_data, 0) * 100 as requests_per_100_staff,
        coalesce(o.trusts_above_region_funnel, 0) as trusts_above_region_funnel,
        coalesce(o.trusts_below_region_funnel, 0) as trusts_below_region_funnel
    from regions as r
    left join names as n on n.region_code = r.region_code
    left join outside as o on o.region_code = r.region_code
)

select * from final
