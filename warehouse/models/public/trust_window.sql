-- public.trust_window: one row per trust in the benchmark population for the benchmark window.
-- Keys: org_code.
-- What the site, the extracts and the trust card publish about a trust's window, from
-- marts.trust_benchmark, with the disclosure control of docs/methodology.md ("Disclosure
-- control") applied once for everything published (the small-number rule NHS England applies
-- to Hospital Episode Statistics, with controlled totals):
--   * every request count: 0 shown, 1 to {{ small_max }} withheld (null, named in withheld), any
--     other count rounded to the nearest {{ round_to }}; a total whose parts are all published is
--     their sum (approved, declined from its reasons, decided, requests_received, non-clinical);
--   * every rate is worked out from the published counts, so it tells nothing they do not:
--     <rate>_status is published, too_few (published denominator under {{ min_denominator }})
--     or withheld (numerator withheld); to 0.1 point;
--     its 95% interval is the Wilson interval widened over every count the rounding allows
--     (rounded outwards), so it contains the interval of the true counts;
--   * requests_per_100_staff from the published requests_received;
--   * ranks and quartiles of the published approval rate among the trusts whose approval rate
--     is published (1 = highest; ties share a rank), so ranks run 1..national_ranked with no
--     gap; rank_status: ranked | too_few | withheld.
-- Staff Survey results and headcount are published statistics and are shown as they are.
with benchmark as (
    select * from marts.trust_benchmark
),

m as (
    select * from benchmark
),

-- The window as the sum of its published quarters (public.trust_quarters) where the quarters
-- tile it and all are published: the window then tells nothing its quarters do not.
-- Appeals and appeals upheld are published all or none over the window's quarters
-- (marts.withheld_cells, reason 'quarters'): where they are withheld, none is published to
-- difference against the window, whose count is rounded from its own value; it is withheld
-- with them only where its range would narrow a withheld quarter's 0 to {{ small_max }}
-- (sdc_total_keeps), the quarters' range taken from 0 (nothing published bounds them from
-- below) up to, for each quarter above {{ small_max }}, the true count it is never more than
-- (appeals: declined; appeals upheld: appeals): it can reach that with everything else as it
-- is, so no reader can bound it lower.
quarters_published as (
    select * from public.trust_quarters
),

trends as (
    select * from marts.trust_trends
),

