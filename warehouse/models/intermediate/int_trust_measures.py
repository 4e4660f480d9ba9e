"""intermediate.int_trust_measures: one row per trust in the benchmark population.

Keys: org_code.

The benchmark's computed measures (docs/methodology.md, "The columns of
marts.trust_benchmark"): rates with Wilson intervals, funnel positions, ranks and quartiles,
staff voice against peers and the clinical gap, computed in Python by
:func:`transforms.benchmark.trust_measures` from intermediate.int_trust_window and
intermediate.int_trust_staff_groups, and written
in the build's transaction.
"""

from __future__ import annotations

READS = ("intermediate.int_trust_window", "intermediate.int_trust_staff_groups")


def build(con, params: dict[str, str]) -> None:
    import warehouse
    from transforms import benchmark as rules

    trusts = con.execute("select * from intermediate.int_trust_window order by org_code").df()
    staff_groups = con.execute("select * from intermediate.int_trust_staff_groups").df()
    measures = rules.trust_measures(trusts, staff_groups, min_decided=int(params["min_decided"]))
    warehouse.write_frame(con, "intermediate.int_trust_measures", measures)
