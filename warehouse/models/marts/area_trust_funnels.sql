-- marts.area_trust_funnels: one row per trust with data x area kind ('region', 'icb').
-- Keys: org_code, area_kind.
-- Rule (methodology, "Regions and ICBs"): each trust's approval rate on the funnel plot of
-- its region (or ICB): control limits at 95% and 99.8% around the area's pooled approval
-- rate, at the trust's decided requests, widened by the national overdispersion (tau2, as in
-- marts.trust_benchmark's adjusted funnel; Wilson limits where there is none); funnel is the
-- position ('High (0.001)' ... 'Low (0.001)').
with funnels as (
    select * from intermediate.int_area_funnels
),

trust_benchmark as (
    select * from marts.trust_benchmark
),

names as (
    select * from (values {{ region_names }}) as t(region_code, region_name)
),

final as (
    select f.org_code, t.name, f.area_kind, f.area_code,
        case when f.area_kind = 'region' then coalesce(n.region_name, f.area_code)
            else f.area_code end as area_name,
        t.window_start, t.window_end, t.approved, t.decided, t.approval_rate,
        f.area_rate as area_approval_rate, f.funnel as approval_rate_area_funnel,
        f.control_lower95, f.control_upper95, f.control_lower998, f.control_upper998, f.tau2
    from funnels as f
    inner join trust_benchmark as t on t.org_code = f.org_code
    left join names as n on n.region_code = f.area_code
)

select * from final
