-- staging.ods_trust_names: one row per ODS code per name it has been published under.
-- Keys: org_code, name.
-- Former names are kept so pledge sign-ups that use an old name still match.
with raw_ods as (
    select * from raw.ods_trusts
),

final as (
    select org_code, name, min(loaded_at) as first_seen, max(loaded_at) as last_seen
    from raw_ods
    group by org_code, name
)

select * from final
