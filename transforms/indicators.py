"""The benchmark's indicators, defined once (docs/methodology.md, "Measures").

Every output that says what an indicator is reads it from :data:`INDICATORS`: the indicator
pages of the site, the column notes of ``flexbench extract`` and the metadata
(``datapackage.json``) of the site's downloads. The proportions' numerators and denominators
are those of :data:`transforms.benchmark.PROPORTIONS`, so a definition is never written twice.
Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms.benchmark import PROPORTIONS

_PROPORTION = {p.name: p for p in PROPORTIONS}

WILSON = (
    "Wilson score interval at 95% (exact normal quantile 1.959964), worked out from the "
    "published counts and widened over every count the rounding allows (docs/methodology.md, "
    '"Intervals" and "Disclosure control").'
)
GARWOOD = (
    "Exact (Garwood) Poisson interval of the count of requests, scaled like the rate, widened "
    "over every count the rounding allows where it is published (docs/methodology.md, "
    '"Intervals", "Disclosure control", [A5]).'
)
#: What a trust's quarterly trend of an indicator is (its page's charts, one per indicator).
TREND = (
    "By quarter (the trend on a trust's page, public.trust_measure_quarters): the same "
    "definition over each quarter's published counts; a quarter withheld, with too few "
    'requests or without data is a gap (docs/methodology.md, "Trends and year on year").'
)
SOURCE_FORM = (
    "The trusts' own publications in the Flex Data Standard summary form "
    "(docs/flex-data-standard.md), accepted by validation."
)
SOURCE_SURVEY = "NHS Staff Survey, published trust results (docs/methodology.md, [A11], [A12])."
DISCLOSURE = (
    "Counts 1 to 4 are withheld ([c]) and others rounded to the nearest 5; a rate is not "
    "published under 10 decided (or its own denominator) and is withheld where its numerator is "
    '(docs/methodology.md, "Disclosure control").'
)


@dataclass(frozen=True)
class Indicator:
    """One indicator: what it measures and how, in the words every output shows."""

    slug: str  # page name (indicators/<slug>.html)
    column: str  # column of public.trust_window
    title: str
    definition: str
    numerator: str
    denominator: str
    unit: str  # "proportion" (0-1, shown as %), "per 100 staff a year", "percent", "score 0-10"
    polarity: str  # how to read it: higher is better / lower is better / no polarity
    source: str
    method: str
    caveats: str

    @property
    def interval_words(self) -> str:
        """How its 95% interval is worked out (the extract notes' lower/upper columns)."""
        return GARWOOD if self.column == "requests_per_100_staff" else WILSON


def _rate(column, title, definition, polarity, caveats, method="") -> Indicator:
    p = _PROPORTION[column]
    return Indicator(
        slug=column.replace("_", "-"),
        column=column,
        title=title,
        definition=definition,
        numerator=p.numerator,
        denominator=p.denominator,
        unit="proportion (shown as %)",
        polarity=polarity,
        source=SOURCE_FORM,
        method=(method + " " if method else "")
        + f"{p.numerator} ÷ {p.denominator}. "
        + WILSON
        + " "
        + TREND,
        caveats=caveats + " " + DISCLOSURE,
    )


_VOICE_CAVEAT = (
    "A survey of staff, not of requests; the peer median excludes the trust itself "
    "(docs/methodology.md, [A10], [A11]). Published statistics, shown as published."
)

#: The indicators, in the order the site lists them.
INDICATORS: tuple[Indicator, ...] = (
    _rate(
        "approval_rate",
        "Approval rate",
        "Share of decided flexible working requests that were approved, in full or with changes.",
        "higher is better",
        "A trust that approves every request it receives may still discourage requests; read "
        "with requests per 100 staff and staff voice.",
        method="approved = approved_in_full + approved_with_changes; decided = approved + "
        "declined.",
    ),
    _rate(
        "decline_rate",
        "Decline rate",
        "Share of decided requests that were declined.",
        "lower is better",
        "The complement of the approval rate over the same decided requests.",
    ),
    _rate(
        "escalation_rate",
        "Escalation rate",
        "Share of the requests not agreed at the first stage that were taken to the "
        "escalation stage NHS Terms and Conditions section 33 requires.",
        "higher is better",
        "Requests not agreed at the first stage are not counted by the standard: the "
        "denominator is the larger of escalated and declined [A3].",
        method="not_agreed_first_stage = the larger of escalated and declined [A3].",
    ),
    _rate(
        "appeal_rate",
        "Appeal rate",
        "Share of declined requests that were appealed.",
        "no polarity",
        "Few trusts have enough declines to publish it [A4].",
    ),
    _rate(
        "appeals_upheld_rate",
        "Appeals upheld rate",
        "Share of appeals decided for the employee.",
        "no polarity",
        "Very small numbers: most trusts' appeals are withheld or too few.",
    ),
    _rate(
        "timeliness_rate",
        "Timeliness",
        "Share of decided requests decided (including any appeal) within the two months the "
        "law allows.",
        "higher is better",
        "A trust that decides late may publish the decision in a later period.",
    ),
    _rate(
        "non_statutory_decline_share",
        "Non-statutory decline share",
        "Share of declines made on a ground that is not one of the eight statutory grounds "
        "(Employment Rights Act 1996 s.80G).",
        "lower is better",
        "A decline on another ground is not lawful; a trust may have recorded a statutory "
        "ground as 'other'.",
    ),
    Indicator(
        slug="requests-per-100-staff",
        column="requests_per_100_staff",
        title="Requests per 100 staff",
        definition="Flexible working requests received per 100 staff (headcount) a year.",
        numerator="requests_received",
        denominator="headcount (NHS Workforce Statistics, all staff groups) × months covered ÷ 12",
        unit="requests per 100 staff a year",
        polarity="no polarity",
        source=SOURCE_FORM + " Headcount: NHS Workforce Statistics.",
        method="requests_received ÷ headcount × 100 × 12 ÷ months_covered, from the published "
        "requests_received. The peer median (peer_median_requests_per_100_staff) excludes the "
        "trust itself. " + GARWOOD + " " + TREND + " A quarter's staff in post is the "
        "headcount the window publishes, and its months covered those of the quarter.",
        caveats="Low uptake can mean staff do not ask, or that flexibility is agreed "
        "informally without a formal request. " + DISCLOSURE,
    ),
    Indicator(
        slug="q4d-pct-satisfied",
        column="q4d_pct_satisfied",
        title="Staff satisfied with opportunities for flexible working (Q4d)",
        definition="NHS Staff Survey Q4d: % of staff satisfied with the opportunities for "
        "flexible working patterns.",
        numerator="staff answering satisfied or very satisfied",
        denominator="staff answering Q4d",
        unit="percent",
        polarity="higher is better",
        source=SOURCE_SURVEY,
        method="As published by the survey; compared with the median of the trust's peers "
        "(excluding the trust).",
        caveats=_VOICE_CAVEAT,
    ),
    Indicator(
        slug="q6d-pct-agree",
        column="q6d_pct_agree",
        title="Staff who can approach their manager about flexible working (Q6d)",
        definition="NHS Staff Survey Q6d: % of staff who agree they can approach their "
        "immediate manager to talk openly about flexible working.",
        numerator="staff answering agree or strongly agree",
        denominator="staff answering Q6d",
        unit="percent",
        polarity="higher is better",
        source=SOURCE_SURVEY,
        method="As published by the survey; compared with the median of the trust's peers "
        "(excluding the trust).",
        caveats=_VOICE_CAVEAT,
    ),
    Indicator(
        slug="we-work-flexibly-score",
        column="we_work_flexibly_score",
        title="We work flexibly (People Promise score)",
        definition="NHS Staff Survey People Promise element 'We work flexibly': a score from 0 "
        "to 10.",
        numerator="(a score, not a proportion)",
        denominator="(a score, not a proportion)",
        unit="score 0-10",
        polarity="higher is better",
        source=SOURCE_SURVEY,
        method="As published by the survey; compared with the median of the trust's peers "
        "(excluding the trust).",
        caveats=_VOICE_CAVEAT,
    ),
)

BY_COLUMN: dict[str, Indicator] = {i.column: i for i in INDICATORS}
