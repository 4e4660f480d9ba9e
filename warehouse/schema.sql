-- The loaded tables of the warehouse: raw (append-only, every accepted load, with the file it
-- came from) and audit (what was fetched and what became of it). Everything else is a model
-- rebuilt from these by SQL files under models/.
create schema if not exists raw;
create schema if not exists audit;
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists marts;
create schema if not exists public;

-- One row per reference file load attempt (ODS, Staff Survey, Workforce).
create table if not exists audit.reference_loads (
    source varchar, url varchar, sha256 varchar, fetched_at timestamptz, loaded_at timestamptz,
    status varchar,          -- loaded | unchanged | fetch_failed | rejected
    rows integer, reasons varchar
);

-- Rows of reference files that were not loaded: one row per file load per row that broke a
-- rule (docs/pipeline.md, "Reference files: row by row"). Keys: source, sha256, row_number.
-- record_key names the record (ODS code; code/year; code/period/staff group); reasons lists
-- every rule the row broke. The other rows of the file loaded.
create table if not exists audit.reference_quarantine (
    source varchar, url varchar, sha256 varchar, fetched_at timestamptz, loaded_at timestamptz,
    row_number integer, record_key varchar, reasons varchar
);

-- One row per fetched publication file (docs/pipeline.md).
create table if not exists audit.publication_files (
    org_code varchar, url varchar, sha256 varchar, fetched_at timestamptz,
    status varchar,          -- accepted | rejected | unchanged | fetch_failed
    reasons varchar, form varchar, rows integer, http_status integer, report_path varchar,
    run_id varchar
);

-- Accepted publication rows in the summary form, every version, with the file they came from.
create table if not exists raw.publication_rows (
    file_sha256 varchar, fetched_at timestamptz, org_code varchar,
    period_start date, period_end date, staff_group varchar,
    requests_received bigint, approved_in_full bigint, approved_with_changes bigint,
    declined bigint, withdrawn bigint, pending bigint, escalated bigint, appeals bigint,
    appeals_upheld bigint, decided_within_2_months bigint,
    declined_costs bigint, declined_demand bigint, declined_reorganise bigint,
    declined_recruit bigint, declined_quality bigint, declined_performance bigint,
    declined_insufficient_work bigint, declined_structural_changes bigint, declined_other bigint
);

-- Accepted counts by equity dimension and group, every version, with the file they came from
-- (docs/methodology.md, "Equity"): request-level files aggregated with their dimensions
-- (transforms.publications.aggregate_request_breakdown), and files in the breakdown form of
-- the standard (docs/flex-data-standard.md, "Breakdown form"). One row per file x org_code x
-- period x dimension x group_value.
create table if not exists raw.publication_breakdown_rows (
    file_sha256 varchar, fetched_at timestamptz, org_code varchar,
    period_start date, period_end date, dimension varchar, group_value varchar,
    requests_received bigint, approved_in_full bigint, approved_with_changes bigint,
    declined bigint, withdrawn bigint, pending bigint
);

create table if not exists raw.ods_trusts (
    sha256 varchar, loaded_at timestamptz, org_code varchar, name varchar, region_code varchar,
    icb_code varchar, postcode varchar, open_date date, close_date date, country varchar
);

create table if not exists raw.staff_survey (
    sha256 varchar, loaded_at timestamptz, survey_year integer, org_code varchar, org_name varchar,
    q4d_pct_satisfied double, q6b_pct_agree double, q6c_pct_agree double, q6d_pct_agree double,
    we_work_flexibly_score double, survey_benchmarking_group varchar, responses double,
    unit_kind varchar, is_ods_trust boolean
);

create table if not exists raw.workforce (
    sha256 varchar, loaded_at timestamptz, org_code varchar, org_name varchar, period varchar,
    period_end date, staff_group varchar, headcount double, fte double, benchmark_group varchar,
    cluster_group varchar, region_code varchar, ics_code varchar, ics_name varchar
);
-- Columns added since the table was first created: a warehouse an older flexbench made gains
-- them here (null in the rows it loaded before), as every writer applies this file first.
alter table raw.workforce add column if not exists ics_name varchar;

