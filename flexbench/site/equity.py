"""The equity section and the flex-type mix of the site's pages (docs/methodology.md, "Equity",
"Flex-type mix"), read from public.equity and public.flex_type_mix only: tables of each group's
published counts and approval rate, and the relative likelihood against the dimension's
reference group as a forest plot (inline SVG with a text alternative; no script).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
from markupsafe import Markup, escape

from transforms.disclosure import SUPPRESSION_MARKER

#: Dimensions in the order the pages show them, with their headings.
DIMENSIONS = {
    "sex": "Sex",
    "ethnic_group": "Ethnic group",
    "ethnic_group_detailed": "Ethnic group (2021 Census groups)",
    "disability": "Disability",
    "age_band": "Age band",
    "pay_band": "Pay band",
    "staff_group": "Staff group",
}


def _count(r: pd.Series, column: str) -> str:
    if column in str(r["withheld"] or "").split(";"):
        return SUPPRESSION_MARKER
    v = r[column]
    return "–" if pd.isna(v) else f"{int(v):,}"


def _pct(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{100 * float(v):.1f}%"


def _rate(r: pd.Series) -> tuple[str, str]:
    status = r["approval_rate_status"]
    if status == "published":
        interval = f"{_pct(r['approval_rate_lower95'])} to {_pct(r['approval_rate_upper95'])}"
        return _pct(r["approval_rate"]), interval
    if status == "withheld":
        return SUPPRESSION_MARKER, ""
    return "too few to publish", ""


def _rl(r: pd.Series) -> tuple[str, str]:
    if r["is_reference"]:
        return "reference", ""
    if pd.isna(r["relative_likelihood"]):
        return "–", ""
    return (
        f"{r['relative_likelihood']:.2f}",
        f"{r['relative_likelihood_lower95']:.2f} to {r['relative_likelihood_upper95']:.2f}",
    )


def forest_svg(points: list[tuple[str, float, float, float]], title: str) -> Markup:
    """A forest plot of relative likelihoods (label, value, lower, upper) on a log scale, with
    the line of no difference at 1; an SVG with a title and description (text alternative)."""
    if not points:
        return Markup("")
    width, left, right, row_h, top = 640, 230, 30, 22, 24
    lows = [p[2] for p in points] + [0.5]
    highs = [p[3] for p in points] + [2.0]
    lo, hi = math.log(max(min(lows), 0.05)), math.log(min(max(highs), 20.0))

    def x(v: float) -> float:
        v = min(max(v, math.exp(lo)), math.exp(hi))
        return left + (math.log(v) - lo) / (hi - lo) * (width - left - right)

    height = top + row_h * len(points) + 30
    desc = "; ".join(
        f"{label}: {value:.2f} (95% CI {low:.2f} to {high:.2f})"
        for label, value, low, high in points
    )
    parts = [
        f'<svg class="forest" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" aria-labelledby="{{id}}-t {{id}}-d">',
        f'<title id="{{id}}-t">{escape(title)}</title>',
        f'<desc id="{{id}}-d">{escape(desc)}</desc>',
        f'<line x1="{x(1):.1f}" y1="{top - 10}" x2="{x(1):.1f}" y2="{height - 24}" '
        'stroke="#555" stroke-dasharray="4 3"/>',
    ]
    for i, (label, value, low, high) in enumerate(points):
        y = top + row_h * i + row_h / 2
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
        )
        parts.append(
            f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" '
            'stroke="#005eb8" stroke-width="2"/>'
        )
        parts.append(f'<circle cx="{x(value):.1f}" cy="{y:.1f}" r="4" fill="#005eb8"/>')
    for tick in (0.25, 0.5, 1, 2, 4, 8):
        if math.exp(lo) <= tick <= math.exp(hi):
            parts.append(
                f'<text x="{x(tick):.1f}" y="{height - 8}" text-anchor="middle" '
                f'font-size="11">{tick:g}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_svg(rows: list[tuple[str, float | None]], title: str) -> Markup:
    """Horizontal bars of shares (label, share 0-1 or None when not published)."""
    shown = [(label, v) for label, v in rows if v is not None and not pd.isna(v)]
    if not shown:
        return Markup("")
    width, left, row_h = 640, 200, 20
    height = row_h * len(shown) + 10
    desc = "; ".join(f"{label}: {_pct(v)}" for label, v in shown)
    parts = [
        f'<svg class="bars" role="img" viewBox="0 0 {width} {height}" width="100%" '
        'aria-labelledby="{id}-t {id}-d">',
        f'<title id="{{id}}-t">{escape(title)}</title>',
        f'<desc id="{{id}}-d">{escape(desc)}</desc>',
    ]
    for i, (label, v) in enumerate(shown):
        y = row_h * i + 4
        w = float(v) * (width - left - 60)
        parts.append(
            f'<text x="{left - 8}" y="{y + 12}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
        )
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row_h - 6}" '
                     'fill="#005eb8"/>')  # fmt: skip
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}" font-size="11">{_pct(v)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _with_id(svg: Markup, ident: str) -> Markup:
    return Markup(str(svg).replace("{id}", ident))


class Breakdowns:
    """The tables of the pages' breakdowns (public.equity, public.flex_type_mix, public.areas)
    by name, with each unit's rows of a table grouped once per build: a mask of the whole
    table for each of thousands of pages made the site's cost grow with the square of the
    trusts."""

    def __init__(self, tables: dict[str, pd.DataFrame]):
        self.tables = tables
        self._units: dict[str, dict] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def get(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)

    def unit_rows(self, name: str, level: str, org_code: str) -> pd.DataFrame:
        """The rows of table ``name`` of one unit (``level``, ``org_code``), in the table's
        order and with its index: cut from the table where a page needs them as a frame (its
        records, :meth:`unit_records`, are what a page reads)."""
        return self.tables[name].iloc[list(self.unit_positions(name, level, org_code))]

    def by_unit(self, name: str) -> bool:
        """Whether table ``name`` has the columns its units' rows are found by (level,
        org_code)."""
        return {"level", "org_code"} <= set(self.tables[name].columns)

    def prepare(self) -> None:
        """Group the tables and write them once now (e.g. before forking the page writers)."""
        from flexbench.site import downloads

        for name in ("equity", "flex_type_mix"):
            table = self.tables.get(name)
            if table is not None and not table.empty and self.by_unit(name):
                self.unit_records(name, "", "")
                downloads.table_lines(table)
                downloads.keep_types(table)

    def unit_records(self, name: str, level: str, org_code: str) -> list[dict]:
        """:func:`_records` of :meth:`unit_rows`, cut from the values of the whole table (made
        into objects once, not a unit's rows at a time)."""
        key = f"{name} values"
        if key not in self._units:
            table = self.tables[name]
            self._units[key] = (list(table.columns), table.to_numpy(object))
        columns, values = self._units[key]
        return [
            dict(zip(columns, values[i], strict=True))
            for i in self.unit_positions(name, level, org_code)
        ]

    def unit_positions(self, name: str, level: str, org_code: str):
        """The positions in table ``name`` of the rows :meth:`unit_rows` gives."""
        key = f"{name} positions"
        if key not in self._units:
            self._units[key] = self.tables[name].groupby(["level", "org_code"], sort=False).indices
        return self._units[key].get((level, org_code), ())


def _records(rows: pd.DataFrame) -> list[dict]:
    """The rows as dicts of their values as iterrows gives them (the frame's values as objects),
    without a Series a row."""
    columns = list(rows.columns)
    return [dict(zip(columns, values, strict=True)) for values in rows.to_numpy(object)]


def equity_context(records: list[dict]) -> dict | None:
    """The equity section of a unit's page from its rows of public.equity as :func:`_records`
    gives them (None where the unit has none)."""
    if not records:
        return None
    dims = []
    for dim, heading in DIMENSIONS.items():
        g = [r for r in records if r["dimension"] == dim]
        if not g:
            continue
        withheld = all(r["dimension_status"] == "withheld" for r in g)
        # the rows of the page's table as _equity.html wrote them: the group (text from the
        # public layer) escaped as the template escapes it, the counts, rates and likelihoods
        # as formatted here (digits, "%", "[c]", "–", words: nothing HTML escapes)
        rows, points, key = [], [], escape(dim)
        for r in g:
            rate, interval = _rate(r)
            rl, rl_interval = _rl(r)
            rows.append(
                f'<tr data-group="{key}"><th scope="row">{escape(r["group_value"])}</th>'
                f'<td class="num">{_count(r, "requests_received")}</td>'
                f'<td class="num">{_count(r, "decided")}</td>'
                f'<td class="num">{_count(r, "approved")}</td><td class="num">{rate}</td>'
                f'<td class="num">{interval}</td><td class="num">{rl}</td>'
                f'<td class="num">{rl_interval}</td></tr>'
            )
            if pd.notna(r["relative_likelihood"]):
                points.append(
                    (
                        str(r["group_value"]),
                        float(r["relative_likelihood"]),
                        float(r["relative_likelihood_lower95"]),
                        float(r["relative_likelihood_upper95"]),
                    )
                )
        reference = [r["reference_group"] for r in g if not pd.isna(r["reference_group"])]
        ref = str(reference[0]) if reference else None
        title = f"Relative likelihood of approval, {heading.lower()} (reference: {ref})"
        dims.append(
            {
                "key": dim,
                "heading": heading,
                "withheld": bool(withheld),
                "reference": ref,
                "rows_html": Markup("\n".join(rows)),
                "svg": _with_id(forest_svg(points, title), f"forest-{dim}"),
            }
        )
    flags = [r["gap_evidence"] for r in records if r["gap_flagged"] and r["gap_evidence"]]
    return {"dimensions": dims, "flags": flags}


def flex_context(records: list[dict], rows: Callable[[], pd.DataFrame]) -> dict | None:
    """The flex-type mix of a unit's page from its rows of public.flex_type_mix as
    :func:`_records` gives them (None where the unit has none); ``rows()`` gives those rows as
    a frame (sorted by pandas where the types are not distinct texts)."""
    if not records:
        return None
    types = [r["flex_type"] for r in records]
    if all(type(t) is str for t in types) and len(set(types)) == len(types):
        # distinct texts: in the order sort_values gives them
        records = sorted(records, key=lambda r: r["flex_type"])
    else:
        records = _records(rows().sort_values("flex_type"))
    withheld = all(
        isinstance(r["dimension_status"], str) and r["dimension_status"] == "withheld"
        for r in records
    )
    rows = []
    for r in records:
        rate, interval = _rate(r)
        rows.append(
            {
                "type": str(r["flex_type"]).replace("_", " "),
                "requests": _count(r, "requests_received"),
                "share": _pct(r["share_requested"]),
                "approved": _count(r, "approved"),
                "share_approved": _pct(r["share_approved"]),
                "rate": rate,
                "interval": interval,
            }
        )
    bars = [(str(r["flex_type"]).replace("_", " "), r["share_requested"])
            for r in records]  # fmt: skip
    svg = bar_svg(bars, "Share of requests by type of flexible working")
    return {"withheld": withheld, "rows": rows, "svg": _with_id(svg, "flex-mix")}


def write_section_downloads(
    tables: Breakdowns, level: str, org_code: str, folder, base: str, as_of, title
) -> dict | None:
    """The downloads of a page's equity section and flex-type mix: the unit's rows of
    public.equity and public.flex_type_mix as shown (CSV, one XLSX, datapackage.json) in
    ``folder``; the links relative to the page (``base``), or None where it has neither."""
    from flexbench.site import downloads
    from flexbench.site.trust_charts import download_links

    resources = []
    for name, heading in (("equity", "Equity: approvals by group"),
                          ("flex_type_mix", "Kinds of flexible working requested")):  # fmt: skip
        table = tables.get(name)
        if table is None or table.empty:
            continue
        positions = tables.unit_positions(name, level, org_code)
        if len(positions):  # the unit's rows, cut from the table written once
            resources.append(
                downloads.Resource(
                    name, f"{heading}, {title}", None, types_from=table, rows_of=(table, positions)
                )
            )
    if not resources:
        return None
    files = downloads.write_downloads(folder, f"Equity and flex-type mix, {title}", resources,
                                      as_of)  # fmt: skip
    links = download_links(files, base)
    links["label"] = "Download the numbers of the equity section and flex-type mix"
    return links


def sections(
    tables: Breakdowns | dict[str, pd.DataFrame],
    level: str,
    org_code: str,
    folder=None,
    base: str = "",
    as_of=None,
    title: str = "",
) -> dict:
    """The ``equity``, ``flex`` and ``equity_downloads`` template variables of a page (None
    where there are none); the downloads are written into ``folder`` where one is given."""
    if not isinstance(tables, Breakdowns):
        tables = Breakdowns(tables)
    equity, flex = tables.get("equity"), tables.get("flex_type_mix")
    out = {
        "equity": None if equity is None or equity.empty else equity_context(
            tables.unit_records("equity", level, org_code)),
        "flex": None if flex is None or flex.empty else flex_context(
            tables.unit_records("flex_type_mix", level, org_code),
            lambda: tables.unit_rows("flex_type_mix", level, org_code)),
        "equity_downloads": None,
    }  # fmt: skip
    if folder is not None and (out["equity"] or out["flex"]):
        out["equity_downloads"] = write_section_downloads(
            tables, level, org_code, folder, base, as_of, title
        )
    return out
