-- intermediate.int_trust_quarters: one row per trust per calendar quarter with accepted data,
-- for the eight quarters ending at the benchmark window's end. Keys: org_code, quarter_start.
-- Rules (methodology, "Trends"): a quarter's counts are the trust's quarterly period where it
-- published one, else the sum of its monthly periods in that quarter (months_covered says how
-- many); financial-year periods cannot be split into quarters and are left out. Every count
-- column of the summary form is kept; headcount is the trust's current staff in post.
-- Read by marts.trust_trends and by the trends and year-on-year step of the build.
with trust_periods as (
    select * from intermediate.int_trust_periods
),

benchmark_window as (
    select * from intermediate.int_benchmark_window
),

peers as (
    select * from intermediate.int_trust_peers
),

population as (
    select * from intermediate.int_trust_population
),

in_quarter as (
    select t.*, date_trunc('quarter', t.period_start) as quarter_start
    from trust_periods as t, benchmark_window as w
    where t.months <= 3
        and date_trunc('quarter', t.period_start) = date_trunc('quarter', t.period_end)
        and t.period_end <= w.window_end
        and t.period_start > w.window_end - interval 24 month
),

preferred as (
    select *
    from in_quarter
    qualify months = max(months) over (partition by org_code, quarter_start)
),

quarters as (
    select org_code, cast(quarter_start as date) as quarter_start,
        sum(months) as months_covered,
        sum(columns(* exclude (org_code, period_start, period_end, months, quarter_start)))
    from preferred
    group by org_code, quarter_start
),

final as (
    select q.org_code,
        year(q.quarter_start) || '-Q' || quarter(q.quarter_start) as quarter,
        q.quarter_start,
        cast(q.quarter_start + interval 3 month - interval 1 day as date) as quarter_end,
        q.* exclude (org_code, quarter_start),
        approved_count(q.approved_in_full, q.approved_with_changes) as approved,
        decided_count(q.approved_in_full, q.approved_with_changes, q.declined) as decided,
        p.region_code, p.icb_code, pe.peer_group, pe.headcount,
        q.quarter_start >= w.window_start as in_window
    from quarters as q
    inner join population as p on p.org_code = q.org_code
    left join peers as pe on pe.org_code = q.org_code
    cross join benchmark_window as w
)

select * from final