-- Wilson score interval for a proportion x/n at normal quantile z (methodology, "Intervals");
-- null where n is 0 or missing. The exact z is passed in by the build (not 1.96).
create or replace macro wilson_lower(x, n, z) as
    case when n > 0 then
        ((x / n) + z * z / (2 * n) - z * sqrt((x / n) * (1 - x / n) / n + z * z / (4 * n * n)))
        / (1 + z * z / n)
    end;
create or replace macro wilson_upper(x, n, z) as
    case when n > 0 then
        ((x / n) + z * z / (2 * n) + z * sqrt((x / n) * (1 - x / n) / n + z * z / (4 * n * n)))
        / (1 + z * z / n)
    end;

-- The benchmark's derived counts in SQL, as transforms.benchmark.add_derived_counts defines them
-- (docs/methodology.md, "Measures"): approved = in full + with changes; decided = approved +
-- declined. Every SQL model uses these (tests/warehouse/test_public.py checks they agree).
create or replace macro approved_count(in_full, with_changes) as in_full + with_changes;
create or replace macro decided_count(in_full, with_changes, declined) as
    approved_count(in_full, with_changes) + declined;
-- Requests not agreed at the first stage, the escalation rate's denominator: the larger of
-- escalated and declined (docs/methodology.md, A3); null when either is unknown, as
-- transforms.benchmark.add_derived_counts.
create or replace macro not_agreed_first_stage(escalated, declined) as
    case when escalated is null or declined is null then null
        else greatest(escalated, declined) end;

-- Disclosure control of the public layer (docs/methodology.md, "Disclosure control"): the
-- small-number rule NHS England applies to Hospital Episode Statistics. small_max and round_to
-- are passed in by the build from transforms/disclosure.py (4 and 5).
-- A count: 0 stays 0, 1 to small_max is withheld (null), any other count is rounded to the
-- nearest round_to.
create or replace macro sdc_count(x, small_max, round_to) as
    case when x is null then null
        when x = 0 then 0
        when x <= small_max then null
        else cast(round(x / round_to) * round_to as bigint) end;
-- A count as sdc_count, or withheld (null) where hidden: a zero withheld with the small counts
-- it shares a relation with (marts.withheld_cells).
create or replace macro sdc_count_kept(x, hidden, small_max, round_to) as
    case when coalesce(hidden, false) then null else sdc_count(x, small_max, round_to) end;
-- Whether a count is withheld as small (1 to small_max).
create or replace macro sdc_small(x, small_max) as coalesce(x >= 1 and x <= small_max, false);
-- The range a published count gives its true value: 0 exact, a rounded v from v - round_to/2
-- (and above small_max) to v + round_to/2.
create or replace macro sdc_low(x, small_max, round_to) as
    case when x = 0 then 0 else greatest(x - floor(round_to / 2), small_max + 1) end;
create or replace macro sdc_high(x, round_to) as
    case when x = 0 then 0 else x + floor(round_to / 2) end;
-- A rate's 95% interval from its published counts, before sdc_rate publishes it: the Wilson
-- interval widened over every value the rounding allows its numerator (x_low to x_high) and
-- denominator (n_low to n_high), within 0 to 1. Give it the ranges as columns worked out once
-- (sdc_low, sdc_high in a CTE): a macro's argument is copied wherever its body reads it, and
-- nested copies cost DuckDB more to plan than the values cost to work out.
create or replace macro sdc_lower95(x_low, n_high, z) as greatest(wilson_lower(x_low, n_high, z), 0);
create or replace macro sdc_upper95(x_high, n_low, z) as
    least(wilson_upper(least(x_high, n_low), n_low, z), 1);
