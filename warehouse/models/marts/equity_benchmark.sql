-- marts.equity_benchmark: one row per unit x benchmark window x dimension x group.
-- Keys: org_code, window_start, window_end, dimension, group_value.
-- Every column is defined in docs/methodology.md ("Equity", "The columns of the equity marts").
-- level: 'trust' (org_code = its ODS code), 'peer_group' (org_code = the peer group's name) or
-- 'england' (org_code = 'ENGLAND'); the aggregates add up the trusts that give the dimension.
-- dimension: sex, ethnic_group, ethnic_group_detailed (where files give the 2021 Census
-- groups), disability, age_band, pay_band, staff_group, flex_type.
-- approval_rate = approved / decided with 95% and 99.8% Wilson intervals;
-- relative_likelihood = reference group's approval rate / this group's (WRES convention: above
-- 1, the reference group is more likely to be approved), 95% interval by the log method, given
-- only where both groups have at least {{ min_decided }} decided requests (comparable).
with groups as (
    select * from intermediate.int_equity_groups
),

comparisons as (
    select * from intermediate.int_equity_comparisons
),

benchmark_window as (
    select * from intermediate.int_benchmark_window
),

shares as (
    select g.*,
        g.requests_received / nullif(
            sum(g.requests_received) over (partition by g.level, g.org_code, g.dimension), 0
        ) as share_of_requests,
        g.approved / nullif(
            sum(g.approved) over (partition by g.level, g.org_code, g.dimension), 0
        ) as share_of_approvals
    from groups as g
),

final as (
    select
        s.level, s.org_code, w.window_start, w.window_end, s.dimension, s.group_value,
        s.name, s.peer_group, s.region_code, s.icb_code, s.trusts, s.periods,
        s.requests_received, s.decided, s.approved, s.declined,
        s.approved_in_full, s.approved_with_changes, s.withdrawn, s.pending,
        s.share_of_requests, s.share_of_approvals,
        s.approved / nullif(s.decided, 0) as approval_rate,
        wilson_lower(s.approved, s.decided, {{ z95 }}) as approval_rate_lower95,
        wilson_upper(s.approved, s.decided, {{ z95 }}) as approval_rate_upper95,
        wilson_lower(s.approved, s.decided, {{ z998 }}) as approval_rate_lower998,
        wilson_upper(s.approved, s.decided, {{ z998 }}) as approval_rate_upper998,
        c.reference_group, c.is_reference, c.reference_decided, c.reference_approved,
        c.comparable, c.not_compared_reason,
        c.relative_likelihood, c.relative_likelihood_lower95, c.relative_likelihood_upper95,
        c.tested as gap_tested, c.p_value as gap_p_value, c.q_value as gap_q_value,
        c.flagged as gap_flagged
    from shares as s
    cross join benchmark_window as w
    left join comparisons as c
        on c.level = s.level and c.org_code = s.org_code and c.dimension = s.dimension
        and c.group_value = s.group_value
)

select * from final
