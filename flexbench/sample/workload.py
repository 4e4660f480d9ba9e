"""A national-scale workload for the performance harness (``flexbench bench``).

One *national workload* (scale 1) is a synthetic nation of about 215 trusts drawn by
:func:`flexbench.sample.nation.build_nation`: eight quarters of summary data for every staff
group, with every other publishing trust publishing a request-level log instead of a summary
(so about half the publishers, and well over 100,000 request rows over the two years). Scale
N is N such nations side by side, each with its own seed and its own trust codes (the first
three characters of the nation's code plus a two-character replica tag), in one ODS list, one
workforce file and one Staff Survey spreadsheet per year. A fractional scale below 1 draws one
smaller nation (for smoke tests).

Every publication is a clean CSV in the Flex Data Standard v1 (no planted mistakes, no
cosmetic variants, no XLSX), so that every measured run reads the same rows and the DuckDB
floor (one ``read_csv`` over every file) reads exactly what the pipeline reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flexbench.sample import nation as nation_mod
from flexbench.sample.nation import ALL_STAFF_GROUPS, SUMMARY_COLUMNS
from flexbench.sample.publications import REQUEST_LEVEL_COLUMNS

NATIONAL_TRUSTS = 215  # rows of the ODS list in one national workload
MIN_TRUSTS = 20  # the smallest nation build_nation draws comfortably
WORKLOAD_SEED = 20261201
_TAG = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass
class Workload:
    """What :func:`write_workload` wrote: the served root, the sources and the manifest.

    ``manifest`` has one row per publication file: org_code, filename, form ("summary" |
    "request_level"), rows (data rows in the file), url.
    """

    root: Path
    sources: dict
    manifest: pd.DataFrame
    as_of: object
    trusts: int
    #: The same sources with a registry without ``updated_at``: every file is asked about.
    sources_ask_all: dict | None = None

    @property
    def registry_path(self) -> Path:
        """The registry CSV (org_code, url, updated_at) the sources point at (served)."""
        return self.root / "registry" / "publications.csv"

    @property
    def total_rows(self) -> int:
        return int(self.manifest["rows"].sum())

    @property
    def files(self) -> list[Path]:
        return [self.root / "publications" / f for f in self.manifest["filename"]]


def _replica_sizes(scale: float, trusts_per_nation: int) -> list[int]:
    """Trusts in each replica nation for ``scale`` national workloads."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    whole = math.floor(scale)
    sizes = [trusts_per_nation] * whole
    rest = round((scale - whole) * trusts_per_nation)
    if rest >= MIN_TRUSTS or not sizes:
        sizes.append(max(MIN_TRUSTS, rest))
    return sizes


