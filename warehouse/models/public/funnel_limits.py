"""public.funnel_limits: one row per funnel plot measure per denominator of the plotting grid.

Keys: measure, denominator.

The 95% and 99.8% control limits of each funnel plot (docs/methodology.md, "Funnel plots")
around the published national rate of public.funnels, on a grid of denominators from 1 to
beyond the largest published denominator, computed by :func:`transforms.stats.funnel_limits`
so the site draws the limits it is given and computes none.
"""

from __future__ import annotations

READS = ("public.funnels", "public.trust_window")

#: Points of the grid (geometric, so the narrow end of the funnel is drawn smoothly).
GRID_POINTS = 200


def build(con, params: dict[str, str]) -> None:
    import numpy as np
    import pandas as pd

    import warehouse
    from transforms import stats

    funnels = con.execute("select * from public.funnels").df()
    top = con.execute("select max(decided) from public.trust_window").fetchall()[0][0]
    grid = np.unique(np.round(np.geomspace(1, max(float(top or 10), 10) * 1.1, GRID_POINTS)))
    frames = []
    for f in funnels.itertuples():
        if pd.isna(f.target):
            continue
        tau2 = float(f.tau2) if f.method == "arcsine" else 0.0
        lo95, hi95 = stats.funnel_limits(float(f.target), grid, 0.95, tau2, f.method)
        lo998, hi998 = stats.funnel_limits(float(f.target), grid, 0.998, tau2, f.method)
        frames.append(
            pd.DataFrame(
                {
                    "measure": f.measure,
                    "denominator": grid.astype("int64"),
                    "lower95": lo95,
                    "upper95": hi95,
                    "lower998": lo998,
                    "upper998": hi998,
                }
            )
        )
    out = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(
            {
                "measure": pd.Series(dtype=str),
                "denominator": pd.Series(dtype="int64"),
                **{
                    c: pd.Series(dtype=float)
                    for c in ("lower95", "upper95", "lower998", "upper998")
                },
            }
        )
    )
    warehouse.write_frame(con, "public.funnel_limits", out)
