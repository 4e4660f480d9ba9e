-- marts.trust_measure_yoy: one row per unit x measure. Keys: level, org_code, measure.
-- Rule (methodology, "Trends and year on year"): the latest 12 months (the benchmark window's
-- quarters) against the 12 months before, from the quarters of intermediate.int_trust_quarters.
-- For a proportion, change = latest rate - previous rate with Newcombe's hybrid score 95%
-- interval; for requests_per_100_staff, change = latest requests / previous requests (same
-- staff in post) with the interval from the Wilson interval of latest / (latest + previous).
-- change_significant: the interval excludes no change. level and org_code as in
-- marts.trust_measure_trends.
with yoy as (
    select * from intermediate.int_measure_yoy
),

final as (
    select level, org_code, measure,
        cast(latest_start as date) as latest_start, cast(latest_end as date) as latest_end,
        cast(previous_start as date) as previous_start,
        cast(previous_end as date) as previous_end,
        latest_months_covered, previous_months_covered,
        latest_numerator, latest_denominator, latest_rate,
        previous_numerator, previous_denominator, previous_rate,
        change_kind, change, change_lower95, change_upper95,
        cast(change_significant as boolean) as change_significant
    from yoy
)

select * from final
