-- public.flags: one row per trust per policy-practice gap flag raised in the benchmark window.
-- Keys: org_code, flag.
-- The flags of marts.policy_practice_gaps (docs/methodology.md, "Policy-practice gap flags")
-- with their evidence written here, at build time, from the trust's public values
-- (public.trust_window, public.aggregates) only: a count reads as published (rounded, or [c]),
-- a rate at its published precision. Evidence that holds no request counts (pledge dates,
-- the reasons a file was rejected) is the mart's.
with gaps as (
    select * from marts.policy_practice_gaps
),

trust as (
    select * from public.trust_window
),

national as (
    select * from public.aggregates
    where scope = 'national' and period = 'window'
),

c as (
    select t.org_code,
        sdc_count_text(t.declined, contains(';' || t.withheld || ';', ';declined;')) as declined,
        sdc_count_text(t.decided, contains(';' || t.withheld || ';', ';decided;')) as decided,
        sdc_count_text(t.escalated, contains(';' || t.withheld || ';', ';escalated;'))
            as escalated,
        sdc_count_text(t.declined_other, contains(';' || t.withheld || ';', ';declined_other;'))
            as declined_other,
        sdc_count_text(t.decided_within_2_months,
            contains(';' || t.withheld || ';', ';decided_within_2_months;')) as within_2_months,
        sdc_count_text(t.clinical_decided,
            contains(';' || t.withheld || ';', ';clinical_decided;')) as clinical_decided,
        sdc_count_text(t.non_clinical_decided,
            contains(';' || t.withheld || ';', ';non_clinical_decided;')) as non_clinical_decided,
        sdc_rate_text(t.approval_rate, t.approval_rate_status) as approval_rate,
        sdc_rate_text(t.decline_rate, t.decline_rate_status) as decline_rate,
        sdc_rate_text(t.timeliness_rate, t.timeliness_rate_status) as timeliness_rate,
        case when t.timeliness_rate_status = 'published' then
            ', 95% CI ' || sdc_rate_text(t.timeliness_rate_lower95, 'published') || ' to '
            || sdc_rate_text(t.timeliness_rate_upper95, 'published') else '' end
            as timeliness_interval,
        sdc_rate_text(t.non_statutory_decline_share, t.non_statutory_decline_share_status)
            as non_statutory_share,
        sdc_rate_text(t.clinical_approval_rate, t.clinical_approval_rate_status)
            as clinical_rate,
        sdc_rate_text(t.non_clinical_approval_rate, t.non_clinical_approval_rate_status)
            as non_clinical_rate,
        coalesce(format('{:.1f}', t.requests_per_100_staff), '[c]') as per_100,
        concat_ws('; ',
            case when t.q4d_pct_satisfied is not null then format('Q4d {:.1f} vs peer median {:.1f}',
                t.q4d_pct_satisfied, t.q4d_pct_satisfied_peer_median) end,
            case when t.q6d_pct_agree is not null then format('Q6d {:.1f} vs peer median {:.1f}',
                t.q6d_pct_agree, t.q6d_pct_agree_peer_median) end,
            case when t.we_work_flexibly_score is not null then
                format('We work flexibly {:.1f} vs peer median {:.1f}',
                    t.we_work_flexibly_score, t.we_work_flexibly_score_peer_median) end
        ) as voice
    from trust as t
),

final as (
    select g.org_code, g.name, g.region_code, g.flag, g.rule, g.threshold, g.severity,
        case g.flag
            when 'decline_rate_high_outlier' then
                'decline rate ' || c.decline_rate || ' (' || c.declined || ' of ' || c.decided
                || ' decided); national ' || sdc_rate_text(n.decline_rate, n.decline_rate_status)
            when 'non_statutory_declines' then
                c.declined_other || ' of ' || c.declined || ' declines ('
                || c.non_statutory_share || ') on other grounds'
            when 'declines_without_escalation' then
                c.declined || ' declined, ' || c.escalated || ' escalated'
            when 'decisions_outside_two_months' then
                c.within_2_months || ' of ' || c.decided || ' decisions within two months ('
                || c.timeliness_rate || c.timeliness_interval || ')'
            when 'clinical_approval_gap' then
                'clinical ' || c.clinical_rate || ' of ' || c.clinical_decided
                || ' decided, non-clinical ' || c.non_clinical_rate || ' of '
                || c.non_clinical_decided
            when 'voice_below_peers' then
                'approval rate ' || c.approval_rate || ' (national '
                || sdc_rate_text(n.approval_rate, n.approval_rate_status) || '); ' || c.voice
            when 'low_uptake_low_voice' then
                c.per_100 || ' requests per 100 staff a year; ' || c.voice
            else g.evidence
        end as evidence,
        g.window_start, g.window_end
    from gaps as g
    left join c on c.org_code = g.org_code
    left join national as n on true
    left join trust as t on t.org_code = g.org_code
    -- A flag that would itself say a withheld count is at least 1 is not published
    -- (docs/methodology.md, "Disclosure control"): non-statutory declines where declined_other
    -- is withheld, declines without escalation where declined is withheld.
    where not (g.flag = 'non_statutory_declines'
            and contains(';' || coalesce(t.withheld, '') || ';', ';declined_other;'))
        and not (g.flag = 'declines_without_escalation'
            and contains(';' || coalesce(t.withheld, '') || ';', ';declined;'))
)

select * from final
