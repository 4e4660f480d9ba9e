"""Region and ICB pages of the site (docs/methodology.md, "Regions and ICBs"), read from
public.areas and public.trust_window only: the area's totals (public.aggregates' figures, under
its disclosure control) and rates with the approval rate's interval, its trusts with their
published figures, and the national funnel of approval rates with only the area's trusts on it.
Each page offers its two tables as downloads (CSV, XLSX, datapackage.json) beside it."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from flexbench.site import plots

KINDS = {"region": "Region", "icb": "Integrated care board"}


def area_page(kind: str, code: str) -> str:
    """The file name of an area's page, under areas/."""
    return f"{kind}-{re.sub(r'[^A-Za-z0-9]', '_', str(code))}.html"


def _count(r, column: str) -> str:
    if column in str(r["withheld"] or "").split(";"):
        return "[c]"
    v = r[column]
    return "–" if pd.isna(v) else f"{int(v):,}"


def _pct(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{100 * float(v):.1f}%"


def _rate(r, column: str) -> str:
    status = r[f"{column}_status"]
    if status == "published":
        return _pct(r[column])
    if status == "withheld":
        return "[c]"
    return "too few to publish" if status == "too_few" else "–"


def area_links(areas: pd.DataFrame) -> list[dict]:
    """Links to every area page, regions first (for the national page)."""
    out = []
    for kind in KINDS:
        rows = areas[areas["area_kind"] == kind].sort_values("area_name")
        out.append(
            {
                "kind": KINDS[kind],
                "areas": [
                    {"name": r.area_name, "href": f"areas/{area_page(kind, r.area_code)}"}
                    for r in rows.itertuples()
                ],
            }
        )
    return out


#: The columns of public.trust_window in an area page's table of trusts (and its download).
MEMBER_COLUMNS = (
    "org_code",
    "name",
    "has_data",
    "requests_received",
    "decided",
    "approval_rate",
    "approval_rate_lower95",
    "approval_rate_upper95",
    "approval_rate_status",
    "withheld",
    "too_few",
)


def members_of(area: pd.Series, window: pd.DataFrame) -> pd.DataFrame:
    """The area's trusts (public.trust_window rows), by name."""
    col = "region_code" if area["area_kind"] == "region" else "icb_code"
    return window[window[col] == area["area_code"]].sort_values("name")


class Members:
    """:func:`members_of` every area of a window (its rows by position, as
    ``reset_index(drop=True)`` leaves them) as the rows' positions: its rows of each region
    and ICB found once, and an area's sorted by their names alone (a mask of the whole window
    for each of hundreds of areas cost more than the pages, and a frame of an area's rows
    cut and sorted, more than its page's table of them)."""

    def __init__(self, window: pd.DataFrame):
        self.window = window
        self._rows = {
            col: window.groupby(col, sort=False).indices if col in window else None
            for col in ("region_code", "icb_code")
        }

    def __call__(self, area: pd.Series) -> np.ndarray:
        col = "region_code" if area["area_kind"] == "region" else "icb_code"
        groups = self._rows[col]
        if groups is None:
            return members_of(area, self.window).index.to_numpy()
        # the rows the mask of members_of keeps, in the window's order, then sorted as there
        # (a Series sorted as sort_values sorts a frame by the column)
        mine = groups.get(area["area_code"], [])
        return self.window["name"].take(mine).sort_values().index.to_numpy()


def area_context(area: pd.Series, mine: list, points: list[dict], model, rows_fn) -> dict:
    """One area's page: ``mine`` are the area's trusts (:func:`members_of`), each its row's
    values by column as iterrows gives them (builder.Row), ``points`` the national approval
    funnel's points (site.builder) as :func:`plots.funnel_records` gives them, ``model`` its
    published funnel, ``rows_fn`` the builder's way of showing a trust's counts and rates."""
    kind = area["area_kind"]
    funnel = None
    if model is not None:
        codes = {r["org_code"] for r in mine}
        funnel = plots.funnel_plot(
            [r for r in points if r["org_code"] in codes],  # in the national funnel's order
            model,
            plot_id="funnel-area",
            title=f"Approval rate of the trusts of {area['area_name']} on the national funnel",
            measure="Approval rate",
            denominator_label="Requests decided",
        )
    interval = ""
    if area["approval_rate_status"] == "published":
        interval = f"{_pct(area['approval_rate_lower95'])} to {_pct(area['approval_rate_upper95'])}"
    return {
        "kind": KINDS[kind],
        "code": area["area_code"],
        "name": area["area_name"],
        "region_name": area["region_name"],
        "region_href": area_page("region", area["region_code"]) if kind == "icb" else None,
        "trusts": int(area["trusts"]),
        "with_data": int(area["trusts_with_data"]),
        "counts": [
            ("Requests received", _count(area, "requests_received")),
            ("Decided", _count(area, "decided")),
            ("Approved", _count(area, "approved")),
            ("Declined", _count(area, "declined")),
            ("Escalated", _count(area, "escalated")),
            ("Decided within two months", _count(area, "decided_within_2_months")),
        ],
        "approval": _rate(area, "approval_rate"),
        "interval": interval,
        "rates": [
            ("Decline rate", _rate(area, "decline_rate")),
            ("Timeliness rate", _rate(area, "timeliness_rate")),
            ("Escalation rate", _rate(area, "escalation_rate")),
        ],
        "members": [rows_fn(r) for r in mine],
        "funnel": funnel,
    }


def write_area_downloads(
    area: pd.Series,
    position: int,
    mine,
    areas: pd.DataFrame,
    members: pd.DataFrame,
    folder,
    as_of,
    types: dict[str, str],
) -> dict:
    """An area's page's downloads in ``folder``: its row of public.areas (at ``position``) and
    its trusts' rows of public.trust_window as the page shows them (``mine``, their positions
    in ``members``, the table of every trust's :data:`MEMBER_COLUMNS`, written once for every
    page: :attr:`downloads.Resource.rows_of`; ``types``, their columns' types); the links
    relative to the page."""
    from flexbench.site import downloads
    from flexbench.site.trust_charts import download_links

    name = f"{area['area_name']} ({KINDS[area['area_kind']].lower()} {area['area_code']})"
    resources = [
        downloads.Resource(
            "area",
            f"Totals of {name}",
            area.to_frame().T,
            types_from=areas,
            rows_of=(areas, [position]),
        ),
        downloads.Resource(
            "trusts", f"The trusts of {name}", None, types=types, rows_of=(members, mine)
        ),
    ]
    files = downloads.write_downloads(folder, name, resources, as_of)
    return download_links(files, f"{folder.name}/")


def write_area_pages(env, out_dir, areas: pd.DataFrame, data, models, common: dict) -> int:
    """Write areas/<kind>-<code>.html for every region and ICB, each with its downloads in
    areas/<kind>-<code>/; return how many."""
    from flexbench.site import builder, downloads

    if areas.empty:
        return 0
    folder = out_dir / "areas"
    folder.mkdir(exist_ok=True)
    points = plots.funnel_records(builder._funnel_points(data, "approval_rate", "../trusts/"))
    model = models.get("approval")
    template = env.get_template("area.html")

    def member(r):
        rate = builder.show_rate(r, "approval_rate")
        interval = ""
        if builder.rate_status(r, "approval_rate") == "published":
            interval = f"{_pct(r['approval_rate_lower95'])} to {_pct(r['approval_rate_upper95'])}"
        return {
            "name": builder.display_name(r["name"]),
            "page": builder.page_name(r["org_code"]),
            "requests": builder.show_count(r, "requests_received") if r["has_data"] else "–",
            "decided": builder.show_count(r, "decided") if r["has_data"] else "–",
            "rate": rate if r["has_data"] else "no data",
            "interval": interval,
        }

    window = data.public.reset_index(drop=True)
    # every trust's columns of the pages' tables of trusts (all a member's row is read for,
    # each row's values by column as iterrows gives them), written and typed once for every
    # page
    member_table = window[[c for c in MEMBER_COLUMNS if c in window.columns]]
    columns, values = list(member_table.columns), member_table.values
    types = downloads.TypesOfRows(member_table)
    members = Members(window)
    for position, (_, a) in enumerate(areas.iterrows()):
        mine = members(a)
        rows = [builder.Row(zip(columns, values[i], strict=True)) for i in mine]
        ctx = area_context(a, rows, points, model, member)
        page = area_page(a["area_kind"], a["area_code"])
        links = write_area_downloads(
            a,
            position,
            mine,
            areas,
            member_table,
            folder / page.removesuffix(".html"),
            data.as_of,
            types(mine),
        )
        (folder / page).write_text(
            template.render(root="../", page="area", area=ctx, downloads=links, **common),
            encoding="utf-8",
        )
    return len(areas)
