"""Build the static benchmark site from the warehouse (``flexbench site``, end of the DAG).

Pages (all relative links, so the folder works from the file system or any web server, with
no network: styles and the small script are copied from this package, plots are inline SVG):

- ``index.html`` - the national page: funnel plots (approval, decline, timeliness), a
  sortable table of every trust, a peer-group filter;
- ``trusts/<ODS code>.html`` - one page per trust: its card (rates with 95% intervals, rank
  among peers and nationally, flags with evidence, trend by quarter, staff voice against
  peers, pledge status, whether its latest file was accepted and, if not, the validation
  report);
- ``methodology.html`` - ``docs/methodology.md`` when present, and the rules the site applies.

The site reads the warehouse's ``public`` layer and nothing else (a connection from
:func:`flexbench.extract.open_public`), so every number on it has been through the disclosure
control of docs/methodology.md ("Disclosure control"), applied once to everything published.
It only reads and formats: no rate, interval, rank or funnel is computed here. Everything from
a feed is escaped (Jinja2 autoescape, and :func:`markupsafe.escape` in the SVG). The
data-as-of line is on every page.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup

from flexbench import extract
from flexbench.display import trust_name
from flexbench.site import areas as site_areas
from flexbench.site import equity as site_equity
from flexbench.site import indicators as site_pages
from flexbench.site import plots, trust_charts
from transforms import disclosure, vocabulary
from transforms.benchmark import FUNNEL_MEASURES, PROPORTIONS
from transforms.disclosure import STATUS_WORDS, SUPPRESSION_MARKER

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
SITE_MARKER = ".flexbench-site"

#: The funnel plots of the national page: (key, title, rate, denominator, axis labels).
FUNNELS = (
    ("approval", "Approval rate", "approval_rate", "decided", "Approval rate", "Requests decided"),
    ("decline", "Decline rate", "decline_rate", "decided", "Decline rate", "Requests decided"),
)

#: How the card names each of the benchmark's proportions (transforms.benchmark.PROPORTIONS).
CARD_LABELS = {
    "approval_rate": "Approval rate",
    "decline_rate": "Decline rate",
    "timeliness_rate": "Decided within two months",
    "escalation_rate": "Escalation rate",
    "appeal_rate": "Appeal rate (of declines)",
    "appeals_upheld_rate": "Appeals upheld",
    "non_statutory_decline_share": "Declines on non-statutory grounds",
}

#: The rates of a trust's card: (label, rate column, numerator, denominator, funnel key).
CARD_MEASURES = tuple(
    (
        CARD_LABELS[p.name],
        p.name,
        p.numerator,
        p.denominator,
        p.name.removesuffix("_rate") if p.name in FUNNEL_MEASURES else None,
    )
    for p in sorted(PROPORTIONS, key=lambda p: list(CARD_LABELS).index(p.name))
    if p.name in CARD_LABELS
)

COUNT_LABELS = (
    ("requests_received", "Requests received"),
    ("approved_in_full", "Approved in full"),
    ("approved_with_changes", "Approved with changes"),
    ("declined", "Declined"),
    ("withdrawn", "Withdrawn"),
    ("pending", "Pending"),
    ("escalated", "Escalated"),
    ("appeals", "Appeals"),
    ("appeals_upheld", "Appeals upheld"),
)

REGIONS = vocabulary.REGIONS

display_name = trust_name  # ODS upper-case names in the case people write them

log = logging.getLogger(__name__)


def page_name(org_code: str) -> str:
    """The file name of a trust's page: its ODS code, letters and digits only."""
    safe = re.sub(r"[^A-Za-z0-9]", "_", str(org_code))
    return f"{safe or 'unknown'}.html"


# --------------------------------------------------------------------------------------------
# reading the public layer
# --------------------------------------------------------------------------------------------


