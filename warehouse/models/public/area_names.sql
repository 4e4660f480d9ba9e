-- public.area_names: one row per NHS England region and integrated care board (ICB) of the
-- benchmark population. Keys: area_kind, area_code.
-- The names the outputs print beside a region or ICB code: the region's name, and the ICB's name
-- as marts.icb_benchmark gives it (its latest name in NHS Workforce Statistics, or its code with
-- its region's name where no workforce file names it; docs/methodology.md, "Regions and ICBs").
-- Names only: no counts.
with regions as (
    select distinct region_code, region_name from marts.region_benchmark
),

icbs as (
    select distinct icb_code, icb_name, region_code from marts.icb_benchmark
),

final as (
    select 'region' as area_kind, region_code as area_code, region_name as area_name,
        region_code
    from regions
    union all
    select 'icb' as area_kind, icb_code as area_code, icb_name as area_name, region_code
    from icbs
)

select * from final
