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

import itertools

import numpy as np
import pandas as pd

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


_IDENT = (
    "level", "org_code", "name", "peer_group", "region_code", "dimension", "window_start",
    "window_end", "reference_group",
)  # fmt: skip
#: The columns of a trust x dimension pair other than its keys (org_code, dimension).
_UNIT = tuple(c for c in _IDENT if c not in ("org_code", "dimension"))


def _missing(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def _count(v) -> int:
    """A group's true count; 0 where the trust has none of that group."""
    return 0 if _missing(v) else int(v)


def _text(v) -> str:
    return "[c]" if v is None or v != v else f"{int(v):,}"


def _by_distinct(work, columns: tuple, rows: np.ndarray) -> tuple[list, np.ndarray]:
    """``work`` of the values of ``columns`` (arrays, one value a row) at ``rows``, called once
    for each distinct set of values (a NaN the same as any other: ``work`` reads them alike):
    its answers, and the number of each row's answer among them."""
    if not len(rows):
        return [], np.zeros(0, dtype=np.int64)
    frame = pd.DataFrame({k: column[rows] for k, column in enumerate(columns)})
    number = frame.groupby(list(frame.columns), dropna=False, sort=False).ngroup().to_numpy()
    _, first = np.unique(number, return_index=True)
    values = [column[rows].tolist() for column in columns]
    return [work(*(v[i] for v in values)) for i in first.tolist()], number


def build(con, params: dict[str, str]) -> None:
    import warehouse
    from transforms import breakdown_disclosure as bd

    z95 = float(params["z95"])
    # Only the columns this model reads (the marts have many more; the records below cost by
    # the cell).
    columns = ", ".join(dict.fromkeys(["level", *_IDENT, "group_value", *bd.COUNTS]))
    marts = con.execute(f"select {columns} from marts.equity_benchmark").df()
    gaps = con.execute("select * from marts.equity_gaps").df()
    window = con.execute(
        f"select org_code, withheld, {', '.join(bd.COUNTS)} from public.trust_window"
    ).df()
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
    # each trust's published totals (value, NaN where it has none; withheld), count by count
    no_totals = ([np.nan] * len(bd.COUNTS), [False] * len(bd.COUNTS))
    totals_of = {}
    for r in window.to_dict("records"):
        withheld = str(r["withheld"] or "").split(";")
        totals_of[r["org_code"]] = (
            [np.nan if _missing(r[c]) else float(r[c]) for c in bd.COUNTS],
            [c in withheld for c in bd.COUNTS],
        )
    # Plain lists by column, not records or a pandas lookup per trust and group: the same
    # figures at a fraction of the cost (a nation has about 700 trust x dimension pairs,
    # 6,500 rows). Each pair's unit columns (_IDENT) are its first value that is not missing,
    # taken from the frame itself so that they keep the marts' types.
    pairs: dict[tuple, list[int]] = {}
    keys = zip(trust["org_code"].tolist(), trust["dimension"].tolist(), strict=True)
    for i, key in enumerate(keys):
        pairs.setdefault(key, []).append(i)
    group_values = trust["group_value"].tolist()
    # each group's true counts, 0 where missing (_count), and a last row of zeros for the
    # groups a trust does not have
    counts = np.zeros((len(trust) + 1, len(bd.COUNTS)), dtype=np.int64)
    for k, c in enumerate(bd.COUNTS):
        counts[:-1, k] = trust[c].fillna(0).astype("int64").to_numpy()
    firsts = trust.groupby(["org_code", "dimension"], sort=False)[list(_UNIT)].first()
    first_row = {key: i for i, key in enumerate(firsts.index)}
    peer_of = firsts["peer_group"].tolist()
    # each pair's groups (the dimension's, in England's order) and their rows of counts
    ordered = sorted(pairs)
    out_gv: list = []
    at_of: list[list[int]] = []
    for code, dim in ordered:
        positions = pairs[(code, dim)]
        by_group = {group_values[i]: i for i in positions}
        order = dims.get(dim, [group_values[i] for i in positions])
        out_gv.extend(order)
        at_of.append([by_group.get(gv, len(trust)) for gv in order])
    sizes = np.array([len(at) for at in at_of])
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    # the disclosure control of the pairs of as many groups at once (bd.control_dimensions)
    published = np.empty((len(bd.COUNTS), len(out_gv)))
    withheld_flags = np.empty((len(bd.COUNTS), len(out_gv)), dtype=bool)
    shown = np.empty(len(ordered), dtype=bool)
    for n in np.unique(sizes).tolist():
        members = np.flatnonzero(sizes == n)
        true = counts[np.array([at_of[m] for m in members])].transpose(0, 2, 1)
        totals = [totals_of.get(ordered[m][0], no_totals) for m in members.tolist()]
        pub, flags, shown[members] = bd.control_dimensions(
            true, np.array([t[0] for t in totals]), np.array([t[1] for t in totals])
        )
        at = starts[members][:, None] + np.arange(n)
        published[:, at] = pub.transpose(1, 0, 2)
        withheld_flags[:, at] = flags.transpose(1, 0, 2)
    unit_rows = np.repeat([first_row[key] for key in ordered], sizes)
    row_shown = np.repeat(shown, sizes)
    # each trust's published cells (value, withheld) added up for the peer-group and England
    # figures (bd.member_sums): by dimension and group, and by dimension, group and peer
    # group, count by count; a last row of zeros for a figure no trust gives
    row_dims = np.repeat([dim for _, dim in ordered], sizes).tolist()
    row_peers = [peer_of[i] for i in unit_rows.tolist()]
    national_of: dict[tuple, int] = {}
    in_peer_of: dict[tuple, int] = {}
    national, in_peer = [], []
    for dim, gv, peer in zip(row_dims, out_gv, row_peers, strict=True):
        national.append(national_of.setdefault((dim, gv), len(national_of)))
        in_peer.append(in_peer_of.setdefault((dim, gv, peer), len(in_peer_of)))
    national, in_peer = np.array(national), np.array(in_peer)
    sums_of, sums_in_peer = {}, {}
    for k, c in enumerate(bd.COUNTS):
        shown_withheld = withheld_flags[k] & row_shown
        sums_of[c] = bd.member_sums(published[k], shown_withheld, national, len(national_of) + 1)
        sums_in_peer[c] = bd.member_sums(published[k], shown_withheld, in_peer, len(in_peer_of) + 1)
    trusts = firsts.iloc[unit_rows].reset_index()[list(_IDENT)]
    trusts["group_value"] = out_gv
    trusts["dimension_status"] = np.where(row_shown, "published", "withheld").tolist()
    for k, c in enumerate(bd.COUNTS):
        trusts[c] = published[k]
        trusts[f"{c}_withheld"] = withheld_flags[k]
    rows = [trusts]
    # Peer groups and England: sums of the trusts' published figures, or withheld.
    for level, key in (("peer_group", "peer_group"), ("england", None)):
        units = marts[marts["level"] == level]
        unit_gv = units["group_value"].tolist()
        unit_counts = {c: units[c].tolist() for c in bd.COUNTS}
        at: list[int] = []
        codes: list = []
        unit_dims: list = []
        statuses: list[str] = []
        pub_cols = {c: [] for c in bd.COUNTS}
        flag_cols = {c: [] for c in bd.COUNTS}
        groups = units.groupby(["org_code", "dimension"], sort=True).indices
        for code, dim in sorted(groups):
            positions = list(groups[(code, dim)])
            true = {c: [_count(unit_counts[c][i]) for i in positions] for c in bd.COUNTS}
            if key is None:
                sums = sums_of
                figures = [national_of.get((dim, unit_gv[i]), len(national_of)) for i in positions]
            else:
                sums = sums_in_peer
                figures = [
                    in_peer_of.get((dim, unit_gv[i], code), len(in_peer_of)) for i in positions
                ]
            members = {c: sums[c][figures] for c in bd.COUNTS}
            published, status = bd.control_aggregate(true, members)
            n = len(positions)
            at.extend(positions)
            codes.extend([code] * n)
            unit_dims.extend([dim] * n)
            statuses.extend([status] * n)
            for c in bd.COUNTS:
                pub_cols[c].extend(
                    np.nan if v is None or status == "withheld" else v for v in published[c]
                )
                flag_cols[c].extend(status == "withheld" or v is None for v in published[c])
        if not at:
            continue
        agg = units.iloc[at][["group_value", "name", "peer_group", "region_code",
                              "window_start", "window_end", "reference_group"]].copy()  # fmt: skip
        agg["level"] = level
        agg["org_code"] = codes
        agg["dimension"] = unit_dims
        agg["dimension_status"] = statuses
        for c in bd.COUNTS:
            agg[c] = pub_cols[c]
            agg[f"{c}_withheld"] = flag_cols[c]
        rows.append(agg)
    out = pd.concat(rows, ignore_index=True)
    # the counts withheld, named from the flags' 16 combinations (a combination's number
    # read from the flags as bits, the first count highest)
    names = [
        ";".join(c for c, w in zip(bd.COUNTS, ws, strict=True) if w)
        for ws in itertools.product((False, True), repeat=len(bd.COUNTS))
    ]
    combination = np.zeros(len(out), dtype=np.int64)
    for c in bd.COUNTS:
        combination = 2 * combination + out[f"{c}_withheld"].to_numpy(dtype=bool)
    out["withheld"] = np.array(names, dtype=object)[combination]
    keys = ["level", "org_code", "dimension"]
    for c, share in (("requests_received", "share_requested"), ("approved", "share_approved")):
        by = [out[k] for k in keys]
        missing = out[c].isna().groupby(by).transform("any")
        total = out[c].groupby(by).transform("sum").where(~missing.astype(bool))
        out[share] = (out[c] / total.replace(0, np.nan)).round(3)
    # Rates and relative likelihoods from each distinct set of published counts once (they
    # are rounded to 5, and most rows have none: a nation's 59,000 rows, about 1,600 pairs).
    approved, decided = out["approved"].to_numpy(), out["decided"].to_numpy()
    everyone = np.arange(len(out))
    rates, which = _by_distinct(
        lambda a, d: bd.published_rate(a, d, z95), (approved, decided), everyone
    )
    out["approval_rate_status"] = np.array([r[0] for r in rates], dtype=object)[which]
    for k, c in enumerate(("approval_rate", "approval_rate_lower95", "approval_rate_upper95")):
        out[c] = np.array([r[k + 1] for r in rates], dtype=float)[which]
    out["is_reference"] = out["group_value"] == out["reference_group"]
    is_ref = out["is_reference"].to_numpy(dtype=bool)
    # each row's unit (level, org_code, dimension) and the row of its reference group
    unit = out.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    of_ref = np.full(unit.max() + 1, -1)
    of_ref[unit[is_ref]] = np.flatnonzero(is_ref)
    of_ref = of_ref[unit]
    compared = np.flatnonzero(~is_ref & (of_ref >= 0))
    likelihoods, which = _by_distinct(
        lambda ra, rd, a, d: bd.relative_likelihood(ra, rd, a, d, z95),
        (approved[of_ref], decided[of_ref], approved, decided),
        compared,
    )
    for k, c in enumerate(("relative_likelihood", "relative_likelihood_lower95",
                           "relative_likelihood_upper95")):  # fmt: skip
        values = np.full(len(out), np.nan)
        values[compared] = np.array([x[k] for x in likelihoods], dtype=float)[which]
        out[c] = values
    # The equity gap flag, where the published figures can carry it.
    flagged = {
        (g["org_code"], g["dimension"], g["group_value"]): g for g in gaps.to_dict("records")
    }
    out["gap_flagged"] = False
    out["gap_direction"] = None
    out["gap_severity"] = None
    out["gap_evidence"] = None
    candidates = out.index[(out["level"] == "trust") & out["relative_likelihood"].notna()]
    evidence = ["level", "org_code", "dimension", "group_value", "approved", "decided",
                "reference_group", "relative_likelihood", "relative_likelihood_lower95",
                "relative_likelihood_upper95"]  # fmt: skip
    for i, r in zip(candidates, out.loc[candidates, evidence].to_dict("records"), strict=True):
        k = (r["org_code"], r["dimension"], r["group_value"])
        if k not in flagged:
            continue
        f = flagged[k]
        ra, rd = approved[of_ref[i]], decided[of_ref[i]]  # its reference group's
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
