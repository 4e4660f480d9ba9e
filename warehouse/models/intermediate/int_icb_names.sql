-- intermediate.int_icb_names: one row per integrated care board (ICB) code that NHS Workforce
-- Statistics names. Keys: icb_code.
-- Rule (methodology, "Regions and ICBs"): an ICB's name is the ICS_NAME of its code in the
-- latest workforce period that names it (staging.workforce holds each period's latest load), so
-- a renamed ICB takes its new name; should one period give a code two names, the first in
-- alphabetical order. Rows loaded before the name was kept (ics_name null) name nothing.
with workforce as (
    select * from staging.workforce
),

named as (
    select ics_code as icb_code, ics_name as icb_name, period_end
    from workforce
    where ics_code is not null and nullif(trim(ics_name), '') is not null
),

final as (
    select icb_code, any_value(icb_name order by icb_name) as icb_name, period_end as named_in
    from named
    group by icb_code, period_end
    qualify row_number() over (partition by icb_code order by period_end desc) = 1
)

select * from final
