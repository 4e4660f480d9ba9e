-- marts.publication_status: one row per trust (in the population, or that any file was fetched for).
-- Keys: org_code. For the analysts' weekly chase: the last file accepted, the last attempt and
-- what became of it (last_attempt_status and last_fetch_status: accepted | rejected |
-- fetch_failed, the real verdict on the content last fetched, even when that content was
-- processed in an earlier run or the run that first processed it was interrupted;
-- last_fetch_unchanged: the content was the same as processed before), and whether the
-- trust's data is stale.
-- Rule (methodology, "Stale"): data is stale when the trust's latest accepted period ended more
-- than {{ stale_days }} days before the as-of date, or nothing has ever been accepted.
with files as (
    select * from audit.publication_files
),

population as (
    select * from intermediate.int_trust_population
),

benchmark_window as (
    select * from intermediate.int_benchmark_window
),

publications as (
    select * from staging.publications
),

trusts as (
    select org_code from population
    union
    select distinct org_code from files where org_code is not null
),

-- An "unchanged" fetch means the trust still publishes content processed before: its verdict
-- (accepted or rejected) is that earlier verdict, with its reasons and report.
verdicts as (
    select url, sha256, status, reasons, report_path
    from files
    where status in ('accepted', 'rejected')
    qualify row_number() over (partition by url, sha256 order by fetched_at desc) = 1
),

attempts as (
    select f.org_code, f.fetched_at, f.url, f.status = 'unchanged' as unchanged,
        case when f.status = 'unchanged' then coalesce(v.status, 'unchanged') else f.status end
            as status,
        case when f.status = 'unchanged' then v.reasons else f.reasons end as reasons,
        case when f.status = 'unchanged' then v.report_path else f.report_path end as report_path
    from files as f
    left join verdicts as v on v.url = f.url and v.sha256 = f.sha256
),

last_attempt as (
    select org_code, fetched_at as last_attempt_at, status as last_attempt_status,
        status as last_fetch_status, unchanged as last_fetch_unchanged,
        reasons as last_attempt_reasons,
        url as last_attempt_url, report_path as last_report_path
    from attempts
    qualify row_number() over (partition by org_code order by fetched_at desc, status) = 1
),

last_accepted as (
    select org_code, max(fetched_at) as last_accepted_at
    from files where status = 'accepted'
    group by org_code
),

latest_period as (
    select org_code, max(period_end) as latest_period_end
    from publications group by org_code
),

final as (
    select t.org_code, pop.name, pop.org_code is not null as in_population,
        a.last_accepted_at, lp.latest_period_end, la.last_attempt_at, la.last_attempt_status,
        la.last_fetch_status, la.last_fetch_unchanged, la.last_attempt_reasons, la.last_attempt_url, la.last_report_path,
        (lp.latest_period_end is null
            or lp.latest_period_end < w.as_of - {{ stale_days }}) as stale
    from trusts as t
    cross join benchmark_window as w
    left join population as pop on pop.org_code = t.org_code
    left join last_attempt as la on la.org_code = t.org_code
    left join last_accepted as a on a.org_code = t.org_code
    left join latest_period as lp on lp.org_code = t.org_code
)

select * from final
