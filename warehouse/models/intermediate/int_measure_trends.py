"""intermediate.int_measure_trends:
one row per unit (trust, peer group, England) x quarter x measure.

Keys: level, org_code, quarter, measure.

Every published measure by quarter (docs/methodology.md, "Trends and year on year").
Computed in Python by :func:`flexbench.pipeline.equity.measure_trends`
in the build's transaction.
"""

from __future__ import annotations

READS = ("intermediate.int_trust_quarters",)


def build(con, params: dict[str, str]) -> None:
    import warehouse
    from flexbench.pipeline import equity

    warehouse.write_frame(con, "intermediate.int_measure_trends", equity.measure_trends(con))
