"""intermediate.int_policy_practice_flags: one row per trust per policy-practice gap flag raised.

Keys: org_code, flag.

The flags of docs/methodology.md ("Policy-practice gap flags"), computed in Python by
:func:`transforms.benchmark.policy_practice_flags` from the window's counts and measures,
marts.publication_status (stale or rejected data) and the pledge sign-ups, and written in the
build's transaction. Read by marts.policy_practice_gaps.
"""

from __future__ import annotations

READS = (
    "intermediate.int_trust_window",
    "intermediate.int_trust_measures",
    "marts.publication_status",
    "staging.pledge_signups",
)


def build(con, params: dict[str, str]) -> None:
    from datetime import date

    import warehouse
    from transforms import benchmark as rules

    trusts = con.execute("select * from intermediate.int_trust_window order by org_code").df()
    measures = con.execute("select * from intermediate.int_trust_measures").df()
    status = con.execute("select * from marts.publication_status").df()
    # Pledge sign-ups may not be loaded yet (no pledge feed configured): nobody has pledged.
    signups = (
        con.execute("select org_code, status, signed_at from staging.pledge_signups").df()
        if warehouse.table_exists(con, "staging", "pledge_signups")
        else None
    )
    flags = rules.policy_practice_flags(
        trusts.merge(measures, on="org_code", how="left"),
        status,
        signups,
        as_of=date.fromisoformat(params["as_of"].strip("'")),
        min_decided=int(params["min_decided"]),
        stale_days=int(params["stale_days"]),
    )
    warehouse.write_frame(con, "intermediate.int_policy_practice_flags", flags)
