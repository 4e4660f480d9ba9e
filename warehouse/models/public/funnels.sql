-- public.funnels: one row per funnel plot measure (approval_rate, decline_rate). Keys: measure.
-- What the funnel plots compare each trust with (docs/methodology.md, "Funnel plots"), from
-- marts.trust_benchmark: the national (pooled) rate rounded as any published rate of its
-- denominator (sdc_rate_step of the national decided requests), the overdispersion factor phi
-- and random-effects variance tau2, the limits used (arcsine, widened by tau2, when phi > 1;
-- else Wilson) and how many trusts the model is fitted on.
with benchmark as (
    select * from marts.trust_benchmark
),

national as (
    select sum(decided) as decided,
        count(*) filter (where decided > 0) as trusts
    from benchmark
),

params as (
    select 'approval_rate' as measure, max(national_approval_rate) as target,
        max(approval_rate_phi) as phi, max(approval_rate_tau2) as tau2
    from benchmark
    union all
    select 'decline_rate' as measure, max(national_decline_rate) as target,
        max(decline_rate_phi) as phi, max(decline_rate_tau2) as tau2
    from benchmark
),

final as (
    select p.measure,
        sdc_rate(p.target, 'published', n.decided, {{ round_to }}, 'nearest') as target,
        round(p.phi, 2) as phi,
        round(p.tau2, 6) as tau2,
        case when p.phi > 1 and p.tau2 > 0 then 'arcsine' else 'wilson' end as method,
        n.trusts
    from params as p
    cross join national as n
)

select * from final
