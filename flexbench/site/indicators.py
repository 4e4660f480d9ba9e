"""The indicator pages of the site (``indicators/<slug>.html`` and ``indicators/index.html``).

One page per indicator of transforms.indicators.INDICATORS: its definition, numerator,
denominator, unit, polarity, source, method and caveats (written once, in the registry) and
the trusts' distribution as published in ``public.trust_window`` (a dot per trust and a table,
withheld values as the suppression marker). Read and format only.
"""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup, escape

from flexbench.display import trust_name
from flexbench.site import plots
from transforms.disclosure import STATUS_WORDS, SUPPRESSION_MARKER
from transforms.indicators import INDICATORS, Indicator


def href(column: str, root: str) -> str | None:
    """The link to the indicator page of a public column (None when it has none)."""
    for i in INDICATORS:
        if i.column == column:
            return f"{root}indicators/{i.slug}.html"
    return None


def distribution_frame(public: pd.DataFrame, ind: Indicator) -> pd.DataFrame:
    """The rows of public.trust_window the page shows for ``ind`` (as published)."""
    cols = ["org_code", "name", "region_code", "peer_group", ind.column]
    for extra in (
        f"{ind.column}_lower95",
        f"{ind.column}_upper95",
        f"{ind.column}_status",
        f"{ind.column}_peer_median",
    ):
        if extra in public.columns:
            cols.append(extra)
    cols += [c for c in ("withheld", "too_few") if c in public.columns]
    frame = public[cols].reset_index(drop=True)
    return frame.sort_values([ind.column, "org_code"], na_position="last").reset_index(drop=True)


def _value(ind: Indicator, r: pd.Series) -> str:
    v = r.get(ind.column)
    status = r.get(f"{ind.column}_status")
    if isinstance(status, str) and status != "published":
        return SUPPRESSION_MARKER if status == "withheld" else STATUS_WORDS.get(status, status)
    if v is None or pd.isna(v):
        return "–"
    if ind.unit.startswith("proportion"):
        return plots.pct(v)
    return f"{float(v):.1f}"


def _row_html(ind: Indicator, r: dict, interval: bool) -> str:
    """A trust's row of the page's table as indicator.html's loop wrote it (each value escaped
    as the template escapes it): written here, not by the template's loop over some 2,000
    trusts a page; ``interval``: whether its 95% interval is shown."""
    code = r["org_code"]
    shown = (
        f"{plots.pct(r[f'{ind.column}_lower95'], 0)} to {plots.pct(r[f'{ind.column}_upper95'], 0)}"
        if interval
        else "–"
    )
    return (
        f'<tr><th scope="row"><a href="{escape(f"../trusts/{code}.html")}">'
        f'{escape(trust_name(r["name"]))}</a> <span class="code">{escape(code)}</span></th>'
        f'<td class="num">{escape(_value(ind, r))}</td><td>{escape(shown)}</td></tr>\n'
    )


def page_context(public: pd.DataFrame, ind: Indicator) -> dict:
    frame = distribution_frame(public, ind)
    percent = ind.unit.startswith("proportion")
    status = frame.get(f"{ind.column}_status")
    published = frame[ind.column].notna() & (status.eq("published") if status is not None else True)
    # each row's values by column as iterrows gives them (frame.values), without a Series a row
    columns = list(frame.columns)
    records = (dict(zip(columns, values, strict=True)) for values in frame.values)
    with_interval = f"{ind.column}_lower95" in frame
    rows = [
        _row_html(ind, r, with_interval and is_published)
        for r, is_published in zip(records, published.tolist(), strict=True)
    ]
    chart = plots.strip_plot(
        frame.loc[published, ind.column],
        frame.loc[published, "name"].map(trust_name),
        plot_id=f"dist-{ind.slug}",
        title=f"{ind.title}: every trust's published value",
        x_title=f"{ind.title} ({'%' if percent else ind.unit})",
        percent=percent,
    )
    return {
        "ind": ind,
        "chart": chart,
        "rows_html": Markup("".join(rows)),
        "n_published": int(published.sum()),
        "n_trusts": len(frame),
    }


#: The columns of the national table (public.trust_window), as the national page shows them.
NATIONAL_COLUMNS = (
    "org_code",
    "name",
    "region_code",
    "peer_group",
    "requests_received",
    "approval_rate",
    "approval_rate_status",
    "decline_rate",
    "decline_rate_status",
    "timeliness_rate",
    "timeliness_rate_status",
    "requests_per_100_staff",
    "national_rank",
    "peer_rank",
    "withheld",
    "too_few",
)


def national_downloads(data, folder) -> dict:
    """The national page's downloads: England's totals and rates (public.aggregates' national
    rows: the window the page states and each quarter of its trend), its table of trusts and
    the funnel plots' points."""
    from flexbench.site import downloads
    from flexbench.site.trust_charts import download_links

    cols = [c for c in NATIONAL_COLUMNS if c in data.public.columns]
    resources = []
    agg = data.aggregates
    if not agg.empty:
        england = agg[agg["scope"] == "national"].sort_values(
            ["period", "period_start"], ascending=[False, True]
        )
        resources.append(
            downloads.Resource(
                "england",
                "England: totals and rates (the window, and each quarter)",
                england.reset_index(drop=True),
                types_from=agg,
            )
        )
    resources.append(
        downloads.Resource(
            "trusts", "Every trust (national table)", data.public[cols].reset_index(drop=True)
        )
    )
    if not data.funnels.empty:
        resources.append(downloads.Resource("funnels", "Funnel plot points", data.funnels))
    if not data.funnel_limits.empty:
        resources.append(
            downloads.Resource("funnel_limits", "Funnel plot control limits", data.funnel_limits)
        )
    files = downloads.write_downloads(folder, "National picture", resources, data.as_of)
    return download_links(files, f"{folder.name}/")


def methodology_downloads(data, folder) -> dict:
    """The methodology page's downloads: the funnel limits it describes."""
    from flexbench.site import downloads
    from flexbench.site.trust_charts import download_links

    resources = [downloads.Resource("funnel_limits", "Funnel control limits", data.funnel_limits)]
    files = downloads.write_downloads(folder, "Methodology", resources, data.as_of)
    return download_links(files, f"{folder.name}/")


def write_indicator_pages(env, data, out_dir, common: dict) -> list[str]:
    """Write indicators/index.html and one page (with its downloads) per indicator."""
    from flexbench.site import downloads
    from flexbench.site.trust_charts import download_links

    folder = out_dir / "indicators"
    folder.mkdir(parents=True, exist_ok=True)
    template = env.get_template("indicator.html")
    written = []
    for ind in INDICATORS:
        if ind.column not in data.public.columns:
            continue
        ctx = page_context(data.public, ind)
        files = downloads.write_downloads(
            folder / ind.slug,
            ind.title,
            [
                downloads.Resource(
                    "distribution",
                    f"{ind.title} by trust",
                    distribution_frame(data.public, ind),
                )
            ],
            data.as_of,
        )
        (folder / f"{ind.slug}.html").write_text(
            template.render(
                root="../",
                page="indicator",
                page_ctx=ctx,
                downloads=download_links(files, f"{ind.slug}/"),
                **common,
            ),
            encoding="utf-8",
        )
        written.append(ind.slug)
    (folder / "index.html").write_text(
        env.get_template("indicators.html").render(
            root="../",
            page="indicators",
            indicators=[i for i in INDICATORS if i.slug in written],
            downloads=None,
            **common,
        ),
        encoding="utf-8",
    )
    return written
