-- public.pledge: one row per trust in the benchmark population. Keys: org_code.
-- The "Get Ahead on Flex" pledge and its evidence, from marts.pledge_tracker
-- (docs/pledge-matching.md, "The pledge tracker"); no request counts.
with tracker as (
    select * from marts.pledge_tracker
),

final as (
    select org_code, pledged, signed_on, withdrawn_on, commits_lead, commits_target,
        commits_train, data_published, data_current, action_plan_url, board_review_date,
        managers_trained_pct
    from tracker
)

select * from final