@dataclass
class SiteData:
    """Everything the pages show, read once from the public layer (``public.*``)."""

    as_of: extract.DataAsOf
    public: pd.DataFrame  # public.trust_window, indexed by org_code
    aggregates: pd.DataFrame  # public.aggregates
    flags: pd.DataFrame  # public.flags
    status: pd.DataFrame  # public.trust_status
    pledge: pd.DataFrame  # public.pledge
    peer_voice: pd.DataFrame  # public.peer_voice
    funnels: pd.DataFrame  # public.funnels
    funnel_limits: pd.DataFrame  # public.funnel_limits
    funnel_positions: pd.DataFrame  # public.funnel_positions
    warehouse_dir: Path
    _by_trust: dict = field(default_factory=dict, init=False, repr=False)

    def rows_of(self, table: str, code: str) -> list:
        """The trust's rows of ``table`` (``"flags"``, ``"pledge"``, ``"status"``), in the
        table's order, each its values by column as iterrows gives them (:class:`Row`): the
        table is grouped by org_code, and its values made objects, once per build, not per
        page."""
        if table not in self._by_trust:
            frame = getattr(self, table)
            self._by_trust[table] = (
                (
                    frame.groupby("org_code", sort=False).indices,
                    list(frame.columns),
                    frame.values if frame.columns.is_unique else None,
                )
                if "org_code" in frame
                else ({}, [], None)
            )
        positions, columns, values = self._by_trust[table]
        mine = positions.get(code, ())
        if values is None:  # a column name twice: the rows as Series
            return [getattr(self, table).iloc[i] for i in mine]
        return [Row(zip(columns, values[i], strict=True)) for i in mine]

    def trust_row(self, code: str) -> Row | pd.Series:
        """The trust's row of ``public`` as ``public.loc[code]`` gives it, read as a
        :class:`Row`: every trust's values worked out once per build, a column at a time
        (:func:`cross_sections`), not a Series a page."""
        rows = self._trust_rows()
        if rows is None:
            return Row.of(self.public.loc[code])
        columns, positions, values = rows
        return Row(zip(columns, values[positions[code]], strict=True))

    def _trust_rows(self) -> tuple[list, dict, list[tuple]] | None:
        if "public" not in self._by_trust:
            self._by_trust["public"] = cross_sections(self.public)
        return self._by_trust["public"]

    def prepare(self) -> None:
        """Group the tables :meth:`rows_of` reads, and work out the rows :meth:`trust_row`
        gives, now (e.g. once before forking the processes that write the pages, not once in
        each of them)."""
        for table in ("flags", "pledge", "status"):
            self.rows_of(table, "")
        self._trust_rows()


def cross_sections(frame: pd.DataFrame) -> tuple[list, dict, list[tuple]] | None:
    """Every row of ``frame`` as ``frame.loc[label]`` gives its values, worked out a column at
    a time: the column names, each label's position, and the values by row; None where a
    label or a column name comes twice, or a row is not a Series of objects.

    A row of a frame of text and numbers is a Series of objects, each value as its column
    gives it: a numpy scalar from a numpy column, the column's own scalar (a text, NaN,
    ``pd.NA``, a Timestamp) from any other, which is what iterating the column gives."""
    if frame.empty or not (frame.index.is_unique and frame.columns.is_unique):
        return None
    if frame.iloc[0].dtype != np.dtype(object):
        return None
    columns = []
    for j in range(frame.shape[1]):
        column = frame.iloc[:, j]
        numpy = isinstance(column.dtype, np.dtype) and column.dtype.kind not in "mM"
        columns.append(list(column.to_numpy() if numpy else column.array))
    positions = {label: i for i, label in enumerate(frame.index)}
    return list(frame.columns), positions, list(zip(*columns, strict=True))


def read_site_data(con, warehouse_dir: Path) -> SiteData:
    """Read the public tables the site shows (``con`` from :func:`extract.open_public`)."""
    public = extract.read_public(con, "trust_window")
    if public.empty:
        raise extract.ExtractError(
            "the warehouse has no public benchmark yet (public.trust_window): run `flexbench run`"
        )
    return SiteData(
        as_of=extract.data_as_of(con),
        public=public.set_index("org_code", drop=False),
        aggregates=extract.read_public(con, "aggregates"),
        flags=extract.read_public(con, "flags"),
        status=extract.read_public(con, "trust_status"),
        pledge=extract.read_public(con, "pledge"),
        peer_voice=extract.read_public(con, "peer_voice"),
        funnels=extract.read_public(con, "funnels"),
        funnel_limits=extract.read_public(con, "funnel_limits"),
        funnel_positions=extract.read_public(con, "funnel_positions"),
        warehouse_dir=warehouse_dir,
    )


# --------------------------------------------------------------------------------------------
# page contexts
# --------------------------------------------------------------------------------------------


def show_count(row: pd.Series, column: str) -> str:
    """A public count as text: "1,235", "[c]" when withheld, "–" when there is no data."""
    if column not in row.index:
        return "–"
    if extract.named(row, column):
        return SUPPRESSION_MARKER
    v = row[column]
    return "–" if plots.missing(v) else f"{int(v):,}"


def rate_status(row: pd.Series, column: str) -> str | None:
    """published | too_few | withheld for a rate of a public row (None without data)."""
    status = row.get(f"{column}_status")
    if isinstance(status, str):
        return status
    if extract.named(row, column):
        return "withheld"
    if extract.named(row, column, extract.TOO_FEW):
        return "too_few"
    return None if plots.missing(row.get(column)) else "published"


def show_rate(row: pd.Series, column: str) -> str:
    """A public rate as text at its published precision; "[c]" withheld to protect
    confidentiality; "too few" under the minimum denominator; "–" without data."""
    if column not in row.index:
        return "–"
    status = rate_status(row, column)
    if status == "withheld":
        return SUPPRESSION_MARKER
    if status == "too_few":
        return "too few"
    v = row[column]
    return "–" if plots.missing(v) else plots.pct(v, _digits(v))


def _digits(v) -> int:
    """Decimals of a published rate as a percentage: 0.1 point, or none for a whole one (an
    interval limit)."""
    return 0 if abs(float(v) * 100 - round(float(v) * 100)) < 1e-9 else 1


