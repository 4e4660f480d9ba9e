-- marts.flex_type_mix: one row per unit (trust, peer group, England) x flex type in the
-- benchmark window. Keys: org_code, window_start, window_end, flex_type.
-- Rule (methodology, "Flex-type mix"): what kinds of flexibility are requested and approved,
-- from the request-level files (and breakdown files) that give flex_type: requests_received
-- and approved of each type, share_requested = the type's share of the unit's requests,
-- share_approved = its share of the unit's approvals, and the type's approval rate with its
-- Wilson intervals. level and org_code as in marts.equity_benchmark.
with benchmark as (
    select * from marts.equity_benchmark
),

final as (
    select level, org_code, window_start, window_end, group_value as flex_type, name,
        peer_group, region_code, trusts, requests_received, decided, approved, declined,
        share_of_requests as share_requested, share_of_approvals as share_approved,
        approval_rate, approval_rate_lower95, approval_rate_upper95, approval_rate_lower998,
        approval_rate_upper998, relative_likelihood, relative_likelihood_lower95,
        relative_likelihood_upper95
    from benchmark
    where dimension = 'flex_type'
)

select * from final