window_quarters as (
    select q.org_code, count(*) as quarters,
        sum(q.requests_received) as requests_received, count(q.requests_received) as n_requests_received, sum(t.requests_received) as true_requests_received, sum(coalesce(sdc_low(q.requests_received, {{ small_max }}, {{ round_to }}), 0)) as requests_received_low, sum(coalesce(sdc_high(q.requests_received, {{ round_to }}), 0)) as requests_received_high,
        case when count(*) filter (where q.requests_received is null and t.requests_received > {{ small_max }}) = 0 then count(*) filter (where q.requests_received is null) else 0 end as requests_received_withheld,
        sum(q.approved) as approved, count(q.approved) as n_approved, sum(t.approved) as true_approved, sum(coalesce(sdc_low(q.approved, {{ small_max }}, {{ round_to }}), 0)) as approved_low, sum(coalesce(sdc_high(q.approved, {{ round_to }}), 0)) as approved_high,
        case when count(*) filter (where q.approved is null and t.approved > {{ small_max }}) = 0 then count(*) filter (where q.approved is null) else 0 end as approved_withheld,
        sum(q.declined) as declined, count(q.declined) as n_declined, sum(t.declined) as true_declined, sum(coalesce(sdc_low(q.declined, {{ small_max }}, {{ round_to }}), 0)) as declined_low, sum(coalesce(sdc_high(q.declined, {{ round_to }}), 0)) as declined_high,
        case when count(*) filter (where q.declined is null and t.declined > {{ small_max }}) = 0 then count(*) filter (where q.declined is null) else 0 end as declined_withheld,
        sum(q.decided) as decided, count(q.decided) as n_decided, sum(t.decided) as true_decided, sum(coalesce(sdc_low(q.decided, {{ small_max }}, {{ round_to }}), 0)) as decided_low, sum(coalesce(sdc_high(q.decided, {{ round_to }}), 0)) as decided_high,
        case when count(*) filter (where q.decided is null and t.decided > {{ small_max }}) = 0 then count(*) filter (where q.decided is null) else 0 end as decided_withheld,
        sum(q.escalated) as escalated, count(q.escalated) as n_escalated, sum(t.escalated) as true_escalated, sum(coalesce(sdc_low(q.escalated, {{ small_max }}, {{ round_to }}), 0)) as escalated_low, sum(coalesce(sdc_high(q.escalated, {{ round_to }}), 0)) as escalated_high,
        case when count(*) filter (where q.escalated is null and t.escalated > {{ small_max }}) = 0 then count(*) filter (where q.escalated is null) else 0 end as escalated_withheld,
        sum(q.appeals) as appeals, count(q.appeals) as n_appeals, sum(t.appeals) as true_appeals, 0 as appeals_low, sum(case when q.appeals is null and t.appeals > {{ small_max }} then t.declined else 0 end) as appeals_high,
        count(*) filter (where q.appeals is null and t.appeals <= {{ small_max }}) as appeals_withheld,
        sum(q.appeals_upheld) as appeals_upheld, count(q.appeals_upheld) as n_appeals_upheld, sum(t.appeals_upheld) as true_appeals_upheld, 0 as appeals_upheld_low, sum(case when q.appeals_upheld is null and t.appeals_upheld > {{ small_max }} then t.appeals else 0 end) as appeals_upheld_high,
        count(*) filter (where q.appeals_upheld is null and t.appeals_upheld <= {{ small_max }}) as appeals_upheld_withheld,
        sum(q.decided_within_2_months) as decided_within_2_months, count(q.decided_within_2_months) as n_decided_within_2_months, sum(t.decided_within_2_months) as true_decided_within_2_months, sum(coalesce(sdc_low(q.decided_within_2_months, {{ small_max }}, {{ round_to }}), 0)) as decided_within_2_months_low, sum(coalesce(sdc_high(q.decided_within_2_months, {{ round_to }}), 0)) as decided_within_2_months_high,
        case when count(*) filter (where q.decided_within_2_months is null and t.decided_within_2_months > {{ small_max }}) = 0 then count(*) filter (where q.decided_within_2_months is null) else 0 end as decided_within_2_months_withheld,
        sum(q.declined_other) as declined_other, count(q.declined_other) as n_declined_other, sum(t.declined_other) as true_declined_other, sum(coalesce(sdc_low(q.declined_other, {{ small_max }}, {{ round_to }}), 0)) as declined_other_low, sum(coalesce(sdc_high(q.declined_other, {{ round_to }}), 0)) as declined_other_high,
        case when count(*) filter (where q.declined_other is null and t.declined_other > {{ small_max }}) = 0 then count(*) filter (where q.declined_other is null) else 0 end as declined_other_withheld
    from quarters_published as q
    inner join trends as t on t.org_code = q.org_code and t.quarter_start = q.quarter_start
    inner join m on m.org_code = q.org_code
    where q.quarter_start >= m.window_start and q.quarter_end <= m.window_end
    group by q.org_code
),

by_quarters as (
    select m.org_code,
        case when w.n_requests_received = w.quarters and w.true_requests_received = m.requests_received then w.requests_received end as requests_received,
        case when w.n_approved = w.quarters and w.true_approved = m.approved then w.approved end as approved,
        case when w.n_declined = w.quarters and w.true_declined = m.declined then w.declined end as declined,
        case when w.n_decided = w.quarters and w.true_decided = m.decided then w.decided end as decided,
        case when w.n_escalated = w.quarters and w.true_escalated = m.escalated then w.escalated end as escalated,
        case when w.n_appeals = w.quarters and w.true_appeals = m.appeals then w.appeals end as appeals,
        case when w.n_appeals_upheld = w.quarters and w.true_appeals_upheld = m.appeals_upheld then w.appeals_upheld end as appeals_upheld,
        case when w.n_decided_within_2_months = w.quarters and w.true_decided_within_2_months = m.decided_within_2_months then w.decided_within_2_months end as decided_within_2_months,
        case when w.n_declined_other = w.quarters and w.true_declined_other = m.declined_other then w.declined_other end as declined_other
    from m
    left join window_quarters as w on w.org_code = m.org_code
),

