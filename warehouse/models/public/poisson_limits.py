"""public.poisson_limits: one row per count of events from 0 to beyond the largest published.

Keys: events.

The exact (Garwood) 95% Poisson interval of a count (docs/methodology.md, "Intervals", A5),
from :func:`transforms.benchmark.poisson_interval`, for every count up to the largest published
request count plus the rounding, so that SQL models can give a published uptake
(requests_per_100_staff) its interval by joining its published count's range
(public.trust_measure_quarters): DuckDB has no chi-squared quantile. Pure arithmetic on counts:
it tells nothing about any trust.
"""

from __future__ import annotations

READS = ("public.trust_quarters",)


def build(con, params: dict[str, str]) -> None:
    import numpy as np
    import pandas as pd

    import warehouse
    from transforms.benchmark import poisson_interval
    from transforms.disclosure import ROUND_TO

    top = con.execute("select max(requests_received) from public.trust_quarters").fetchall()[0][0]
    events = np.arange(0, int(top or 0) + ROUND_TO + 1, dtype="int64")
    lower, upper = poisson_interval(pd.Series(events, dtype=float), 0.95)
    frame = pd.DataFrame({"events": events, "lower95": lower, "upper95": upper})
    warehouse.write_frame(con, "public.poisson_limits", frame)
