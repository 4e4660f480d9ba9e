-- public.funnels: one row per funnel plot measure (approval_rate, decline_rate). Keys: measure.
-- What the funnel plots compare each trust with (docs/methodology.md, "Funnel plots"): the
-- national rate as published (public.aggregates: pooled, from the published national counts),
-- the overdispersion factor phi and random-effects variance tau2 of marts.trust_benchmark
-- (rounded), the limits used (arcsine, widened by tau2, when phi > 1; else Wilson) and how
-- many trusts have a published rate.
with benchmark as (
    select * from marts.trust_benchmark
),

national as (
    select * from public.aggregates
    where scope = 'national' and period = 'window'
),

trusts as (
    select count(*) filter (where approval_rate_status = 'published') as approval_trusts,
        count(*) filter (where decline_rate_status = 'published') as decline_trusts
    from public.trust_window
),

params as (
    select 'approval_rate' as measure, max(approval_rate_phi) as phi,
        max(approval_rate_tau2) as tau2
    from benchmark
    union all
    select 'decline_rate' as measure, max(decline_rate_phi) as phi,
        max(decline_rate_tau2) as tau2
    from benchmark
),

final as (
    select p.measure,
        case p.measure when 'approval_rate' then n.approval_rate else n.decline_rate end
            as target,
        round(p.phi, 2) as phi,
        round(p.tau2, 6) as tau2,
        case when p.phi > 1 and p.tau2 > 0 then 'arcsine' else 'wilson' end as method,
        case p.measure when 'approval_rate' then t.approval_trusts else t.decline_trusts end
            as trusts
    from params as p
    left join national as n on true
    cross join trusts as t
)

select * from final
