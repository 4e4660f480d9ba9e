"""intermediate.int_measure_yoy: one row per unit (trust, peer group, England) x measure.

Keys: level, org_code, measure.

The latest 12 months against the 12 before, with Newcombe's interval for the change
(docs/methodology.md, "Trends and year on year").
Computed in Python by :func:`flexbench.pipeline.equity.measure_yoy`
in the build's transaction.
"""

from __future__ import annotations

READS = ("intermediate.int_trust_quarters", "intermediate.int_benchmark_window")


def build(con, params: dict[str, str]) -> None:
    import warehouse
    from flexbench.pipeline import equity

    warehouse.write_frame(con, "intermediate.int_measure_yoy", equity.measure_yoy(con))
