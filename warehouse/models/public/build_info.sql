-- public.build_info: exactly one row: the build every public output is from. Keys: as_of.
-- The as-of date and benchmark window (intermediate.int_benchmark_window) and the disclosure
-- control applied (docs/methodology.md, "Disclosure control"): counts from 1 to small_max
-- withheld, others rounded to the nearest round_to, rates only from min_denominator.
with benchmark_window as (
    select * from intermediate.int_benchmark_window
),

final as (
    select as_of, window_start, window_end,
        {{ small_max }} as small_max,
        {{ round_to }} as round_to,
        {{ min_denominator }} as min_denominator
    from benchmark_window
)

select * from final
