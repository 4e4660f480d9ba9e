"""public.equity: one row per unit (trust, peer group, England) x equity dimension x group in
the benchmark window.

Keys: level, org_code, dimension, group_value.

The equity breakdowns of marts.equity_benchmark as published, with the stricter disclosure
control of breakdowns (docs/methodology.md, "Disclosure control", "Breakdowns";
transforms/breakdown_disclosure.py): counts withheld from 0 to 4 where they share a relation
with a withheld count, a trust's dimension withheld as a whole where its groups would narrow a
withheld count or disagree with the trust's published totals (dimension_status), peer-group and
England figures the sums of their trusts' published figures or withheld; approval rate with
its 95% interval, relative likelihood against the dimension's reference group with its 95%
interval and the equity gap flag (with evidence) worked out from published counts only.
withheld lists the counts withheld. flex_type is one of the dimensions (public.flex_type_mix).
"""

from __future__ import annotations

READS = ("marts.equity_benchmark", "marts.equity_gaps", "public.trust_window")

COLUMNS = (
    "level", "org_code", "name", "peer_group", "region_code", "window_start", "window_end",
    "dimension", "group_value", "dimension_status", "requests_received", "approved",
    "declined", "decided", "withheld", "share_requested", "share_approved", "approval_rate",
    "approval_rate_status", "approval_rate_lower95", "approval_rate_upper95",
    "reference_group", "is_reference", "relative_likelihood", "relative_likelihood_lower95",
    "relative_likelihood_upper95", "gap_flagged", "gap_direction", "gap_severity",
    "gap_evidence",
)  # fmt: skip


def _text(v) -> str:
    return "[c]" if v is None or v != v else f"{int(v):,}"


