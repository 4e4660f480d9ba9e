-- public.organisations: one row per organisation of the ODS list. Keys: org_code.
-- Who a code is (the ODS list is itself public): its name, region, when it closed, and whether
-- it is in the benchmark, so an output can say why a code has no benchmark row (closed, not an
-- English trust).
with ods_trusts as (
    select * from staging.ods_trusts
),

benchmark as (
    select org_code from marts.trust_benchmark
),

final as (
    select o.org_code, o.name, o.region_code, o.open_date, o.close_date,
        b.org_code is not null as in_benchmark
    from ods_trusts as o
    left join benchmark as b on b.org_code = o.org_code
)

select * from final
