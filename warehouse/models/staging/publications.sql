-- staging.publications: one row per org_code x period (start, end) x staff_group.
-- Keys: org_code, period_start, period_end, staff_group.
-- The accepted rows of the newest accepted file that covers each (trust, period): trusts
-- republish corrected history, and the latest accepted version of a period wins. Every
-- version stays in raw.publication_rows and the landing zone.
with publication_rows as (
    select * from raw.publication_rows
),

versions as (
    select org_code, period_start, period_end, file_sha256, max(fetched_at) as fetched_at,
        count(*) > count(distinct staff_group) as repeated
    from publication_rows
    group by all
),

newest as (
    select *,
        row_number() over (
            partition by org_code, period_start, period_end
            order by fetched_at desc, file_sha256
        ) as recency
    from versions
),

newest_rows as (
    select r.*, n.repeated
    from publication_rows as r
    inner join newest as n
        on n.recency = 1
        and r.org_code = n.org_code
        and r.period_start = n.period_start
        and r.period_end = n.period_end
        and r.file_sha256 = n.file_sha256
),

-- A version whose rows give each key once (a file fetched once: the standard's unique-key
-- rule, checked before a row is accepted): its rows as they are. A version giving a key more
-- than once (the same bytes accepted again, from another fetch or another URL): the latest
-- fetch's row of each key.
final as (
    select * exclude (file_sha256, fetched_at, repeated),
        file_sha256 as source_sha256, fetched_at as source_fetched_at
    from newest_rows
    where not repeated
    union all
    select r.* exclude (file_sha256, fetched_at, repeated),
        r.file_sha256 as source_sha256, r.fetched_at as source_fetched_at
    from newest_rows as r
    where r.repeated
    qualify row_number() over (
        partition by r.org_code, r.period_start, r.period_end, r.staff_group
        order by r.fetched_at desc
    ) = 1
)

select * from final