-- Counts withheld beyond the small-number rule (marts.withheld_cells): zeros withheld with the
-- small counts they share a relation with, and appeals and appeals upheld of the quarters.
hidden as (
    select org_code, period_start, list(count_name) as names
    from marts.withheld_cells
    where period = 'window'
    group by org_code, period_start
),

rounded_alone as (
    select m.org_code,
        sdc_count_kept(m.requests_received, list_contains(h.names, 'requests_received'), {{ small_max }}, {{ round_to }}) as requests_received,
        sdc_count_kept(m.approved_in_full, list_contains(h.names, 'approved_in_full'), {{ small_max }}, {{ round_to }}) as approved_in_full,
        sdc_count_kept(m.approved_with_changes, list_contains(h.names, 'approved_with_changes'), {{ small_max }}, {{ round_to }}) as approved_with_changes,
        sdc_count_kept(m.declined, list_contains(h.names, 'declined'), {{ small_max }}, {{ round_to }}) as declined,
        sdc_count_kept(m.withdrawn, list_contains(h.names, 'withdrawn'), {{ small_max }}, {{ round_to }}) as withdrawn,
        sdc_count_kept(m.pending, list_contains(h.names, 'pending'), {{ small_max }}, {{ round_to }}) as pending,
        sdc_count_kept(m.approved, list_contains(h.names, 'approved'), {{ small_max }}, {{ round_to }}) as approved,
        sdc_count_kept(m.decided, list_contains(h.names, 'decided'), {{ small_max }}, {{ round_to }}) as decided,
        sdc_count_kept(m.escalated, list_contains(h.names, 'escalated'), {{ small_max }}, {{ round_to }}) as escalated,
        sdc_count_kept(m.appeals, list_contains(h.names, 'appeals'), {{ small_max }}, {{ round_to }}) as appeals,
        sdc_count_kept(m.appeals_upheld, list_contains(h.names, 'appeals_upheld'), {{ small_max }}, {{ round_to }}) as appeals_upheld,
        sdc_count_kept(m.decided_within_2_months, list_contains(h.names, 'decided_within_2_months'), {{ small_max }}, {{ round_to }}) as decided_within_2_months,
        sdc_count_kept(m.declined_costs, list_contains(h.names, 'declined_costs'), {{ small_max }}, {{ round_to }}) as declined_costs,
        sdc_count_kept(m.declined_demand, list_contains(h.names, 'declined_demand'), {{ small_max }}, {{ round_to }}) as declined_demand,
        sdc_count_kept(m.declined_reorganise, list_contains(h.names, 'declined_reorganise'), {{ small_max }}, {{ round_to }}) as declined_reorganise,
        sdc_count_kept(m.declined_recruit, list_contains(h.names, 'declined_recruit'), {{ small_max }}, {{ round_to }}) as declined_recruit,
        sdc_count_kept(m.declined_quality, list_contains(h.names, 'declined_quality'), {{ small_max }}, {{ round_to }}) as declined_quality,
        sdc_count_kept(m.declined_performance, list_contains(h.names, 'declined_performance'), {{ small_max }}, {{ round_to }}) as declined_performance,
        sdc_count_kept(m.declined_insufficient_work, list_contains(h.names, 'declined_insufficient_work'), {{ small_max }}, {{ round_to }}) as declined_insufficient_work,
        sdc_count_kept(m.declined_structural_changes, list_contains(h.names, 'declined_structural_changes'), {{ small_max }}, {{ round_to }}) as declined_structural_changes,
        sdc_count_kept(m.declined_other, list_contains(h.names, 'declined_other'), {{ small_max }}, {{ round_to }}) as declined_other,
        sdc_count_kept(m.clinical_approved, list_contains(h.names, 'clinical_approved'), {{ small_max }}, {{ round_to }}) as clinical_approved,
        sdc_count_kept(m.clinical_decided, list_contains(h.names, 'clinical_decided'), {{ small_max }}, {{ round_to }}) as clinical_decided,
        sdc_count_kept(m.non_clinical_approved, list_contains(h.names, 'non_clinical_approved'), {{ small_max }}, {{ round_to }}) as non_clinical_approved,
        sdc_count_kept(m.non_clinical_decided, list_contains(h.names, 'non_clinical_decided'), {{ small_max }}, {{ round_to }}) as non_clinical_decided
    from m
    left join hidden as h on h.org_code = m.org_code and cast(h.period_start as date) = m.window_start
),

