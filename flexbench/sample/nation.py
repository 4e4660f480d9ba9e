"""A synthetic nation of NHS trusts for ``make demo`` and the tests.

:func:`build_nation` draws, from one seed, everything the benchmark reads about a country of
about 200 trusts: the ODS trust list, the workforce (staff in post by staff group, with the
NHS Workforce Statistics peer groups), two years of Staff Survey flexible-working answers,
and what each trust *truly* did with flexible working requests, quarter by quarter and staff
group by staff group. The truth is kept beside the data (``Nation.truth``) so tests can check
that the benchmark finds what was planted, and nothing else.

Nothing here is real: codes, names and postcodes are invented in the real formats (the
reference sources of docs/methodology.md). The sizes are modelled on the real workforce file
(Turnover benchmarking, staff group and organisation, Nov-25): the number of trusts in each
BENCHMARK_GROUP, their median headcount and spread, and the staff-group mix of each kind of trust.

Writers live beside this module: :mod:`flexbench.sample.publications` (trust publications in
the Flex Data Standard), :mod:`flexbench.sample.pledge` (the pledge feed) and
:mod:`flexbench.sample.reference` (ODS, Staff Survey and Workforce files in their real formats).

Planted features (``Nation.truth.planted``, semicolon separated), each a gap of
docs/methodology.md ("Policy–practice gap flags"), put where the benchmark should find it:

==========================  ======================================================================
decline_outlier             approval rate 60–70% on a large trust: a high decline-rate outlier
non_statutory_declines      a quarter of declines on ``declined_other`` (not a s.80G ground)
no_escalation               declines without an escalation stage (escalated well below declined)
late_decisions              a third of decisions outside two months
clinical_gap                clinical staff approved far less often than non-clinical staff
voice_below_peers           high approval on paper, staff voice (Q4d, Q6d, score) well below peers
low_uptake_low_voice        2.5–3.5 requests per 100 staff a year and low staff voice
pledged_not_publishing      signed the pledge, publishes nothing
stale                       stopped publishing: the file ends a year before the others
rejected_file               publishes a file with a real mistake (see ``Nation.truth.mistake``)
survey_split_units          the Staff Survey shows the trust as two units (code + "1", "2")
==========================  ======================================================================

Equity (``Nation.truth.equity_gap``, "dimension: group, group" or ""): every request of a
request-level trust carries sex, age band, ethnic group, disability and pay band drawn from
NHS-like shares (:data:`EQUITY_SHARES`: about 80% of requesters women, 25-35% from Black and
minority ethnic groups, 5% declaring a disability, Agenda for Change bands by staff group),
independent of the outcome, so no trust has an equity gap, except a few large request-level
trusts that carry a planted one (:data:`EQUITY_GAPS`): the groups named are approved markedly
less often than the reference group, with the trust's counts unchanged. Half the
request-level trusts write the detailed 2021 Census ethnic groups, the others the broad ones.

Everything else behaves like the NHS: approval rates 85–97%, uptake 5–15 requests per 100
staff a year, every decline escalated first and on a statutory ground, ~97% of decisions
within two months.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from transforms import vocabulary
from transforms.publications import FLEX_TYPES
from transforms.workforce import WORKFORCE_COLUMNS

DEFAULT_SEED = 20261122
DEFAULT_AS_OF = date(2026, 10, 31)

REGIONS = vocabulary.REGIONS
WALES_REGION = "W00"
WALES_ICB = "Q99"  # as in the real etr file

# Trusts per region in the real etr list (England, open), used as sampling weights.
_REGION_WEIGHTS = {"Y56": 36, "Y58": 19, "Y59": 30, "Y60": 36, "Y61": 18, "Y62": 30, "Y63": 33}
# ICB names by region: the region's integrated care boards as the Nov-25 Workforce Statistics
# file names them (ICS_NAME), then names of former clinical commissioning group areas of the
# region for the regions where the demo draws more ICBs than there are. The i-th ICB of a region
# (in the order drawn) takes the i-th name: realistic names, chosen without the random stream.
_ICB_NAMES = {
    "Y56": ["South East London", "North East London", "North Central London",
            "North West London", "South West London", "City and Hackney",
            "Barking and Dagenham, Havering and Redbridge"],
    "Y58": ["Devon", "Bath and North East Somerset, Swindon and Wiltshire", "Gloucestershire",
            "Somerset", "Cornwall and the Isles of Scilly",
            "Bristol, North Somerset and South Gloucestershire", "Dorset"],
    "Y59": ["Kent and Medway", "Frimley", "Sussex", "Hampshire and Isle of Wight",
            "Buckinghamshire, Oxfordshire and Berkshire West", "Surrey Heartlands",
            "East Berkshire"],
    "Y60": ["Herefordshire and Worcestershire", "Birmingham and Solihull", "Derby and Derbyshire",
            "Lincolnshire", "Leicester, Leicestershire and Rutland",
            "Staffordshire and Stoke-on-Trent", "Shropshire, Telford and Wrekin",
            "Northamptonshire", "Nottingham and Nottinghamshire", "Black Country",
            "Coventry and Warwickshire"],
    "Y61": ["Mid and South Essex", "Bedfordshire, Luton and Milton Keynes",
            "Suffolk and North East Essex", "Hertfordshire and West Essex", "Norfolk and Waveney",
            "Cambridgeshire and Peterborough", "West Suffolk"],
    "Y62": ["Lancashire and South Cumbria", "Greater Manchester", "Cheshire and Merseyside",
            "Wirral", "Blackpool", "Wigan Borough", "East Lancashire"],
    "Y63": ["South Yorkshire", "North East and North Cumbria", "Humber and North Yorkshire",
            "West Yorkshire", "Vale of York", "County Durham", "Tees Valley"],
}  # fmt: skip
# Ambulance trusts per region as in England: London 1, SW 1, SE 2, Midlands 2, East 1, NW 1, NEY 2.
_AMBULANCE_REGIONS = ["Y56", "Y58", "Y59", "Y59", "Y60", "Y60", "Y61", "Y62", "Y63", "Y63"]

_POSTCODE_AREAS = {
    "Y56": ["E", "N", "SE", "SW", "W", "NW", "EC"],
    "Y58": ["BS", "EX", "PL", "TR", "BA", "GL", "TA", "DT"],
    "Y59": ["BN", "GU", "ME", "OX", "RG", "SO", "PO", "TN", "CT"],
    "Y60": ["B", "CV", "DE", "LE", "NG", "ST", "WV", "WR", "NN"],
    "Y61": ["CB", "CM", "CO", "IP", "NR", "PE", "SG", "LU", "MK"],
    "Y62": ["M", "L", "BL", "CH", "CW", "PR", "WA", "WN", "LA", "CA"],
    "Y63": ["NE", "SR", "DH", "TS", "LS", "BD", "HU", "S", "YO", "HG", "DN"],
    WALES_REGION: ["CF", "LL", "SA", "NP"],
}


@dataclass(frozen=True)
class PeerGroup:
    """One workforce BENCHMARK_GROUP, sized from the real Nov-25 workforce file."""

    benchmark_group: str
    cluster_group: str
    real_count: int  # trusts in the group in the real file
    median_headcount: float  # median "All staff groups" HC in the real file
    spread: float  # sigma of log headcount
    min_headcount: int
    max_headcount: int
    survey_group: str  # the Staff Survey benchmarking group
    mix: str  # staff-group mix profile, see STAFF_MIX


PEER_GROUPS = [
    PeerGroup("Acute - Teaching", "Acute", 51, 10414, 0.45, 4100, 29400,
              "Acute and Acute & Community Trusts", "acute"),
    PeerGroup("Acute - Large", "Acute", 21, 8566, 0.22, 6350, 15700,
              "Acute and Acute & Community Trusts", "acute"),
    PeerGroup("Acute - Medium", "Acute", 20, 6023, 0.18, 4300, 8550,
              "Acute and Acute & Community Trusts", "acute"),
    PeerGroup("Acute - Small", "Acute", 19, 4399, 0.18, 2750, 5870,
              "Acute and Acute & Community Trusts", "acute"),
    PeerGroup("Acute - Specialist", "Acute", 16, 2101, 0.55, 1200, 6220,
              "Acute Specialist Trusts", "specialist"),
    PeerGroup("Acute - Multi-Service", "Acute", 7, 6816, 0.45, 2570, 13140,
              "Acute and Acute & Community Trusts", "acute"),
    PeerGroup("Mental Health and Learning Disability", "Mental Health", 46, 5301, 0.45, 780, 12800,
              "Mental Health & Learning Disability and Mental Health, Learning Disability "
              "& Community Trusts", "mental_health"),
    PeerGroup("Community Provider Trust", "Community Provider Trust", 14, 3091, 0.40, 1520, 5800,
              "Community Trusts", "community"),
    PeerGroup("Ambulance Trust", "Ambulance", 10, 6452, 0.25, 3630, 8340,
              "Ambulance Trusts", "ambulance"),
]  # fmt: skip

STAFF_GROUPS = [
    "HCHS Doctors (exc. Resident doctors and equivalents)",
    "Nurses & health visitors",
    "Midwives",
    "Ambulance staff",
    "Scientific, therapeutic & technical staff",
    "Support to doctors, nurses & midwives",
    "Support to ambulance staff",
    "Support to ST&T staff",
    "Senior managers",
    "Managers",
    "Central functions",
    "Hotel, property & estates",
]
ALL_STAFF_GROUPS = "All staff groups"
# Staff who care for patients or directly support those who do; the rest are non-clinical.
CLINICAL_STAFF_GROUPS = frozenset(STAFF_GROUPS[:8])

# Share of headcount per staff group, by kind of trust: the real Nov-25 shares (HC, staff in
# post) rounded; tiny cross-over shares (e.g. 0.1% ambulance staff in acute trusts) set to 0 so
# that midwives are only in acute trusts and ambulance staff only in ambulance trusts.
STAFF_MIX = {  # order of STAFF_GROUPS
    "acute": [.066, .297, .032, 0, .135, .248, 0, .066, .007, .014, .071, .064],
    "specialist": [.072, .287, .017, 0, .174, .213, 0, .065, .012, .026, .084, .052],
    "mental_health": [.031, .288, 0, 0, .183, .253, 0, .102, .011, .018, .076, .038],
    "community": [.020, .326, 0, 0, .189, .249, 0, .072, .011, .014, .082, .034],
    "ambulance": [.001, .022, 0, .385, .001, .004, .452, .005, .008, .022, .077, .025],
}  # fmt: skip
# FTE per head by staff group (real Nov-25 national ratios).
FTE_PER_HEAD = [0.892, 0.904, 0.823, 0.929, 0.880, 0.864, 0.904, 0.884, 0.965, 0.960, 0.917, 0.801]

DECLINE_REASONS = list(vocabulary.DECLINE_REASON_COLUMNS)
# How declines spread over the eight statutory grounds (s.80G order) where trusts record them.
_STATUTORY_REASON_MIX = [0.14, 0.31, 0.09, 0.15, 0.11, 0.08, 0.06, 0.06]

SUMMARY_COLUMNS = list(vocabulary.SUMMARY_COLUMNS)

PLANTED_FEATURES = [
    "decline_outlier",
    "non_statutory_declines",
    "no_escalation",
    "late_decisions",
    "clinical_gap",
    "voice_below_peers",
    "low_uptake_low_voice",
    "pledged_not_publishing",
    "stale",
    "rejected_file",
    "survey_split_units",
]
# How many trusts carry each planted feature in a nation of 200 (scaled, at least 1).
_PLANTED_PER_200 = {
    "decline_outlier": 4,
    "non_statutory_declines": 3,
    "no_escalation": 3,
    "late_decisions": 3,
    "clinical_gap": 3,
    "voice_below_peers": 3,
    "low_uptake_low_voice": 3,
    "pledged_not_publishing": 4,
    "stale": 3,
    "rejected_file": 6,
    "survey_split_units": 1,
}
# The mistakes of rejected files, one trust each, in this order (validation must catch them).
MISTAKES = [
    "outcomes do not add up",
    "negative count",
    "unknown staff group",
    "duplicate rows",
    "file for another trust",
    "HTML error page instead of data",
]

_PLACE_STARTS = [
    "Ash", "Bram", "Bright", "Calder", "Dun", "Elm", "Fair", "Glen", "Hart", "Kings", "Lang",
    "Marl", "Nor", "Oak", "Pen", "Red", "Stan", "Thorn", "Wal", "Wey", "Whit", "Wins", "Brad",
    "Chel", "Dray", "Hol", "Ket", "Lud", "Mel", "Sel",
]  # fmt: skip
_PLACE_ENDS = [
    "ford", "bury", "ham", "ley", "wick", "minster", "field", "borough", "mouth", "ton",
    "worth", "dale", "combe", "chester", "stow", "shire", "well", "gate", "hurst", "leigh",
    "wood", "by", "thorpe",
]  # fmt: skip
_SAINTS = ["ST ANSELM'S", "ST BRIDE'S", "ST CUTHBERT'S", "ST EDMUND'S", "ST OSWALD'S"]
_COMPASS = ["NORTH ", "SOUTH ", "EAST ", "WEST ", "MID ", "", "", "", "", ""]
_NAME_PATTERNS = {
    "Acute - Teaching": ["{p} UNIVERSITY HOSPITALS NHS FOUNDATION TRUST",
                         "{p} TEACHING HOSPITALS NHS TRUST",
                         "UNIVERSITY HOSPITALS OF {p} NHS TRUST"],
    "acute": ["{p} HOSPITALS NHS FOUNDATION TRUST", "{p} AND {q} HOSPITALS NHS TRUST",
              "{p} HEALTHCARE NHS TRUST", "{p} GENERAL HOSPITAL NHS FOUNDATION TRUST"],
    "Acute - Specialist": ["{p} CHILDREN'S HOSPITAL NHS FOUNDATION TRUST",
                           "ROYAL {p} ORTHOPAEDIC HOSPITAL NHS FOUNDATION TRUST",
                           "{p} HEART AND CHEST HOSPITAL NHS FOUNDATION TRUST",
                           "{p} CANCER CENTRE NHS FOUNDATION TRUST"],
    "Acute - Multi-Service": ["{p} HEALTH AND CARE NHS FOUNDATION TRUST", "{p} NHS TRUST"],
    "Mental Health and Learning Disability": ["{p} PARTNERSHIP NHS FOUNDATION TRUST",
                                              "{p} AND {q} MENTAL HEALTH NHS TRUST",
                                              "{p} HEALTH AND WELLBEING NHS FOUNDATION TRUST"],
    "Community Provider Trust": ["{p} COMMUNITY HEALTHCARE NHS TRUST",
                                 "{p} COMMUNITY HEALTH SERVICES NHS TRUST"],
    "Ambulance Trust": ["{p} AMBULANCE SERVICE NHS FOUNDATION TRUST",
                        "{p} AMBULANCE SERVICE NHS TRUST"],
    "wales": ["{p} NHS TRUST", "{p} HEALTH SERVICES NHS TRUST"],
}  # fmt: skip
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass
class Nation:
    """A synthetic nation: reference data, true request counts and the planted truth.

    Attributes
    ----------
    trusts : DataFrame
        One row per ODS trust (English, Welsh, closed): org_code, name (upper case as in
        etr), region_code, icb_code, postcode, open_date, close_date (NaT when open),
        benchmark_group, cluster_group, ics_code, ics_name (the ICB's name as the workforce file
        gives it; peer group and ICS columns null for Welsh trusts).
    workforce : DataFrame
        Staff in post, one row per org_code × period × staff_group (incl. "All staff groups"
        = the sum of the others): org_code, org_name, period, period_end, staff_group,
        headcount, fte, benchmark_group, cluster_group, region_code, ics_code, ics_name.
    staff_survey : DataFrame
        One row per survey unit per survey_year (2024, 2025): org_code, org_name,
        survey_year, q4d_pct_satisfied, q6b_pct_agree, q6c_pct_agree, q6d_pct_agree
        (percent 0–100), we_work_flexibly_score (0–10), survey_benchmarking_group,
        responses. A few cells are suppressed (null).
    truth : DataFrame
        One row per trust: org_code, country, in_benchmark, true_approval_rate,
        true_uptake_per_100 (requests per 100 staff a year), planted, publishes, form
        ("summary" | "request_level" | null), mistake (the planted mistake of a rejected
        file, else ""), equity_gap (the planted equity gap, "dimension: group, group", else
        "").
    summary : DataFrame
        The true counts in the Flex Data Standard summary form (:data:`SUMMARY_COLUMNS`),
        one row per publishing trust × quarter × staff group (incl. "All staff groups"),
        exactly what a valid file of that trust says.
    requests : DataFrame
        One row per request for trusts that publish the request-level form; aggregating it
        gives their rows of ``summary``. With the equity fields sex, age_band,
        ethnic_group (broad or detailed, see the module notes), disability and band.
    quarters : list of (date, date)
        The reporting quarters, oldest first.
    """

    trusts: pd.DataFrame
    workforce: pd.DataFrame
    staff_survey: pd.DataFrame
    truth: pd.DataFrame
    summary: pd.DataFrame
    requests: pd.DataFrame
    quarters: list[tuple[date, date]]
    seed: int
    as_of: date
    survey_years: list[int] = field(default_factory=lambda: [2024, 2025])

    def equity_gaps(self) -> dict[str, str]:
        """org_code -> "dimension: group, group" of the trusts carrying a planted equity gap."""
        t = self.truth[self.truth["equity_gap"] != ""]
        return dict(zip(t["org_code"], t["equity_gap"], strict=True))

    def planted(self, feature: str) -> list[str]:
        """Org codes of the trusts carrying one planted feature, sorted."""
        has = self.truth["planted"].str.split(";").apply(lambda xs: feature in xs)
        return sorted(self.truth.loc[has, "org_code"])


def reporting_quarters(as_of: date, quarters: int) -> list[tuple[date, date]]:
    """The ``quarters`` latest complete calendar quarters ending on or before ``as_of``.

    Calendar quarters (Jan–Mar, Apr–Jun, …) are also financial-year quarters, so they are
    regular periods of the Flex Data Standard (docs/flex-data-standard.md). Oldest first.
    """
    year, month = as_of.year, as_of.month
    end_month = (month - 1) // 3 * 3  # last month of the previous quarter (0 = Dec last year)
    last_day = calendar.monthrange(year, month)[1]
    if month % 3 == 0 and as_of.day == last_day:
        end_month = month  # as_of is itself a quarter end
    if end_month == 0:
        year, end_month = year - 1, 12
    out = []
    for _ in range(quarters):
        start = date(year, end_month - 2, 1)
        end = date(year, end_month, calendar.monthrange(year, end_month)[1])
        out.append((start, end))
        end_month -= 3
        if end_month <= 0:
            year, end_month = year - 1, end_month + 12
    return out[::-1]


def _scaled(count_per_200: int, n: int) -> int:
    return max(1, round(count_per_200 * n / 200))


def _allocate(weights: list[float], total: int, minimum: int = 1) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder), each >= ``minimum``."""
    w = np.asarray(weights, dtype=float)
    raw = w / w.sum() * (total - minimum * len(w))
    base = np.floor(raw).astype(int)
    rest = total - minimum * len(w) - base.sum()
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return (base + minimum).tolist()


