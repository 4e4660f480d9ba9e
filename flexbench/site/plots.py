"""Plots of the site as inline SVG, drawn in Python: no script, no CDN, no network.

Every plot carries a ``<title>`` and a ``<desc>`` (its text alternative, read by screen
readers) and every point its own ``<title>`` (a tooltip naming the trust and its value).
Every piece of text from a feed goes through :func:`markupsafe.escape`.

- :func:`funnel_plot` - the funnel plots of docs/methodology.md ("Funnel plots"): trusts as
  points at their published rate and denominator, the national rate and the 95% and 99.8%
  control limits as the public layer publishes them (public.funnels, public.funnel_limits);
  nothing is computed here;
- :func:`measure_trend_plot` - a trust's measure by quarter with its 95% intervals, a gap
  where a quarter is withheld or missing;
- :func:`voice_plot` - a trust's Staff Survey answers against its peer group's range.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from transforms import stats

#: CSS class and legend label of each funnel significance level.
SIGNIFICANCE_CLASSES = {
    stats.HIGH_OUTER: ("sig-high-outer", "Above the 99.8% limit"),
    stats.HIGH_INNER: ("sig-high-inner", "Above the 95% limit"),
    stats.NOT_SIGNIFICANT: ("sig-none", "Within the limits"),
    stats.LOW_INNER: ("sig-low-inner", "Below the 95% limit"),
    stats.LOW_OUTER: ("sig-low-outer", "Below the 99.8% limit"),
}


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def pct(v, digits: int = 1) -> str:
    """A proportion as a percentage ("91.2%"); an en dash when missing."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{100 * float(v):.{digits}f}%"


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _ticks(lo: float, hi: float, ticks: int = 5) -> list[float]:
    step = _nice_step(hi - lo, ticks)
    start = math.ceil(lo / step - 1e-9) * step
    out, v = [], start
    while v <= hi + 1e-9:
        out.append(round(v, 10))
        v += step
    return out


@dataclass(frozen=True)
class FunnelModel:
    """The comparison a funnel plot draws, as the public layer publishes it (public.funnels and
    public.funnel_limits): the national rate, the limits used and their values.

    ``method`` is ``"wilson"`` (no overdispersion) or ``"arcsine"`` with ``tau2`` > 0 when
    the trusts are overdispersed (Spiegelhalter 2005: winsorised z-scores, phi > 1).
    ``limits`` has one row per denominator: denominator, lower95, upper95, lower998, upper998.
    """

    target: float
    method: str
    tau2: float
    phi: float
    units: int
    limits: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False)

    @cached_property
    def curves(self) -> tuple[np.ndarray, ...]:
        """The limits by denominator, ascending, as floats: the denominators, the lower and
        upper 99.8% limits and the lower and upper 95% limits (sorted once for every plot
        drawn on the model, e.g. an area's)."""
        limits = self.limits.sort_values("denominator")
        return tuple(
            limits[c].to_numpy(float, na_value=np.nan)
            for c in ("denominator", "lower998", "upper998", "lower95", "upper95")
        )

    def describe(self) -> str:
        if self.units == 0 or self.target is None or math.isnan(self.target):
            return "No trust has data for this measure."
        if self.method == "arcsine":
            return (
                f"National rate {pct(self.target)}. The trusts vary more than chance allows "
                f"(overdispersion factor {self.phi:.2f}), so the limits are widened by a random-"
                f"effects variance (Spiegelhalter 2005, tau² = {self.tau2:.5f})."
            )
        return (
            f"National rate {pct(self.target)}. Limits are the 95% and 99.8% Wilson limits "
            f"around it (no overdispersion: factor {self.phi:.2f})."
        )