-- A window count whose rounding would narrow its withheld quarters (each free from 0 to
-- {{ small_max }}) is withheld with them (sdc_total_keeps: secondary suppression). A quarter
-- withheld as secondary (above {{ small_max }}) leaves the window free: it bounds nothing.
rounded as (
    select r.* replace (
        case when sdc_total_keeps(r.requests_received, wq.requests_received_low, wq.requests_received_high, wq.requests_received_withheld,
            {{ small_max }}, {{ round_to }}) then r.requests_received end as requests_received,
        case when sdc_total_keeps(r.approved, wq.approved_low, wq.approved_high, wq.approved_withheld,
            {{ small_max }}, {{ round_to }}) then r.approved end as approved,
        case when sdc_total_keeps(r.declined, wq.declined_low, wq.declined_high, wq.declined_withheld,
            {{ small_max }}, {{ round_to }}) then r.declined end as declined,
        case when sdc_total_keeps(r.decided, wq.decided_low, wq.decided_high, wq.decided_withheld,
            {{ small_max }}, {{ round_to }}) then r.decided end as decided,
        case when sdc_total_keeps(r.escalated, wq.escalated_low, wq.escalated_high, wq.escalated_withheld,
            {{ small_max }}, {{ round_to }}) then coalesce(bq.escalated, r.escalated) end as escalated,
        case when sdc_total_keeps(r.appeals, wq.appeals_low, wq.appeals_high, wq.appeals_withheld,
            {{ small_max }}, {{ round_to }}) then coalesce(bq.appeals, r.appeals) end as appeals,
        case when sdc_total_keeps(r.appeals_upheld, wq.appeals_upheld_low, wq.appeals_upheld_high, wq.appeals_upheld_withheld,
            {{ small_max }}, {{ round_to }}) then coalesce(bq.appeals_upheld, r.appeals_upheld) end as appeals_upheld,
        case when sdc_total_keeps(r.decided_within_2_months, wq.decided_within_2_months_low, wq.decided_within_2_months_high, wq.decided_within_2_months_withheld,
            {{ small_max }}, {{ round_to }}) then coalesce(bq.decided_within_2_months, r.decided_within_2_months) end as decided_within_2_months,
        case when sdc_total_keeps(r.declined_other, wq.declined_other_low, wq.declined_other_high, wq.declined_other_withheld,
            {{ small_max }}, {{ round_to }}) then coalesce(bq.declined_other, r.declined_other) end as declined_other
    )
    from rounded_alone as r
    inner join by_quarters as bq on bq.org_code = r.org_code
    left join window_quarters as wq on wq.org_code = r.org_code
),

-- Totals whose parts are all published are the sum of the published parts (controlled
-- rounding), so the published figures add up and the total tells nothing its parts do not:
-- first as the sum of the window's quarters, else of the row's own parts.
added_1 as (
    select r.* replace (
        case when bq.declined is not null then bq.declined
            when r.declined_costs is not null and r.declined_demand is not null and r.declined_reorganise is not null and r.declined_recruit is not null and r.declined_quality is not null and r.declined_performance is not null and r.declined_insufficient_work is not null and r.declined_structural_changes is not null and r.declined_other is not null
                and m.declined = m.declined_costs + m.declined_demand + m.declined_reorganise + m.declined_recruit + m.declined_quality + m.declined_performance + m.declined_insufficient_work + m.declined_structural_changes + m.declined_other
            then r.declined_costs + r.declined_demand + r.declined_reorganise + r.declined_recruit + r.declined_quality + r.declined_performance + r.declined_insufficient_work + r.declined_structural_changes + r.declined_other else r.declined end as declined,
        case when bq.approved is not null then bq.approved
            when r.approved_in_full is not null and r.approved_with_changes is not null
            then r.approved_in_full + r.approved_with_changes else r.approved end as approved
    )
    from rounded as r
    inner join m on m.org_code = r.org_code
    inner join by_quarters as bq on bq.org_code = r.org_code
),