def build(con, params: dict[str, str]) -> None:
    import numpy as np
    import pandas as pd

    import warehouse
    from transforms import breakdown_disclosure as bd

    z95 = float(params["z95"])
    marts = con.execute("select * from marts.equity_benchmark").df()
    gaps = con.execute("select * from marts.equity_gaps").df()
    window = con.execute("select * from public.trust_window").df().set_index("org_code")
    trust = marts[marts["level"] == "trust"]
    if trust.empty:  # no trust publishes a breakdown: an empty table of the same columns
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
        for c in bd.COUNTS:
            empty[c] = pd.Series(dtype="Int64")
        warehouse.write_frame(con, "public.equity", empty)
        return
    dims = (
        marts[marts["level"] == "england"][["dimension", "group_value"]]
        .drop_duplicates()
        .groupby("dimension")["group_value"]
        .apply(list)
        .to_dict()
    )
    frames = []
    for (code, dim), g in trust.groupby(["org_code", "dimension"], sort=True):
        full = pd.DataFrame({"group_value": dims.get(dim, list(g["group_value"]))})
        full = full.merge(g, on="group_value", how="left")
        for c in bd.COUNTS:
            full[c] = full[c].fillna(0).astype("int64")
        for c in ("level", "org_code", "name", "peer_group", "region_code", "dimension",
                  "window_start", "window_end", "reference_group"):  # fmt: skip
            full[c] = g[c].dropna().iloc[0] if g[c].notna().any() else None
        w = window.loc[code] if code in window.index else None
        totals = {}
        for c in bd.COUNTS:
            withheld = w is not None and c in str(w["withheld"] or "").split(";")
            totals[c] = (None if w is None else w[c], withheld)
        out, status = bd.control_trust_dimension(full, totals)
        out["dimension_status"] = status
        frames.append(out)
    trusts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rows = [trusts]
    # Peer groups and England: sums of the trusts' published figures, or withheld.
    for level, key in (("peer_group", "peer_group"), ("england", None)):
        units = marts[marts["level"] == level]
        for (code, dim), u in units.groupby(["org_code", "dimension"], sort=True):
            members = trusts[(trusts["dimension"] == dim)
                             & ((trusts[key] == code) if key else True)]  # fmt: skip
            agg = u[["group_value", "name", "peer_group", "region_code", "window_start",
                     "window_end", "reference_group"]].copy()  # fmt: skip
            agg["level"], agg["org_code"], agg["dimension"] = level, code, dim
            true = {c: list(u[c].fillna(0).astype("int64")) for c in bd.COUNTS}
            cells = {c: [] for c in bd.COUNTS}
            for gv in agg["group_value"]:
                mine = members[members["group_value"] == gv]
                for c in bd.COUNTS:
                    cells[c].append(
                        [
                            (v, bool(w) and s == "published")
                            for v, w, s in zip(
                                mine[c],
                                mine[f"{c}_withheld"],
                                mine["dimension_status"],
                                strict=True,
                            )
                        ]  # fmt: skip
                    )
            published, status = bd.control_aggregate(true, cells)
            agg["dimension_status"] = status
            for c in bd.COUNTS:
                values = [np.nan if v is None or status == "withheld" else v
                          for v in published[c]]  # fmt: skip
                agg[c] = values
                agg[f"{c}_withheld"] = [status == "withheld" or v is None
                                        for v in published[c]]  # fmt: skip
            rows.append(agg)
    out = pd.concat(rows, ignore_index=True)
    out["withheld"] = [
        ";".join(c for c in bd.COUNTS if r[f"{c}_withheld"]) for _, r in out.iterrows()
    ]
    keys = ["level", "org_code", "dimension"]
    for c, share in (("requests_received", "share_requested"), ("approved", "share_approved")):
        total = out.groupby(keys)[c].transform(lambda s: s.sum() if s.notna().all() else np.nan)
        out[share] = (out[c] / total.replace(0, np.nan)).round(3)
    rates = [bd.published_rate(a, d, z95) for a, d in zip(out["approved"], out["decided"],
                                                          strict=True)]  # fmt: skip
    out["approval_rate_status"] = [r[0] for r in rates]
    out["approval_rate"] = [r[1] for r in rates]
    out["approval_rate_lower95"] = [r[2] for r in rates]
    out["approval_rate_upper95"] = [r[3] for r in rates]
    out["is_reference"] = out["group_value"] == out["reference_group"]
    ref = out[out["is_reference"]].set_index(keys)[["approved", "decided"]]
    rl = []
    for r in out.itertuples(index=False):
        k = (r.level, r.org_code, r.dimension)
        if r.is_reference or k not in ref.index:
            rl.append((np.nan, np.nan, np.nan))
            continue
        ra, rd = ref.loc[k, "approved"], ref.loc[k, "decided"]
        rl.append(bd.relative_likelihood(ra, rd, r.approved, r.decided, z95))
    out["relative_likelihood"] = [x[0] for x in rl]
    out["relative_likelihood_lower95"] = [x[1] for x in rl]
    out["relative_likelihood_upper95"] = [x[2] for x in rl]
    # The equity gap flag, where the published figures can carry it.
    flagged = gaps.set_index(["org_code", "dimension", "group_value"])
    out["gap_flagged"] = False
    out["gap_direction"] = None
    out["gap_severity"] = None
    out["gap_evidence"] = None
    for i, r in out.iterrows():
        k = (r["org_code"], r["dimension"], r["group_value"])
        if r["level"] != "trust" or k not in flagged.index or pd.isna(r["relative_likelihood"]):
            continue
        f = flagged.loc[k]
        ra, rd = ref.loc[(r["level"], r["org_code"], r["dimension"])]
        rate = float(r["approved"]) / float(r["decided"])
        out.at[i, "gap_flagged"] = True
        out.at[i, "gap_direction"] = f["direction"]
        out.at[i, "gap_severity"] = f["severity"]
        out.at[i, "gap_evidence"] = (
            f"{r['dimension'].replace('_', ' ')} {r['group_value']}: about {_text(r['approved'])}"
            f" of {_text(r['decided'])} decided requests approved ({100 * rate:.0f}%) against"
            f" about {_text(ra)} of {_text(rd)} for {r['reference_group']}"
            f" ({100 * float(ra) / float(rd):.0f}%); relative likelihood"
            f" {r['relative_likelihood']:.2f} (95% CI {r['relative_likelihood_lower95']:.2f} to"
            f" {r['relative_likelihood_upper95']:.2f}); significant after the false discovery"
            " rate adjustment (q <= 0.05)"
        )
    for c in bd.COUNTS:
        out[c] = out[c].astype("Int64")
    out = out[list(COLUMNS)].sort_values(["level", "org_code", "dimension", "group_value"])
    warehouse.write_frame(con, "public.equity", out.reset_index(drop=True))