class FunnelPlot:
    """An SVG funnel plot: trusts as points, the national rate, 95% and 99.8% limits.

    The geometry and the points are drawn once; :meth:`render` adds the title and, on a
    trust's own page, that trust highlighted (so 200 trust pages cost one plot).

    Parameters
    ----------
    points : pandas.DataFrame or list of dict
        One row per trust shown: org_code, name, peer_group, rate, denominator (both as
        published), href, significance (a :data:`SIGNIFICANCE_CLASSES` key). Rows without a
        published rate or denominator are left out. Or the :func:`funnel_records` of such a
        frame, some of them (an area's trusts of the national funnel's points).
    model : FunnelModel
        As published (public.funnels, public.funnel_limits).
    plot_id : str
        Unique id prefix for the title/desc elements.
    measure, denominator_label : str
        Axis labels.
    """

    def __init__(
        self,
        points: pd.DataFrame | list[dict],
        model: FunnelModel,
        *,
        plot_id: str,
        measure: str,
        denominator_label: str,
        width: int = 860,
        height: int = 500,
    ) -> None:
        self.plot_id, self.width, self.height = plot_id, width, height
        self.model, self.denominator_label = model, denominator_label
        self.records = funnel_records(points) if isinstance(points, pd.DataFrame) else points
        n_shown = len(self.records)
        desc = (
            f"{model.describe()} {n_shown} trusts are shown as points: {measure} against "
            f"{denominator_label}. "
        )
        # each level's points (value_counts of the column: a point without a level is none's)
        counts = Counter(r["significance"] for r in self.records)
        named = [
            f"{counts[level]} {label.lower()}"
            for level, (_, label) in SIGNIFICANCE_CLASSES.items()
            if level != stats.NOT_SIGNIFICANT
        ]
        self.desc = desc + "Trusts " + ", ".join(named) + "."
        self.points: dict[str, tuple[float, float, float, str, str]] = {}
        if n_shown == 0 or math.isnan(model.target):
            self.body = (
                f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">'
                "No trust has numbers that can be published for this measure.</text>"
            )
            return
        self.body = self._draw(measure)

    def _draw(self, measure: str) -> str:
        model, width, height, plot_id = self.model, self.width, self.height, self.plot_id
        left, right, top, bottom = 58, 16, 14, 84
        pw, ph = width - left - right, height - top - bottom
        den = np.array([float(r["denominator"]) for r in self.records])
        rate = np.array([float(r["rate"]) for r in self.records])
        x_max = float(den.max()) * 1.05
        # the limits up to the plot's largest denominator
        grid, lo998, hi998, lo95, hi95 = (c[model.curves[0] <= x_max] for c in model.curves)
        # y range: the points and the limits from the smallest shown denominator on.
        visible = grid >= den.min() * 0.8
        lows = lo998[visible] if visible.any() else np.array([model.target])
        highs = hi998[visible] if visible.any() else np.array([model.target])
        y_lo = float(min(rate.min(), np.nanmin(lows), model.target))
        y_hi = float(max(rate.max(), np.nanmax(highs), model.target))
        pad = (y_hi - y_lo) * 0.06 or 0.05
        y_lo, y_hi = max(0.0, y_lo - pad), min(1.0, y_hi + pad)

        def sx(v):
            return left + pw * (np.asarray(v, dtype=float) / x_max)

        def sy(v):
            return top + ph * (1 - (np.asarray(v, dtype=float) - y_lo) / (y_hi - y_lo))

        parts = [f'<rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}"/>']
        digits = 0 if (y_hi - y_lo) > 0.08 else 1
        parts += _y_ticks(_ticks(y_lo, y_hi), sy, left, left + pw, lambda t: pct(t, digits))
        for t in _ticks(0, x_max):
            x = _fmt(float(sx(t)))
            parts.append(
                f'<text class="tick" x="{x}" y="{top + ph + 16}" text-anchor="middle">'
                f"{int(t):,}</text>"
            )
        parts.append(
            f'<text class="axis-label" x="{left + pw / 2}" y="{top + ph + 34}" '
            f'text-anchor="middle">{escape(self.denominator_label)}</text>'
            f'<text class="axis-label" transform="translate(14 {top + ph / 2}) rotate(-90)" '
            f'text-anchor="middle">{escape(measure)}</text>'
        )
        parts.append(
            f'<clipPath id="{escape(plot_id)}-clip"><rect x="{left}" y="{top}" '
            f'width="{pw}" height="{ph}"/></clipPath>'
        )
        parts.append(f'<g clip-path="url(#{escape(plot_id)}-clip)">')
        for cls, values in (
            ("limit-998", lo998),
            ("limit-998", hi998),
            ("limit-95", lo95),
            ("limit-95", hi95),
        ):
            xs, ys = sx(grid), sy(values)
            finite = np.isfinite(ys)  # the points of the limit drawn: floats, finite ones
            xy = " ".join(
                f"{a:.1f},{b:.1f}"  # as _fmt writes each
                for a, b in zip(xs[finite].tolist(), ys[finite].tolist(), strict=True)
            )
            parts.append(f'<polyline class="{cls}" points="{xy}"/>')
        ty = _fmt(float(sy(model.target)))
        parts.append(f'<line class="target" x1="{left}" x2="{left + pw}" y1="{ty}" y2="{ty}"/>')
        parts.append("</g>")
        parts.append('<g class="points">')
        for i, r in enumerate(self.records):
            level = (
                r["significance"] if isinstance(r["significance"], str) else stats.NOT_SIGNIFICANT
            )
            cls, label = SIGNIFICANCE_CLASSES.get(
                level, SIGNIFICANCE_CLASSES[stats.NOT_SIGNIFICANT]
            )
            cx, cy = float(sx(den[i])), float(sy(rate[i]))
            tip = (
                f"{r['name']} ({r['org_code']}): {pct(rate[i])} of {int(den[i]):,} "
                f"{self.denominator_label.lower()}; {label.lower()}"
            )
            self.points[str(r["org_code"])] = (cx, cy, rate[i], cls, tip)
            circle = (
                f'<circle class="pt {cls}" cx="{_fmt(cx)}" cy="{_fmt(cy)}" r="4.5" '
                f'data-code="{escape(r["org_code"])}" '
                f'data-peer="{escape(r.get("peer_group") or "")}">'
                f"<title>{escape(tip)}</title></circle>"
            )
            href = r.get("href")
            if isinstance(href, str) and href:
                circle = f'<a href="{escape(href)}">{circle}</a>'
            parts.append(circle)
        parts.append("</g>")
        # Outliers (outside the 99.8% limits) labelled with their ODS code.
        parts.append('<g class="outlier-labels">')
        for r in self.records:
            cx, cy, _rate, cls, _tip = self.points[str(r["org_code"])]
            if cls in ("sig-high-outer", "sig-low-outer"):
                parts.append(
                    f'<text class="pt-label outlier-label" x="{_fmt(cx + 7)}" '
                    f'y="{_fmt(cy + 4)}">{escape(r["org_code"])}</text>'
                )
        parts.append("</g>")
        ly, ly2 = height - 30, height - 10
        parts.append(
            f'<g class="legend">'
            f'<line class="limit-95" x1="{left}" x2="{left + 22}" y1="{ly - 4}" y2="{ly - 4}"/>'
            f'<text x="{left + 28}" y="{ly}">95% limits</text>'
            f'<line class="limit-998" x1="{left + 110}" x2="{left + 132}" y1="{ly - 4}" '
            f'y2="{ly - 4}"/><text x="{left + 138}" y="{ly}">99.8% limits</text>'
            f'<line class="target" x1="{left + 240}" x2="{left + 262}" y1="{ly - 4}" '
            f'y2="{ly - 4}"/><text x="{left + 268}" y="{ly}">national rate</text>'
            f'<circle class="pt sig-none" cx="{left + 380}" cy="{ly - 4}" r="4"/>'
            f'<text x="{left + 390}" y="{ly}">within the 95% limits</text>'
            f'<circle class="pt sig-high-inner" cx="{left}" cy="{ly2 - 4}" r="4"/>'
            f'<circle class="pt sig-low-inner" cx="{left + 10}" cy="{ly2 - 4}" r="4"/>'
            f'<text x="{left + 20}" y="{ly2}">between the 95% and 99.8% limits (high, low)</text>'
            f'<circle class="pt sig-high-outer" cx="{left + 330}" cy="{ly2 - 4}" r="4"/>'
            f'<circle class="pt sig-low-outer" cx="{left + 340}" cy="{ly2 - 4}" r="4"/>'
            f'<text x="{left + 350}" y="{ly2}">outside 99.8% (high, low), labelled by code'
            "</text></g>"
        )
        return "".join(parts)

    def render(self, title: str, highlight: str | None = None, hidden_because: str = "") -> Markup:
        """The plot as inline SVG; ``highlight`` (an org_code) is drawn larger and labelled,
        or, when it is not on the plot, ``hidden_because`` says why."""
        title_id, desc_id = f"{self.plot_id}-title", f"{self.plot_id}-desc"
        desc = self.desc
        overlay = ""
        if highlight is not None:
            if highlight in self.points:
                cx, cy, rate, cls, tip = self.points[highlight]
                desc += f" This trust is the labelled point: {tip}."
                overlay = (
                    f'<g class="highlight-layer"><circle class="pt {cls} highlight" '
                    f'cx="{_fmt(cx)}" cy="{_fmt(cy)}" r="7" data-code="{escape(highlight)}">'
                    f"<title>{escape(tip)}</title></circle>"
                    f'<text class="pt-label" x="{_fmt(cx + 10)}" y="{_fmt(cy - 8)}">'
                    f"{escape(highlight)}</text></g>"
                )
            else:
                desc += f" This trust is not shown: {hidden_because or 'no published rate'}."
        return Markup(
            f'<svg class="plot funnel" id="{escape(self.plot_id)}" '
            f'viewBox="0 0 {self.width} {self.height}" role="group" '
            f'aria-labelledby="{escape(title_id)}" aria-describedby="{escape(desc_id)}" '
            f'xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{escape(title_id)}">{escape(title)}</title>'
            f'<desc id="{escape(desc_id)}">{escape(desc)}</desc>'
            f"{self.body}{overlay}</svg>"
        )


