-- public.peer_voice: one row per peer group with a Staff Survey result. Keys: peer_group.
-- The range and median of each staff voice measure among the trusts of the peer group
-- (docs/methodology.md, "Staff voice"), from marts.trust_benchmark: the survey year the
-- benchmark uses (the latest no later than the window's end), the same for every page.
with benchmark as (
    select * from marts.trust_benchmark
    where peer_group is not null and survey_year is not null
),

final as (
    select peer_group,
        count(*) as trusts,
        max(survey_year) as survey_year,
        min(q4d_pct_satisfied) as q4d_pct_satisfied_min,
        median(q4d_pct_satisfied) as q4d_pct_satisfied_median,
        max(q4d_pct_satisfied) as q4d_pct_satisfied_max,
        min(q6d_pct_agree) as q6d_pct_agree_min,
        median(q6d_pct_agree) as q6d_pct_agree_median,
        max(q6d_pct_agree) as q6d_pct_agree_max,
        min(we_work_flexibly_score) as we_work_flexibly_score_min,
        median(we_work_flexibly_score) as we_work_flexibly_score_median,
        max(we_work_flexibly_score) as we_work_flexibly_score_max
    from benchmark
    group by peer_group
)

select * from final
