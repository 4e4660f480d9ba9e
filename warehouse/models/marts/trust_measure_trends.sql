-- marts.trust_measure_trends: one row per unit x calendar quarter x measure, for the eight
-- quarters ending at the benchmark window's end. Keys: level, org_code, quarter_start, measure.
-- Rule (methodology, "Trends and year on year"): every measure published for a trust (the
-- proportions of marts.trust_benchmark, the nine decline-reason shares, and uptake) each
-- quarter, with numerator, denominator, rate and its 95% and 99.8% intervals (Wilson; exact
-- Poisson for requests_per_100_staff, whose denominator is the staff in post). level 'trust'
-- (org_code = ODS code), 'peer_group' (org_code = peer group name), 'england' ('ENGLAND'):
-- the aggregates add up the trusts with data that quarter. Quarters: intermediate.int_trust_quarters.
with trends as (
    select * from intermediate.int_measure_trends
),

final as (
    select level, org_code, quarter, cast(quarter_start as date) as quarter_start,
        cast(quarter_end as date) as quarter_end, measure, trusts, months_covered,
        numerator, denominator, rate, rate_lower95, rate_upper95, rate_lower998, rate_upper998
    from trends
)

select * from final
