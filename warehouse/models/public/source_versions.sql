-- public.source_versions: one row per source file behind the numbers. Keys: source, url.
-- The latest loaded version of each reference file (audit.reference_loads), the latest pledge
-- feed load (audit.pledge_loads) and a summary of the accepted trust files
-- (audit.publication_files), for the extracts' notes.
with reference_loads as (
    select * from audit.reference_loads
),

pledge_loads as (
    select * from audit.pledge_loads
),

publication_files as (
    select * from audit.publication_files
),

reference as (
    select source, url, sha256, fetched_at
    from reference_loads
    where status = 'loaded'
    qualify row_number() over (partition by source, url order by loaded_at desc) = 1
),

pledge as (
    select 'pledge_signups' as source, url, cast(null as varchar) as sha256, fetched_at
    from pledge_loads
    where status = 'loaded'
    qualify row_number() over (order by loaded_at desc) = 1
),

publications as (
    select 'publications' as source, count(*) || ' accepted trust files' as url,
        cast(null as varchar) as sha256, max(fetched_at) as fetched_at
    from publication_files
    where status = 'accepted'
    having count(*) > 0
),

final as (
    select * from reference
    union all by name
    select * from pledge
    union all by name
    select * from publications
)

select * from final