def rate_note(row: pd.Series, column: str) -> str:
    """Why a rate is not shown, in words ("" when it is)."""
    status = rate_status(row, column)
    return STATUS_WORDS[status] if status in ("withheld", "too_few") else ""


def _sort_value(v) -> str:
    if plots.missing(v):
        return ""
    if isinstance(v, bool | np.bool_):
        return str(int(v))
    return str(v)


def funnel_models(data: SiteData) -> dict[str, plots.FunnelModel]:
    """The published funnel of each measure (public.funnels and public.funnel_limits)."""
    models = {}
    rate_of = {f[0]: f[2] for f in FUNNELS}
    if "measure" not in data.funnels:
        return models
    for key, rate in rate_of.items():
        row = data.funnels[data.funnels["measure"] == rate]
        if row.empty or plots.missing(row.iloc[0]["target"]):
            continue
        r = row.iloc[0]
        limits = data.funnel_limits[data.funnel_limits["measure"] == rate]
        models[key] = plots.FunnelModel(
            target=float(r["target"]),
            method=str(r["method"]),
            tau2=0.0 if plots.missing(r["tau2"]) else float(r["tau2"]),
            phi=float("nan") if plots.missing(r["phi"]) else float(r["phi"]),
            units=int(r["trusts"]),
            limits=limits.reset_index(drop=True),
        )
    return models


def _funnel_points(data: SiteData, rate: str, href_prefix: str) -> pd.DataFrame:
    """Trusts on a funnel plot: those whose rate is published, at its published values."""
    pub = data.public
    if rate not in pub:
        return pd.DataFrame(columns=["org_code", "rate", "denominator", "significance"])
    shown = pub[pub[f"{rate}_status"] == "published"]
    fp = data.funnel_positions
    position = (
        fp[fp["measure"] == rate].set_index("org_code")["position"]
        if "measure" in fp
        else pd.Series(dtype=object)
    )
    return pd.DataFrame(
        {
            "org_code": shown["org_code"],
            "name": shown["name"].map(display_name),
            "peer_group": shown.get("peer_group"),
            "rate": pd.array(shown[rate], dtype="Float64"),
            "denominator": pd.array(shown["decided"], dtype="Float64"),
            "href": href_prefix + shown["org_code"].map(page_name),
            "significance": shown["org_code"].map(position),
        }
    ).reset_index(drop=True)


def _national(data: SiteData, period: str = "window") -> pd.DataFrame:
    agg = data.aggregates
    if agg.empty:
        return agg
    return agg[(agg["scope"] == "national") & (agg["period"] == period)]


def _not_shown(pub: pd.DataFrame, rate: str) -> tuple[int, int]:
    """Trusts with data left off a funnel: (too few to publish, withheld for confidentiality)."""
    status = pub.get(f"{rate}_status", pd.Series(dtype=object))
    return int((status == "too_few").sum()), int((status == "withheld").sum())


def national_context(data: SiteData, models: dict[str, plots.FunnelModel]) -> dict:
    pub = data.public
    funnels, significance, plots_by_key = [], {}, {}
    for key, title, rate, _den, measure, den_label in FUNNELS:
        if key not in models:
            continue
        pts = _funnel_points(data, rate, "trusts/")
        significance[key] = dict(zip(pts["org_code"], pts["significance"], strict=True))
        too_few, withheld = _not_shown(pub, rate)
        funnels.append(
            {
                "key": key,
                "title": title,
                "model": models[key],
                "svg": plots.funnel_plot(
                    pts,
                    models[key],
                    plot_id=f"funnel-{key}",
                    title=title,
                    measure=measure,
                    denominator_label=den_label,
                ),
                "too_few": too_few,
                "withheld": withheld,
            }
        )
        plots_by_key[key] = plots.FunnelPlot(
            _funnel_points(data, rate, ""),
            models[key],
            plot_id=f"funnel-{key}",
            measure=measure,
            denominator_label=den_label,
        )
    flag_counts = (
        data.flags.groupby("org_code").size().to_dict()
        if "org_code" in data.flags and len(data.flags)
        else {}
    )
    rows = []
    for code, r in _iterrows(pub.sort_values("name")):
        st = next(iter(data.rows_of("status", code)), None)  # its row of public.trust_status
        rows.append(
            {
                "code": code,
                "name": display_name(r.get("name")),
                "href": f"trusts/{page_name(code)}",
                "region": REGIONS.get(r.get("region_code"), r.get("region_code") or ""),
                "peer_group": r.get("peer_group") or "",
                "cells": [
                    (show_count(r, "requests_received"), _sort_value(r.get("requests_received"))),
                    (show_rate(r, "approval_rate"), _sort_value(r.get("approval_rate"))),
                    (show_rate(r, "decline_rate"), _sort_value(r.get("decline_rate"))),
                    (show_rate(r, "timeliness_rate"), _sort_value(r.get("timeliness_rate"))),
                    (_per100(r), _sort_value(r.get("requests_per_100_staff"))),
                    (_rank(r, "national"), _sort_value(r.get("national_rank"))),
                    (_rank(r, "peer"), _sort_value(r.get("peer_rank"))),
                ],
                "funnel": significance.get("decline", {}).get(code),
                "flags": flag_counts.get(code, 0) if len(data.flags.columns) else None,
                "file_state": _file_state(st),
            }
        )
    national = _national(data)
    nat = national.iloc[0] if len(national) else pd.Series(dtype=object)
    totals = {
        "trusts": len(pub),
        "with_data": int(pub["has_data"].fillna(False).sum()),
        "requests": None
        if plots.missing(nat.get("requests_received"))
        else int(nat["requests_received"]),
        "approval": plots.number(nat.get("approval_rate")),
        "decline": plots.number(nat.get("decline_rate")),
    }
    peer_groups = sorted({p for p in pub.get("peer_group", pd.Series()).dropna()})
    nq = _national(data, "quarter")
    national_q = nq.set_index("period_start") if len(nq) else pd.DataFrame()
    return {
        "funnels": funnels,
        "rows": rows,
        "totals": totals,
        "national": nat,
        "peer_groups": peer_groups,
        "has_flags": len(data.flags.columns) > 0,
        "funnel_plots": plots_by_key,
        "significance": significance,
        "national_quarters": national_q,
    }


