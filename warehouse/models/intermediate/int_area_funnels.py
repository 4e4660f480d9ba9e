"""intermediate.int_area_funnels: one row per trust with data x area kind (region, ICB).

Keys: org_code, area_kind.

Each trust's approval-rate funnel position within its region and its ICB, widened by the
national overdispersion (docs/methodology.md, "Regions and ICBs").
Computed in Python by :func:`flexbench.pipeline.equity.area_funnels`
in the build's transaction.
"""

from __future__ import annotations

READS = ("intermediate.int_trust_window", "intermediate.int_trust_measures")


def build(con, params: dict[str, str]) -> None:
    import warehouse
    from flexbench.pipeline import equity

    warehouse.write_frame(con, "intermediate.int_area_funnels", equity.area_funnels(con))
