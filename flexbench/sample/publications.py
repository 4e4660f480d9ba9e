"""Trust publications of the synthetic nation, written as trusts would publish them.

Each publishing trust gets one file in the Flex Data Standard v1 (docs/flex-data-standard.md): the
summary form (trust × quarter × staff group, plus "All staff groups"), or for about 15% of
trusts the request-level form (one row per request, pseudonymous ids). Valid files obey every
rule of the standard; their cosmetic differences are the ones the standard accepts — a BOM,
CRLF line ends, an "ODS code" or "Trust code" header, header case and spacing, the
"Agreed with amendments" synonym, cp1252 text as saved by Excel, an XLSX with a "data" sheet.
A few files carry a real mistake that validation must catch; the manifest says which.

Writing is deterministic: the same nation gives the same bytes (XLSX timestamps are fixed).
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from flexbench.sample.nation import SUMMARY_COLUMNS, Nation

REQUEST_LEVEL_COLUMNS = [
    "org_code",
    "request_id",
    "received_date",
    "decision_date",
    "outcome",
    "escalated",
    "appeal",
    "decline_reason",
    "staff_group",
    "flex_type",
    "band",
    "sex",
    "age_band",
    "ethnic_group",
    "disability",
]

# Cosmetic variants every reader of the standard must accept. The first file of each kind
# gets each variant once (so every variant is always present), the rest are drawn.
SUMMARY_VARIANTS = {
    "plain": 0.45,
    "bom": 0.09,
    "crlf": 0.09,
    "ods_code_header": 0.08,
    "header_case": 0.08,
    "synonyms": 0.07,
    "cp1252": 0.08,
    "xlsx": 0.06,
}
REQUEST_LEVEL_VARIANTS = {"plain": 0.6, "bom": 0.17, "crlf": 0.18, "xlsx": 0.05}

HTML_ERROR_PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head><title>404 Not Found</title></head>\n'
    "<body>\n<h1>Page not found</h1>\n<p>Sorry, the page you are looking for has moved. "
    'Try our <a href="/search">search</a>.</p>\n</body>\n</html>\n'
)
_FIXED_TIME = (2026, 1, 1, 0, 0, 0)  # zip entry times in XLSX files, for identical bytes
_CP1252_NOTE = "Trust’s figures – revised after the Board’s review (café staff included)"


def _publication_filename(org_code: str, form: str, fmt: str, first, last) -> str:
    kind = "flexible_working_requests" if form == "request_level" else "flexible_working"
    return f"{org_code}_{kind}_{first:%Y-%m}_to_{last:%Y-%m}.{fmt}"


def plan_publications(nation: Nation) -> pd.DataFrame:
    """The manifest of the files :func:`write_publications` writes, without writing them.

    Returns
    -------
    DataFrame
        One row per publishing trust: org_code, filename, form ("summary" |
        "request_level"), format ("csv" | "xlsx"), variant (the cosmetic variant), expected
        ("accepted" | "rejected"), mistake (the planted mistake, "" for a valid file),
        first_period_start, last_period_end.
    """
    rng = np.random.default_rng([nation.seed, 1])
    truth = nation.truth[nation.truth["publishes"]]
    periods = nation.summary.groupby("org_code").agg(
        first_period_start=("period_start", "min"), last_period_end=("period_end", "max")
    )
    rows = []
    for form, variants in (
        ("summary", SUMMARY_VARIANTS),
        ("request_level", REQUEST_LEVEL_VARIANTS),
    ):
        of_form = truth[(truth["form"] == form)]
        valid = [c for c, m in zip(of_form["org_code"], of_form["mistake"], strict=True) if not m]
        order = list(rng.permutation(valid)) if valid else []
        names = list(variants)
        drawn = rng.choice(names, size=len(order), p=list(variants.values()))
        chosen = {c: (names[i] if i < len(names) else str(drawn[i])) for i, c in enumerate(order)}
        for t in of_form.itertuples():
            variant = chosen.get(t.org_code, "plain")
            fmt = "xlsx" if variant == "xlsx" else "csv"
            first, last = periods.loc[t.org_code]
            rows.append(
                dict(
                    org_code=t.org_code,
                    filename=_publication_filename(t.org_code, form, fmt, first, last),
                    form=form,
                    format=fmt,
                    variant=variant,
                    expected="rejected" if t.mistake else "accepted",
                    mistake=t.mistake,
                    first_period_start=first,
                    last_period_end=last,
                )
            )
    return pd.DataFrame(rows).sort_values("org_code", ignore_index=True)


def publications_registry(manifest: pd.DataFrame, base_url: str) -> pd.DataFrame:
    """The publications registry (org_code, url) for files served under ``base_url``."""
    base = base_url.rstrip("/")
    return pd.DataFrame(
        {"org_code": manifest["org_code"], "url": base + "/publications/" + manifest["filename"]}
    )


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as ISO text (blank when missing); everything else as is."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d").fillna("")
    return out


def _plant_mistake(
    frame: pd.DataFrame, mistake: str, other_org: str, rng: np.random.Generator
) -> pd.DataFrame:
    """Put one real mistake of the kind named into a valid summary table."""
    f = frame.reset_index(drop=True).copy()
    row = int(rng.integers(1, max(2, len(f) - 1)))
    if mistake == "outcomes do not add up":
        f.loc[row, "requests_received"] += 3
    elif mistake == "negative count":
        # Keep the outcomes adding up, so the negative number is the only thing wrong.
        f.loc[row, "approved_in_full"] += f.loc[row, "withdrawn"] + 1
        f.loc[row, "withdrawn"] = -1
    elif mistake == "unknown staff group":
        f["staff_group"] = f["staff_group"].replace(
            {"Hotel, property & estates": "Estates & facilities"}
        )
        if not (f["staff_group"] == "Estates & facilities").any():
            f.loc[row, "staff_group"] = "Estates & facilities"
    elif mistake == "duplicate rows":
        f = pd.concat([f.iloc[: row + 1], f.iloc[[row]], f.iloc[row + 1 :]], ignore_index=True)
    elif mistake == "file for another trust":
        f["org_code"] = other_org
    return f


def _header(columns: list[str], variant: str) -> list[str]:
    if variant == "ods_code_header":
        return ["ODS code" if c == "org_code" else c for c in columns]
    if variant == "synonyms":
        renames = {"org_code": "Trust code", "approved_with_changes": "Agreed with amendments"}
        return [renames.get(c, c) for c in columns]
    if variant == "header_case":
        return [c.replace("_", " ").title() for c in columns]
    return list(columns)


def _csv_bytes(frame: pd.DataFrame, variant: str) -> bytes:
    frame = _as_text(frame)
    if variant == "cp1252":
        frame = frame.assign(notes=[_CP1252_NOTE] + [""] * (len(frame) - 1))
    buf = io.StringIO()
    line_end = "\r\n" if variant in ("crlf", "cp1252") else "\n"
    frame.to_csv(
        buf, index=False, header=_header(list(frame.columns), variant), lineterminator=line_end
    )
    text = buf.getvalue()
    if variant == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if variant == "cp1252":
        return text.encode("cp1252")
    return text.encode("utf-8")


def deterministic_zip(data: bytes, modified: str = "2026-01-01T00:00:00Z") -> bytes:
    """The same XLSX/zip with every entry's time and the "last modified" property fixed.

    openpyxl stamps the save time into ``docProps/core.xml`` and the zip entries; fixing
    both makes equal content give equal bytes.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>" + modified.encode() + rb"\g<2>",
                    content,
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, content)
    return out.getvalue()