def _recode(nation, k: int) -> dict[str, pd.DataFrame]:
    """The nation's frames with trust codes made unique to replica ``k`` (k=0 unchanged)."""
    frames = {
        "trusts": nation.trusts.copy(),
        "workforce": nation.workforce.copy(),
        "staff_survey": nation.staff_survey.copy(),
        "summary": nation.summary.copy(),
        "requests": nation.requests.copy(),
        "truth": nation.truth.copy(),
    }
    if k == 0:
        return frames
    tag = _TAG[k // len(_TAG) % len(_TAG)] + _TAG[k % len(_TAG)]
    mapping = {c: c[:3] + tag for c in nation.trusts["org_code"]}
    for name, df in frames.items():
        if name == "staff_survey":
            # Split survey units (code + "1"/"2") have no 5-character form: left out.
            df = df[df["org_code"].isin(mapping)].copy()
        df["org_code"] = df["org_code"].map(mapping).fillna(df["org_code"])
        frames[name] = df
    return frames


def _csv(frame: pd.DataFrame) -> bytes:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d").fillna("")
    return out.to_csv(index=False, lineterminator="\n").encode("utf-8")


def write_workload(
    root: Path,
    base_url: str,
    scale: float = 1.0,
    trusts_per_nation: int = NATIONAL_TRUSTS,
    seed: int = WORKLOAD_SEED,
) -> Workload:
    """Write ``scale`` national workloads under ``root`` (the folder served on loopback).

    Parameters
    ----------
    root : Path
        Output folder: ``reference/`` (ODS etr.csv, workforce CSV, Staff Survey XLSX) and
        ``publications/`` (one CSV per publishing trust).
    base_url : str
        The URL ``root`` is served at; the sources registry points there.
    scale : float
        Number of national workloads (N). Below 1, one smaller nation.
    trusts_per_nation : int
        Trusts in one national workload (215 by default; smaller for smoke tests).
    seed : int
        Same seed, same bytes.

    Returns
    -------
    Workload
    """
    from flexbench.sample import reference as ref_mod

    root = Path(root)
    (root / "reference").mkdir(parents=True, exist_ok=True)
    pubs_dir = root / "publications"
    pubs_dir.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[pd.DataFrame]] = {}
    manifest = []
    as_of = None
    for k, n_trusts in enumerate(_replica_sizes(scale, trusts_per_nation)):
        nation = nation_mod.build_nation(n_trusts=n_trusts, seed=seed + k)
        as_of = nation.as_of
        frames = _recode(nation, k)
        for name in ("trusts", "workforce", "staff_survey"):
            parts.setdefault(name, []).append(frames[name])
        publishers = sorted(frames["truth"].loc[frames["truth"]["publishes"], "org_code"])
        request_level = set(publishers[::2])
        summary = frames["summary"]
        by_group = summary[
            summary["org_code"].isin(request_level) & (summary["staff_group"] != ALL_STAFF_GROUPS)
        ].reset_index(drop=True)
        # One row per request whose aggregation gives exactly the summary counts.
        requests = nation_mod._expand_requests(
            np.random.default_rng([seed, k, 7]), by_group, nation.as_of
        )
        # The equity fields of the request-level form, drawn as the demo nation draws them.
        requests, _ = nation_mod._equity_fields(
            np.random.default_rng([seed, k, 17]), requests, frames["trusts"], n_trusts, False
        )
        for org in publishers:
            if org in request_level:
                frame = requests[requests["org_code"] == org][REQUEST_LEVEL_COLUMNS]
                form = "request_level"
            else:
                frame = summary[summary["org_code"] == org][SUMMARY_COLUMNS]
                form = "summary"
            if frame.empty:
                continue
            filename = f"{org}_{form}.csv"
            (pubs_dir / filename).write_bytes(_csv(frame))
            manifest.append(dict(org_code=org, filename=filename, form=form, rows=len(frame)))
    trusts = pd.concat(parts["trusts"], ignore_index=True)
    ref_mod.write_etr(trusts, root / "reference" / "etr.csv")
    ref_mod.write_workforce(
        pd.concat(parts["workforce"], ignore_index=True),
        root / "reference" / "workforce_staff_group_organisation.csv",
    )
    survey = pd.concat(parts["staff_survey"], ignore_index=True)
    years = sorted(int(y) for y in survey["survey_year"].unique())
    for year in years:
        ref_mod.write_staff_survey(
            survey[survey["survey_year"] == year],
            root / "reference" / f"NSS{str(year)[2:]}_detailed_spreadsheets.xlsx",
            year,
        )
    base = base_url.rstrip("/")
    man = pd.DataFrame(manifest)
    man["url"] = base + "/publications/" + man["filename"]
    sources = {
        "allow_local_urls": True,
        "ods_trusts": {"url": f"{base}/reference/etr.csv"},
        "staff_survey": [
            {"year": y, "url": f"{base}/reference/NSS{str(y)[2:]}_detailed_spreadsheets.xlsx"}
            for y in years
        ],
        "workforce": [{"url": f"{base}/reference/workforce_staff_group_organisation.csv"}],
        "publications": [{"registry_csv": f"{base}/registry/publications.csv"}],
    }
    # The registry says when each file last changed (docs/pipeline.md, "Unchanged
    # detection"): now, as they are written. A copy without that column is asked in full.
    man["updated_at"] = _now()
    (root / "registry").mkdir(exist_ok=True)
    _write_registry(root / "registry" / "publications.csv", man, with_updated_at=True)
    _write_registry(root / "registry" / "publications-ask-all.csv", man, with_updated_at=False)
    ask_all = {
        **sources,
        "publications": [{"registry_csv": f"{base}/registry/publications-ask-all.csv"}],
    }
    return Workload(
        root=root,
        sources=sources,
        manifest=man,
        as_of=as_of,
        trusts=len(trusts),
        sources_ask_all=ask_all,
    )


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="microseconds")


def _write_registry(path: Path, man: pd.DataFrame, with_updated_at: bool) -> None:
    columns = ["org_code", "url", "updated_at"] if with_updated_at else ["org_code", "url"]
    tmp = path.with_name(path.name + ".tmp")
    man[columns].to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)


def change_files(workload: Workload, fraction: float = 0.05, seed: int = 1) -> list[str]:
    """Republish ``fraction`` of the files with a small valid correction (new bytes).

    A summary file gets one more withdrawn request in its first row (received goes up with
    it, so every rule still holds); a request-level file gets its first request's flex_type
    changed. Returns the changed file names.
    The registry's ``updated_at`` of those files becomes now.
    """
    man = workload.manifest
    k = max(1, round(fraction * len(man)))
    picks = np.random.default_rng(seed).choice(len(man), size=k, replace=False)
    changed = []
    for i in sorted(picks):
        entry = man.iloc[i]
        path = workload.root / "publications" / entry["filename"]
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if entry["form"] == "summary":
            for col in ("withdrawn", "requests_received"):
                frame.loc[0, col] = str(int(frame.loc[0, col]) + 1)
        else:
            current = frame.loc[0, "flex_type"]
            frame.loc[0, "flex_type"] = "job_share" if current != "job_share" else "term_time"
        path.write_bytes(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        changed.append(entry["filename"])
    if "updated_at" in man.columns:
        man.loc[man["filename"].isin(changed), "updated_at"] = _now()
        _write_registry(workload.registry_path, man, with_updated_at=True)
    return changed


__all__ = ["NATIONAL_TRUSTS", "Workload", "change_files", "write_workload"]