def _iterrows(frame: pd.DataFrame):
    """``frame.iterrows()``, each row a :class:`Row` of the frame's values (made objects once,
    as iterrows makes them), not a Series a row."""
    if not frame.columns.is_unique:
        yield from frame.iterrows()
        return
    columns = list(frame.columns)
    for label, values in zip(frame.index, frame.values, strict=True):
        yield label, Row(zip(columns, values, strict=True))


def _per100(r: pd.Series) -> str:
    if "requests_per_100_staff" not in r.index:
        return "–"
    if extract.named(r, "requests_received"):
        return SUPPRESSION_MARKER
    v = r["requests_per_100_staff"]
    return "–" if plots.missing(v) else f"{float(v):.1f}"


def _rank(r: pd.Series, scope: str) -> str:
    """ "3 of 120", or why the trust is not ranked."""
    rank, ranked = r.get(f"{scope}_rank"), r.get(f"{scope}_ranked")
    if not plots.missing(rank) and not plots.missing(ranked):
        return f"{int(rank)} of {int(ranked)}"
    status = r.get("rank_status")
    if status == "too_few":
        return "not ranked: too few to publish"
    if status == "withheld":
        return "not ranked: withheld to protect confidentiality"
    if status == "ranked" and scope == "peer":
        return "not ranked: no peer group"
    return "not ranked: no data"


def _file_state(st) -> str:
    if st is None:
        return "never fetched"
    status = st.get("last_attempt_status")
    if plots.missing(status):
        return "never fetched"
    if status in ("accepted", "unchanged"):
        return "stale" if bool(st.get("stale")) else "accepted"
    return str(status).replace("_", " ")


def _date_text(v) -> str:
    if plots.missing(v):
        return "–"
    try:
        ts = pd.Timestamp(v)
    except (TypeError, ValueError):
        return str(v)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return f"{ts:%-d %B %Y}"


def _interval(pub: pd.Series, rate: str) -> str:
    """The published 95% interval of a rate ("" when the rate is not published)."""
    if rate_status(pub, rate) != "published":
        return ""
    lo, hi = pub.get(f"{rate}_lower95"), pub.get(f"{rate}_upper95")
    if plots.missing(lo) or plots.missing(hi):
        return ""
    return f"{plots.pct(lo, _digits(lo))} to {plots.pct(hi, _digits(hi))}"


class Row(dict):
    """A row of a table as its values by column (``pairs``: (column, value)), read as a row's
    Series is read (``column in row.index``, ``row.get(column)``, ``row[column]``) at a
    dict's cost: a trust page reads its row a hundred times."""

    __slots__ = ("index",)

    def __init__(self, pairs):
        super().__init__(pairs)
        self.index = self  # a column is in row.index as it is a key of the row

    @classmethod
    def of(cls, series: pd.Series) -> Row | pd.Series:
        """The Series' values (as it gives them) by column; the Series itself where a column
        name comes twice."""
        if not series.index.is_unique:
            return series
        return cls(zip(series.index, series.to_numpy(), strict=True))


