-- public.areas: one row per area (NHS England region, integrated care board) in the benchmark
-- window. Keys: area_kind, area_code.
-- area_kind 'region' or 'icb'; area_name and region_name as in marts.region_benchmark and
-- marts.icb_benchmark. Controlled totals (docs/methodology.md, "Disclosure control"): each
-- count is the sum of the published figures of the area's trusts with data
-- (public.trust_window) where every one of them is published, else withheld (null, named in
-- withheld), so an area tells nothing its trusts' figures do not. The approval rate and its 95%
-- interval (Wilson, widened over every count the rounding of its trusts allows) and the decline
-- rate are worked out from those published counts, as in public.aggregates.
with trusts as (
    select * from public.trust_window
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

-- The trusts of an area with data, each count summed where every one is published; n_<count>
-- counts the trusts with a withheld value (each trust's rounding error is at most 2).
sums as (
    select area_kind, area_code,
        count(*) as trusts,
        count(*) filter (where has_data) as trusts_with_data,
        case when count(*) filter (where has_data and requests_received is null) = 0
            then sum(requests_received) filter (where has_data) end as requests_received,
        case when count(*) filter (where has_data and approved is null) = 0
            then sum(approved) filter (where has_data) end as approved,
        case when count(*) filter (where has_data and declined is null) = 0
            then sum(declined) filter (where has_data) end as declined,
        case when count(*) filter (where has_data and decided is null) = 0
            then sum(decided) filter (where has_data) end as decided,
        case when count(*) filter (where has_data and escalated is null) = 0
            then sum(escalated) filter (where has_data) end as escalated,
        count(*) filter (where has_data and approved <> 0) as approved_terms,
        count(*) filter (where has_data and decided <> 0) as decided_terms
    from membership
    group by area_kind, area_code
),

s as (
    select *,
        -- an area's decided that cannot be summed (a trust's figure is withheld) makes its
        -- rates withheld, not too few: worked out from published figures alone
        sdc_rate_status(approved, decided, case when trusts_with_data > 0
            then coalesce(decided, {{ min_denominator }}) end, {{ min_denominator }})
            as approval_rate_status,
        sdc_rate_status(declined, decided, case when trusts_with_data > 0
            then coalesce(decided, {{ min_denominator }}) end, {{ min_denominator }})
            as decline_rate_status
    from sums
),

final as (
    select s.area_kind, s.area_code, n.area_name, n.region_code, n.region_name,
        s.trusts, s.trusts_with_data,
        s.requests_received, s.approved, s.declined, s.decided, s.escalated,
        sdc_rate(s.approved / nullif(s.decided, 0), s.approval_rate_status, 'nearest')
            as approval_rate,
        s.approval_rate_status,
        -- widened over each trust's rounding (at most 2 each way a count, 4 decided)
        sdc_rate(greatest(wilson_lower(greatest(s.approved - 2 * s.approved_terms, 0),
            s.decided + 4 * s.decided_terms, {{ z95 }}), 0), s.approval_rate_status, 'down')
            as approval_rate_lower95,
        sdc_rate(least(wilson_upper(least(s.approved + 2 * s.approved_terms,
            s.decided - 4 * s.decided_terms), greatest(s.decided - 4 * s.decided_terms, 1),
            {{ z95 }}), 1), s.approval_rate_status, 'up') as approval_rate_upper95,
        sdc_rate(s.declined / nullif(s.decided, 0), s.decline_rate_status, 'nearest')
            as decline_rate,
        s.decline_rate_status,
        concat_ws(';',
            case when s.requests_received is null and s.trusts_with_data > 0 then 'requests_received' end,
            case when s.approved is null and s.trusts_with_data > 0 then 'approved' end,
            case when s.declined is null and s.trusts_with_data > 0 then 'declined' end,
            case when s.decided is null and s.trusts_with_data > 0 then 'decided' end,
            case when s.escalated is null and s.trusts_with_data > 0 then 'escalated' end
        ) as withheld
    from s
    left join names as n on n.area_kind = s.area_kind and n.area_code = s.area_code
)

select * from final
