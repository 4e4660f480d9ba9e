-- staging.staff_survey: one row per org_code per survey_year. Keys: org_code, survey_year.
-- From the latest load of each survey year. Split survey units are already combined into
-- their ODS trust by the parser (weighted by responses); non-trust units are kept, marked.
with raw_survey as (
    select * from raw.staff_survey
),

latest_load as (
    select survey_year, max(loaded_at) as loaded_at from raw_survey group by survey_year
),

final as (
    select s.org_code, s.survey_year, s.org_name, s.q4d_pct_satisfied, s.q6b_pct_agree,
        s.q6c_pct_agree, s.q6d_pct_agree, s.we_work_flexibly_score, s.survey_benchmarking_group,
        s.responses, s.unit_kind, s.is_ods_trust
    from raw_survey as s
    inner join latest_load using (survey_year, loaded_at)
)

select * from final