added_2 as (
    select a.* replace (
        case when a.approved is not null and a.declined is not null
            then a.approved + a.declined else a.decided end as decided,
        case when bq.requests_received is not null then bq.requests_received
            when a.approved_in_full is not null and a.approved_with_changes is not null
                and a.declined is not null and a.withdrawn is not null and a.pending is not null
                and m.requests_received = m.approved_in_full + m.approved_with_changes
                    + m.declined + m.withdrawn + m.pending
            then a.approved_in_full + a.approved_with_changes + a.declined + a.withdrawn
                + a.pending
            else a.requests_received end as requests_received
    )
    from added_1 as a
    inner join m on m.org_code = a.org_code
    inner join by_quarters as bq on bq.org_code = a.org_code
),

-- Non-clinical = all - clinical where the staff groups cover every request and the
-- difference is above {{ small_max }} (a published 0 is always a true 0).
p as (
    select a.* replace (
        case when a.decided is not null and a.clinical_decided is not null
                and m.decided = m.clinical_decided + m.non_clinical_decided
                and a.decided - a.clinical_decided > {{ small_max }}
            then a.decided - a.clinical_decided else a.non_clinical_decided end
            as non_clinical_decided,
        case when a.approved is not null and a.clinical_approved is not null
                and m.approved = m.clinical_approved + m.non_clinical_approved
                and a.approved - a.clinical_approved > {{ small_max }}
            then a.approved - a.clinical_approved else a.non_clinical_approved end
            as non_clinical_approved
    )
    from added_2 as a
    inner join m on m.org_code = a.org_code
),

s as (
    select m.org_code,
        sdc_rate_status(p.approved, p.decided, m.decided, {{ min_denominator }}) as approval_rate_status,
        sdc_rate_status(p.declined, p.decided, m.decided, {{ min_denominator }}) as decline_rate_status,
        sdc_rate_status(p.decided_within_2_months, p.decided, m.decided, {{ min_denominator }}) as timeliness_rate_status,
        sdc_rate_status(p.escalated, not_agreed_first_stage(p.escalated, p.declined), not_agreed_first_stage(m.escalated, m.declined), {{ min_denominator }}) as escalation_rate_status,
        sdc_rate_status(p.appeals, p.declined, m.declined, {{ min_denominator }}) as appeal_rate_status,
        sdc_rate_status(p.appeals_upheld, p.appeals, m.appeals, {{ min_denominator }}) as appeals_upheld_rate_status,
        sdc_rate_status(p.declined_other, p.declined, m.declined, {{ min_denominator }}) as non_statutory_decline_share_status,
        sdc_rate_status(p.clinical_approved, p.clinical_decided, m.clinical_decided, {{ min_denominator }}) as clinical_approval_rate_status,
        sdc_rate_status(p.non_clinical_approved, p.non_clinical_decided, m.non_clinical_decided, {{ min_denominator }}) as non_clinical_approval_rate_status
    from m
    inner join p on p.org_code = m.org_code
),

ranked as (
    select p.org_code,
        rank() over (order by p.approved / p.decided desc) as national_rank,
        count(*) over () as national_ranked,
        case when m.peer_group is not null
            then rank() over (partition by m.peer_group order by p.approved / p.decided desc)
        end as peer_rank,
        case when m.peer_group is not null
            then count(*) over (partition by m.peer_group) end as peer_ranked
    from p
    inner join s on s.org_code = p.org_code
    inner join m on m.org_code = p.org_code
    where s.approval_rate_status = 'published'
),

