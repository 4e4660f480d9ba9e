-- public.flex_type_mix: one row per unit (trust, peer group, England) x flex type in the
-- benchmark window. Keys: level, org_code, flex_type.
-- The flex-type mix of marts.flex_type_mix as published: the flex_type rows of public.equity,
-- so the disclosure control of breakdowns (docs/methodology.md, "Disclosure control",
-- "Breakdowns") applies: counts withheld ([c] = 0 to 4) or rounded to 5, share_requested and
-- share_approved of the published counts (where every type's count is published), the approval
-- rate of each type with its 95% interval from published counts.
with equity as (
    select * from public.equity
),

final as (
    select level, org_code, name, peer_group, region_code, window_start, window_end,
        group_value as flex_type, dimension_status, requests_received, approved, declined,
        decided, withheld, share_requested, share_approved, approval_rate,
        approval_rate_status, approval_rate_lower95, approval_rate_upper95
    from equity
    where dimension = 'flex_type'
)

select * from final
