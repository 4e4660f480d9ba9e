"""Region and ICB pages of the site (docs/methodology.md, "Regions and ICBs"), read from
public.areas and public.trust_window only: the area's totals (public.aggregates' figures, under
its disclosure control) and rates with the approval rate's interval, its trusts with their
published figures, and the national funnel of approval rates with only the area's trusts on it.
Each page offers its two tables as downloads (CSV, XLSX, datapackage.json) beside it."""

from __future__ import annotations

import re

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
    """:func:`members_of` every area of a window, its rows of each region and ICB found once
    (a mask of the whole window for each of hundreds of areas cost more than the pages)."""

    def __init__(self, window: pd.DataFrame, columns: list[str] | None = None):
        self.window = window
        #: the columns of the window a member's row is read for (all by default)
        self.shown = window if columns is None else window[columns]
        self._rows = {
            col: window.groupby(col, sort=False).indices if col in window else None
            for col in ("region_code", "icb_code")
        }

    def __call__(self, area: pd.Series) -> pd.DataFrame:
        col = "region_code" if area["area_kind"] == "region" else "icb_code"
        groups = self._rows[col]
        if groups is None:
            return members_of(area, self.window)
        # the rows the mask of members_of keeps, in the window's order, then sorted as there
        mine = groups.get(area["area_code"], [])
        return self.shown.take(mine).sort_values("name")


def area_context(
    area: pd.Series,
    window: pd.DataFrame,
    points: list[dict],
    model,
    rows_fn,
    mine: pd.DataFrame | None = None,
):
    """One area's page: ``window`` is public.trust_window, ``points`` the national approval
    funnel's points (site.builder) as :func:`plots.funnel_records` gives them, ``model`` its
    published funnel, ``rows_fn`` the builder's way of showing a trust's counts and rates;
    ``mine``, where given, the area's :func:`members_of`."""
    kind = area["area_kind"]
    if mine is None:
        mine = members_of(area, window)
    funnel = None
    if model is not None:
        codes = set(mine["org_code"])
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
        "members": _members(mine, rows_fn),
        "funnel": funnel,
    }


def _members(mine: pd.DataFrame, rows_fn) -> list:
    """``rows_fn`` of each row of ``mine``: the row's values by column as iterrows gives them
    (``mine.values``), read as a Series is (builder.Row), not a Series a row."""
    from flexbench.site.builder import Row

    if not mine.columns.is_unique:
        return [rows_fn(r) for _, r in mine.iterrows()]
    columns = list(mine.columns)
    return [rows_fn(Row(zip(columns, values, strict=True))) for values in mine.values]


def write_area_downloads(area: pd.Series, mine: pd.DataFrame, areas: pd.DataFrame, folder,
                         as_of, rows_of: tuple | None = None) -> dict:  # fmt: skip
    """An area page's downloads in ``folder``: its row of public.areas and its trusts' rows of
    public.trust_window, as the page shows them; the links relative to the page. ``rows_of``,
    where given, is where those rows are: the area's position in ``areas``, and the table of
    every trust's :data:`MEMBER_COLUMNS` with the positions of ``mine``'s rows in it (the
    tables are written once for every page, :attr:`downloads.Resource.rows_of`)."""
    from flexbench.site import downloads
    from flexbench.site.trust_charts import download_links

    name = f"{area['area_name']} ({KINDS[area['area_kind']].lower()} {area['area_code']})"
    position, members, positions = rows_of if rows_of is not None else (None, None, None)
    resources = [
        downloads.Resource(
            "area",
            f"Totals of {name}",
            area.to_frame().T,
            types_from=areas,
            rows_of=None if position is None else (areas, [position]),
        ),
        downloads.Resource(
            "trusts",
            f"The trusts of {name}",
            mine[[c for c in MEMBER_COLUMNS if c in mine.columns]].reset_index(drop=True),
            types_from=mine,
            rows_of=None if members is None else (members, positions),
        ),
    ]
    files = downloads.write_downloads(folder, name, resources, as_of)
    return download_links(files, f"{folder.name}/")


def write_area_pages(env, out_dir, areas: pd.DataFrame, data, models, common: dict) -> int:
    """Write areas/<kind>-<code>.html for every region and ICB, each with its downloads in
    areas/<kind>-<code>/; return how many."""
    from flexbench.site import builder

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
    # every trust's columns of the pages' tables of trusts (all a member's row is read for),
    # written once for every page
    member_table = window[[c for c in MEMBER_COLUMNS if c in window.columns]]
    members = Members(window, list(member_table.columns) if "name" in member_table else None)
    for position, (_, a) in enumerate(areas.iterrows()):
        mine = members(a)
        ctx = area_context(a, window, points, model, member, mine)
        page = area_page(a["area_kind"], a["area_code"])
        links = write_area_downloads(
            a,
            mine,
            areas,
            folder / page.removesuffix(".html"),
            data.as_of,
            rows_of=(position, member_table, mine.index.to_numpy()),
        )
        (folder / page).write_text(
            template.render(root="../", page="area", area=ctx, downloads=links, **common),
            encoding="utf-8",
        )
    return len(areas)
