"""The trust page's trend per measure and its peer caterpillar plot (read and format only).

- :func:`measure_trends` - one chart and one table per measure of
  ``public.trust_measure_quarters`` (every rate the trust's page shows, uptake too), every
  quarter of the benchmark in order, a quarter the trust has no row for shown as no data (a
  gap, never a line across it), the national value (public.aggregates) where it is published;
- :func:`peer_caterpillar` - the published approval rates of the trust's peer group with their
  95% intervals (``public.trust_window``), ordered, the trust highlighted.

Labels and links come from the indicator registry (transforms.indicators).
"""

from __future__ import annotations

from collections import namedtuple
from functools import lru_cache

import pandas as pd
from markupsafe import Markup, escape

from flexbench.display import trust_name
from flexbench.site import plots
from transforms.disclosure import STATUS_WORDS, SUPPRESSION_MARKER
from transforms.indicators import BY_COLUMN

TREND_COLUMNS = (
    "quarter",
    "measure",
    "rate",
    "rate_lower95",
    "rate_upper95",
    "status",
    "numerator_column",
    "numerator",
    "denominator_column",
    "denominator",
)
#: The measure that is not a proportion: uptake, requests per 100 staff a year.
UPTAKE = "requests_per_100_staff"
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


def trend_frame(mine: pd.DataFrame, quarters: pd.DataFrame) -> pd.DataFrame:
    """The trust's rows of public.trust_measure_quarters (``mine``), one per measure and
    quarter of ``quarters`` (a quarter without a row: status no_data), the columns the page
    shows."""
    if mine.empty or quarters.empty:
        return pd.DataFrame(columns=list(TREND_COLUMNS))
    measures = mine[["measure_order", "measure"]].drop_duplicates().sort_values("measure_order")
    grid = measures.merge(quarters, how="cross")
    out = grid.merge(
        mine[["measure", "quarter_start", *TREND_COLUMNS[2:]]],
        on=["measure", "quarter_start"],
        how="left",
    )
    out["status"] = out["status"].fillna("no_data")
    out = out.sort_values(["measure_order", "quarter_start"])
    return out[list(TREND_COLUMNS)].reset_index(drop=True)


