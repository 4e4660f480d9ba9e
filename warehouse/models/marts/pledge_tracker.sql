-- marts.pledge_tracker: one row per trust in the benchmark population. Keys: org_code.
-- The "Get Ahead on Flex" pledge of each trust and the evidence for its three commitments
-- (docs/pledge-matching.md, "The pledge tracker"):
--   * a trust's pledge is its matched sign-up in staging.pledge_signups; where several sign-ups
--     match one trust, a signed one wins over a withdrawn one, then the earliest signed;
--   * pledged: that sign-up's status is signed; signed_on / withdrawn_on: dates (UTC) it was
--     signed and, when withdrawn, withdrawn;
--   * set a target, evidence: data_published (some accepted data) and data_current (accepted
--     data that is not stale, marts.publication_status), action_plan_url, board_review_date;
--   * train for flex, evidence: managers_trained_pct (0-100, as the trust stated it).
-- Trusts that never signed have pledged = false and null sign-up columns.
with population as (
    select * from intermediate.int_trust_population
),

signups as (
    select * from staging.pledge_signups
    where org_code is not null
),

publication_status as (
    select * from marts.publication_status
),

trust_signup as (
    select *,
        count(*) over (partition by org_code) as matched_signups
    from signups
    qualify row_number() over (
        partition by org_code
        order by (status = 'signed') desc, signed_at, signup_id
    ) = 1
),

final as (
    select
        p.org_code, p.name, p.region_code,
        coalesce(s.status = 'signed', false) as pledged,
        cast(timezone('UTC', s.signed_at) as date) as signed_on,
        cast(timezone('UTC', s.withdrawn_at) as date) as withdrawn_on,
        s.signup_id, coalesce(s.matched_signups, 0) as matched_signups, s.match_method,
        s.commits_lead, s.commits_target, s.commits_train,
        ps.latest_period_end is not null as data_published,
        coalesce(ps.latest_period_end is not null and not ps.stale, false) as data_current,
        ps.latest_period_end, ps.last_accepted_at,
        s.data_url, s.action_plan_url, s.board_review_date, s.managers_trained_pct
    from population as p
    left join trust_signup as s on s.org_code = p.org_code
    left join publication_status as ps on ps.org_code = p.org_code
)

select * from final