-- The range each published count of a rate gives its true value, once a count (sdc_lower95).
ranges as (
    select p.*,
        sdc_low(p.approved, {{ small_max }}, {{ round_to }}) as approved_low, sdc_high(p.approved, {{ round_to }}) as approved_high,
        sdc_low(p.declined, {{ small_max }}, {{ round_to }}) as declined_low, sdc_high(p.declined, {{ round_to }}) as declined_high,
        sdc_low(p.decided, {{ small_max }}, {{ round_to }}) as decided_low, sdc_high(p.decided, {{ round_to }}) as decided_high,
        sdc_low(p.decided_within_2_months, {{ small_max }}, {{ round_to }}) as decided_within_2_months_low, sdc_high(p.decided_within_2_months, {{ round_to }}) as decided_within_2_months_high,
        sdc_low(p.escalated, {{ small_max }}, {{ round_to }}) as escalated_low, sdc_high(p.escalated, {{ round_to }}) as escalated_high,
        sdc_low(p.appeals, {{ small_max }}, {{ round_to }}) as appeals_low, sdc_high(p.appeals, {{ round_to }}) as appeals_high,
        sdc_low(p.appeals_upheld, {{ small_max }}, {{ round_to }}) as appeals_upheld_low, sdc_high(p.appeals_upheld, {{ round_to }}) as appeals_upheld_high,
        sdc_low(p.declined_other, {{ small_max }}, {{ round_to }}) as declined_other_low, sdc_high(p.declined_other, {{ round_to }}) as declined_other_high
    from p
),

-- Each rate's 95% interval from the published counts, before sdc_rate publishes it.
limits as (
    select r.*,
        sdc_lower95(r.approved_low, r.decided_high, {{ z95 }}) as approval_rate_lower95,
        sdc_upper95(r.approved_high, r.decided_low, {{ z95 }}) as approval_rate_upper95,
        sdc_lower95(r.declined_low, r.decided_high, {{ z95 }}) as decline_rate_lower95,
        sdc_upper95(r.declined_high, r.decided_low, {{ z95 }}) as decline_rate_upper95,
        sdc_lower95(r.decided_within_2_months_low, r.decided_high, {{ z95 }}) as timeliness_rate_lower95,
        sdc_upper95(r.decided_within_2_months_high, r.decided_low, {{ z95 }}) as timeliness_rate_upper95,
        sdc_lower95(r.escalated_low, not_agreed_first_stage(r.escalated_high, r.declined_high), {{ z95 }})
            as escalation_rate_lower95,
        sdc_upper95(r.escalated_high, not_agreed_first_stage(r.escalated_low, r.declined_low), {{ z95 }}) as escalation_rate_upper95,
        sdc_lower95(r.appeals_low, r.declined_high, {{ z95 }}) as appeal_rate_lower95,
        sdc_upper95(r.appeals_high, r.declined_low, {{ z95 }}) as appeal_rate_upper95,
        sdc_lower95(r.appeals_upheld_low, r.appeals_high, {{ z95 }}) as appeals_upheld_rate_lower95,
        sdc_upper95(r.appeals_upheld_high, r.appeals_low, {{ z95 }}) as appeals_upheld_rate_upper95,
        sdc_lower95(r.declined_other_low, r.declined_high, {{ z95 }}) as non_statutory_decline_share_lower95,
        sdc_upper95(r.declined_other_high, r.declined_low, {{ z95 }}) as non_statutory_decline_share_upper95
    from ranges as r
),

