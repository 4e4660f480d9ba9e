"""The "Get Ahead on Flex" pledge feed of the synthetic nation, as the sign-up service serves it.

About 60% of the trusts in the benchmark have signed. The feed is paginated JSON
(``pledge/page-N.json``: ``{"signups": [...], "next": url-or-null}``, docs/pledge-matching.md) plus
a CSV export (``pledge/export.csv``). It is filled in by people on a web form, so it carries
what docs/pledge-matching.md says the pipeline copes with: ODS codes missing, in lower case,
with spaces or wrong (a site code); names with "&", "St"/"Saint", "NHS FT", trailing
punctuation, lower case; a name that matches two ODS trusts (a closed trust and its
successor); an organisation that is not a trust; a withdrawn sign-up; one entry repeated
across two pages; and personal data (``signatory_name``, ``signatory_email``) that must be
stripped before anything is stored.

The manifest returned by :func:`write_pledge_feed` says, per sign-up, which trust was meant
and how a correct matcher should find it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from flexbench.sample.nation import Nation, _title
from flexbench.sample.publications import plan_publications

SIGNUP_FIELDS = [
    "id",
    "organisation_name",
    "ods_code",
    "signed_at",
    "signatory_name",
    "signatory_email",
    "signatory_role",
    "commitments",
    "action_plan_url",
    "data_url",
    "board_review_date",
    "managers_trained_pct",
    "status",
    "updated_at",
]
EXPORT_COLUMNS = [
    "id",
    "organisation_name",
    "ods_code",
    "signed_at",
    "signatory_name",
    "signatory_email",
    "signatory_role",
    "commitment_lead",
    "commitment_target",
    "commitment_train",
    "action_plan_url",
    "data_url",
    "board_review_date",
    "managers_trained_pct",
    "status",
    "updated_at",
]
PERSONAL_FIELDS = ("signatory_name", "signatory_email")

_ROLES = [
    "Chief People Officer",
    "Director of Workforce",
    "Chief Executive",
    "HR Director",
    "Deputy Director of People",
    "Director of People and Organisational Development",
]
_FIRST = [
    "Alex",
    "Sam",
    "Priya",
    "Tom",
    "Aisha",
    "Gareth",
    "Mei",
    "Olu",
    "Fiona",
    "Raj",
    "Kate",
    "Dan",
    "Nadia",
    "Chris",
    "Helen",
    "Marek",
]
_LAST = [
    "Morgan",
    "Patel",
    "Okafor",
    "Hughes",
    "Khan",
    "Evans",
    "Chen",
    "Walsh",
    "Begum",
    "Taylor",
    "Nowak",
    "Price",
    "Ali",
    "Shaw",
]


def _norm(name: str) -> str:
    """A plain normalised name (for checking the feed's own design, not the product's matcher)."""
    s = name.lower().replace("&", " and ")
    s = re.sub(r"\bst\b\.?", "saint", s)
    s = re.sub(r"[^a-z0-9 ]", " ", s.replace("'", ""))
    drop = {"nhs", "foundation", "trust", "ft", "the"}
    return " ".join(w for w in s.split() if w not in drop)


def _drop_suffix(name: str) -> str:
    return re.sub(r"\s+NHS( FOUNDATION)? TRUST$", "", name)


def _stamp(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _plan_signups(nation: Nation, base_url: str) -> tuple[list[dict], pd.DataFrame]:
    """Sign-up records in feed order and the manifest of intended matches."""
    rng = np.random.default_rng([nation.seed, 3])
    base = base_url.rstrip("/")
    trusts = nation.trusts.set_index("org_code")
    truth = nation.truth.set_index("org_code")
    pubs = plan_publications(nation).set_index("org_code")
    in_benchmark = truth.index[truth["in_benchmark"]].tolist()
    not_publishing = nation.planted("pledged_not_publishing")

    # The successor of a closed trust of the same name: its name matches two ODS trusts.
    norms = trusts["name"].map(_norm)
    twins = norms[norms.duplicated(keep=False)]
    ambiguous = [c for c in twins.index if pd.isna(trusts.at[c, "close_date"])]

    target = round(0.6 * len(in_benchmark))
    must = sorted(set(not_publishing) | set(ambiguous))
    rest = [c for c in rng.permutation(in_benchmark) if c not in must]
    signers = must + rest[: max(0, target - len(must))]
    signers = [str(c) for c in rng.permutation(signers)]

    # Special cases of docs/pledge-matching.md, each on one signer that suits it.
    cases: dict[str, str] = {c: "ambiguous name" for c in ambiguous}

    def pick(case, where):
        for c in signers:
            if c not in cases and where(c):
                cases[c] = case
                return

    name = trusts["name"]
    pick("'&' for 'and'", lambda c: " AND " in name[c])
    pick("'Saint' for 'St'", lambda c: name[c].startswith("ST "))
    pick("'NHS FT'", lambda c: name[c].endswith("NHS FOUNDATION TRUST"))
    pick("trailing punctuation", lambda c: True)
    pick("lower-case name", lambda c: True)
    pick("lower-case code", lambda c: True)
    pick("code with spaces", lambda c: len(c) == 3)
    pick("wrong code", lambda c: True)
    pick("withdrawn", lambda c: truth.at[c, "publishes"])

    as_of = datetime(nation.as_of.year, nation.as_of.month, nation.as_of.day, tzinfo=UTC)
    first_day = datetime(2024, 4, 1, tzinfo=UTC)
    span = int((as_of - timedelta(days=45) - first_day).total_seconds())
    records, manifest = [], []
    dead_link_given = False
    for code in signers:
        case = cases.get(code, "")
        etr_name = str(trusts.at[code, "name"])
        organisation = _title(etr_name)
        ods_code: str | None = code if rng.random() < 0.5 else None
        expected = "ods_code" if ods_code else "name"
        reason = ""
        if rng.random() < 0.25:
            organisation = _title(_drop_suffix(etr_name))
        if case == "ambiguous name":
            organisation, ods_code, expected = _title(_drop_suffix(etr_name)), None, "review"
            reason = "several trusts match"
        elif case == "'&' for 'and'":
            organisation, ods_code = organisation.replace(" and ", " & "), None
        elif case == "'Saint' for 'St'":
            organisation, ods_code = "Saint " + organisation[3:], None
        elif case == "'NHS FT'":
            organisation, ods_code = _title(_drop_suffix(etr_name)) + " NHS FT", None
        elif case == "trailing punctuation":
            organisation, ods_code = organisation + ".", None
        elif case == "lower-case name":
            organisation, ods_code = organisation.lower(), None
        elif case == "lower-case code":
            ods_code = code.lower()
        elif case == "code with spaces":
            ods_code = f" {code[0]} {code[1:]} "
        elif case == "wrong code":
            ods_code = code + "01"  # a site code, not a trust code
        if case not in ("ambiguous name",):
            expected = (
                "ods_code" if ods_code and re.sub(r"\W", "", ods_code).upper() == code else "name"
            )

        signed = first_day + timedelta(seconds=int(rng.integers(0, span)))
        updated = min(signed + timedelta(days=int(rng.integers(0, 120)), hours=3), as_of)
        status = "signed"
        if case == "withdrawn":
            status, updated = "withdrawn", min(signed + timedelta(days=200), as_of)
        slug = re.sub(r"[^a-z]", "", _drop_suffix(etr_name).lower())[:24]
        first, last = str(rng.choice(_FIRST)), str(rng.choice(_LAST))
        if code in not_publishing:
            data_url = None
            if not dead_link_given:  # promises a file that is not there
                data_url, dead_link_given = f"{base}/publications/{code}_flexible_working.csv", True
        elif code in pubs.index and rng.random() < 0.9:
            data_url = f"{base}/publications/{pubs.at[code, 'filename']}"
        else:
            data_url = None
        review = signed + timedelta(days=int(rng.integers(30, 200)))
        record = {
            "id": "",
            "organisation_name": organisation,
            "ods_code": ods_code,
            "signed_at": _stamp(signed),
            "signatory_name": f"{first} {last}",
            "signatory_email": f"{first}.{last}@{slug}.nhs.uk".lower(),
            "signatory_role": str(rng.choice(_ROLES)),
            "commitments": {
                "lead": bool(rng.random() < 0.9),
                "target": bool(rng.random() < 0.85),
                "train": bool(rng.random() < 0.8),
            },
            "action_plan_url": (
                f"https://www.{slug}.nhs.uk/flexible-working/action-plan.pdf"
                if rng.random() < 0.75
                else None
            ),
            "data_url": data_url,
            "board_review_date": (
                f"{review:%Y-%m-%d}" if review < as_of and rng.random() < 0.7 else None
            ),
            "managers_trained_pct": (
                round(float(rng.uniform(20, 100)), 1) if rng.random() < 0.6 else None
            ),
            "status": status,
            "updated_at": _stamp(updated),
        }
        records.append(record)
        manifest.append(
            dict(
                signup_id="",
                organisation_name=organisation,
                ods_code_given=ods_code,
                intended_org_code=code,
                expected_match=expected,
                expected_reason=reason,
                status=status,
                case=case,
                data_url=data_url,
            )
        )

    # An organisation that is not a trust.
    council = f"{_title(_drop_suffix(str(trusts['name'].iloc[0])).split()[0])} County Council"
    signed = first_day + timedelta(seconds=int(rng.integers(0, span)))
    records.append(
        {
            **records[0],
            "organisation_name": council,
            "ods_code": None,
            "signed_at": _stamp(signed),
            "signatory_name": "Jo Bloggs",
            "signatory_email": "jo.bloggs@example.gov.uk",
            "signatory_role": "Head of HR",
            "action_plan_url": None,
            "data_url": None,
            "board_review_date": None,
            "managers_trained_pct": None,
            "status": "signed",
            "updated_at": _stamp(signed),
            "commitments": {"lead": True, "target": False, "train": True},
        }
    )
    manifest.append(
        dict(
            signup_id="",
            organisation_name=council,
            ods_code_given=None,
            intended_org_code=None,
            expected_match="review",
            expected_reason="no match",
            status="signed",
            case="not a trust",
            data_url=None,
        )
    )

    # Feed order: by signing time, ids in that order (as the service numbers them).
    order = sorted(range(len(records)), key=lambda i: records[i]["signed_at"])
    records = [records[i] for i in order]
    manifest = [manifest[i] for i in order]
    for i, (r, m) in enumerate(zip(records, manifest, strict=True)):
        r["id"] = m["signup_id"] = f"GAOF-{i + 1:05d}"
    return [{k: r[k] for k in SIGNUP_FIELDS} for r in records], pd.DataFrame(manifest)


def _export_csv(records: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for r in records:
        row = {k: v for k, v in r.items() if k != "commitments"}
        for k, v in r["commitments"].items():
            row[f"commitment_{k}"] = "true" if v else "false"
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue().encode("utf-8")


def write_pledge_feed(
    nation: Nation, out_dir: Path, base_url: str, page_size: int = 50
) -> pd.DataFrame:
    """Write the pledge feed (JSON pages and CSV export) under ``out_dir / "pledge"``.

    Parameters
    ----------
    nation : Nation
        From :func:`flexbench.sample.nation.build_nation`.
    out_dir : Path
        The root the demo serves; pages go to ``pledge/page-1.json``, ``page-2.json``, …
        and the export to ``pledge/export.csv``.
    base_url : str
        Where ``out_dir`` is served (e.g. ``http://127.0.0.1:8765``); ``next`` links and
        ``data_url`` values are built on it.
    page_size : int
        Sign-ups per page. The last sign-up of page 1 is repeated at the top of page 2,
        as a feed does when an entry is added while it is being read.

    Returns
    -------
    DataFrame
        One row per distinct sign-up: signup_id, organisation_name, ods_code_given,
        intended_org_code (null for the non-trust), expected_match ("ods_code" | "name" |
        "review"), expected_reason ("" | "several trusts match" | "no match"), status, case
        (the issue-5 case it exercises, "" for an ordinary one), data_url, pages (the pages it
        appears on, e.g. "1;2").
    """
    records, manifest = _plan_signups(nation, base_url)
    base = base_url.rstrip("/")
    folder = Path(out_dir) / "pledge"
    folder.mkdir(parents=True, exist_ok=True)
    pages = [records[i : i + page_size] for i in range(0, len(records), page_size)] or [[]]
    if len(pages) > 1:
        pages[1] = [pages[0][-1], *pages[1]]
    where: dict[str, list[str]] = {}
    for n, page in enumerate(pages, start=1):
        nxt = f"{base}/pledge/page-{n + 1}.json" if n < len(pages) else None
        body = json.dumps({"signups": page, "next": nxt}, indent=2, ensure_ascii=False) + "\n"
        (folder / f"page-{n}.json").write_bytes(body.encode("utf-8"))
        for r in page:
            where.setdefault(r["id"], []).append(str(n))
    (folder / "export.csv").write_bytes(_export_csv(records))
    manifest["pages"] = manifest["signup_id"].map(lambda i: ";".join(where[i]))
    return manifest
