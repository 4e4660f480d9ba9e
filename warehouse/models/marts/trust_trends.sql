-- marts.trust_trends: one row per trust per calendar quarter with accepted data, for the eight
-- quarters ending at the benchmark window's end. Keys: org_code, quarter_start.
-- Rules (methodology, "Trends"): the quarters of intermediate.int_trust_quarters. Rates as in
-- marts.trust_benchmark, with 95% Wilson intervals; national_approval_rate is the pooled rate
-- of all trusts with data that quarter; requests_per_100_staff is annualised (x 12 /
-- months_covered) over the trust's current staff in post (headcount, as in
-- marts.trust_benchmark).
with quarters as (
    select * from intermediate.int_trust_quarters
),

rates as (
    select q.*,
        q.approved / nullif(q.decided, 0) as approval_rate,
        wilson_lower(q.approved, q.decided, {{ z95 }}) as approval_rate_lower95,
        wilson_upper(q.approved, q.decided, {{ z95 }}) as approval_rate_upper95,
        q.declined / nullif(q.decided, 0) as decline_rate,
        q.escalated / nullif(not_agreed_first_stage(q.escalated, q.declined), 0) as escalation_rate,
        q.decided_within_2_months / nullif(q.decided, 0) as timeliness_rate,
        q.requests_received / nullif(q.headcount, 0) * 100 * 12 / nullif(q.months_covered, 0)
            as requests_per_100_staff,
        sum(q.approved) over (partition by q.quarter_start)
            / nullif(sum(q.decided) over (partition by q.quarter_start), 0)
            as national_approval_rate
    from quarters as q
),

final as (
    select org_code, quarter, quarter_start, quarter_end, months_covered, requests_received,
        approved, declined, decided, escalated, appeals, appeals_upheld, decided_within_2_months,
        declined_other, headcount, approval_rate, approval_rate_lower95, approval_rate_upper95, decline_rate,
        escalation_rate, timeliness_rate, requests_per_100_staff, national_approval_rate
    from rates
)

select * from final