final as (
    select
        m.org_code, m.name, m.region_code, m.icb_code, m.peer_group, m.cluster_group,
        m.window_start, m.window_end, m.as_of as data_as_of, m.has_data, m.part_window,
        m.months_covered, cast(round(m.headcount) as bigint) as headcount,
        p.requests_received,
        p.approved_in_full,
        p.approved_with_changes,
        p.declined,
        p.withdrawn,
        p.pending,
        p.approved,
        p.decided,
        p.escalated,
        p.appeals,
        p.appeals_upheld,
        p.decided_within_2_months,
        p.declined_costs,
        p.declined_demand,
        p.declined_reorganise,
        p.declined_recruit,
        p.declined_quality,
        p.declined_performance,
        p.declined_insufficient_work,
        p.declined_structural_changes,
        p.declined_other,
        p.clinical_approved,
        p.clinical_decided,
        p.non_clinical_approved,
        p.non_clinical_decided,
        sdc_rate(p.approved / nullif(p.decided, 0), s.approval_rate_status, 'nearest') as approval_rate,
        sdc_rate(p.approval_rate_lower95, s.approval_rate_status, 'down') as approval_rate_lower95,
        sdc_rate(p.approval_rate_upper95, s.approval_rate_status, 'up') as approval_rate_upper95,
        sdc_rate(p.declined / nullif(p.decided, 0), s.decline_rate_status, 'nearest') as decline_rate,
        sdc_rate(p.decline_rate_lower95, s.decline_rate_status, 'down') as decline_rate_lower95,
        sdc_rate(p.decline_rate_upper95, s.decline_rate_status, 'up') as decline_rate_upper95,
        sdc_rate(p.decided_within_2_months / nullif(p.decided, 0), s.timeliness_rate_status, 'nearest') as timeliness_rate,
        sdc_rate(p.timeliness_rate_lower95, s.timeliness_rate_status, 'down') as timeliness_rate_lower95,
        sdc_rate(p.timeliness_rate_upper95, s.timeliness_rate_status, 'up') as timeliness_rate_upper95,
        not_agreed_first_stage(p.escalated, p.declined) as not_agreed_first_stage,
        sdc_rate(p.escalated / nullif(not_agreed_first_stage(p.escalated, p.declined), 0), s.escalation_rate_status, 'nearest') as escalation_rate,
        sdc_rate(p.escalation_rate_lower95, s.escalation_rate_status, 'down') as escalation_rate_lower95,
        sdc_rate(p.escalation_rate_upper95, s.escalation_rate_status, 'up') as escalation_rate_upper95,
        sdc_rate(p.appeals / nullif(p.declined, 0), s.appeal_rate_status, 'nearest') as appeal_rate,
        sdc_rate(p.appeal_rate_lower95, s.appeal_rate_status, 'down') as appeal_rate_lower95,
        sdc_rate(p.appeal_rate_upper95, s.appeal_rate_status, 'up') as appeal_rate_upper95,
        sdc_rate(p.appeals_upheld / nullif(p.appeals, 0), s.appeals_upheld_rate_status, 'nearest') as appeals_upheld_rate,
        sdc_rate(p.appeals_upheld_rate_lower95, s.appeals_upheld_rate_status, 'down') as appeals_upheld_rate_lower95,
        sdc_rate(p.appeals_upheld_rate_upper95, s.appeals_upheld_rate_status, 'up') as appeals_upheld_rate_upper95,
        sdc_rate(p.declined_other / nullif(p.declined, 0), s.non_statutory_decline_share_status, 'nearest') as non_statutory_decline_share,
        sdc_rate(p.non_statutory_decline_share_lower95, s.non_statutory_decline_share_status, 'down') as non_statutory_decline_share_lower95,
        sdc_rate(p.non_statutory_decline_share_upper95, s.non_statutory_decline_share_status, 'up') as non_statutory_decline_share_upper95,
        sdc_rate(p.clinical_approved / nullif(p.clinical_decided, 0), s.clinical_approval_rate_status, 'nearest') as clinical_approval_rate,
        sdc_rate(p.non_clinical_approved / nullif(p.non_clinical_decided, 0), s.non_clinical_approval_rate_status, 'nearest') as non_clinical_approval_rate,
        s.* exclude (org_code),
        round(p.requests_received / nullif(m.headcount, 0) * 100 * 12
            / nullif(m.months_covered, 0), 1) as requests_per_100_staff,
        r.national_rank, r.national_ranked,
        cast(1 + floor(4 * (r.national_rank - 1) / r.national_ranked) as bigint)
            as national_quartile,
        r.peer_rank, r.peer_ranked,
        cast(1 + floor(4 * (r.peer_rank - 1) / r.peer_ranked) as bigint) as peer_quartile,
        case when s.approval_rate_status = 'published' then 'ranked'
            else s.approval_rate_status end as rank_status,
        m.survey_year, m.q4d_pct_satisfied, m.q4d_pct_satisfied_peer_median, m.q6d_pct_agree,
        m.q6d_pct_agree_peer_median, m.we_work_flexibly_score,
        m.we_work_flexibly_score_peer_median, m.staff_voice_below_peers,
        concat_ws(';',
            case when p.requests_received is null and m.requests_received is not null then 'requests_received' end,
            case when p.approved_in_full is null and m.approved_in_full is not null then 'approved_in_full' end,
            case when p.approved_with_changes is null and m.approved_with_changes is not null then 'approved_with_changes' end,
            case when p.declined is null and m.declined is not null then 'declined' end,
            case when p.withdrawn is null and m.withdrawn is not null then 'withdrawn' end,
            case when p.pending is null and m.pending is not null then 'pending' end,
            case when p.approved is null and m.approved is not null then 'approved' end,
            case when p.decided is null and m.decided is not null then 'decided' end,
            case when p.escalated is null and m.escalated is not null then 'escalated' end,
            case when p.appeals is null and m.appeals is not null then 'appeals' end,
            case when p.appeals_upheld is null and m.appeals_upheld is not null then 'appeals_upheld' end,
            case when p.decided_within_2_months is null and m.decided_within_2_months is not null then 'decided_within_2_months' end,
            case when p.declined_costs is null and m.declined_costs is not null then 'declined_costs' end,
            case when p.declined_demand is null and m.declined_demand is not null then 'declined_demand' end,
            case when p.declined_reorganise is null and m.declined_reorganise is not null then 'declined_reorganise' end,
            case when p.declined_recruit is null and m.declined_recruit is not null then 'declined_recruit' end,
            case when p.declined_quality is null and m.declined_quality is not null then 'declined_quality' end,
            case when p.declined_performance is null and m.declined_performance is not null then 'declined_performance' end,
            case when p.declined_insufficient_work is null and m.declined_insufficient_work is not null then 'declined_insufficient_work' end,
            case when p.declined_structural_changes is null and m.declined_structural_changes is not null then 'declined_structural_changes' end,
            case when p.declined_other is null and m.declined_other is not null then 'declined_other' end,
            case when p.clinical_approved is null and m.clinical_approved is not null then 'clinical_approved' end,
            case when p.clinical_decided is null and m.clinical_decided is not null then 'clinical_decided' end,
            case when p.non_clinical_approved is null and m.non_clinical_approved is not null then 'non_clinical_approved' end,
            case when p.non_clinical_decided is null and m.non_clinical_decided is not null then 'non_clinical_decided' end,
            case when s.approval_rate_status = 'withheld' then 'approval_rate' end,
            case when s.decline_rate_status = 'withheld' then 'decline_rate' end,
            case when s.timeliness_rate_status = 'withheld' then 'timeliness_rate' end,
            case when s.escalation_rate_status = 'withheld' then 'escalation_rate' end,
            case when s.appeal_rate_status = 'withheld' then 'appeal_rate' end,
            case when s.appeals_upheld_rate_status = 'withheld' then 'appeals_upheld_rate' end,
            case when s.non_statutory_decline_share_status = 'withheld' then 'non_statutory_decline_share' end,
            case when s.clinical_approval_rate_status = 'withheld' then 'clinical_approval_rate' end,
            case when s.non_clinical_approval_rate_status = 'withheld' then 'non_clinical_approval_rate' end
        ) as withheld,
        concat_ws(';',
            case when s.approval_rate_status = 'too_few' then 'approval_rate' end,
            case when s.decline_rate_status = 'too_few' then 'decline_rate' end,
            case when s.timeliness_rate_status = 'too_few' then 'timeliness_rate' end,
            case when s.escalation_rate_status = 'too_few' then 'escalation_rate' end,
            case when s.appeal_rate_status = 'too_few' then 'appeal_rate' end,
            case when s.appeals_upheld_rate_status = 'too_few' then 'appeals_upheld_rate' end,
            case when s.non_statutory_decline_share_status = 'too_few' then 'non_statutory_decline_share' end,
            case when s.clinical_approval_rate_status = 'too_few' then 'clinical_approval_rate' end,
            case when s.non_clinical_approval_rate_status = 'too_few' then 'non_clinical_approval_rate' end
        ) as too_few

    from m
    inner join limits as p on p.org_code = m.org_code
    inner join s on s.org_code = m.org_code
    left join ranked as r on r.org_code = m.org_code
)

select * from final
