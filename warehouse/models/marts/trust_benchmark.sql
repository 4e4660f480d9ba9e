-- marts.trust_benchmark: one row per trust in the benchmark population per benchmark window.
-- Keys: org_code, window_start, window_end.
-- Every column is defined in docs/methodology.md ("The columns of marts.trust_benchmark").
-- Counts and staff voice: intermediate.int_trust_window. Computed measures (by the build, in
-- Python, transforms/benchmark.py, in the same transaction): intermediate.int_trust_measures:
--   approval_rate   = (approved_in_full + approved_with_changes) / decided,
--                     decided = approved_in_full + approved_with_changes + declined
--   decline_rate    = declined / decided
--   escalation_rate = escalated / greatest(escalated, declined), the requests not agreed at
--                     the first stage                                    (assumption A3)
--   appeal_rate     = appeals / declined;  appeals_upheld_rate = appeals_upheld / appeals
--   timeliness_rate = decided_within_2_months / decided
--   non_statutory_decline_share = declined_other / declined; decline_share_<reason>
--   requests_per_100_staff = requests_received / headcount * 100, annualised to 12 months
--   clinical_approval_rate, non_clinical_approval_rate (from the staff groups)
-- each proportion with 95% and 99.8% Wilson intervals (_lower95, _upper95, _lower998,
-- _upper998); funnel positions of approval and decline rates against the national pooled rate
-- (_funnel, and _funnel_adjusted for overdispersion, with _phi, _phi_p_value, _tau2,
-- _funnel_z, _funnel_p_value); national and peer rank and quartile of the approval rate
-- (1 = highest; none under {{ min_decided }} decided requests, ties share a rank) with a 95%
-- rank interval (national_rank_lower95, national_rank_upper95, peer_rank_lower95,
-- peer_rank_upper95) and whether it supports the quartile (_quartile_supported); staff voice
-- against the peers' median; the clinical vs non-clinical approval gap (tested only with 10+
-- decided in each group); each tested flag's p-value and Benjamini-Hochberg q-value
-- (decline_rate_high_, timeliness_, clinical_gap_, staff_voice_ p_value / q_value).
with trust_window as (
    select * from intermediate.int_trust_window
),

measures as (
    select * from intermediate.int_trust_measures
),

final as (
    select w.*, m.* exclude (org_code)
    from trust_window as w
    left join measures as m on m.org_code = w.org_code
)

select * from final
