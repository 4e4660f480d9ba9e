-- intermediate.int_trust_peers: one row per org_code with workforce data. Keys: org_code.
-- Rule (methodology, "Peer groups"): the peer group of a trust is its NHS Workforce Statistics
-- BENCHMARK_GROUP in the latest workforce period ending on or before the window end (else the
-- earliest period after it); staff in post = headcount of "All staff groups" in that period.
with workforce as (
    select * from staging.workforce
),

benchmark_window as (
    select * from intermediate.int_benchmark_window
),

all_staff as (
    select w.*,
        row_number() over (
            partition by w.org_code
            order by (w.period_end <= bw.window_end) desc,
                case when w.period_end <= bw.window_end then w.period_end end desc,
                w.period_end asc
        ) as pick
    from workforce as w, benchmark_window as bw
    where lower(w.staff_group) = 'all staff groups'
),

final as (
    select org_code, benchmark_group as peer_group, cluster_group, headcount, fte,
        period as workforce_period, ics_code
    from all_staff
    where pick = 1
)

select * from final
