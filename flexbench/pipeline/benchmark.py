"""The benchmark build (the benchmark DAG): intermediate models, marts and the public layer, in
one transaction.

Either every table of the build is replaced, or (on any error, or a process killed mid-way)
none is: the warehouse keeps the previous consistent benchmark.

Every model of the staging, intermediate, marts and public layers is rebuilt in dependency
order (:func:`warehouse.ordered_models`): the SQL models, and the Python models
(``intermediate.int_trust_measures``, ``intermediate.int_policy_practice_flags``, the equity,
trends and geography models of :mod:`flexbench.pipeline.equity`, ``public.funnel_limits``)
where their ``READS`` put them, so ``marts.publication_status`` is
built before the flags that read it and the public layer after the marts it publishes.
"""

from __future__ import annotations

import logging
from datetime import date

import warehouse
from flexbench.settings import Settings
from transforms import vocabulary
from transforms.benchmark import MIN_DECIDED, STALE_DAYS
from transforms.disclosure import MAX_SUPPRESSED_COUNT, MIN_RATE_DENOMINATOR, ROUND_TO

log = logging.getLogger(__name__)

__all__ = ["STALE_DAYS", "build", "params"]


def params(as_of: date) -> dict[str, str]:
    """SQL parameters of the build: the as-of date, the exact normal quantiles, the benchmark's
    minimum denominator and the disclosure control of docs/methodology.md."""
    from scipy.special import ndtri

    return {
        "as_of": warehouse.sql_literal(as_of.isoformat()),
        "z95": repr(float(ndtri(0.975))),
        "z998": repr(float(ndtri(0.999))),
        "min_decided": str(MIN_DECIDED),
        "stale_days": str(STALE_DAYS),
        "small_max": str(MAX_SUPPRESSED_COUNT),
        "round_to": str(ROUND_TO),
        "min_denominator": str(MIN_RATE_DENOMINATOR),
        "region_names": ", ".join(
            f"({warehouse.sql_literal(code)}, {warehouse.sql_literal(name)})"
            for code, name in vocabulary.REGIONS.items()
        ),
    }


def build(settings: Settings, as_of: date) -> dict:
    """Rebuild intermediate, marts and public for the window ending at or before ``as_of``."""
    con = warehouse.connect(settings.warehouse_path)
    try:
        warehouse.apply_schema(con)
        p = params(as_of)
        with warehouse.transaction(con):
            built = warehouse.build_layers(con, warehouse.LAYERS, p)
        window = con.execute(
            "select window_start, window_end from intermediate.int_benchmark_window"
        ).fetchone()
        trusts, with_data = con.execute(
            "select count(*), count(*) filter (where has_data) from marts.trust_benchmark"
        ).fetchone()
        flags = con.execute("select count(*) from marts.policy_practice_gaps").fetchone()[0]
        log.info(
            "benchmark built for %s to %s: %d trusts, %d with data, %d gap flags",
            window[0],
            window[1],
            trusts,
            with_data,
            flags,
        )
        return {
            "tables": built,
            "window_start": str(window[0]),
            "window_end": str(window[1]),
            "trusts": trusts,
            "trusts_with_data": with_data,
            "flags": flags,
        }
    finally:
        con.close()