def trust_context(
    data: SiteData, code: str, models: dict[str, plots.FunnelModel], national: dict
) -> dict:
    pub = data.trust_row(code)
    nat = national["national"]
    measures = []
    for label, rate, num, den, key in CARD_MEASURES:
        if rate not in pub.index:
            continue
        position = national["significance"].get(key, {}).get(code) if key else None
        national_rate = nat.get(rate) if rate in nat.index else None
        measures.append(
            {
                "label": label,
                "column": rate,
                "href": site_pages.href(rate, "../"),
                "value": show_rate(pub, rate),
                "note": rate_note(pub, rate),
                "interval": _interval(pub, rate),
                "basis": f"{show_count(pub, num)} of {show_count(pub, den)}",
                "national": "–"
                if plots.missing(national_rate)
                else plots.pct(national_rate, _digits(national_rate)),
                "position": plots.SIGNIFICANCE_CLASSES.get(position, (None, ""))[1]
                if isinstance(position, str)
                else "",
                "position_class": plots.SIGNIFICANCE_CLASSES.get(position, ("", ""))[0]
                if isinstance(position, str)
                else "",
            }
        )
    counts = [(label, show_count(pub, c)) for c, label in COUNT_LABELS if c in pub.index]

    # Its place on the approval funnel, highlighted (or why it is not on it).
    funnel = None
    if "approval" in national["funnel_plots"]:
        funnel = national["funnel_plots"]["approval"].render(
            f"Approval rate of {display_name(pub['name'])} against every trust",
            highlight=code,
            hidden_because=rate_note(pub, "approval_rate") or "no data in the window",
        )

    return {
        "code": code,
        "row": pub,  # the trust's row of public.trust_window
        "name": display_name(pub.get("name")),
        "region": REGIONS.get(pub.get("region_code"), pub.get("region_code") or "unknown"),
        "peer_group": pub.get("peer_group") if not plots.missing(pub.get("peer_group")) else None,
        "has_data": bool(pub.get("has_data")) if not plots.missing(pub.get("has_data")) else False,
        "months_covered": None
        if plots.missing(pub.get("months_covered"))
        else int(pub["months_covered"]),
        "measures": measures,
        "counts": counts,
        "uptake": _per100(pub),
        "national_rank": _rank(pub, "national"),
        "national_quartile": None
        if plots.missing(pub.get("national_quartile"))
        else int(pub["national_quartile"]),
        "peer_rank": _rank(pub, "peer"),
        "peer_quartile": None
        if plots.missing(pub.get("peer_quartile"))
        else int(pub["peer_quartile"]),
        "suppressed": bool(isinstance(pub.get("withheld"), str) and pub.get("withheld")),
        "too_few": bool(isinstance(pub.get("too_few"), str) and pub.get("too_few")),
        "funnel": funnel,
        "flags": _flags(data.rows_of("flags", code)),
        "flags_available": len(data.flags.columns) > 0,
        "voice": _voice(data, pub),
        "pledge": _pledge(data.rows_of("pledge", code)),
        "publication": _publication(data, code),
    }


def _flags(mine: list) -> list[dict]:
    """The trust's rows of public.flags (evidence as the public layer wrote it)."""
    out = []
    for r in mine:
        out.append(
            {
                "label": _plain_text(r.get("flag")).replace("_", " "),
                "severity": _plain_text(r.get("severity")),
                "evidence": _plain_text(r.get("evidence")),
                "rule": _plain_text(r.get("rule")),
                "extra": [("threshold", _plain_text(r.get("threshold")))]
                if not plots.missing(r.get("threshold"))
                else [],
            }
        )
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(out, key=lambda f: order.get(str(f["severity"]).lower(), 3))


def _plain_text(v) -> str:
    if plots.missing(v):
        return ""
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, datetime | date | pd.Timestamp):
        return _date_text(v)
    return str(v)


VOICE_MEASURES = (
    ("q4d_pct_satisfied", "Satisfied with flexible working opportunities (Q4d)", 100, "%"),
    ("q6d_pct_agree", "Can approach manager about flexible working (Q6d)", 100, "%"),
    ("we_work_flexibly_score", "\u201cWe work flexibly\u201d score", 10, ""),
)


def _voice(data: SiteData, pub: pd.Series) -> dict:
    """The trust's Staff Survey answers against its peer group (public.peer_voice)."""
    year = None if plots.missing(pub.get("survey_year")) else int(pub["survey_year"])
    if year is None:
        return {"available": False, "year": None}
    pv = data.peer_voice
    peer = pub.get("peer_group")
    key = ("peer_voice", None if plots.missing(peer) else peer)
    if key not in data._by_trust:  # the peer group's row, found once for all its trusts
        data._by_trust[key] = (
            pv[pv["peer_group"] == peer].iloc[0]
            if "peer_group" in pv and not plots.missing(peer) and (pv["peer_group"] == peer).any()
            else pd.Series(dtype=object)
        )
    peers = data._by_trust[key]

    items = [
        plots.VoiceItem(
            label=label,
            value=plots.number(pub.get(col)),
            peer_min=plots.number(peers.get(f"{col}_min")),
            peer_median=plots.number(peers.get(f"{col}_median")),
            peer_max=plots.number(peers.get(f"{col}_max")),
            scale_max=scale,
            unit=unit,
        )
        for col, label, scale, unit in VOICE_MEASURES
    ]
    if all(it.value is None for it in items):
        return {"available": False, "year": year}
    return {
        "available": True,
        "year": year,
        "peers": 0 if plots.missing(peers.get("trusts")) else int(peers["trusts"]),
        "items": items,
        "svg": plots.voice_plot(items, plot_id="voice", title="Staff voice against peers"),
    }


