-- marts.equity_gaps: one row per trust x dimension x group flagged with a significant approval
-- gap against the dimension's reference group. Keys: org_code, dimension, group_value.
-- Rule (methodology, "Equity gap flag"): protected characteristics only (sex, ethnic group,
-- disability, age band); at least {{ min_decided }} decided requests in the group and in the
-- reference group; Fisher's exact test; flagged where the Benjamini-Hochberg
-- adjusted p-value (q_value) over every test of the build is at most 0.05. evidence says it
-- in words; severity is 'high' where the 99.8% Wilson intervals of the two rates do not
-- overlap, else 'medium'.
with benchmark as (
    select * from marts.equity_benchmark
),

flagged as (
    select g.*,
        r.approval_rate as reference_approval_rate,
        r.approval_rate_lower998 as reference_lower998,
        r.approval_rate_upper998 as reference_upper998
    from benchmark as g
    inner join benchmark as r
        on r.level = g.level and r.org_code = g.org_code and r.dimension = g.dimension
        and r.group_value = g.reference_group
    where g.level = 'trust' and g.gap_flagged
),

final as (
    select org_code, name, peer_group, region_code, window_start, window_end,
        'equity_approval_gap' as flag, dimension, group_value, reference_group,
        case when approval_rate < reference_approval_rate then 'lower than reference'
            else 'higher than reference' end as direction,
        decided, approved, approval_rate, approval_rate_lower95, approval_rate_upper95,
        reference_decided, reference_approved, reference_approval_rate,
        relative_likelihood, relative_likelihood_lower95, relative_likelihood_upper95,
        gap_p_value as p_value, gap_q_value as q_value,
        case when approval_rate_upper998 < reference_lower998
                or approval_rate_lower998 > reference_upper998 then 'high'
            else 'medium' end as severity,
        replace(dimension, '_', ' ') || ' ' || group_value || ': '
            || approved || ' of ' || decided || ' decided requests approved ('
            || round(100 * approval_rate, 1) || '%) against ' || reference_approved || ' of '
            || reference_decided || ' for ' || reference_group || ' ('
            || round(100 * reference_approval_rate, 1) || '%); relative likelihood '
            || round(relative_likelihood, 2) || ' (95% CI ' || round(relative_likelihood_lower95, 2)
            || ' to ' || round(relative_likelihood_upper95, 2) || '), p = '
            || printf('%.2g', gap_p_value) || ', FDR-adjusted q = ' || printf('%.2g', gap_q_value)
            as evidence
    from flagged
)

select * from final
