"""The benchmark build (the benchmark DAG): intermediate models and marts, in one transaction.

Either every table of the build is replaced, or (on any error, or a process killed mid-way)
none is: the warehouse keeps the previous consistent benchmark.

The recipe, inside one transaction:

1. the staging and intermediate SQL models;
2. ``marts.publication_status`` (the flags read it);
3. the measures computed in Python (:func:`transforms.benchmark.trust_measures`) into
   ``intermediate.int_trust_measures`` and the policy-practice gap flags
   (:func:`transforms.benchmark.policy_practice_flags`) into
   ``intermediate.int_policy_practice_flags``;
4. the equity, trends and geography step (:func:`flexbench.pipeline.equity.compute`);
5. every mart (``marts.trust_benchmark``, ``marts.policy_practice_gaps``,
   ``marts.trust_trends`` ...).
"""

from __future__ import annotations

import logging
from datetime import date

import warehouse
from flexbench.pipeline import equity
from flexbench.settings import Settings
from transforms import vocabulary
from transforms.benchmark import MIN_DECIDED, STALE_DAYS

log = logging.getLogger(__name__)

MIN_DECIDED_FOR_RANK = MIN_DECIDED  # methodology: no rank from fewer than 10 decided requests
# STALE_DAYS: methodology: data older than about six months is stale (re-exported here).
__all__ = ["MIN_DECIDED_FOR_RANK", "STALE_DAYS", "build", "compute_measures", "params"]

#: The tables the equity, trends and geography step writes (flexbench/pipeline/equity.py).
EQUITY_STEP_TABLES = (
    "intermediate.int_equity_comparisons",
    "intermediate.int_measure_trends",
    "intermediate.int_measure_yoy",
    "intermediate.int_area_funnels",
)

#: Marts the Python step reads, built before it.
MARTS_BEFORE_MEASURES = ("marts.publication_status",)


def params(as_of: date) -> dict[str, str]:
    """SQL parameters of the build: the as-of date and the exact normal quantiles."""
    from scipy.special import ndtri

    return {
        "as_of": warehouse.sql_literal(as_of.isoformat()),
        "z95": repr(float(ndtri(0.975))),
        "z998": repr(float(ndtri(0.999))),
        "min_decided": str(MIN_DECIDED_FOR_RANK),
        "stale_days": str(STALE_DAYS),
        "region_names": ", ".join(
            f"({warehouse.sql_literal(code)}, {warehouse.sql_literal(name)})"
            for code, name in vocabulary.REGIONS.items()
        ),
    }


def _write(con, table: str, frame) -> None:
    con.register("measures_df", frame)
    try:
        con.execute(f"create or replace table {table} as select * from measures_df")
    finally:
        con.unregister("measures_df")


def compute_measures(con, as_of: date) -> dict[str, int]:
    """Step 3 of the build, inside the caller's transaction: read the intermediate tables,
    compute the measures and flags, write ``intermediate.int_trust_measures`` and
    ``intermediate.int_policy_practice_flags``. Returns row counts."""
    from transforms import benchmark as rules

    trusts = con.execute("select * from intermediate.int_trust_window order by org_code").df()
    staff_groups = con.execute("select * from intermediate.int_trust_staff_groups").df()
    measures = rules.trust_measures(trusts, staff_groups, min_decided=MIN_DECIDED_FOR_RANK)
    _write(con, "intermediate.int_trust_measures", measures)

    status = con.execute("select * from marts.publication_status").df()
    # Pledge sign-ups may not be loaded yet (no pledge feed configured): nobody has pledged.
    signups = (
        con.execute("select org_code, status, signed_at from staging.pledge_signups").df()
        if warehouse.table_exists(con, "staging", "pledge_signups")
        else None
    )
    joined = trusts.merge(measures, on="org_code", how="left")
    flags = rules.policy_practice_flags(
        joined,
        status,
        signups,
        as_of=as_of,
        min_decided=MIN_DECIDED_FOR_RANK,
        stale_days=STALE_DAYS,
    )
    _write(con, "intermediate.int_policy_practice_flags", flags)
    return {"measures": len(measures), "flags": len(flags)}


def build(settings: Settings, as_of: date) -> dict:
    """Rebuild intermediate and marts for the window ending at or before ``as_of``."""
    con = warehouse.connect(settings.warehouse_path)
    try:
        warehouse.apply_schema(con)
        p = params(as_of)
        with warehouse.transaction(con):
            built = warehouse.build_layers(con, ["staging", "intermediate"], p)
            warehouse.build_layers_named(con, MARTS_BEFORE_MEASURES, p)
            counts = compute_measures(con, as_of)
            built += ["intermediate.int_trust_measures", "intermediate.int_policy_practice_flags"]
            counts.update(equity.compute(con))
            built += list(EQUITY_STEP_TABLES)
            built += warehouse.build_layers(con, ["marts"], p)
        window = con.execute(
            "select window_start, window_end from intermediate.int_benchmark_window"
        ).fetchone()
        trusts, with_data = con.execute(
            "select count(*), count(*) filter (where has_data) from marts.trust_benchmark"
        ).fetchone()
        log.info(
            "benchmark built for %s to %s: %d trusts, %d with data, %d gap flags",
            window[0],
            window[1],
            trusts,
            with_data,
            counts["flags"],
        )
        return {
            "tables": built,
            "window_start": str(window[0]),
            "window_end": str(window[1]),
            "trusts": trusts,
            "trusts_with_data": with_data,
            "flags": counts["flags"],
        }
    finally:
        con.close()
