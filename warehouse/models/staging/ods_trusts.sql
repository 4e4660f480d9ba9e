-- staging.ods_trusts: one row per ODS code (org_code). Keys: org_code.
-- The latest loaded etr record of every trust ever loaded: a newer etr file updates names,
-- ICBs and dates; a trust missing from a newer file keeps its last known record.
with raw_ods as (
    select * from raw.ods_trusts
),

latest as (
    select *,
        row_number() over (partition by org_code order by loaded_at desc, sha256) as recency
    from raw_ods
),

final as (
    select org_code, name, region_code, icb_code, postcode, open_date, close_date, country,
        loaded_at as last_loaded_at
    from latest
    where recency = 1
)

select * from final