def _xlsx_bytes(frame: pd.DataFrame, as_of) -> bytes:
    """An XLSX whose data is on a sheet named "data" (after a notes sheet, as trusts do)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)  # streaming: several times faster for big sheets
    notes = wb.create_sheet("Notes")
    notes.append(["Flexible working requests, published under the Flex Data Standard v1"])
    notes.append(["Data are on the sheet 'data'."])
    ws = wb.create_sheet("data")
    ws.append(list(frame.columns))
    for values in frame.itertuples(index=False):
        ws.append(
            [
                None
                if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v))
                else v.date()
                if isinstance(v, pd.Timestamp)
                else int(v)
                if isinstance(v, np.integer)
                else v
                for v in values
            ]
        )
    stamp = datetime(as_of.year, as_of.month, as_of.day)
    wb.properties.creator = "flexbench sample"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    buf = io.BytesIO()
    wb.save(buf)
    return deterministic_zip(buf.getvalue(), f"{stamp:%Y-%m-%dT%H:%M:%SZ}")


def publication_bytes(nation: Nation, entry) -> bytes:
    """The bytes of one planned publication (a row of :func:`plan_publications`)."""
    if entry.mistake == "HTML error page instead of data":
        return HTML_ERROR_PAGE.encode("utf-8")
    if entry.form == "request_level":
        frame = nation.requests[nation.requests["org_code"] == entry.org_code]
        frame = frame[REQUEST_LEVEL_COLUMNS].reset_index(drop=True)
    else:
        frame = nation.summary[nation.summary["org_code"] == entry.org_code].reset_index(drop=True)
        frame = frame[SUMMARY_COLUMNS]
    if entry.mistake:
        rng = np.random.default_rng([nation.seed, 2, sum(map(ord, entry.org_code))])
        others = sorted(set(nation.summary["org_code"]) - {entry.org_code})
        frame = _plant_mistake(frame, entry.mistake, others[len(others) // 2], rng)
    if entry.format == "xlsx":
        return _xlsx_bytes(frame, nation.as_of)
    return _csv_bytes(frame, entry.variant)


def write_publications(nation: Nation, out_dir: Path) -> pd.DataFrame:
    """Write every trust's publication under ``out_dir / "publications"``.

    Parameters
    ----------
    nation : Nation
        From :func:`flexbench.sample.nation.build_nation`.
    out_dir : Path
        The root the demo serves over HTTP; files go to its ``publications/`` folder.

    Returns
    -------
    DataFrame
        The manifest (see :func:`plan_publications`): org_code, filename, form, format,
        variant, expected, mistake, first_period_start, last_period_end.
    """
    manifest = plan_publications(nation)
    folder = Path(out_dir) / "publications"
    folder.mkdir(parents=True, exist_ok=True)
    for entry in manifest.itertuples(index=False):
        (folder / entry.filename).write_bytes(publication_bytes(nation, entry))
    return manifest


__all__ = [
    "REQUEST_LEVEL_COLUMNS",
    "plan_publications",
    "publication_bytes",
    "publications_registry",
    "write_publications",
]
