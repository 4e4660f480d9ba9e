-- public.trust_measure_quarters: one row per trust per calendar quarter per measure.
-- Keys: org_code, quarter_start, measure.
-- The quarterly trend of each rate on a trust's page (docs/methodology.md, "Disclosure
-- control" and "Trends"), worked out ONLY from the published counts of public.trust_quarters
-- with the disclosure-control macros of warehouse/schema.sql, so it tells nothing the quarterly
-- counts do not: status published | too_few (published denominator under
-- {{ min_denominator }}) | withheld (numerator withheld) | no_data, measure_order the order of
-- the trust page. The seven proportions: the rate to 0.1 point and its 95% Wilson interval
-- widened over every count the rounding allows (rounded outwards to 1 point); the approval,
-- decline, timeliness, escalation, appeal and appeals-upheld rates are public.trust_quarters'
-- own (same status, same value); the non-statutory decline share is declined_other over
-- declined as published. Uptake (requests_per_100_staff): public.trust_quarters' own, requests
-- received per 100 staff (denominator: the published headcount) a year (x 12 /
-- months_covered), to 0.1, with the exact (Garwood) 95% Poisson interval of the count widened
-- over its rounding (public.poisson_limits at the lowest and highest count the published one
-- allows), scaled like the rate and rounded outwards to 0.1.
with quarters as (
    select * from public.trust_quarters
),

poisson as (
    select * from public.poisson_limits
),

measures as (
    select * from (values
        (1, 'approval_rate', 'approved', 'decided'),
        (2, 'decline_rate', 'declined', 'decided'),
        (3, 'timeliness_rate', 'decided_within_2_months', 'decided'),
        (4, 'escalation_rate', 'escalated', 'not_agreed_first_stage'),
        (5, 'appeal_rate', 'appeals', 'declined'),
        (6, 'appeals_upheld_rate', 'appeals_upheld', 'appeals'),
        (7, 'non_statutory_decline_share', 'declined_other', 'declined'),
        (8, 'requests_per_100_staff', 'requests_received', 'headcount')
    ) as t(measure_order, measure, numerator_column, denominator_column)
),

long as (
    select q.org_code, q.name, q.region_code, q.icb_code, q.peer_group, q.quarter,
        q.quarter_start, q.quarter_end, q.data_as_of, q.months_covered, m.measure_order,
        m.measure, m.numerator_column, m.denominator_column,
        case m.measure
            when 'approval_rate' then q.approved
            when 'decline_rate' then q.declined
            when 'escalation_rate' then q.escalated
            when 'timeliness_rate' then q.decided_within_2_months
            when 'appeal_rate' then q.appeals
            when 'appeals_upheld_rate' then q.appeals_upheld
            when 'non_statutory_decline_share' then q.declined_other
            when 'requests_per_100_staff' then q.requests_received
        end as numerator,
        case m.measure
            when 'escalation_rate' then q.not_agreed_first_stage
            when 'appeal_rate' then q.declined
            when 'appeals_upheld_rate' then q.appeals
            when 'non_statutory_decline_share' then q.declined
            when 'requests_per_100_staff' then q.headcount
            else q.decided
        end as denominator,
        case m.measure
            when 'approval_rate' then q.approval_rate_status
            when 'decline_rate' then q.decline_rate_status
            when 'escalation_rate' then q.escalation_rate_status
            when 'timeliness_rate' then q.timeliness_rate_status
            when 'appeal_rate' then q.appeal_rate_status
            when 'appeals_upheld_rate' then q.appeals_upheld_rate_status
            when 'requests_per_100_staff' then q.requests_per_100_staff_status
            -- from the published figures alone: a withheld declined makes the share withheld
            when 'non_statutory_decline_share' then sdc_rate_status(q.declined_other, q.declined,
                case when q.declined is not null then q.declined
                    when contains(';' || q.withheld || ';', ';declined;')
                    then {{ min_denominator }} end,
                {{ min_denominator }})
        end as status,
        q.requests_per_100_staff
    from quarters as q
    cross join measures as m
),

-- Uptake: rate = count x scale; its interval the Garwood limits of the lowest and highest
-- count the published one allows, times the same scale.
uptake as (
    select l.org_code, l.quarter_start, l.measure,
        floor(lo.lower95 * 100 * 12 / (l.denominator * l.months_covered) * 10) / 10
            as rate_lower95,
        ceil(hi.upper95 * 100 * 12 / (l.denominator * l.months_covered) * 10) / 10
            as rate_upper95
    from long as l
    left join poisson as lo on lo.events = sdc_low(l.numerator, {{ small_max }}, {{ round_to }})
    left join poisson as hi on hi.events = sdc_high(l.numerator, {{ round_to }})
    where l.measure = 'requests_per_100_staff' and l.status = 'published'
),

-- The range each published count of a rate gives its true value, once a count (sdc_lower95).
ranges as (
    select l.*,
        sdc_low(l.numerator, {{ small_max }}, {{ round_to }}) as numerator_low,
        sdc_high(l.numerator, {{ round_to }}) as numerator_high,
        sdc_low(l.denominator, {{ small_max }}, {{ round_to }}) as denominator_low,
        sdc_high(l.denominator, {{ round_to }}) as denominator_high
    from long as l
),

-- Each rate's 95% interval from the published counts, before sdc_rate publishes it (uptake's
-- is uptake's own).
limits as (
    select r.*,
        case when r.measure <> 'requests_per_100_staff' then
            sdc_lower95(r.numerator_low, r.denominator_high, {{ z95 }})
        end as lower95,
        case when r.measure <> 'requests_per_100_staff' then
            sdc_upper95(r.numerator_high, r.denominator_low, {{ z95 }})
        end as upper95
    from ranges as r
),

final as (
    select l.org_code, l.name, l.region_code, l.icb_code, l.peer_group, l.quarter,
        l.quarter_start, l.quarter_end, l.data_as_of, l.measure_order, l.measure,
        l.numerator_column, l.denominator_column,
        case when l.status = 'withheld' then null else l.numerator end as numerator,
        l.denominator,
        case when l.measure = 'requests_per_100_staff' then
                case when l.status = 'published' then l.requests_per_100_staff end
            else sdc_rate(l.numerator / nullif(l.denominator, 0), l.status, 'nearest')
        end as rate,
        case when l.measure = 'requests_per_100_staff' then u.rate_lower95
            else sdc_rate(l.lower95, l.status, 'down')
        end as rate_lower95,
        case when l.measure = 'requests_per_100_staff' then u.rate_upper95
            else sdc_rate(l.upper95, l.status, 'up')
        end as rate_upper95,
        coalesce(l.status, 'no_data') as status
    from limits as l
    left join uptake as u
        on u.org_code = l.org_code and u.quarter_start = l.quarter_start and u.measure = l.measure
)

select * from final