def trend_frames(
    measure_quarters: pd.DataFrame, quarters: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """:func:`trend_frame` of every trust at once: one table of the columns it shows, and the
    positions of each trust's rows in it (by org_code), in the order :func:`trend_frame` gives
    them. Every column the merge can leave empty holds missing values as they are (floats,
    Int64, text), so a trust's rows have the types its own frame would have."""
    mq = measure_quarters
    if mq.empty or quarters.empty:
        return pd.DataFrame(columns=list(TREND_COLUMNS)), {}
    grid = (
        mq[["org_code", "measure_order", "measure"]].drop_duplicates().merge(quarters, how="cross")
    )
    out = grid.merge(
        mq[["org_code", "measure", "quarter_start", *TREND_COLUMNS[2:]]],
        on=["org_code", "measure", "quarter_start"],
        how="left",
    )
    out["status"] = out["status"].fillna("no_data")
    out = out.sort_values(["org_code", "measure_order", "quarter_start"]).reset_index(drop=True)
    positions = out.groupby("org_code", sort=False).indices
    return out[list(TREND_COLUMNS)], positions


def _status_text(status: str) -> str:
    if status == "no_data":
        return "no data"
    return STATUS_WORDS.get(status, status)


def _count_text(value, status: str) -> str:
    """A published count of a trend table: the number, [c] where the quarter's figures are
    withheld or too few (a count of 0 to 4), an en dash without data."""
    if plots.missing(value):
        return SUPPRESSION_MARKER if status in ("withheld", "too_few") else "–"
    return f"{int(value):,}"


@lru_cache(maxsize=4096, typed=True)
def _html(text) -> str:
    """``text`` (a quarter's label, a status: the few texts of a trend table from the public
    layer) escaped as the page's template escapes a value, kept."""
    return str(escape(text))


def _basis(r) -> str:
    """What a quarter's value is worked out from, as published: "45 of 50" (a proportion),
    "105 requests, 8,110 staff" (uptake)."""
    num, den = _count_text(r.numerator, r.status), _count_text(r.denominator, r.status)
    if r.measure == UPTAKE:
        return f"{num} requests, {den} staff"
    return f"{num} of {den}"


def _national_values(national: pd.DataFrame | None, measure: str, quarters) -> list:
    """The published national value of ``measure`` for each quarter start (None where the
    national aggregate has none: no row, or the rate not published)."""
    if national is None or national.empty or measure not in national:
        return [None] * len(quarters)
    status = f"{measure}_status"
    published = {
        pd.Timestamp(start): float(row[measure])
        for start, row in national.iterrows()
        if pd.notna(row[measure]) and (status not in national or row[status] == "published")
    }
    return [published.get(pd.Timestamp(q)) for q in quarters]


def measure_trends(
    frame: pd.DataFrame | None,
    trust_label: str,
    root: str = "../",
    national: dict[str, list] | None = None,
    records: list | None = None,
) -> list[dict]:
    """One chart and table per measure of ``frame`` (from :func:`trend_frame`), in its order;
    ``national`` (each measure's published national value for each quarter of the frame, from
    :meth:`TrustTables.national_values`) adds the national line where it publishes the
    measure; ``records``, where given, are the frame's rows as :func:`_records` gives them
    (the frame is not read then, and may be None)."""
    out = []
    # the rows of each measure in the frame's order, measures in order of first appearance
    # (as groupby(sort=False) gives them, without a frame a measure)
    groups: dict[str, list[_TrendRow]] = {}
    for r in _records(frame) if records is None else records:
        if not plots.missing(r.measure):
            groups.setdefault(r.measure, []).append(r)
    for measure, rows in groups.items():
        indicator = BY_COLUMN.get(measure)
        title = indicator.title if indicator else measure
        proportion = measure != UPTAKE

        def show(v, digits: int = 1, proportion=proportion) -> str:
            return plots.pct(v, digits) if proportion else f"{float(v):.{digits}f}"

        nat = (national or {}).get(measure, [])
        has_national = any(v is not None for v in nat)
        # the rows of the page's table as trust.html wrote them (a trust page has some 60, and
        # the template's loop cost half the page's rendering): the texts from the public
        # layer escaped as the template escapes them, the numbers as formatted here (digits,
        # "%", "[c]", "–", words: nothing HTML escapes)
        table, digits = [], 0 if proportion else 1
        for i, r in enumerate(rows):
            published = r.status == "published"
            if published:
                cells = f"{show(r.rate)}</td><td>{show(r.rate_lower95, digits)} to "
                cells += f"{show(r.rate_upper95, digits)}</td>"
            else:
                cells = f"{_html(_status_text(r.status))}</td><td>–</td>"
            # the counts as published, also where the rate is not (a quarter with a row)
            cells += (
                f'<td class="basis">{"–" if plots.missing(r.numerator_column) else _basis(r)}</td>'
            )
            if has_national:
                national_value = "–" if i >= len(nat) or nat[i] is None else show(nat[i])
                cells += f'<td class="national">{national_value}</td>'
            table.append(f'<tr><th scope="row">{_html(r.quarter)}</th><td class="num">{cells}</tr>')
        out.append(
            {
                "measure": measure,
                "title": title,
                "href": f"{root}indicators/{indicator.slug}.html" if indicator else None,
                "has_national": has_national,
                "basis_title": "requests received, staff in post"
                if not proportion
                else f"{_column_words(rows, 'numerator_column')} of "
                f"{_column_words(rows, 'denominator_column')}",
                "chart": plots.measure_trend_plot(
                    rows,
                    plot_id=f"trend-{measure.replace('_', '-')}",
                    title=f"{title} by quarter, {trust_label}",
                    y_title=f"{title} (%)" if proportion else f"{title} a year",
                    proportion=proportion,
                    national=nat if has_national else None,
                ),
                "rows_html": Markup("\n".join(table)),
            }
        )
    return out


#: A row of :func:`trend_frame` (one class for every page: itertuples makes a class a call).
_TrendRow = namedtuple("_TrendRow", TREND_COLUMNS)


def _records(rows: pd.DataFrame) -> list[_TrendRow]:
    """The rows of a :func:`trend_frame` as records, their values as itertuples gives them."""
    columns = (_values(rows[c]) for c in TREND_COLUMNS)
    return [_TrendRow(*values) for values in zip(*columns, strict=True)]


def _values(column: pd.Series) -> list:
    """The column's values as iterating it gives them; a column of text's taken as objects at
    once (iterating its Arrow array boxes one value at a time, a third of the time every
    trust's trends took to prepare)."""
    if isinstance(column.dtype, pd.StringDtype):
        return column.to_numpy(dtype=object).tolist()
    return list(column)


def _column_words(rows: list[_TrendRow], column: str) -> str:
    names = [v for v in (getattr(r, column) for r in rows) if not plots.missing(v)]
    return str(names[0]).replace("_", " ") if names else "–"


def peer_frame(public: pd.DataFrame, peer_group) -> pd.DataFrame:
    """The published approval rates of a peer group (public.trust_window)."""
    if peer_group is None or pd.isna(peer_group):
        return pd.DataFrame(columns=list(PEER_COLUMNS))
    rows = public[
        (public["peer_group"] == peer_group) & (public["approval_rate_status"] == "published")
    ]
    return rows[list(PEER_COLUMNS)].sort_values("approval_rate").reset_index(drop=True)


class PeerCaterpillar:
    """The caterpillar plot and table of a peer group (:func:`peer_frame`), drawn once and
    shown on each of its trusts' pages with that trust marked."""

    def __init__(self, frame: pd.DataFrame, peer_group: str | None):
        self.peer_group = peer_group
        self.empty = not peer_group or frame.empty
        if self.empty:
            return
        rows = pd.DataFrame(
            {
                "org_code": frame["org_code"],
                "label": [trust_name(n) for n in frame["name"]],
                "rate": frame["approval_rate"].astype(float),
                "lower": frame["approval_rate_lower95"].astype(float),
                "upper": frame["approval_rate_upper95"].astype(float),
            }
        )
        self.plot = plots.CaterpillarPlot(rows, plot_id="peer-caterpillar")
        self.rows = [
            {
                "code": r.org_code,
                "name": r.label,
                "rate": plots.pct(r.rate),
                "interval": f"{plots.pct(r.lower, 0)} to {plots.pct(r.upper, 0)}",
            }
            for r in rows.itertuples()
        ]
        # the rows of the page's table as trust.html wrote them, each as a row of another
        # trust and as the page's own (drawn once for the group, not by the template a page)
        self._rows_html = plots.MarkedRows(
            [row["code"] for row in self.rows],
            [
                f'<th scope="row">{escape(row["name"])} <span class="code">{escape(row["code"])}'
                f'</span></th><td class="num">{escape(row["rate"])}</td>'
                f"<td>{escape(row['interval'])}</td></tr>"
                for row in self.rows
            ],
            "<tr>",
            '<tr class="this">',
            sep="\n",
        )

    def for_trust(self, code: str) -> dict | None:
        """The plot and table of the trust's page (None without a peer group or peers)."""
        if self.empty:
            return None
        return {
            "chart": self.plot.render(
                f"Approval rates of the {self.peer_group} peer group with 95% intervals", code
            ),
            "rows_html": Markup(self._rows_html.with_marked(code)),
        }


def peer_caterpillar(frame: pd.DataFrame, code: str, peer_group: str | None) -> dict | None:
    """The caterpillar plot and its table for :func:`peer_frame`."""
    return PeerCaterpillar(frame, peer_group).for_trust(code)


class TrustTables:
    """The whole tables every trust page reads, prepared once per build: public.trust_window,
    public.trust_measure_quarters grouped by trust, every quarter, and, worked out at the first
    page that needs them, each measure's national values by quarter and each peer group's
    published approval rates (the same for every trust: masking the whole tables again for
    each page made the site's cost grow with the square of the trusts)."""

    def __init__(
        self,
        public: pd.DataFrame,
        measure_quarters: pd.DataFrame,
        national: pd.DataFrame | None = None,
    ):
        self.public = public
        self.measure_quarters = measure_quarters
        self.quarters = all_quarters(measure_quarters)
        self.national = national
        self._trends: dict | None = None  # each trust's rows, grouped where first needed
        self._national: dict[str, list] | None = None
        #: each trust's row in ``public`` (None where an org_code is not one row's)
        self.positions = (
            {code: i for i, code in enumerate(public.index)} if public.index.is_unique else None
        )
        self._peers: dict = {}
        self._all_trends: tuple | None = None
        self._all_records: list | None = None

    def trends(self, code: str) -> tuple[pd.DataFrame | None, tuple | None]:
        """The trust's :func:`trend_frame` worked out on its own, or where its rows are in the
        table of every trust's (:func:`trend_frames`): ``(frame, None)`` or ``(None, (table,
        positions))``, the rows cut from the table only where they are needed as a frame
        (:meth:`downloads.Resource.shown_frame`)."""
        if self._all_trends is None:
            self._all_trends = (
                trend_frames(self.measure_quarters, self.quarters)
                if self._kinds_kept(self.measure_quarters)
                else (None, {})
            )
        table, positions = self._all_trends
        mine = positions.get(code)
        if table is None:
            return trend_frame(self.trend_rows(code), self.quarters), None
        if mine is None:  # no row in every trust's table: none in public.trust_measure_quarters
            return trend_frame(self.measure_quarters.iloc[0:0], self.quarters), None
        return None, (table, mine)

    def trend_records(self, code: str, frame: pd.DataFrame | None, where: tuple | None) -> list:
        """:func:`_records` of the trust's :func:`trend_frame` (``frame``, ``where`` from
        :meth:`trends`): its rows of the records of every trust's, made once."""
        if where is None:
            return _records(frame)
        table, mine = where
        if self._all_records is None:
            self._all_records = _records(table)
        records = self._all_records
        return [records[i] for i in mine]

    @staticmethod
    def _kinds_kept(mq: pd.DataFrame) -> bool:
        """Whether a left merge keeps the kind of each column :func:`trend_frame` may leave
        empty (a missing value in an int or bool column would make it float)."""
        needed = {"org_code", "measure_order", "measure", "quarter", "quarter_start"}
        if not needed.union(TREND_COLUMNS[2:]) <= set(mq.columns):
            return False
        return all(
            mq[c].dtype.kind not in "biuM"
            or isinstance(mq[c].dtype, pd.api.extensions.ExtensionDtype)
            for c in TREND_COLUMNS[2:]
        )

    def prepare(self) -> None:
        """Work out now what the pages share (every trust's trends, the national values and
        the tables written once), e.g. before forking the processes that write the pages."""
        from flexbench.site import downloads

        self.national_values()
        self.trends("")
        if self._all_trends[0] is not None:
            downloads.table_lines(self._all_trends[0])
            self.trend_records("", None, (self._all_trends[0], []))
        if self.positions is not None:
            downloads.table_lines(self.public)
        downloads.keep_types(self.public)
        downloads.keep_types(self.measure_quarters, TREND_COLUMNS)
        if "peer_group" in self.public:
            # each peer group's plot and table, and their download written (once, not once
            # in each process writing pages)
            for group in self.public["peer_group"].dropna().unique():
                frame, _caterpillar = self.peers(str(group))
                if not frame.empty:
                    downloads.written(frame)

    def trend_rows(self, code: str) -> pd.DataFrame:
        """The trust's rows of public.trust_measure_quarters."""
        if self._trends is None:
            mq = self.measure_quarters
            self._trends = (
                {code: rows for code, rows in mq.groupby("org_code", sort=False)}
                if "org_code" in mq
                else {}
            )
        rows = self._trends.get(code)
        return self.measure_quarters.iloc[0:0] if rows is None else rows

    def national_values(self) -> dict[str, list]:
        """Each measure's published national value for each quarter (:func:`_national_values`)."""
        if self._national is None:
            starts = list(self.quarters["quarter_start"])
            mq = self.measure_quarters
            measures = mq["measure"].unique() if "measure" in mq else []
            self._national = {m: _national_values(self.national, m, starts) for m in measures}
        return self._national

    def peers(self, peer_group) -> tuple[pd.DataFrame, PeerCaterpillar]:
        """:func:`peer_frame` of a peer group, and its :class:`PeerCaterpillar`."""
        if peer_group not in self._peers:
            frame = peer_frame(self.public, peer_group)
            self._peers[peer_group] = (frame, PeerCaterpillar(frame, peer_group))
        return self._peers[peer_group]


def trust_extras(tables: TrustTables, code: str, folder, as_of, pub=None) -> dict:
    """What the trust page adds to its card: a trend per measure (with the national value
    where published), the peer caterpillar and the downloads of every number on the page
    (written into ``folder``); ``pub``, where given, is the trust's row of ``public``."""
    from flexbench.site import downloads

    public = tables.public
    if pub is None:  # the trust's row of public (given where the page has it already)
        pub = public.loc[code]
    label = trust_name(pub.get("name"))
    trends, trend_rows = tables.trends(code)
    peer_group = pub.get("peer_group")
    peer_group = None if peer_group is None or pd.isna(peer_group) else str(peer_group)
    peers, caterpillar = tables.peers(peer_group)
    resources = [
        downloads.Resource(
            "card",
            f"Benchmark card of {label}",
            public.loc[[code]] if tables.positions is None else None,
            types_from=public,
            rows_of=None if tables.positions is None else (public, [tables.positions[code]]),
        ),
        downloads.Resource(
            "trends",
            f"Measures by quarter, {label}",
            trends,
            types_from=tables.measure_quarters,
            rows_of=trend_rows,
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
        "trends": measure_trends(
            trends,
            label,
            national=tables.national_values(),
            records=tables.trend_records(code, trends, trend_rows),
        ),
        "caterpillar": caterpillar.for_trust(code),
        "downloads": download_links(files, f"{folder.name}/"),
    }


def download_links(files: dict[str, str], base: str) -> dict:
    """The links of a page's downloads (label, file) relative to the page."""
    links = [(f"{k.split(':', 1)[1]} (CSV)", v) for k, v in files.items() if k.startswith("csv:")]
    links.append(("all tables (XLSX)", files["xlsx"]))
    links.append(("metadata (datapackage.json)", files["datapackage"]))
    return {"base": base, "links": links}
