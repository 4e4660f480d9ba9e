-- public.areas: one row per area (NHS England region, integrated care board) in the benchmark
-- window. Keys: area_kind, area_code.
-- area_kind 'region' or 'icb'; area_name and region_name as in marts.region_benchmark and
-- marts.icb_benchmark; trusts and trusts_with_data from public.trust_window. Every count and
-- rate is the area's window row of public.aggregates (scope region or icb), read as it is: one
-- disclosure control for every published area figure (docs/methodology.md, "Disclosure
-- control"), so a region's figure here and in public.aggregates is the same figure. An area
-- none of whose trusts has data has no figures (null, nothing withheld).
with trusts as (
    select * from public.trust_window
),

aggregates as (
    select * from public.aggregates where scope in ('region', 'icb') and period = 'window'
),

regions as (
    select * from marts.region_benchmark
),

icbs as (
    select * from marts.icb_benchmark
),

names as (
    select 'region' as area_kind, region_code as area_code, region_name as area_name,
        region_code, region_name
    from regions
    union all
    select 'icb' as area_kind, icb_code as area_code, icb_name as area_name, region_code,
        region_name
    from icbs
),

membership as (
    select 'region' as area_kind, region_code as area_code, * from trusts
    where region_code is not null
    union all
    select 'icb' as area_kind, icb_code as area_code, * from trusts
    where icb_code is not null
),

members as (
    select area_kind, area_code, count(*) as trusts,
        count(*) filter (where has_data) as trusts_with_data
    from membership
    group by area_kind, area_code
),

final as (
    select m.area_kind, m.area_code, n.area_name, n.region_code, n.region_name,
        m.trusts, m.trusts_with_data,
        a.requests_received, a.approved, a.declined, a.decided, a.escalated,
        a.decided_within_2_months, a.declined_other,
        a.approval_rate, a.approval_rate_status, a.approval_rate_lower95,
        a.approval_rate_upper95, a.decline_rate, a.decline_rate_status,
        a.timeliness_rate, a.timeliness_rate_status, a.not_agreed_first_stage,
        a.escalation_rate, a.escalation_rate_status,
        coalesce(a.withheld, '') as withheld, coalesce(a.too_few, '') as too_few
    from members as m
    left join names as n on n.area_kind = m.area_kind and n.area_code = m.area_code
    left join aggregates as a on a.scope = m.area_kind and a.group_code = m.area_code
)

select * from final
