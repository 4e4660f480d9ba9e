"""intermediate.int_equity_comparisons:
one row per unit (trust, peer group, England) x dimension x group.

Keys: level, org_code, dimension, group_value.

Each group against its dimension's reference group (relative likelihood, Fisher's exact
test, Benjamini-Hochberg q-value) and the equity gap flag (docs/methodology.md, "Equity").
Computed in Python by :func:`flexbench.pipeline.equity.equity_comparisons`
in the build's transaction.
"""

from __future__ import annotations

READS = ("intermediate.int_equity_groups",)


def build(con, params: dict[str, str]) -> None:
    import warehouse
    from flexbench.pipeline import equity

    warehouse.write_frame(
        con, "intermediate.int_equity_comparisons", equity.equity_comparisons(con)
    )
