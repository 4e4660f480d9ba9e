"""public.funnel_positions: one row per trust per funnel plot measure with a published rate.

Keys: org_code, measure.

Where each trust falls on the funnel plots (docs/methodology.md, "Funnel plots"): its
published rate at its published denominator against the published limits of public.funnels
(transforms.stats.funnel_significance with the published target, method and tau2), so a
position says nothing the published numbers do not.
"""

from __future__ import annotations

READS = ("public.trust_window", "public.funnels")

#: measure -> (published numerator, published denominator)
COUNTS = {"approval_rate": ("approved", "decided"), "decline_rate": ("declined", "decided")}


def build(con, params: dict[str, str]) -> None:
    import pandas as pd

    import warehouse
    from transforms import stats

    trusts = con.execute("select * from public.trust_window").df()
    funnels = con.execute("select * from public.funnels").df()
    frames = []
    for f in funnels.itertuples():
        if f.measure not in COUNTS or pd.isna(f.target):
            continue
        num, den = COUNTS[f.measure]
        shown = trusts[trusts[f"{f.measure}_status"] == "published"]
        tau2 = float(f.tau2) if f.method == "arcsine" else 0.0
        position = stats.funnel_significance(
            pd.Series(shown[num], dtype="Float64"),
            pd.Series(shown[den], dtype="Float64"),
            target=float(f.target),
            method=f.method,
            tau2=tau2,
        )
        frames.append(
            pd.DataFrame(
                {
                    "org_code": shown["org_code"].to_numpy(),
                    "measure": f.measure,
                    "position": pd.Series(position).astype(object).to_numpy(),
                }
            )
        )
    out = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: pd.Series(dtype=str) for c in ("org_code", "measure", "position")})
    )
    warehouse.write_frame(con, "public.funnel_positions", out)
