-- staging.workforce: one row per org_code x period x staff_group.
-- Keys: org_code, period, staff_group.
-- Staff in post (headcount, FTE) at the end of each period, from the latest load of that period.
with raw_workforce as (
    select * from raw.workforce
),

latest_load as (
    select period, max(loaded_at) as loaded_at from raw_workforce group by period
),

final as (
    select w.org_code, w.period, w.period_end, w.staff_group, w.org_name, w.headcount, w.fte,
        w.benchmark_group, w.cluster_group, w.region_code, w.ics_code,
        w.ics_name
    from raw_workforce as w
    inner join latest_load using (period, loaded_at)
)

select * from final
