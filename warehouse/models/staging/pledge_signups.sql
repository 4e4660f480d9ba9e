-- staging.pledge_signups: one row per pledge sign-up (signup_id), its current state (rule P4).
-- Keys: signup_id.
-- org_code is the ODS trust the sign-up was matched to (rule P3: override, ODS code, or one
-- normalised current/former name), null while it is on the review list (audit.pledge_review);
-- match_method says how. Earlier states stay queryable in raw.pledge_signups_history
-- (valid_from <= D < valid_to). No signatory names or e-mail addresses (rule P1).
with history as (
    select * from raw.pledge_signups_history
),

current_state as (
    select * from history
    where is_current
),

final as (
    select
        signup_id, organisation_name, ods_code_given, org_code, match_method, status,
        signed_at, withdrawn_at, updated_at, signatory_role,
        commits_lead, commits_target, commits_train,
        action_plan_url, data_url, board_review_date, managers_trained_pct,
        valid_from as state_loaded_at
    from current_state
)

select * from final