def _pledge(mine: list) -> dict | None:
    """The trust's row of public.pledge (None without one)."""
    if not mine:
        return None
    r = mine[0]

    def yes(c):
        return None if c not in r or plots.missing(r[c]) else bool(r[c])

    url = r.get("action_plan_url")
    return {
        "pledged": yes("pledged"),
        "signed_on": _date_text(r.get("signed_on")),
        "withdrawn_on": None
        if plots.missing(r.get("withdrawn_on"))
        else _date_text(r["withdrawn_on"]),
        "commitments": [
            ("Lead the conversation", yes("commits_lead")),
            ("Set a target", yes("commits_target")),
            ("Train for flex", yes("commits_train")),
        ],
        "data_published": yes("data_published"),
        "data_current": yes("data_current"),
        "action_plan_url": url
        if isinstance(url, str) and url.startswith(("https://", "http://"))
        else None,
        "board_review_date": None
        if plots.missing(r.get("board_review_date"))
        else _date_text(r["board_review_date"]),
        "managers_trained_pct": None
        if plots.missing(r.get("managers_trained_pct"))
        else float(r["managers_trained_pct"]),
    }


def _publication(data: SiteData, code: str) -> dict:
    mine = data.rows_of("status", code)
    if not mine:
        return {"known": False}
    r = mine[0]
    status = None if plots.missing(r.get("last_attempt_status")) else str(r["last_attempt_status"])
    out = {
        "known": True,
        "state": _file_state(r),
        "last_attempt_status": status,
        "last_attempt_at": _date_text(r.get("last_attempt_at")),
        "last_accepted_at": _date_text(r.get("last_accepted_at")),
        "latest_period_end": _date_text(r.get("latest_period_end")),
        "stale": bool(r.get("stale")) if not plots.missing(r.get("stale")) else None,
        "reasons": None
        if plots.missing(r.get("last_attempt_reasons"))
        else str(r["last_attempt_reasons"]),
        "report": None,
    }
    if status == "rejected" and not plots.missing(r.get("last_report_path")):
        out["report"] = read_report(Path(str(r["last_report_path"])), data.warehouse_dir)
    return out


def read_report(path: Path, base: Path) -> dict | None:
    """A validation report (JSON) for the page, or None when it cannot be read."""
    candidates = [path] if path.is_absolute() else [base / path, Path.cwd() / path]
    for p in candidates:
        try:
            report = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict):
            failures = []
            for f in report.get("failures") or []:
                if not isinstance(f, dict):
                    continue
                rows = f.get("rows") or []
                examples = [e for e in (f.get("example_rows") or []) if isinstance(e, dict)]
                columns = list(dict.fromkeys(k for e in examples for k in e))
                failures.append(
                    {
                        "rule": str(f.get("rule", "")),
                        "column": str(f.get("column", "")),
                        "description": str(f.get("description", "")),
                        "rows": ", ".join(str(x) for x in rows[:20])
                        + (f" and {len(rows) - 20} more" if len(rows) > 20 else ""),
                        "example_columns": columns,
                        "examples": [[_plain_text(e.get(c)) for c in columns] for e in examples],
                    }
                )
            return {
                "url": str(report.get("url", "")),
                "fetched_at": _date_text(report.get("fetched_at")),
                "form": str(report.get("form") or ""),
                "rows": report.get("rows"),
                "warnings": [str(w) for w in report.get("warnings") or []],
                "failures": failures,
            }
    return None


def methodology_html(project_root: Path) -> Markup | None:
    """docs/methodology.md as HTML (raw HTML in the Markdown is not passed through)."""
    path = project_root / "docs" / "methodology.md"
    if not path.exists():
        return None
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    return Markup(md.render(path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    class SiteEnvironment(Environment):
        """Jinja's environment, a context's key read without a failed attribute lookup first."""

        def getattr(self, obj, attribute: str):
            # ``trust.name`` on a dict is an attribute lookup that fails, then the key (Jinja's
            # getattr); where the name is no attribute of a dict, the key is all it can find,
            # so it is read at once: a trust page reads some 500, and the exception each
            # raised and caught cost more than the rest of the lookup.
            if type(obj) is dict and attribute in obj and not hasattr(dict, attribute):
                return obj[attribute]
            return super().getattr(obj, attribute)

    env = SiteEnvironment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # the templates do not change while the site is built: no file's time checked again
        # at each page's includes
        auto_reload=False,
    )
    env.filters["pct"] = plots.pct
    env.filters["thousands"] = lambda v: "–" if v is None else f"{int(v):,}"
    return env


def _prepare(out_dir: Path) -> Path:
    """A fresh folder beside ``out_dir`` to build into (swapped in when complete)."""
    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / SITE_MARKER).exists():
        raise extract.ExtractError(
            f"{out_dir} exists and is not a flexbench site: choose an empty or new folder"
        )
    tmp = out_dir.with_name(f".{out_dir.name}.building")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "trusts").mkdir(parents=True)
    (tmp / "assets").mkdir()
    return tmp