-- Why a rate is or is not published, from its published counts: null (no data), 'too_few'
-- (published denominator under min_den, or withheld as small: a count from 0 to small_max is
-- under it too), 'withheld' (numerator withheld: the rate would give it back; or a denominator
-- of at least min_den withheld with a small count) or 'published'. den_true: the true
-- denominator.
create or replace macro sdc_rate_status(num_pub, den_pub, den_true, min_den) as
    case when den_true is null then null
        when den_pub is null and den_true >= min_den then 'withheld'
        when den_pub is null or den_pub < min_den then 'too_few'
        when num_pub is null then 'withheld'
        else 'published' end;
-- Whether a published total leaves each of its n_withheld withheld parts free from 0 to
-- small_max, given the published parts' range parts_low..parts_high (sdc_low, sdc_high): a
-- total that does not is withheld with them (docs/methodology.md, "Disclosure control").
create or replace macro sdc_total_keeps(total_pub, parts_low, parts_high, n_withheld, small_max,
        round_to) as
    coalesce(n_withheld, 0) = 0 or total_pub is null or (
        sdc_high(total_pub, round_to) >= parts_low + small_max
        and sdc_low(total_pub, small_max, round_to) <= parts_high + small_max * (n_withheld - 1));
-- A published rate, worked out from published counts: to 0.1 percentage point ('nearest'), or
-- an interval limit rounded outwards to 1 point ('down' a lower limit, 'up' an upper limit).
create or replace macro sdc_rate(value, status, how) as
    case when status = 'published' and value is not null then
        cast(case how
            when 'down' then floor(value * 100) / 100
            when 'up' then ceil(value * 100) / 100
            else round(value, 3) end as double)
    end;
-- Public values as words (flag evidence): a count, or [c] where withheld, or - without data.
create or replace macro sdc_count_text(x, withheld) as
    case when x is not null then format('{:,}', x)
        when withheld then '[c]' else '-' end;
-- A published rate as a percentage at its precision; [c] withheld, "too few" under the minimum.
create or replace macro sdc_rate_text(x, status) as
    case when x is not null then
            case when round(x * 100) = round(x * 100, 2) then format('{:.0f}%', x * 100)
                else format('{:.1f}%', x * 100) end
        when status = 'withheld' then '[c]'
        when status = 'too_few' then 'too few to publish'
        else '-' end;

-- ---------------------------------------------------------------------------------------------
-- Pledge sign-ups (docs/pledge-matching.md; loaded by flexbench/pipeline/pledge.py).
-- ---------------------------------------------------------------------------------------------

-- Type-2 history of every sign-up (rule P4): one row per sign-up per state it has been in.
-- Keys: signup_id, valid_from. The current state has is_current and no valid_to. Rewritten as a
-- whole by each load, in the load's transaction (earlier states are carried over, never lost).
-- No personal data: the signatory's name and e-mail are dropped before anything is kept (P1).
create table if not exists raw.pledge_signups_history (
    signup_id varchar, organisation_name varchar, ods_code_given varchar,
    signed_at timestamptz, signatory_role varchar,
    commits_lead boolean, commits_target boolean, commits_train boolean,
    action_plan_url varchar, data_url varchar, board_review_date date,
    managers_trained_pct double, status varchar, updated_at timestamptz,
    org_code varchar,        -- matched ODS trust (rule P3), null while under review
    match_method varchar,    -- override | ods_code | name | former_name
    withdrawn_at timestamptz, valid_from timestamptz, valid_to timestamptz, is_current boolean
);

-- The pledge review list: one row per sign-up that needs a person's decision (rule P3, or a
-- failed check on the feed), as of the latest load. Settled through pledge_overrides.csv.
create table if not exists audit.pledge_review (
    signup_id varchar, organisation_name varchar, ods_code_given varchar,
    reason varchar, candidates varchar, listed_at timestamptz
);

-- One row per pledge load attempt (including a failed fetch, which keeps the previous state).
create table if not exists audit.pledge_loads (
    loaded_at timestamptz, url varchar, fetched_at timestamptz,
    status varchar,          -- loaded | fetch_failed
    pages integer, signups integer, matched integer, review integer, withdrawn integer,
    rejected integer, reasons varchar
);
