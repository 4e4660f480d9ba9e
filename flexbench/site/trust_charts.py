"""The trust page's trend per measure and its peer caterpillar plot (read and format only).

- :func:`measure_trends` - one chart and one table per measure of
  ``public.trust_measure_quarters``, every quarter of the benchmark in order, a quarter the
  trust has no row for shown as no data (a gap, never a line across it);
- :func:`peer_caterpillar` - the published approval rates of the trust's peer group with their
  95% intervals (``public.trust_window``), ordered, the trust highlighted.

Labels and links come from the indicator registry (transforms.indicators).
"""

from __future__ import annotations

import pandas as pd

from flexbench.display import trust_name
from flexbench.site import plots
from transforms.disclosure import STATUS_WORDS
from transforms.indicators import BY_COLUMN

TREND_COLUMNS = ("quarter", "measure", "rate", "rate_lower95", "rate_upper95", "status")
PEER_COLUMNS = (
    "org_code",
    "name",
    "approval_rate",
    "approval_rate_lower95",
    "approval_rate_upper95",
)


def all_quarters(measure_quarters: pd.DataFrame) -> pd.DataFrame:
    """Every quarter of the table, in order (quarter label and start)."""
    if measure_quarters.empty:
        return pd.DataFrame(columns=["quarter", "quarter_start"])
    q = measure_quarters[["quarter", "quarter_start"]].drop_duplicates()
    return q.sort_values("quarter_start").reset_index(drop=True)


def trend_frame(measure_quarters: pd.DataFrame, code: str, quarters: pd.DataFrame) -> pd.DataFrame:
    """The trust's rows of public.trust_measure_quarters, one per measure and quarter of
    ``quarters`` (a quarter without a row: status no_data), the columns the page shows."""
    mine = measure_quarters[measure_quarters["org_code"] == code]
    if mine.empty or quarters.empty:
        return pd.DataFrame(columns=list(TREND_COLUMNS))
    measures = mine[["measure_order", "measure"]].drop_duplicates().sort_values("measure_order")
    grid = measures.merge(quarters, how="cross")
    out = grid.merge(
        mine[["measure", "quarter_start", "rate", "rate_lower95", "rate_upper95", "status"]],
        on=["measure", "quarter_start"],
        how="left",
    )
    out["status"] = out["status"].fillna("no_data")
    out = out.sort_values(["measure_order", "quarter_start"])
    return out[list(TREND_COLUMNS)].reset_index(drop=True)


def _status_text(status: str) -> str:
    if status == "no_data":
        return "no data"
    return STATUS_WORDS.get(status, status)


def measure_trends(frame: pd.DataFrame, trust_label: str, root: str = "../") -> list[dict]:
    """One chart and table per measure of ``frame`` (from :func:`trend_frame`)."""
    out = []
    for measure, rows in frame.groupby("measure", sort=False):
        indicator = BY_COLUMN.get(measure)
        title = indicator.title if indicator else measure
        table = [
            {
                "quarter": r.quarter,
                "rate": plots.pct(r.rate) if r.status == "published" else _status_text(r.status),
                "interval": f"{plots.pct(r.rate_lower95, 0)} to {plots.pct(r.rate_upper95, 0)}"
                if r.status == "published"
                else "–",
            }
            for r in rows.itertuples()
        ]
        out.append(
            {
                "measure": measure,
                "title": title,
                "href": f"{root}indicators/{indicator.slug}.html" if indicator else None,
                "chart": plots.measure_trend_plot(
                    rows,
                    plot_id=f"trend-{measure.replace('_', '-')}",
                    title=f"{title} by quarter, {trust_label}",
                    y_title=f"{title} (%)",
                ),
                "rows": table,
            }
        )
    return out


def peer_frame(public: pd.DataFrame, code: str) -> pd.DataFrame:
    """The published approval rates of the trust's peer group (public.trust_window)."""
    peer = public.loc[code].get("peer_group")
    if peer is None or pd.isna(peer):
        return pd.DataFrame(columns=list(PEER_COLUMNS))
    rows = public[(public["peer_group"] == peer) & (public["approval_rate_status"] == "published")]
    return rows[list(PEER_COLUMNS)].sort_values("approval_rate").reset_index(drop=True)


def peer_caterpillar(frame: pd.DataFrame, code: str, peer_group: str | None) -> dict | None:
    """The caterpillar plot and its table for :func:`peer_frame`."""
    if not peer_group or frame.empty:
        return None
    rows = pd.DataFrame(
        {
            "org_code": frame["org_code"],
            "label": [trust_name(n) for n in frame["name"]],
            "rate": frame["approval_rate"].astype(float),
            "lower": frame["approval_rate_lower95"].astype(float),
            "upper": frame["approval_rate_upper95"].astype(float),
        }
    )
    return {
        "chart": plots.caterpillar_plot(
            rows,
            plot_id="peer-caterpillar",
            title=f"Approval rates of the {peer_group} peer group with 95% intervals",
            highlight=code,
        ),
        "rows": [
            {
                "code": r.org_code,
                "name": r.label,
                "rate": plots.pct(r.rate),
                "interval": f"{plots.pct(r.lower, 0)} to {plots.pct(r.upper, 0)}",
                "this": r.org_code == code,
            }
            for r in rows.itertuples()
        ],
    }


def trust_extras(
    public: pd.DataFrame,
    measure_quarters: pd.DataFrame,
    quarters: pd.DataFrame,
    code: str,
    folder,
    as_of,
) -> dict:
    """What the trust page adds to its card: a trend per measure, the peer caterpillar and
    the downloads of every number on the page (written into ``folder``)."""
    from flexbench.site import downloads

    pub = public.loc[code]
    label = trust_name(pub.get("name"))
    trends = trend_frame(measure_quarters, code, quarters)
    peers = peer_frame(public, code)
    peer_group = pub.get("peer_group")
    peer_group = None if peer_group is None or pd.isna(peer_group) else str(peer_group)
    resources = [
        downloads.Resource(
            "card", f"Benchmark card of {label}", public.loc[[code]], types_from=public
        ),
        downloads.Resource(
            "trends", f"Measures by quarter, {label}", trends, types_from=measure_quarters
        ),
    ]
    if not peers.empty:
        resources.append(
            downloads.Resource(
                "peers",
                f"Approval rates of the {peer_group} peer group",
                peers,
                types_from=public,
            )
        )
    files = downloads.write_downloads(folder, f"{label} ({code})", resources, as_of)
    return {
        "trends": measure_trends(trends, label),
        "caterpillar": peer_caterpillar(peers, code, peer_group),
        "downloads": download_links(files, f"{folder.name}/"),
    }


def download_links(files: dict[str, str], base: str) -> dict:
    """The links of a page's downloads (label, file) relative to the page."""
    links = [(f"{k.split(':', 1)[1]} (CSV)", v) for k, v in files.items() if k.startswith("csv:")]
    links.append(("all tables (XLSX)", files["xlsx"]))
    links.append(("metadata (datapackage.json)", files["datapackage"]))
    return {"base": base, "links": links}