def _title(name: str) -> str:
    """An etr-style upper-case name in the mixed case the Staff Survey and workforce files use."""
    small = {"AND", "OF", "FOR", "THE"}
    words = []
    for i, word in enumerate(name.split()):
        if word in {"NHS", "ICB"}:
            words.append(word)
        elif word in small and i > 0:
            words.append(word.lower())
        else:
            words.append(word.capitalize() if "'" not in word else word[0] + word[1:].lower())
    return " ".join(words)


def _place_names(rng: np.random.Generator, n: int) -> list[str]:
    combos = [s + e for s in _PLACE_STARTS for e in _PLACE_ENDS]
    picks = rng.choice(len(combos), size=n, replace=False)
    return [combos[i].upper() for i in picks]


def _trust_codes(rng: np.random.Generator, n: int) -> list[str]:
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < n:
        code = "R" + "".join(rng.choice(list(_ALNUM), size=2))
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return codes


def _postcode(rng: np.random.Generator, region: str) -> str:
    area = rng.choice(_POSTCODE_AREAS[region])
    letters = "".join(rng.choice(list(_POSTCODE_LETTERS), size=2))
    return f"{area}{rng.integers(1, 20)} {rng.integers(1, 10)}{letters}"


def _build_trusts(rng: np.random.Generator, n_trusts: int, quarters) -> pd.DataFrame:
    """The ODS list: English trusts by peer group, a few Welsh, two closed, one new (G-code)."""
    n_welsh = max(1, round(3 * n_trusts / 200))
    n_closed = 2
    n_english = n_trusts - n_welsh - n_closed
    if n_english < len(PEER_GROUPS):
        raise ValueError(f"n_trusts must be at least {len(PEER_GROUPS) + n_welsh + n_closed}")
    counts = _allocate([g.real_count for g in PEER_GROUPS], n_english)

    icbs_per_region = {
        r: max(2, round(42 * w / sum(_REGION_WEIGHTS.values()))) for r, w in _REGION_WEIGHTS.items()
    }
    icb_codes = iter(
        "Q" + a + b for a, b in rng.permutation([(a, b) for a in "HKMNORSTUW" for b in _ALNUM])
    )
    icbs = {r: [next(icb_codes) for _ in range(k)] for r, k in icbs_per_region.items()}
    icb_names = {
        code: _ICB_NAMES[r][i % len(_ICB_NAMES[r])]
        for r, codes_of in icbs.items()
        for i, code in enumerate(codes_of)
    }

    places = _place_names(rng, min(2 * n_trusts + 40, 690))
    place_iter = iter(places)
    codes = iter(_trust_codes(rng, n_trusts))
    regions = list(_REGION_WEIGHTS)
    region_p = np.array(list(_REGION_WEIGHTS.values()), dtype=float)
    region_p /= region_p.sum()

    rows = []
    for group, k in zip(PEER_GROUPS, counts, strict=True):
        for i in range(k):
            if group.benchmark_group == "Ambulance Trust":
                region = _AMBULANCE_REGIONS[i % len(_AMBULANCE_REGIONS)]
                place = next(place_iter)
            else:
                region = str(rng.choice(regions, p=region_p))
                place = _COMPASS[int(rng.integers(len(_COMPASS)))] + next(place_iter)
            kind = group.benchmark_group if group.benchmark_group in _NAME_PATTERNS else "acute"
            pattern = str(rng.choice(_NAME_PATTERNS[kind]))
            if kind == "acute" and rng.random() < 0.08:
                place = _SAINTS[len(rows) % len(_SAINTS)] + " " + place.split()[-1].title().upper()
                pattern = "{p} HOSPITALS NHS TRUST"
            name = pattern.format(p=place, q=next(place_iter))
            rows.append(
                dict(
                    org_code=next(codes),
                    name=name,
                    region_code=region,
                    icb_code=str(rng.choice(icbs[region])),
                    benchmark_group=group.benchmark_group,
                    cluster_group=group.cluster_group,
                    open_date=date(
                        int(rng.integers(1991, 2021)), int(rng.choice([4, 4, 4, 10, 7])), 1
                    ),
                    close_date=pd.NaT,
                )
            )
    trusts = pd.DataFrame(rows)

    # Two closed trusts, both closed before the reporting window. The first is the
    # predecessor of an open acute trust and kept the same name without "Foundation": a
    # sign-up naming it "Westford Hospitals" matches two ODS trusts (docs/pledge-matching.md, P3).
    window_start = quarters[0][0]
    acute = trusts.index[trusts["benchmark_group"] == "Acute - Medium"]
    successor = acute[0] if len(acute) else trusts.index[0]
    succ_name = str(trusts.at[successor, "name"])
    base = succ_name.split(" NHS ")[0]
    trusts.at[successor, "name"] = f"{base} NHS FOUNDATION TRUST"
    trusts.at[successor, "open_date"] = window_start - timedelta(days=366 + 92)  # day after
    closed = [
        dict(
            name=f"{base} NHS TRUST",
            open_date=date(1993, 4, 1),
            close_date=window_start - timedelta(days=366 + 93),
            region_code=trusts.at[successor, "region_code"],
            icb_code=trusts.at[successor, "icb_code"],
        ),
        dict(
            name=f"{next(place_iter)} COMMUNITY HEALTH SERVICES NHS TRUST",
            open_date=date(2011, 4, 1),
            close_date=window_start - timedelta(days=93),
            region_code="Y60",
            icb_code=icbs["Y60"][0],
        ),
    ]
    for c in closed:
        c.update(org_code=next(codes), benchmark_group=None, cluster_group=None)
    welsh = [
        dict(
            org_code=next(codes),
            name=str(rng.choice(_NAME_PATTERNS["wales"])).format(p=next(place_iter)),
            region_code=WALES_REGION,
            icb_code=WALES_ICB,
            benchmark_group=None,
            cluster_group=None,
            open_date=date(int(rng.integers(1994, 2010)), 4, 1),
            close_date=pd.NaT,
        )
        for _ in range(n_welsh)
    ]
    trusts = pd.concat([trusts, pd.DataFrame(closed), pd.DataFrame(welsh)], ignore_index=True)

    # One trust opens mid-window with a new-style five-character code (like G6V2S).
    opener = trusts.index[trusts["benchmark_group"] == "Mental Health and Learning Disability"]
    opener = opener[-1] if len(opener) else trusts.index[len(trusts) // 2]
    digits, letters = "123456789", "ABCDEFGHJKLMNPQRSTUVWXYZ"
    trusts.at[opener, "org_code"] = (
        "G"
        + str(rng.choice(list(digits)))
        + str(rng.choice(list(letters)))
        + str(rng.choice(list(digits)))
        + str(rng.choice(list(letters)))
    )
    trusts.at[opener, "open_date"] = quarters[max(1, len(quarters) - 3)][0]

    trusts["postcode"] = [_postcode(rng, r) for r in trusts["region_code"]]
    trusts["ics_code"] = trusts["icb_code"].where(trusts["region_code"] != WALES_REGION)
    trusts["ics_name"] = trusts["ics_code"].map(icb_names)
    trusts["open_date"] = pd.to_datetime(trusts["open_date"])
    trusts["close_date"] = pd.to_datetime(trusts["close_date"])
    trusts = trusts.sort_values("org_code", ignore_index=True)
    cols = [
        "org_code",
        "name",
        "region_code",
        "icb_code",
        "postcode",
        "open_date",
        "close_date",
        "benchmark_group",
        "cluster_group",
        "ics_code",
        "ics_name",
    ]
    return trusts[cols]


def _build_workforce(rng: np.random.Generator, trusts: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Staff in post by staff group for English trusts open at the workforce period's end."""
    end_month = date(as_of.year, as_of.month, 1) - timedelta(days=1)
    start_month = date(end_month.year, end_month.month, 1) - timedelta(days=1)
    period = f"{start_month:%Y%m} to {end_month:%Y%m}"
    by_name = {g.benchmark_group: g for g in PEER_GROUPS}
    rows = []
    live = trusts[trusts["benchmark_group"].notna() & trusts["close_date"].isna()]
    for t in live.itertuples():
        group = by_name[t.benchmark_group]
        total = float(np.exp(rng.normal(np.log(group.median_headcount), group.spread)))
        total = float(np.clip(total, group.min_headcount, group.max_headcount))
        mix = np.asarray(STAFF_MIX[group.mix]) * rng.lognormal(0, 0.12, len(STAFF_GROUPS))
        mix = mix / mix.sum()
        heads = np.rint(mix * total).astype(int)
        ftes = heads * np.asarray(FTE_PER_HEAD) * rng.uniform(0.97, 1.03, len(STAFF_GROUPS))
        for staff_group, hc, fte in zip(STAFF_GROUPS, heads, ftes, strict=True):
            if hc > 0:
                rows.append((t.org_code, staff_group, int(hc), round(float(fte), 5)))
        rows.append(
            (
                t.org_code,
                ALL_STAFF_GROUPS,
                int(heads.sum()),
                round(float(sum(f for h, f in zip(heads, ftes, strict=True) if h > 0)), 5),
            )
        )
    wf = pd.DataFrame(rows, columns=["org_code", "staff_group", "headcount", "fte"])
    wf = wf.merge(trusts, on="org_code", how="left")
    wf["org_name"] = wf["name"].map(_title)
    wf["period"] = period
    wf["period_end"] = pd.Timestamp(end_month)
    cols = WORKFORCE_COLUMNS
    return wf[cols].reset_index(drop=True)


def _assign_planted(rng, trusts, headcount, n) -> dict[str, list[str]]:
    """Pick disjoint trusts for each planted feature; sized features go to big enough trusts."""
    eligible = trusts[
        trusts["benchmark_group"].notna()
        & trusts["close_date"].isna()
        & ~trusts["org_code"].str.startswith("G")  # the new trust publishes only part window
    ]["org_code"].tolist()
    free = list(rng.permutation(eligible))
    chosen: dict[str, list[str]] = {}

    def take(feature, min_headcount=0):
        k = _scaled(_PLANTED_PER_200[feature], n)
        picks = [c for c in free if headcount.get(c, 0) >= min_headcount][:k]
        if len(picks) < k:  # small nations: fall back to the largest free trusts
            picks += sorted(
                (c for c in free if c not in picks), key=lambda c: -headcount.get(c, 0)
            )[: k - len(picks)]
        for c in picks:
            free.remove(c)
        chosen[feature] = sorted(picks)

    take("decline_outlier", 4000)
    take("clinical_gap", 5000)
    take("late_decisions", 2500)
    for feature in PLANTED_FEATURES:
        if feature not in chosen:
            take(feature)
    return chosen


def _simulate_counts(rng, cells: pd.DataFrame) -> pd.DataFrame:
    """Draw the summary counts of every trust × quarter × staff group cell (rules of 3.1 hold).

    ``cells`` has org_code, period_start, period_end, staff_group, expected_requests,
    approval, within_2_months, p_escalate_declines, p_escalate_changes, p_other_reason.
    """
    n = len(cells)
    received = rng.poisson(cells["expected_requests"].to_numpy())
    split = rng.multinomial(received, [0.03, 0.03, 0.94])
    withdrawn, pending, decided = split[:, 0], split[:, 1], split[:, 2]
    approved = rng.binomial(decided, cells["approval"].to_numpy())
    with_changes = rng.binomial(approved, 0.3)
    declined = decided - approved
    in_full = approved - with_changes
    p_other = cells["p_other_reason"].to_numpy()
    pvals = np.column_stack([np.outer(1 - p_other, _STATUTORY_REASON_MIX), p_other.reshape(-1, 1)])
    reasons = rng.multinomial(declined, pvals)
    escalated_declines = rng.binomial(declined, cells["p_escalate_declines"].to_numpy())
    escalated = escalated_declines + rng.binomial(
        with_changes, cells["p_escalate_changes"].to_numpy()
    )
    appeals = rng.binomial(declined, 0.25)
    upheld = rng.binomial(appeals, 0.3)
    within = rng.binomial(decided, cells["within_2_months"].to_numpy())
    out = cells[["org_code", "period_start", "period_end", "staff_group"]].copy()
    values = {
        "requests_received": received,
        "approved_in_full": in_full,
        "approved_with_changes": with_changes,
        "declined": declined,
        "withdrawn": withdrawn,
        "pending": pending,
        "escalated": escalated,
        "appeals": appeals,
        "appeals_upheld": upheld,
        "decided_within_2_months": within,
    }
    for name, col in values.items():
        out[name] = np.asarray(col, dtype="int64")
    for j, name in enumerate(DECLINE_REASONS):
        out[name] = reasons[:, j].astype("int64")
    assert len(out) == n
    return out


def _expand_requests(rng, summary: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """One row per request whose aggregation gives exactly ``summary`` (staff-group rows)."""
    rows = []
    flex_types = list(FLEX_TYPES)
    flex_p = [0.30, 0.17, 0.12, 0.03, 0.08, 0.07, 0.03, 0.15, 0.05]
    bands = ["Band 2", "Band 3", "Band 4", "Band 5", "Band 6", "Band 7", "Band 8a", "Band 8b"]
    for c in summary.itertuples(index=False):
        q_start, q_end = c.period_start.date(), c.period_end.date()
        outcomes = (
            ["approved_in_full"] * c.approved_in_full
            + ["approved_with_changes"] * c.approved_with_changes
            + ["declined"] * c.declined
            + ["withdrawn"] * c.withdrawn
            + ["pending"] * c.pending
        )
        reasons = [r for r in DECLINE_REASONS for _ in range(getattr(c, r))]
        k = len(outcomes)
        if k == 0:
            continue
        decided = c.approved_in_full + c.approved_with_changes + c.declined
        # Declined requests were all escalated unless the trust skips the stage; the rest of
        # the escalations are requests agreed with changes at the escalation stage.
        esc = ["no"] * k
        order = list(range(c.approved_in_full + c.approved_with_changes, decided)) + list(
            range(c.approved_in_full, c.approved_in_full + c.approved_with_changes)
        )
        for i in order[: c.escalated]:
            esc[i] = "yes"
        appeal = ["none"] * k
        first_declined = c.approved_in_full + c.approved_with_changes
        for j in range(c.appeals):
            appeal[first_declined + j] = "upheld" if j < c.appeals_upheld else "not_upheld"
        within = np.zeros(k, dtype=bool)
        within[rng.permutation(decided)[: c.decided_within_2_months]] = True
        for i, outcome in enumerate(outcomes):
            if i < decided:
                lag = int(rng.integers(3, 56)) if within[i] else int(rng.integers(67, 103))
                latest = min(q_end, as_of - timedelta(days=lag))
                span = max(0, (latest - q_start).days)
                received = q_start + timedelta(days=int(rng.integers(0, span + 1)))
                decision = received + timedelta(days=lag)
            else:
                span = (q_end - q_start).days
                received = q_start + timedelta(days=int(rng.integers(0, span + 1)))
                decision = None
            reason = reasons[i - first_declined] if outcome == "declined" else ""
            rows.append(
                (c.org_code, received, decision, outcome, esc[i], appeal[i], reason, c.staff_group)
            )
    cols = [
        "org_code",
        "received_date",
        "decision_date",
        "outcome",
        "escalated",
        "appeal",
        "decline_reason",
        "staff_group",
    ]
    req = pd.DataFrame(rows, columns=cols)
    req = req.sort_values(["org_code", "received_date"], kind="stable", ignore_index=True)
    req.insert(
        1, "request_id", [f"FWR-{h:08x}" for h in rng.choice(2**32, len(req), replace=False)]
    )
    req["flex_type"] = rng.choice(flex_types, size=len(req), p=flex_p)
    req["band"] = rng.choice(bands, size=len(req))
    req["received_date"] = pd.to_datetime(req["received_date"])
    req["decision_date"] = pd.to_datetime(req["decision_date"])
    return req


# NHS-like shares of the equity fields among people who request flexible working (WRES, WDES
# and NHS Workforce Statistics orders of magnitude; module notes).
EQUITY_SHARES = {
    "sex": {"Female": 0.80, "Male": 0.20},
    "age_band": {"Under 25": 0.06, "25-34": 0.28, "35-44": 0.30, "45-54": 0.22, "55-64": 0.12,
                 "65 and over": 0.02},
    "disability": {"Disabled": 0.05, "Not disabled": 0.82, "Not stated": 0.13},
    # broad ethnic groups outside London; London trusts have twice the minority shares
    "ethnic_group": {"White": 0.68, "Asian or Asian British": 0.14,
                     "Black or Black British": 0.09, "Mixed": 0.025, "Other ethnic group": 0.03,
                     "Not stated": 0.035},
}  # fmt: skip
# Within each broad group, its detailed 2021 Census groups (written by half the trusts).
_ETHNIC_DETAILED_SHARES = {
    "White": {"White: English, Welsh, Scottish, Northern Irish or British": 0.85,
              "White: Irish": 0.025, "White: Gypsy or Irish Traveller": 0.003,
              "White: Roma": 0.002, "White: Other White": 0.12},
    "Asian or Asian British": {"Asian: Indian": 0.45, "Asian: Pakistani": 0.15,
                               "Asian: Bangladeshi": 0.06, "Asian: Chinese": 0.06,
                               "Asian: Other Asian": 0.28},
    "Black or Black British": {"Black: African": 0.70, "Black: Caribbean": 0.22,
                               "Black: Other Black": 0.08},
    "Mixed": {"Mixed: White and Asian": 0.3, "Mixed: White and Black African": 0.2,
              "Mixed: White and Black Caribbean": 0.3,
              "Mixed: Other Mixed or Multiple ethnic groups": 0.2},
    "Other ethnic group": {"Other: Arab": 0.2, "Other: Any other ethnic group": 0.8},
}  # fmt: skip
# Agenda for Change bands by staff group (the rest: the default mix).
_BANDS_BY_STAFF_GROUP = {
    "HCHS Doctors (exc. Resident doctors and equivalents)": {"Medical and dental": 1.0},
    "Nurses & health visitors": {"Band 5": 0.45, "Band 6": 0.30, "Band 7": 0.18, "Band 8a": 0.05,
                                 "Band 8b": 0.02},
    "Midwives": {"Band 5": 0.2, "Band 6": 0.55, "Band 7": 0.2, "Band 8a": 0.05},
    "Support to doctors, nurses & midwives": {"Band 2": 0.40, "Band 3": 0.45, "Band 4": 0.15},
    "Support to ambulance staff": {"Band 2": 0.3, "Band 3": 0.5, "Band 4": 0.2},
    "Support to ST&T staff": {"Band 2": 0.3, "Band 3": 0.45, "Band 4": 0.25},
    "Senior managers": {"Band 8c": 0.35, "Band 8d": 0.35, "Band 9": 0.15, "Other pay scale": 0.15},
    "Managers": {"Band 8a": 0.55, "Band 8b": 0.35, "Band 8c": 0.1},
}  # fmt: skip
_DEFAULT_BANDS = {"Band 2": 0.08, "Band 3": 0.17, "Band 4": 0.2, "Band 5": 0.2, "Band 6": 0.17,
                  "Band 7": 0.12, "Band 8a": 0.06}  # fmt: skip
# The planted equity gaps, in this order, one trust each (scaled: 3 in a nation of 200): the
# dimension, the groups approved less often, and how much less (their approval is the
# reference group's times this factor).
EQUITY_GAPS = [
    ("ethnic_group", ("Asian or Asian British", "Black or Black British"), 0.85),
    ("disability", ("Disabled",), 0.75),
    ("age_band", ("55-64",), 0.80),
]


def _draw(rng, shares: dict[str, float], size: int) -> np.ndarray:
    keys = list(shares)
    p = np.array(list(shares.values()), dtype=float)
    return np.asarray(keys, dtype=object)[rng.choice(len(keys), size=size, p=p / p.sum())]


def _equity_fields(
    rng, requests: pd.DataFrame, trusts: pd.DataFrame, n_trusts: int, plant: bool
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Add sex, age_band, ethnic_group, disability and band to ``requests``; plant gaps.

    Each field is drawn independently of the outcome from :data:`EQUITY_SHARES`, except in
    the planted dimension of a planted trust: there a decided request's group is drawn given
    its outcome (Bayes' rule), so that the groups named in :data:`EQUITY_GAPS` are approved at
    ``factor`` times the rate of the others while the trust's outcome counts stay as they are.
    """
    req = requests.copy()
    n = len(req)
    if n == 0:
        for c in ("sex", "age_band", "ethnic_group", "disability"):
            req[c] = pd.Series(dtype=object)
        return req, {}
    req["band"] = "Band 5"
    for group, rows in req.groupby("staff_group").groups.items():
        req.loc[rows, "band"] = _draw(rng, _BANDS_BY_STAFF_GROUP.get(group, _DEFAULT_BANDS),
                                      len(rows))  # fmt: skip
    region = req["org_code"].map(trusts.set_index("org_code")["region_code"])
    london = (region == "Y56").to_numpy()
    white = EQUITY_SHARES["ethnic_group"]
    london_shares = {k: (v if k in ("White", "Not stated") else 2 * v) for k, v in white.items()}
    london_shares["White"] = 1 - sum(v for k, v in london_shares.items() if k != "White")
    for field_name in ("sex", "age_band", "disability"):
        req[field_name] = _draw(rng, EQUITY_SHARES[field_name], n)
    ethnic = _draw(rng, white, n)
    ethnic[london] = _draw(rng, london_shares, int(london.sum()))
    req["ethnic_group"] = ethnic

    gaps: dict[str, str] = {}
    decided = req["outcome"].isin(["approved_in_full", "approved_with_changes", "declined"])
    if plant:
        sizes = req[decided].groupby("org_code").size().sort_values(ascending=False, kind="stable")
        k = min(_scaled(len(EQUITY_GAPS), n_trusts), len(EQUITY_GAPS), len(sizes))
        for code, (dimension, groups, factor) in zip(sizes.index[:k], EQUITY_GAPS, strict=False):
            own = (req["org_code"] == code).to_numpy()
            shares = london_shares if london[own].any() else EQUITY_SHARES[dimension]
            if dimension != "ethnic_group":
                shares = EQUITY_SHARES[dimension]
            _plant_gap(rng, req, own & decided.to_numpy(), dimension, shares, groups, factor)
            gaps[code] = f"{dimension}: {', '.join(groups)}"

    # Half the request-level trusts write the detailed 2021 Census ethnic groups.
    codes = sorted(req["org_code"].unique())
    detailed_trusts = set(codes[::2])
    detailed = (
        req["org_code"].isin(detailed_trusts).to_numpy()
        & (req["ethnic_group"] != "Not stated").to_numpy()
    )
    for broad, shares in _ETHNIC_DETAILED_SHARES.items():
        rows = detailed & (req["ethnic_group"] == broad).to_numpy()
        req.loc[rows, "ethnic_group"] = _draw(rng, shares, int(rows.sum()))
    return req, gaps


def _plant_gap(rng, req, rows, dimension, shares, groups, factor) -> None:
    """Redraw ``dimension`` for the decided requests ``rows`` given each one's outcome, so the
    named groups' approval is ``factor`` times the others' (overall approval unchanged)."""
    names = list(shares)
    prior = np.array([shares[g] for g in names], dtype=float)
    prior /= prior.sum()
    multiplier = np.array([factor if g in groups else 1.0 for g in names])
    approved = req.loc[rows, "outcome"].isin(["approved_in_full", "approved_with_changes"])
    overall = float(approved.mean())
    reference_rate = min(overall / float((prior * multiplier).sum()), 0.995)
    p_given_approved = prior * multiplier
    p_given_declined = prior * (1 - multiplier * reference_rate)
    index = req.index[rows]
    values = np.empty(len(index), dtype=object)
    a = approved.to_numpy()
    values[a] = _draw(rng, dict(zip(names, p_given_approved, strict=True)), int(a.sum()))
    values[~a] = _draw(rng, dict(zip(names, p_given_declined, strict=True)), int((~a).sum()))
    req.loc[index, dimension] = values


def _build_survey(rng, trusts, workforce, planted, survey_years) -> pd.DataFrame:
    """Flexible-working answers of the Staff Survey, one row per survey unit per year."""
    by_name = {g.benchmark_group: g for g in PEER_GROUPS}
    headcount = workforce[workforce["staff_group"] == ALL_STAFF_GROUPS].set_index("org_code")[
        "headcount"
    ]
    low_voice = set(planted["voice_below_peers"]) | set(planted["low_uptake_low_voice"])
    split = set(planted["survey_split_units"])
    q4d_mean = {
        "acute": 52,
        "specialist": 56,
        "mental_health": 58,
        "community": 57,
        "ambulance": 42,
    }
    base = {}
    rows = []
    english = trusts[trusts["benchmark_group"].notna() | trusts["close_date"].notna()]
    english = english[english["region_code"] != WALES_REGION]
    for year in survey_years:
        fieldwork = pd.Timestamp(year, 9, 1)
        for t in english.itertuples():
            if t.open_date > fieldwork or (pd.notna(t.close_date) and t.close_date < fieldwork):
                continue
            group = by_name.get(t.benchmark_group) or by_name["Community Provider Trust"]
            if t.org_code not in base:
                base[t.org_code] = dict(
                    q4d=rng.normal(q4d_mean[group.mix], 4),
                    q6b=rng.normal(70, 3.5),
                    q6c=rng.normal(67, 3.5),
                    q6d=rng.normal(65, 3.5),
                    score=rng.normal(6.35 if group.mix != "ambulance" else 5.9, 0.2),
                )
                if t.org_code in low_voice:  # well below the peer-group norm
                    base[t.org_code].update(
                        q4d=q4d_mean[group.mix] - 12 + rng.normal(0, 1.5),
                        q6b=58 + rng.normal(0, 1.5),
                        q6c=55 + rng.normal(0, 1.5),
                        q6d=52 + rng.normal(0, 1.5),
                        score=base[t.org_code]["score"] - 0.8,
                    )
            b = base[t.org_code]
            drift = rng.normal(0.6, 1.0)
            hc = int(headcount.get(t.org_code, 3000))
            units = [t.org_code + "1", t.org_code + "2"] if t.org_code in split else [t.org_code]
            for unit in units:
                responses = int(hc / len(units) * rng.uniform(0.35, 0.55))
                rows.append(
                    dict(
                        org_code=unit,
                        org_name=_title(t.name)
                        + (
                            ""
                            if len(units) == 1
                            else f" ({'Hospital' if unit.endswith('1') else 'Community'} services)"
                        ),
                        survey_year=year,
                        q4d_pct_satisfied=np.clip(b["q4d"] + drift + rng.normal(0, 1), 25, 75),
                        q6b_pct_agree=np.clip(b["q6b"] + drift + rng.normal(0, 1), 45, 85),
                        q6c_pct_agree=np.clip(b["q6c"] + drift + rng.normal(0, 1), 45, 85),
                        q6d_pct_agree=np.clip(b["q6d"] + drift + rng.normal(0, 1), 45, 85),
                        we_work_flexibly_score=np.clip(
                            b["score"] + drift / 20 + rng.normal(0, 0.05), 4.5, 7.5
                        ),
                        survey_benchmarking_group=group.survey_group,
                        responses=responses,
                    )
                )
    survey = pd.DataFrame(rows)
    for col in ["q4d_pct_satisfied", "q6b_pct_agree", "q6c_pct_agree", "q6d_pct_agree"]:
        survey[col] = survey[col].astype(float).round(2)
    survey["we_work_flexibly_score"] = survey["we_work_flexibly_score"].astype(float).round(3)
    # A few suppressed cells (fewer than 10 responses to that question): null, never 0.
    q_cols = ["q4d_pct_satisfied", "q6b_pct_agree", "q6c_pct_agree", "q6d_pct_agree"]
    unplanted = ~survey["org_code"].isin(low_voice) & (survey["survey_year"] == survey_years[-1])
    for i in rng.choice(survey.index[unplanted], size=min(4, int(unplanted.sum())), replace=False):
        survey.loc[i, str(rng.choice(q_cols))] = np.nan
    return survey.sort_values(["survey_year", "org_code"], ignore_index=True)


def build_nation(
    n_trusts: int = 200,
    seed: int = DEFAULT_SEED,
    as_of: date = DEFAULT_AS_OF,
    quarters: int = 8,
    equity_gaps: bool = True,
) -> Nation:
    """Draw a synthetic nation of NHS trusts, deterministically from ``seed``.

    Parameters
    ----------
    n_trusts : int
        Rows of the ODS list, English, Welsh and closed trusts together (at least 14).
    seed : int
        Same seed, same nation, byte for byte once written.
    as_of : date
        The day the data is drawn up to; publications cover the ``quarters`` latest complete
        calendar quarters before it.
    quarters : int
        Number of reporting quarters each publishing trust reports.
    equity_gaps : bool
        Whether a few request-level trusts carry a planted equity gap (False: a nation where
        no trust has one, to check the equity gap flag's false discoveries). Nothing else of
        the nation changes.

    Returns
    -------
    Nation
        Reference frames, true request counts and the planted truth.
    """
    rng = np.random.default_rng(seed)
    qs = reporting_quarters(as_of, quarters)
    trusts = _build_trusts(rng, n_trusts, qs)
    workforce = _build_workforce(rng, trusts, as_of)
    all_staff = workforce[workforce["staff_group"] == ALL_STAFF_GROUPS]
    headcount = dict(zip(all_staff["org_code"], all_staff["headcount"], strict=True))
    planted = _assign_planted(rng, trusts, headcount, n_trusts)
    mistakes = dict(zip(planted["rejected_file"], MISTAKES * 3, strict=False))

    # True parameters of every trust: approval mostly 85–97%, uptake 5–15 per 100 a year.
    codes = trusts["org_code"].tolist()
    approval = 0.85 + 0.12 * rng.beta(4, 3, len(codes))
    uptake = np.clip(np.exp(rng.normal(np.log(9.0), 0.28, len(codes))), 5.2, 14.8)
    within = rng.uniform(0.95, 0.99, len(codes))
    params = pd.DataFrame(
        dict(
            org_code=codes,
            approval=approval,
            uptake=uptake,
            within=within,
            p_escalate=1.0,
            p_escalate_changes=0.5,
            p_other=0.0,
            clinical_shift=0.0,
            non_clinical_shift=0.0,
        )
    ).set_index("org_code")
    params.loc[planted["decline_outlier"], "approval"] = rng.uniform(
        0.60, 0.70, len(planted["decline_outlier"])
    )
    params.loc[planted["voice_below_peers"], "approval"] = rng.uniform(
        0.94, 0.97, len(planted["voice_below_peers"])
    )
    params.loc[planted["low_uptake_low_voice"], "uptake"] = rng.uniform(
        2.5, 3.5, len(planted["low_uptake_low_voice"])
    )
    params.loc[planted["late_decisions"], "within"] = rng.uniform(
        0.60, 0.70, len(planted["late_decisions"])
    )
    # A trust that skips the escalation stage: few declines and no other request escalated.
    params.loc[planted["no_escalation"], "p_escalate"] = 0.1
    params.loc[planted["no_escalation"], "p_escalate_changes"] = 0.0
    params.loc[planted["non_statutory_declines"], "p_other"] = 0.25
    # A clinical gap that leaves the overall rate ordinary: ~0.87 clinical vs ~0.97 non-clinical.
    params.loc[planted["clinical_gap"], "approval"] = rng.uniform(
        0.90, 0.93, len(planted["clinical_gap"])
    )
    params.loc[planted["clinical_gap"], "clinical_shift"] = -0.04
    params.loc[planted["clinical_gap"], "non_clinical_shift"] = 0.06

    # Who publishes: every open English trust but the pledged-not-publishing ones and ~8%
    # others; ~15% of publishers use the request-level form (not the planted-mistake ones).
    in_benchmark = trusts["benchmark_group"].notna() & trusts["close_date"].isna()
    candidates = [
        c
        for c in trusts.loc[in_benchmark, "org_code"]
        if c not in planted["pledged_not_publishing"]
    ]
    silent = set(rng.choice(candidates, size=round(0.08 * len(candidates)), replace=False))
    silent -= {c for f, cs in planted.items() if f != "pledged_not_publishing" for c in cs}
    publishers = sorted(c for c in candidates if c not in silent)
    plain = [c for c in publishers if c not in planted["rejected_file"]]
    request_level = set(rng.choice(plain, size=round(0.15 * len(publishers)), replace=False))
    stale = set(planted["stale"])

    # Cells: publishing trust × quarter × staff group with staff in post.
    groups = workforce[workforce["staff_group"] != ALL_STAFF_GROUPS]
    open_dates = trusts.set_index("org_code")["open_date"]
    cells = []
    for qi, (q_start, q_end) in enumerate(qs):
        g = groups[groups["org_code"].isin(publishers)][["org_code", "staff_group", "headcount"]]
        g = g[g["org_code"].map(open_dates) <= pd.Timestamp(q_start)]
        if qi >= len(qs) - min(4, len(qs) // 2):  # stale trusts stopped a year ago
            g = g[~g["org_code"].isin(stale)]
        g = g.assign(period_start=pd.Timestamp(q_start), period_end=pd.Timestamp(q_end))
        cells.append(g)
    cells = pd.concat(cells, ignore_index=True)
    p = params.loc[cells["org_code"]].reset_index(drop=True)
    clinical = cells["staff_group"].isin(CLINICAL_STAFF_GROUPS).to_numpy()
    shift = np.where(clinical, p["clinical_shift"], p["non_clinical_shift"])
    cells["expected_requests"] = cells["headcount"] * p["uptake"].to_numpy() / 100 / 4
    cells["approval"] = np.clip(p["approval"].to_numpy() + shift, 0.3, 0.995)
    cells["within_2_months"] = p["within"].to_numpy()
    cells["p_escalate_declines"] = p["p_escalate"].to_numpy()
    cells["p_escalate_changes"] = p["p_escalate_changes"].to_numpy()
    cells["p_other_reason"] = p["p_other"].to_numpy()
    by_group = _simulate_counts(rng, cells)

    # The true overall approval of a trust: its staff-group rates weighted by expected demand.
    weights = cells.assign(
        w=cells["expected_requests"], wa=cells["expected_requests"] * cells["approval"]
    )
    true_approval = params["approval"].copy()
    agg = weights.groupby("org_code")[["w", "wa"]].sum()
    true_approval.loc[agg.index] = agg["wa"] / agg["w"]

    count_cols = SUMMARY_COLUMNS[4:]
    totals = by_group.groupby(["org_code", "period_start", "period_end"], as_index=False)[
        count_cols
    ].sum()
    totals.insert(3, "staff_group", ALL_STAFF_GROUPS)
    summary = pd.concat([by_group, totals], ignore_index=True)
    summary = summary.sort_values(["org_code", "period_start", "staff_group"], ignore_index=True)
    summary = summary[SUMMARY_COLUMNS]

    requests = _expand_requests(
        rng, by_group[by_group["org_code"].isin(request_level)].reset_index(drop=True), as_of
    )
    survey = _build_survey(rng, trusts, workforce, planted, [2024, 2025])
    # The equity fields come from a stream of their own: the rest of the nation is unchanged.
    requests, equity = _equity_fields(
        np.random.default_rng([seed, 17]), requests, trusts, n_trusts, equity_gaps
    )

    planted_by_trust = {c: [] for c in codes}
    for feature in PLANTED_FEATURES:
        for c in planted[feature]:
            planted_by_trust[c].append(feature)
    truth = pd.DataFrame(
        dict(
            org_code=codes,
            country=np.where(trusts["region_code"] == WALES_REGION, "Wales", "England"),
            in_benchmark=in_benchmark.to_numpy(),
            true_approval_rate=true_approval.loc[codes].to_numpy().round(4),
            true_uptake_per_100=params.loc[codes, "uptake"].to_numpy().round(3),
            planted=[";".join(planted_by_trust[c]) for c in codes],
            publishes=[c in publishers for c in codes],
            form=[
                ("request_level" if c in request_level else "summary") if c in publishers else None
                for c in codes
            ],
            mistake=[mistakes.get(c, "") for c in codes],
            equity_gap=[equity.get(c, "") for c in codes],
        )
    )
    return Nation(
        trusts=trusts,
        workforce=workforce,
        staff_survey=survey,
        truth=truth,
        summary=summary,
        requests=requests,
        quarters=qs,
        seed=seed,
        as_of=as_of,
    )
