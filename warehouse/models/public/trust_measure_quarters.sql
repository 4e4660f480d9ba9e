-- public.trust_measure_quarters: one row per trust per calendar quarter per measure.
-- Keys: org_code, quarter_start, measure.
-- The quarterly trend of each rate on a trust's page (docs/methodology.md, "Disclosure
-- control"), worked out ONLY from the published counts of public.trust_quarters with the
-- disclosure-control macros of warehouse/schema.sql, so it tells nothing the quarterly counts do
-- not: the rate to 0.1 point and its 95% Wilson interval widened over every count the rounding
-- allows (rounded outwards); status published | too_few (published denominator under
-- {{ min_denominator }}) | withheld (numerator withheld). The approval, decline, timeliness and
-- escalation rates are public.trust_quarters' own (same status, same value); the
-- non-statutory decline share is declined_other over declined as published.
with quarters as (
    select * from public.trust_quarters
),

measures as (
    select * from (values
        (1, 'approval_rate', 'approved', 'decided'),
        (2, 'decline_rate', 'declined', 'decided'),
        (3, 'escalation_rate', 'escalated', 'not_agreed_first_stage'),
        (4, 'timeliness_rate', 'decided_within_2_months', 'decided'),
        (5, 'non_statutory_decline_share', 'declined_other', 'declined')
    ) as t(measure_order, measure, numerator_column, denominator_column)
),

long as (
    select q.org_code, q.name, q.region_code, q.icb_code, q.peer_group, q.quarter,
        q.quarter_start, q.quarter_end, q.data_as_of, m.measure_order, m.measure,
        m.numerator_column, m.denominator_column,
        case m.measure
            when 'approval_rate' then q.approved
            when 'decline_rate' then q.declined
            when 'escalation_rate' then q.escalated
            when 'timeliness_rate' then q.decided_within_2_months
            when 'non_statutory_decline_share' then q.declined_other
        end as numerator,
        case m.measure
            when 'escalation_rate' then q.not_agreed_first_stage
            when 'non_statutory_decline_share' then q.declined
            else q.decided
        end as denominator,
        case m.measure
            when 'approval_rate' then q.approval_rate_status
            when 'decline_rate' then q.decline_rate_status
            when 'escalation_rate' then q.escalation_rate_status
            when 'timeliness_rate' then q.timeliness_rate_status
            -- from the published figures alone: a withheld declined makes the share withheld
            when 'non_statutory_decline_share' then sdc_rate_status(q.declined_other, q.declined,
                case when q.declined is not null then q.declined
                    when contains(';' || q.withheld || ';', ';declined;')
                    then {{ min_denominator }} end,
                {{ min_denominator }})
        end as status
    from quarters as q
    cross join measures as m
),

final as (
    select org_code, name, region_code, icb_code, peer_group, quarter, quarter_start,
        quarter_end, data_as_of, measure_order, measure, numerator_column, denominator_column,
        case when status = 'withheld' then null else numerator end as numerator,
        denominator,
        sdc_rate(numerator / nullif(denominator, 0), status, 'nearest') as rate,
        sdc_rate(greatest(wilson_lower(sdc_low(numerator, {{ small_max }}, {{ round_to }}),
            sdc_high(denominator, {{ round_to }}), {{ z95 }}), 0), status, 'down') as rate_lower95,
        sdc_rate(least(wilson_upper(least(sdc_high(numerator, {{ round_to }}),
            sdc_low(denominator, {{ small_max }}, {{ round_to }})),
            sdc_low(denominator, {{ small_max }}, {{ round_to }}), {{ z95 }}), 1), status, 'up')
            as rate_upper95,
        coalesce(status, 'no_data') as status
    from long
)

select * from final
