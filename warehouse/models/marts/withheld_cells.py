"""marts.withheld_cells: one row per count of a trust's window or quarter withheld beyond the
small-number rule.

Keys: org_code, period, period_start, count_name.

Secondary suppression (docs/methodology.md, "Disclosure control";
transforms.disclosure.cells_to_withhold), reason:

- 'zero': a true 0 that shares a published relation with a withheld count (a total and its
  parts in one row; a count of the window and the same count of its quarters; the larger count
  of an order such as appeals_upheld <= appeals), so a withheld value can be 0 and reads "a
  count from 0 to 4";
- 'quarters': a quarter's appeals or appeals upheld, withheld with the other quarters of the
  window because one of them is withheld (published all or none over the window's quarters).

period is 'window' or 'quarter'; period_start the window's or the quarter's start.
public.trust_window and public.trust_quarters withhold these cells. A mart, not a public
table: it says which withheld cells are 0, so no public output may see it.
"""

from __future__ import annotations

READS = ("marts.trust_benchmark", "marts.trust_trends")


def build(con, params: dict[str, str]) -> None:
    import pandas as pd

    import warehouse
    from transforms.disclosure import QUARTER_COUNTS, WINDOW_COUNTS, cells_to_withhold

    window_columns = ("org_code", "window_start", "window_end", *WINDOW_COUNTS)
    quarter_columns = ("org_code", "quarter_start", "quarter_end", *QUARTER_COUNTS)
    # Plain records (dates as dates, missing counts as None) grouped by trust, not a pandas
    # selection per trust: the same rows at a fraction of the cost (a nation has thousands of
    # trusts).
    windows = [
        dict(zip(window_columns, r, strict=True))
        for r in con.execute(
            f"select {', '.join(window_columns)} from marts.trust_benchmark where has_data"
        ).fetchall()
    ]
    quarter_rows = [
        dict(zip(quarter_columns, r, strict=True))
        for r in con.execute(
            f"select {', '.join(quarter_columns)} from marts.trust_trends"
        ).fetchall()
    ]
    by_trust: dict[str, list[dict]] = {}
    for r in quarter_rows:
        by_trust.setdefault(r["org_code"], []).append(r)

    def inside(r, w) -> bool:  # (a missing date is in no window)
        starts, ends = (r["quarter_start"], w["window_start"]), (r["quarter_end"], w["window_end"])
        return None not in starts + ends and starts[0] >= starts[1] and ends[0] <= ends[1]

    out = []
    seen = set()
    for w in windows:
        rows = {r["quarter_start"]: r for r in by_trust.get(w["org_code"], []) if inside(r, w)}
        seen |= {(w["org_code"], key) for key in rows}
        for (key, column), reason in cells_to_withhold({"window": w}, rows).items():
            if key == "window":
                out.append((w["org_code"], "window", w["window_start"], column, reason))
            else:
                out.append((w["org_code"], "quarter", key, column, reason))
    # A quarter outside the window (or of a trust without window data) has its own row's
    # relations only: no total is published over it, so its counts stand alone.
    for r in quarter_rows:
        key = r["quarter_start"]
        if (r["org_code"], key) in seen:
            continue
        for (_, column), reason in cells_to_withhold({}, {key: r}).items():
            out.append((r["org_code"], "quarter", key, column, reason))
    frame = pd.DataFrame(
        out, columns=["org_code", "period", "period_start", "count_name", "reason"]
    )
    frame["period_start"] = pd.to_datetime(frame["period_start"]).astype("datetime64[us]")
    warehouse.write_frame(con, "marts.withheld_cells", frame)