def funnel_records(points: pd.DataFrame) -> list[dict]:
    """The points of a funnel plot a frame of them gives (see :class:`FunnelPlot`): its rows
    with a published rate and a denominator above 0, as records."""
    pts = points.dropna(subset=["rate", "denominator"])
    pts = pts[pts["denominator"].astype(float) > 0]
    return pts.to_dict("records")


def funnel_plot(
    points: pd.DataFrame | list[dict],
    model: FunnelModel,
    *,
    plot_id: str,
    title: str,
    measure: str,
    denominator_label: str,
    highlight: str | None = None,
    width: int = 640,
    height: int = 380,
) -> Markup:
    """One funnel plot as inline SVG (see :class:`FunnelPlot`)."""
    plot = FunnelPlot(
        points,
        model,
        plot_id=plot_id,
        measure=measure,
        denominator_label=denominator_label,
        width=width,
        height=height,
    )
    return plot.render(title, highlight)


@dataclass(frozen=True)
class VoiceItem:
    """One Staff Survey measure: the trust's value against its peers (min, median, max)."""

    label: str
    value: float | None
    peer_min: float | None
    peer_median: float | None
    peer_max: float | None
    scale_max: float  # 100 for percentages, 10 for the People Promise score
    unit: str  # "%" or ""


def voice_plot(items: Sequence[VoiceItem], *, plot_id: str, title: str, width: int = 640) -> Markup:
    """Staff voice against peers: for each measure the peers' range, median and the trust."""
    row_h, left, right, top = 52, 12, 24, 8
    height = top + row_h * len(items) + 10
    pw = width - left - right
    title_id, desc_id = f"{plot_id}-title", f"{plot_id}-desc"

    def val(v, unit):
        return "no result" if v is None else f"{v:.1f}{unit}"

    desc = "; ".join(
        f"{it.label}: trust {val(it.value, it.unit)}, peer median {val(it.peer_median, it.unit)}"
        for it in items
    )
    parts = [
        f'<svg class="plot voice" id="{escape(plot_id)}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{escape(title_id)} {escape(desc_id)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(title_id)}">{escape(title)}</title>',
        f'<desc id="{escape(desc_id)}">{escape(desc)}</desc>',
    ]
    for k, it in enumerate(items):
        y = top + row_h * k + row_h / 2 + 6

        def sx(v, it=it):
            return left + pw * (float(v) / it.scale_max)

        parts.append(
            f'<text class="voice-label" x="{left}" y="{_fmt(y - 14)}">'
            f"{escape(it.label)}: {escape(val(it.value, it.unit))} (peer median "
            f"{escape(val(it.peer_median, it.unit))})</text>"
        )
        parts.append(
            f'<line class="axis" x1="{left}" x2="{left + pw}" y1="{_fmt(y)}" y2="{_fmt(y)}"/>'
        )
        parts.append(
            f'<text class="tick" x="{left}" y="{_fmt(y + 18)}">0</text>'
            f'<text class="tick" x="{left + pw}" y="{_fmt(y + 18)}" text-anchor="end">'
            f"{it.scale_max:g}{escape(it.unit)}</text>"
        )
        if it.peer_min is not None and it.peer_max is not None:
            parts.append(
                f'<rect class="peer-range" x="{_fmt(sx(it.peer_min))}" '
                f'y="{_fmt(y - 7)}" width="{_fmt(sx(it.peer_max) - sx(it.peer_min))}" '
                f'height="14"><title>Peers from {val(it.peer_min, it.unit)} to '
                f"{val(it.peer_max, it.unit)}</title></rect>"
            )
        if it.peer_median is not None:
            parts.append(
                f'<line class="peer-median" x1="{_fmt(sx(it.peer_median))}" '
                f'x2="{_fmt(sx(it.peer_median))}" y1="{_fmt(y - 11)}" '
                f'y2="{_fmt(y + 11)}"><title>Peer median '
                f"{val(it.peer_median, it.unit)}</title></line>"
            )
        if it.value is not None:
            parts.append(
                f'<circle class="pt trust" cx="{_fmt(sx(it.value))}" cy="{_fmt(y)}" '
                f'r="6"><title>This trust: {val(it.value, it.unit)}</title></circle>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


# --------------------------------------------------------------------------------------------
# a measure's trend (public.trust_measure_quarters) and the peer caterpillar
# --------------------------------------------------------------------------------------------

#: What a quarter without a plotted value shows under the axis.
GAP_LABELS = {"withheld": "[c]", "too_few": "few", "no_data": "none"}


def _x_ticks(values, sx, y1, y2, label_y, text) -> list[str]:
    """An x axis's tick at each of ``values``: a grid line from ``y1`` to ``y2`` and its label
    (``text(value)``) centred at ``label_y``."""
    out = []
    for t in values:
        x = _fmt(sx(t))
        out.append(
            f'<line class="grid" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"/>'
            f'<text class="tick" x="{x}" y="{label_y}" text-anchor="middle">'
            f"{escape(text(t))}</text>"
        )
    return out


def _y_ticks(values, sy, x1, x2, text) -> list[str]:
    """A y axis's tick at each of ``values``: a grid line from ``x1`` to ``x2`` and its label
    (``text(value)``) right-aligned 6 px left of ``x1``."""
    out = []
    for t in values:
        y = _fmt(float(sy(t)))
        out.append(
            f'<line class="grid" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>'
            f'<text class="tick" x="{x1 - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(text(t))}</text>'
        )
    return out


def _polylines(css: str, shown: list[int], points) -> list[str]:
    """One polyline per run of consecutive indices in ``shown`` (two points or more): never a
    line across a gap; ``points[i]``: the point of index ``i`` as "x,y"."""
    lines, run = [], []
    for i in [*shown, None]:
        if i is not None and (not run or i == run[-1] + 1):
            run.append(i)
            continue
        if len(run) > 1:
            xy = " ".join(points[j] for j in run)
            lines.append(f'<polyline class="{css}" points="{xy}"/>')
        run = [i] if i is not None else []
    return lines


def missing(v) -> bool:
    """Whether one value is missing (``pd.isna``), found without pandas for a text, an int or
    a float (the values of the pages' tables, thousands a page)."""
    kind = type(v)
    if kind is str or kind is int:
        return False
    if kind is float:
        return v != v
    return bool(pd.isna(v))


def number(v) -> float | None:
    """``v`` as a float, None where it is missing (``pd.isna``)."""
    return None if missing(v) else float(v)


@lru_cache(maxsize=64)
def _quarter_axis(labels: tuple[str, ...], left: float, step: float, y: float) -> tuple:
    """The x axis of a trend over quarters ``labels``: each quarter's x as text, and its tick
    (a short grid line down from ``y`` and, at every n-th quarter, its label): the same in
    every trust's plots of the same quarters, drawn once."""
    xs = [_fmt(left + step * (i + 0.5)) for i in range(len(labels))]
    every = max(1, math.ceil(len(labels) / 10))
    ticks = [
        f'<line class="grid" x1="{x}" x2="{x}" y1="{y}" y2="{y + 4}"/>'
        + (
            f'<text class="tick" x="{x}" y="{y + 17}" text-anchor="middle">{escape(lab)}</text>'
            if i % every == 0
            else ""
        )
        for i, (x, lab) in enumerate(zip(xs, labels, strict=True))
    ]
    return tuple(xs), tuple(ticks)


@lru_cache(maxsize=256)
def _escaped_ids(*ids: str) -> tuple[str, ...]:
    """A plot's ids escaped, kept (a plot of a measure has the same ids on every page)."""
    return tuple(str(escape(i)) for i in ids)


@lru_cache(maxsize=4096)
def _gap_mark(x: str, y: float, label: str, status: str) -> str:
    """The mark under a trend's axis of a quarter not plotted (withheld, too few, no data),
    kept: the same quarters are gaps of the same kind in many trusts' plots."""
    return (
        f'<text class="gap" x="{x}" y="{y}" text-anchor="middle">'
        f"{escape(GAP_LABELS.get(status, '–'))}"
        f"<title>{escape(label)}: not published ({escape(status)})</title></text>"
    )


def measure_trend_plot(
    rows: pd.DataFrame | Sequence,
    *,
    plot_id: str,
    title: str,
    y_title: str,
    proportion: bool = True,
    national: Sequence[float | None] | None = None,
    width: int = 720,
    height: int = 300,
) -> Markup:
    """One measure of a trust by quarter: the published rate with its 95% interval, a line
    only between consecutive published quarters (a withheld, too-few or missing quarter breaks
    it and is marked under the axis), both axes titled.

    ``rows``: one row per quarter in order (a frame, or records with these attributes), with
    ``quarter`` (label), ``rate``,
    ``rate_lower95``, ``rate_upper95`` and ``status`` (published | too_few | withheld |
    no_data), as public.trust_measure_quarters publishes them. ``proportion``: a proportion
    shown as a percentage (axis 0-100%), else a rate shown as it is (uptake, requests per 100
    staff a year; axis from 0). ``national`` (optional): the published national value of each
    quarter (None where there is none), drawn as a grey line.
    """
    left, right, top, bottom = 64, 16, 14, 66
    pw, ph = width - left - right, height - top - bottom
    title_id, desc_id = f"{plot_id}-title", f"{plot_id}-desc"
    if isinstance(rows, pd.DataFrame):
        q = rows.reset_index(drop=True)
        columns = [
            list(q[c]) for c in ("quarter", "status", "rate", "rate_lower95", "rate_upper95")
        ]
    else:
        columns = [
            [getattr(r, c) for r in rows]
            for c in ("quarter", "status", "rate", "rate_lower95", "rate_upper95")
        ]
    labels = [str(v) for v in columns[0]]
    status = [str(s) for s in columns[1]]
    # each value as a float, None where missing (every use goes through float() or pd.isna)
    values, lows, highs = ([number(v) for v in c] for c in columns[2:])
    q = labels
    published = [i for i in range(len(q)) if status[i] == "published" and values[i] is not None]
    is_published = set(published)

    def show(v, digits: int = 1) -> str:
        # v: a float (the values made floats above, a tick, a national value) or None
        if v is None or v != v:
            return "–"
        return pct(v, digits) if proportion else f"{float(v):.{digits}f}"

    nat = [number(v) for v in national] if national is not None else [None] * len(q)
    desc_parts = []
    for i, lab in enumerate(labels):
        if i in is_published:
            desc_parts.append(
                f"{lab}: {show(values[i])} (95% CI {show(lows[i])} to {show(highs[i])})"
            )
        else:
            desc_parts.append(f"{lab}: not published ({status[i].replace('_', ' ')})")
        if nat[i] is not None:
            desc_parts[-1] += f", national {show(nat[i])}"
    desc = "; ".join(desc_parts) or "No quarter has data."
    plot_ref, title_ref, desc_ref = _escaped_ids(plot_id, title_id, desc_id)
    parts = [
        f'<svg class="plot trend" id="{plot_ref}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{title_ref} {desc_ref}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_ref}">{escape(title)}</title>',
        f'<desc id="{desc_ref}">{escape(desc)}</desc>',
    ]
    candidates = [v for i in published for v in (lows[i], highs[i], values[i]) if v is not None] + [
        v for v in nat if v is not None
    ]
    top_limit = 1.0 if proportion else math.inf
    if candidates:
        y_lo, y_hi = min(candidates), max(candidates)
        pad = (y_hi - y_lo) * 0.1 or (0.05 if proportion else max(abs(y_hi) * 0.1, 0.5))
        y_lo, y_hi = max(0.0, y_lo - pad), min(top_limit, y_hi + pad)
    else:
        y_lo, y_hi = 0.0, 1.0
    step = pw / max(len(q), 1)

    def sy(v):
        return top + ph * (1 - (float(v) - y_lo) / (y_hi - y_lo))

    parts.append(f'<rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}"/>')
    ticks = _ticks(y_lo, y_hi, 5)
    tick_step = (ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    if proportion:
        digits = 0 if tick_step >= 0.01 else 1
    else:
        digits = 0 if tick_step >= 1 else (1 if tick_step >= 0.1 else 2)
    parts += _y_ticks(ticks, sy, left, left + pw, lambda t: show(t, digits))
    xs, axis = _quarter_axis(tuple(labels), left, step, top + ph)
    for i in range(len(labels)):
        parts.append(axis[i])
        if i not in is_published:
            parts.append(_gap_mark(xs[i], top + ph - 6, labels[i], status[i]))
    parts.append(
        f'<text class="axis-title" x="{left + pw / 2}" y="{height - 26}" '
        'text-anchor="middle">Quarter</text>'
        f'<text class="axis-title" transform="rotate(-90)" x="{-(top + ph / 2)}" y="14" '
        f'text-anchor="middle">{escape(y_title)}</text>'
        f'<text class="legend" x="8" y="{height - 6}">Line: published quarters in a row; '
        "bars: 95% interval; "
        + ("grey line: national; " if any(v is not None for v in nat) else "")
        + "[c] withheld, few: too few to publish, none: no data.</text>"
    )
    # The national line, where the quarter has a published national value.
    shown_national = [i for i in range(len(q)) if nat[i] is not None]
    parts += _polylines(
        "national", shown_national, {i: f"{xs[i]},{_fmt(sy(nat[i]))}" for i in shown_national}
    )
    # Segments only between consecutive published quarters: never a line across a gap.
    ys = {i: _fmt(sy(values[i])) for i in published}
    parts += _polylines("series", sorted(published), {i: f"{xs[i]},{ys[i]}" for i in published})
    for i in published:
        if lows[i] is not None and highs[i] is not None:
            parts.append(
                f'<line class="ci" x1="{xs[i]}" x2="{xs[i]}" '
                f'y1="{_fmt(sy(lows[i]))}" y2="{_fmt(sy(highs[i]))}"/>'
            )
        parts.append(
            f'<circle class="pt" cx="{xs[i]}" cy="{ys[i]}" r="4">'
            f"<title>{escape(desc_parts[i])}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


class MarkedRows:
    """Rows drawn once, each after a prefix, joined (``sep`` between them) with the rows of
    one key marked: ``marked`` before them instead of ``plain``. A peer group's rows on each
    of its trusts' pages, that trust's marked: the text joined once and cut around the mark,
    not joined again a page."""

    def __init__(self, keys, rows, plain: str, marked: str, sep: str = ""):
        self.plain, self.marked = plain, marked
        self.text = sep.join(plain + row for row in rows)
        self.starts: dict = {}  # where each key's rows start in the text
        at = 0
        for key, row in zip(keys, rows, strict=True):
            self.starts.setdefault(key, []).append(at)
            at += len(plain) + len(row) + len(sep)

    def with_marked(self, key) -> str:
        """The rows joined, those of ``key`` marked."""
        starts = self.starts.get(key)
        if not starts:
            return self.text
        out, last = [], 0
        for start in starts:
            out += (self.text[last:start], self.marked)
            last = start + len(self.plain)
        out.append(self.text[last:])
        return "".join(out)


class CaterpillarPlot:
    """A peer group's caterpillar plot, drawn once and rendered for each of its trusts with that
    trust marked (:func:`caterpillar_plot`): the rows and axes do not depend on the trust."""

    def __init__(
        self,
        rows: pd.DataFrame,
        *,
        plot_id: str,
        x_title: str = "Approval rate (95% interval)",
        width: int = 720,
    ):
        r = rows.sort_values(["rate", "label"]).reset_index(drop=True)
        row_h, left, right, top, bottom = 16, 250, 20, 10, 44
        self.plot_id, self.width = plot_id, width
        self.height = top + bottom + row_h * max(len(r), 1)
        self.codes = list(r["org_code"])
        self.rows: list[str] = []  # each trust's group, after its class
        self.axes = ""
        if r.empty:
            return
        pw = width - left - right
        lo = max(0.0, float(r["lower"].min()) - 0.02)
        hi = min(1.0, float(r["upper"].max()) + 0.02)
        if hi <= lo:
            lo, hi = 0.0, 1.0

        def sx(v):
            return left + pw * (float(v) - lo) / (hi - lo)

        ph = row_h * len(r)
        parts = [f'<rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}"/>']
        parts += _x_ticks(_ticks(lo, hi, 6), sx, top, top + ph, top + ph + 14, lambda t: pct(t, 0))
        parts.append(
            f'<text class="axis-title" x="{left + pw / 2}" y="{self.height - 8}" '
            f'text-anchor="middle">{escape(x_title)}</text>'
        )
        self.axes = "".join(parts)
        for i, p in r.iterrows():
            y = top + row_h * (i + 0.5)
            label = str(p["label"])
            short = label if len(label) <= 38 else label[:37] + "…"
            tip = f"{label}: {pct(p['rate'])} (95% CI {pct(p['lower'])} to {pct(p['upper'])})"
            self.rows.append(
                f'"><text class="tick" x="{left - 6}" y="{_fmt(y)}" '
                f'text-anchor="end" dominant-baseline="middle">{escape(short)}</text>'
                f'<line class="ci" x1="{_fmt(sx(p["lower"]))}" x2="{_fmt(sx(p["upper"]))}" '
                f'y1="{_fmt(y)}" y2="{_fmt(y)}"/>'
                f'<circle class="pt" cx="{_fmt(sx(p["rate"]))}" cy="{_fmt(y)}" r="4">'
                f"<title>{escape(tip)}</title></circle></g>"
            )
        self._marked = MarkedRows(self.codes, self.rows, '<g class="cat', '<g class="cat this')

    def render(self, title: str, highlight: str) -> Markup:
        """The plot with trust ``highlight`` (an org_code) marked."""
        plot_id, n = self.plot_id, len(self.codes)
        title_id, desc_id = f"{plot_id}-title", f"{plot_id}-desc"
        mine = next((i for i, code in enumerate(self.codes) if code == highlight), None)
        place = f"; this trust is {mine + 1} of {n} from the lowest" if mine is not None else ""
        desc = f"{n} trusts ordered by rate{place}."
        parts = [
            f'<svg class="plot caterpillar" id="{escape(plot_id)}" '
            f'viewBox="0 0 {self.width} {self.height}" '
            f'role="img" aria-labelledby="{escape(title_id)} {escape(desc_id)}" '
            f'xmlns="http://www.w3.org/2000/svg">',
            f'<title id="{escape(title_id)}">{escape(title)}</title>',
            f'<desc id="{escape(desc_id)}">{escape(desc)}</desc>',
        ]
        if not n:
            parts.append('<text x="10" y="30">No peer has a published rate.</text></svg>')
            return Markup("".join(parts))
        parts += (self.axes, self._marked.with_marked(highlight), "</svg>")
        return Markup("".join(parts))


def caterpillar_plot(
    rows: pd.DataFrame,
    *,
    plot_id: str,
    title: str,
    highlight: str,
    x_title: str = "Approval rate (95% interval)",
    width: int = 720,
) -> Markup:
    """The peer group's published rates with their 95% intervals, ordered lowest to highest,
    one row per trust, ``highlight`` (an org_code) marked. ``rows``: org_code, label, rate,
    lower, upper (published values only)."""
    plot = CaterpillarPlot(rows, plot_id=plot_id, x_title=x_title, width=width)
    return plot.render(title, highlight)


def strip_plot(
    values: pd.Series,
    labels: pd.Series,
    *,
    plot_id: str,
    title: str,
    x_title: str,
    percent: bool,
    width: int = 720,
    height: int = 130,
) -> Markup:
    """Every trust's published value of one indicator as a dot on one axis (the trusts'
    distribution); ``percent``: values are proportions shown as %."""
    v = pd.to_numeric(values, errors="coerce")
    keep = v.notna()
    v, labels = v[keep].astype(float), labels[keep]
    left, right, top = 20, 20, 20
    pw = width - left - right
    title_id, desc_id = f"{plot_id}-title", f"{plot_id}-desc"

    def show(x: float, digits: int = 1) -> str:
        return pct(x, digits) if percent else f"{x:.{digits}f}"

    desc = (
        f"{len(v)} trusts with a published value, from {show(v.min())} to {show(v.max())}."
        if len(v)
        else "No trust has a published value."
    )
    parts = [
        f'<svg class="plot strip" id="{escape(plot_id)}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{escape(title_id)} {escape(desc_id)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(title_id)}">{escape(title)}</title>',
        f'<desc id="{escape(desc_id)}">{escape(desc)}</desc>',
    ]
    if len(v):
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
        if percent:
            lo, hi = max(0.0, lo), min(1.0, hi)

        def sx(x):
            return left + pw * (float(x) - lo) / (hi - lo)

        axis_y = top + 50
        parts.append(
            f'<line class="frame" x1="{left}" x2="{left + pw}" y1="{axis_y}" y2="{axis_y}"/>'
        )
        parts += _x_ticks(
            _ticks(lo, hi, 6), sx, axis_y, axis_y + 4, axis_y + 18, lambda t: show(t, 0)
        )
        for i, (x, lab) in enumerate(zip(v, labels, strict=True)):
            y = top + 8 + (i % 5) * 8
            parts.append(
                f'<circle class="pt" cx="{_fmt(sx(x))}" cy="{y}" r="3">'
                f"<title>{escape(str(lab))}: {escape(show(x))}</title></circle>"
            )
        parts.append(
            f'<text class="axis-title" x="{left + pw / 2}" y="{height - 8}" '
            f'text-anchor="middle">{escape(x_title)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
