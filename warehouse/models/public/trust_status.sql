-- public.trust_status: one row per trust in the benchmark population. Keys: org_code.
-- Whether the trust's data is current, from marts.publication_status: its last attempt and what
-- became of it, the reasons a file was rejected (validation rules and row numbers, no request
-- counts) and where its validation report is kept.
with status as (
    select * from marts.publication_status
),

population as (
    select org_code from marts.trust_benchmark
),

final as (
    select s.org_code, s.last_accepted_at, s.latest_period_end, s.last_attempt_at,
        s.last_attempt_status, s.last_fetch_status, s.last_attempt_reasons, s.last_attempt_url,
        s.last_report_path, s.stale
    from status as s
    inner join population as p on p.org_code = s.org_code
)

select * from final
