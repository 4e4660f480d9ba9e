-- intermediate.int_trust_population: one row per trust in the benchmark population.
-- Keys: org_code.
-- Rule (methodology, "Population"): English NHS trusts (ODS national grouping Y56-Y63) open at
-- any time in the window. A trust that opened or closed inside the window is included and
-- marked part_window; Welsh trusts (W...) and trusts closed before the window are excluded.
with ods_trusts as (
    select * from staging.ods_trusts
),

benchmark_window as (
    select * from intermediate.int_benchmark_window
),

final as (
    select
        o.org_code, o.name, o.region_code, o.icb_code, o.open_date, o.close_date,
        (coalesce(o.open_date > w.window_start, false)
            or coalesce(o.close_date < w.window_end, false)) as part_window
    from ods_trusts as o, benchmark_window as w
    where o.region_code like 'Y%'
        and (o.open_date is null or o.open_date <= w.window_end)
        and (o.close_date is null or o.close_date >= w.window_start)
)

select * from final
