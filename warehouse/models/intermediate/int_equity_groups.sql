-- intermediate.int_equity_groups: one row per level x org_code x dimension x group_value in
-- the benchmark window. Keys: level, org_code, dimension, group_value.
-- Rules (methodology, "Equity"): the counts by group of staging.publication_breakdowns, for
-- trusts of the benchmark population, counted as a trust's window is counted (only periods
-- lying wholly inside the window; a trust that gives the same months at two granularities is
-- counted once, at the one covering most of the window). level is 'trust' (org_code = the
-- ODS code), 'peer_group' (org_code = the peer group's name; the trusts of that peer group
-- that give the dimension, added up) or 'england' (org_code = 'ENGLAND'; every trust that
-- gives the dimension). approved = approved_in_full + approved_with_changes; decided =
-- approved + declined.
with breakdowns as (
    select * from staging.publication_breakdowns
),

benchmark_window as (
    select * from intermediate.int_benchmark_window
),

trust_window as (
    select * from intermediate.int_trust_window
),

in_window as (
    select b.*, datediff('month', b.period_start, b.period_end + 1) as months
    from breakdowns as b, benchmark_window as w
    where b.period_start >= w.window_start and b.period_end <= w.window_end
),

granularity as (
    select org_code, months,
        row_number() over (
            partition by org_code
            order by sum(period_end - period_start + 1) desc,
                case months when 3 then 0 when 1 then 1 else 2 end
        ) as pick
    from (select distinct org_code, period_start, period_end, months from in_window)
    group by org_code, months
),

trust_groups as (
    select 'trust' as level, i.org_code, i.dimension, i.group_value,
        count(distinct i.period_start) as periods,
        min(i.period_start) as first_period_start, max(i.period_end) as last_period_end,
        sum(i.requests_received) as requests_received,
        sum(i.approved_in_full) as approved_in_full,
        sum(i.approved_with_changes) as approved_with_changes,
        sum(i.declined) as declined, sum(i.withdrawn) as withdrawn, sum(i.pending) as pending
    from in_window as i
    inner join granularity as g
        on g.org_code = i.org_code and g.months = i.months and g.pick = 1
    group by i.org_code, i.dimension, i.group_value
),

trusts as (
    select g.*, t.name, t.peer_group, t.region_code, t.icb_code
    from trust_groups as g
    inner join trust_window as t on t.org_code = g.org_code
),

peer_groups as (
    select 'peer_group' as level, peer_group as org_code, dimension, group_value,
        count(distinct org_code) as trusts,
        sum(requests_received) as requests_received, sum(approved_in_full) as approved_in_full,
        sum(approved_with_changes) as approved_with_changes, sum(declined) as declined,
        sum(withdrawn) as withdrawn, sum(pending) as pending,
        peer_group
    from trusts
    where peer_group is not null
    group by peer_group, dimension, group_value
),

england as (
    select 'england' as level, 'ENGLAND' as org_code, dimension, group_value,
        count(distinct org_code) as trusts,
        sum(requests_received) as requests_received, sum(approved_in_full) as approved_in_full,
        sum(approved_with_changes) as approved_with_changes, sum(declined) as declined,
        sum(withdrawn) as withdrawn, sum(pending) as pending
    from trusts
    group by dimension, group_value
),

all_levels as (
    select *, 1 as trusts from trusts
    union all by name
    select * from peer_groups
    union all by name
    select * from england
),

final as (
    select level, org_code, dimension, group_value, name, peer_group, region_code, icb_code,
        trusts, periods, first_period_start, last_period_end,
        requests_received, approved_in_full, approved_with_changes, declined, withdrawn,
        pending,
        approved_count(approved_in_full, approved_with_changes) as approved,
        decided_count(approved_in_full, approved_with_changes, declined) as decided
    from all_levels
)

select * from final