def _swap(tmp: Path, out_dir: Path) -> None:
    out_dir = out_dir.resolve()
    old = out_dir.with_name(f".{out_dir.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old.exists():
        shutil.rmtree(old)


@dataclass
class TrustPages:
    """What every trust page is made from, read and prepared once per build."""

    data: SiteData
    models: dict[str, plots.FunnelModel]
    national: dict
    tables: trust_charts.TrustTables
    breakdowns: site_equity.Breakdowns
    template: object  # the trust.html template
    common: dict
    out: Path  # the folder the site is built in

    def write(self, code: str) -> None:
        """Write the page of trust ``code`` and its downloads."""
        ctx = trust_context(self.data, code, self.models, self.national)
        folder = self.out / "trusts" / page_name(code).removesuffix(".html")
        ctx.update(
            trust_charts.trust_extras(self.tables, code, folder, self.data.as_of, ctx["row"])
        )
        (self.out / "trusts" / page_name(code)).write_text(
            self.template.render(
                root="../",
                page="trust",
                trust=ctx,
                downloads=ctx["downloads"],
                **self.common,
                **site_equity.sections(
                    self.breakdowns,
                    "trust",
                    code,
                    folder=folder / "equity",
                    base=f"{folder.name}/equity/",
                    as_of=self.data.as_of,
                    title=f"{ctx['name']} ({code})",
                ),
            ),
            encoding="utf-8",
        )


#: Trust pages per worker process: a second process is forked only for at least this many
#: trusts each (forking and warming up a process costs about as much as a few pages).
TRUSTS_PER_WORKER = 50
#: Trust pages a worker is given at a time (the workers that finish first take the rest).
PAGES_PER_TASK = 25
#: The most worker processes the trust pages are written by (the machines we run on have 2
#: cores; a page's work is all CPU).
MAX_WORKERS = 2

#: Allocations between the garbage collector's runs while the site is built (Python's
#: default is 700).
SITE_GC_THRESHOLD = 10_000

_FORKED_PAGES: TrustPages | None = None  # the pages a forked worker writes


def site_workers() -> int:
    """Worker processes for the trust pages: ``FLEXBENCH_SITE_WORKERS``, else one per core up
    to :data:`MAX_WORKERS`."""
    import os

    from flexbench.settings import env_workers

    return env_workers("FLEXBENCH_SITE_WORKERS", min(MAX_WORKERS, os.cpu_count() or 1))


def _write_forked(codes: list[str]) -> int:
    for code in codes:
        _FORKED_PAGES.write(code)
    return len(codes)


def write_trust_pages(
    pages: TrustPages,
    codes: list[str],
    workers: int = 1,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Write every trust's page, in this process or, for enough trusts
    (:data:`TRUSTS_PER_WORKER` each), shared between up to ``workers`` forked processes. A
    page depends on its trust and the tables read once, never on which process writes it or
    when, so the site is the same either way. ``meanwhile`` (the site's other pages) is run
    here while the forked processes write, or after the pages where there are none."""
    import gc

    pages.data.prepare()
    pages.tables.prepare()
    pages.breakdowns.prepare()
    # What is read and prepared once lives for the whole build: frozen out of the collector's
    # reach, its full collections stop walking those millions of objects again and again
    # (here and in each forked process, where walking them also copied the memory they lie
    # in). Unfrozen after, for whatever runs next in this process.
    gc.freeze()
    try:
        _write_pages(pages, codes, workers, meanwhile)
    finally:
        gc.unfreeze()


def _write_pages(
    pages: TrustPages, codes: list[str], workers: int, meanwhile: Callable[[], None] | None
) -> None:
    import multiprocessing

    use = min(workers, max(1, len(codes) // TRUSTS_PER_WORKER))
    if use <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for code in codes:
            pages.write(code)
        if meanwhile is not None:
            meanwhile()
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _FORKED_PAGES
    _FORKED_PAGES = pages
    chunks = [codes[i : i + PAGES_PER_TASK] for i in range(0, len(codes), PAGES_PER_TASK)]
    done = [False] * len(chunks)
    pool = ProcessPoolExecutor(use, mp_context=multiprocessing.get_context("fork"))
    try:
        tasks, lost = [], None
        try:
            # the processes are forked at the first task, before anything runs meanwhile
            tasks = [pool.submit(_write_forked, chunk) for chunk in chunks]
        except (BrokenProcessPool, AssertionError, OSError) as exc:
            lost = exc
        if meanwhile is not None:
            meanwhile()  # its errors are its own: raised, never taken for a lost process
        if lost is None:
            try:
                for i, task in enumerate(tasks):
                    task.result()
                    done[i] = True
            except (BrokenProcessPool, AssertionError, OSError) as exc:
                lost = exc
        if lost is not None:
            # No worker process to be had (a daemonic process, as a Celery pool's, may not
            # have children; no memory to fork) or one lost: the pages not known written are
            # written here (a page is the same whoever writes it). An error of a page itself
            # is raised.
            log.warning(
                "site: writing the trust pages in one process (%s)", lost or type(lost).__name__
            )
            for chunk, written in zip(chunks, done, strict=True):
                if not written:
                    for code in chunk:
                        pages.write(code)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _FORKED_PAGES = None


def build_site(
    warehouse_path: str | Path,
    out_dir: str | Path,
    echo: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> Path:
    """Build the static site from the warehouse; return the path of its national page.

    Parameters
    ----------
    warehouse_path : path
        The DuckDB warehouse (opened read-only).
    out_dir : path
        Folder to write (replaced as a whole when the build succeeds; a non-empty folder
        that is not a flexbench site is refused).
    echo : callable, optional
        Progress lines (``print``); None for quiet.
    workers : int, optional
        Processes writing the trust pages (:func:`write_trust_pages`); by default
        :func:`site_workers`.

    Returns
    -------
    Path
        ``out_dir/index.html``.
    """
    import gc

    # The build makes millions of short-lived objects, nearly all freed as soon as dropped:
    # the garbage collector is run every 10,000 allocations, not every 700 (its time at N=10
    # about 1.8 → 0.4 s a process); Python's own setting back after.
    threshold = gc.get_threshold()
    gc.set_threshold(SITE_GC_THRESHOLD, *threshold[1:])
    try:
        return _build_site(warehouse_path, out_dir, echo, workers)
    finally:
        gc.set_threshold(*threshold)


def _build_site(warehouse_path, out_dir, echo, workers) -> Path:
    from flexbench.settings import PROJECT_ROOT

    say = echo or (lambda _msg: None)
    warehouse_path, out_dir = Path(warehouse_path), Path(out_dir)
    say(f"Reading the warehouse {warehouse_path} …")
    con = extract.open_public(warehouse_path)
    try:
        data = read_site_data(con, warehouse_path.parent)
        breakdowns = site_equity.Breakdowns(
            {t: extract.read_public(con, t) for t in ("equity", "flex_type_mix", "areas")}
        )
        measure_quarters = extract.read_public(con, "trust_measure_quarters")
    finally:
        con.close()
    models = funnel_models(data)
    env = _environment()
    common = {
        "as_of_line": data.as_of.line(),
        "built_at": f"{datetime.now().astimezone():%-d %B %Y %H:%M %Z}",
        "window_start": _date_text(data.as_of.window_start),
        "window_end": _date_text(data.as_of.window_end),
        "marker": SUPPRESSION_MARKER,
        "rules": disclosure.RULES,
        "method": disclosure.METHOD_NAME,
        "min_rank": disclosure.MIN_RATE_DENOMINATOR,
    }
    tmp = _prepare(out_dir)
    try:
        for name in ("site.css", "site.js"):
            shutil.copyfile(STATIC_DIR / name, tmp / "assets" / name)
        (tmp / SITE_MARKER).write_text("built by flexbench site\n")
        national = national_context(data, models)

        def other_pages() -> None:
            say("Writing the national page …")
            national_downloads = site_pages.national_downloads(data, tmp / "index")
            (tmp / "index.html").write_text(
                env.get_template("index.html").render(
                    root="",
                    page="national",
                    downloads=national_downloads,
                    **common,
                    **national,
                    **site_equity.sections(
                        breakdowns,
                        "england",
                        "ENGLAND",
                        folder=tmp / "index" / "equity",
                        base="index/equity/",
                        as_of=data.as_of,
                        title="England",
                    ),
                    area_links=site_areas.area_links(breakdowns["areas"])
                    if not breakdowns["areas"].empty
                    else [],
                ),
                encoding="utf-8",
            )
            say("Writing the region and ICB pages …")
            site_areas.write_area_pages(env, tmp, breakdowns["areas"], data, models, common)
            say("Writing the indicator pages …")
            site_pages.write_indicator_pages(env, data, tmp, common)
            (tmp / "methodology.html").write_text(
                env.get_template("methodology.html").render(
                    root="",
                    page="methodology",
                    body=methodology_html(PROJECT_ROOT),
                    models=[(f[1], models[f[0]]) for f in FUNNELS if f[0] in models],
                    columns=extract.COLUMNS,
                    downloads=site_pages.methodology_downloads(data, tmp / "methodology"),
                    **common,
                ),
                encoding="utf-8",
            )

        codes = list(data.public.index)
        say(f"Writing {len(codes)} trust pages …")
        pages = TrustPages(
            data=data,
            models=models,
            national=national,
            tables=trust_charts.TrustTables(
                data.public, measure_quarters, national=national["national_quarters"]
            ),
            breakdowns=breakdowns,
            template=env.get_template("trust.html"),
            common=common,
            out=tmp,
        )
        # the other pages are written here while forked processes write the trust pages
        write_trust_pages(
            pages, codes, site_workers() if workers is None else workers, meanwhile=other_pages
        )
        _swap(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index = out_dir.resolve() / "index.html"
    say(f"Site: {index}")
    return index
