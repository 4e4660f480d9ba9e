"""A page's downloads cut from a table written once are the files its rows alone give
(flexbench.site.downloads: the site writes thousands of pages' downloads from a few tables)."""

from __future__ import annotations

import json
import sys
import zipfile
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from flexbench import extract  # noqa: E402
from flexbench.site import downloads  # noqa: E402
from flexbench.site.plots import MarkedRows  # noqa: E402
from flexbench.site.trust_charts import PeerCaterpillar  # noqa: E402

AS_OF = extract.DataAsOf(date(2026, 10, 31), date(2025, 10, 1), date(2026, 9, 30))


def _table(when: list[datetime]) -> pd.DataFrame:
    """Five trusts' rows: counts with a missing one and withheld ones, rates, text a
    spreadsheet would run as a formula, dates and a ``when`` column of date-times."""
    return pd.DataFrame(
        {
            "org_code": pd.array(["RA1", "RB2", "RC3", "RD4", "RE5"], dtype="str"),
            "name": pd.array(["=SUM(A1)", "Trust B", None, "-3 trust", "Trust E"], dtype="str"),
            "requests_received": pd.array([120, None, 3, 45, 10], dtype="Int64"),
            "approved": pd.array([100, 5, 2, 40, 0], dtype="Int64"),
            "approval_rate": [0.833, float("nan"), 0.667, 0.889, 0.0],
            "has_data": [True, False, True, True, True],
            "window_start": [date(2025, 10, 1)] * 5,
            "when": pd.to_datetime(when),
            "withheld": pd.array(
                [None, "approved", "requests_received;approved", None, ""], dtype="str"
            ),  # fmt: skip
        }
    )


def _files(folder: Path) -> dict[str, bytes]:
    """The files of a page's downloads; the workbook's parts but its save time."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    if name != "docProps/core.xml":
                        out[f"{path.name}:{name}"] = z.read(name)
        else:
            out[path.name] = path.read_bytes()
    return out


@pytest.mark.parametrize(
    "when",
    [
        [datetime(2026, 1, d) for d in range(1, 6)],  # at midnight: rows cut from the table
        [datetime(2026, 1, 1, 9, 30)] + [datetime(2026, 1, d) for d in range(2, 6)],
    ],
    ids=["dates", "date-times"],
)
@pytest.mark.parametrize("rows", [[0], [1], [2], [4], [1, 3], [0, 2, 3]])
def test_rows_cut_from_a_table_written_once_are_the_files_the_rows_alone_give(tmp_path, when, rows):
    table = _table(when)
    alone, cut = tmp_path / "alone" / "page", tmp_path / "cut" / "page"
    # the rows given as a frame, as positions in the table beside it, and as positions alone
    # (their frame cut from the table only where they are written on their own)
    lazy = tmp_path / "lazy" / "page"
    for folder, frame, rows_of in (
        (alone, table.iloc[rows], None),
        (cut, table.iloc[rows], (table, rows)),
        (lazy, None, (table, rows)),
    ):
        downloads.write_downloads(
            folder,
            "A page",
            [downloads.Resource("card", "Card", frame, types_from=table, rows_of=rows_of)],
            AS_OF,
        )
    assert _files(alone) == _files(cut) == _files(lazy)
    # the descriptor as json.dumps writes it (its schemas are serialised once per table)
    text = (cut / "datapackage.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    csv = (cut / "card.csv").read_text()
    assert csv.count("\n") == len(rows) + 1
    if 0 in rows:
        assert "'=SUM(A1)" in csv  # the formula neutralised
    if 1 in rows:
        assert "Trust B,,[c]" in csv  # missing and withheld as the page shows them


def test_a_peer_group_table_marks_the_pages_own_trust_only():
    frame = pd.DataFrame(
        {
            "org_code": ["RA1", "RB2", "RC3"],
            "name": ["A & B TRUST", "TRUST <B>", "TRUST C"],
            "approval_rate": [0.5, 0.75, 0.9],
            "approval_rate_lower95": [0.4, 0.6, 0.8],
            "approval_rate_upper95": [0.6, 0.85, 0.95],
        }
    )
    peers = PeerCaterpillar(frame, "Acute")
    rows = str(peers.for_trust("RB2")["rows_html"]).split("\n")
    assert len(rows) == 3
    assert [r.startswith('<tr class="this">') for r in rows] == [False, True, False]
    assert "&lt;" in rows[1] and "<B>" not in rows[1] and "&amp;" in rows[0]  # escaped
    assert '<td class="num">75.0%</td><td>60% to 85%</td></tr>' in rows[1]


@pytest.mark.parametrize("key", ["RA1", "RB2", "RC3", "RX9"])
def test_a_groups_rows_joined_once_are_those_joined_for_each_page(key):
    # plots.MarkedRows: the rows joined once and cut around the page's own (a key twice
    # marked twice, a key not there marks nothing), as joining them again for each page
    keys, rows = ["RA1", "RB2", "RC3", "RB2"], ["a</g>", "b</g>", "", "d</g>"]
    for sep in ("", "\n"):
        marked = MarkedRows(keys, rows, '<g class="cat', '<g class="cat this', sep=sep)
        expected = sep.join(
            ('<g class="cat this' if k == key else '<g class="cat') + row
            for k, row in zip(keys, rows, strict=True)
        )
        assert marked.with_marked(key) == expected


def _typed() -> pd.DataFrame:
    """Three rows of columns of every kind a download's columns are typed by."""
    return pd.DataFrame(
        {
            "codes": pd.array(["RA1", "12", None], dtype="str"),
            "whole_text": pd.array(["12", " 7 ", "[c]"], dtype="str"),
            "decimal_text": pd.array(["1.5", None, "1e5"], dtype="str"),
            "only_marker": pd.array(["[c]", None, "[c]"], dtype="str"),
            "mixed_objects": pd.Series(["x", 1, None], dtype=object),
            "counts": pd.array([1, None, 3], dtype="Int64"),
            "no_rate": [float("nan")] * 3,
            "rates": [0.5, float("nan"), 1.0],
            "flag": [True, False, True],
            "day": pd.Series([date(2026, 1, 1), None, date(2026, 2, 1)], dtype=object),
            # "" is a missing value of the descriptor too: all blank is text, not a number
            "all_blank": pd.Series(["", "", ""], dtype=object),
            "blank_or_whole": pd.Series(["", "4", "[c]"], dtype=object),
        }
    )


def test_each_column_is_typed_by_its_values_in_the_descriptor(tmp_path):
    # the datapackage's type of a column: from what its values are (withheld markers and
    # missing values aside), text holding only numbers typed as numbers
    resource = downloads.Resource("t", "T", _typed())
    downloads.write_downloads(tmp_path, "Page", [resource], AS_OF)
    fields = json.loads((tmp_path / "datapackage.json").read_text())["resources"][0]["schema"]
    assert {f["name"]: f["type"] for f in fields["fields"]} == {
        "codes": "string",
        "whole_text": "integer",
        "decimal_text": "number",
        "only_marker": "string",
        "mixed_objects": "string",
        "counts": "integer",
        "no_rate": "string",
        "rates": "number",
        "flag": "boolean",
        "day": "date",
        "all_blank": "string",
        "blank_or_whole": "integer",
    }


@pytest.mark.parametrize("rows", [[], [0], [1], [2], [0, 1], [0, 2], [1, 2], [2, 0, 1]])
def test_the_types_of_rows_of_a_table_are_those_of_the_rows_cut(rows):
    # downloads.TypesOfRows (an area's trusts): each column's type for any rows of a table,
    # from what each of its rows holds, is the type the rows cut from the table are given
    frame = _typed()
    cut = frame.iloc[rows]
    assert downloads.TypesOfRows(frame)(rows) == {c: downloads._type(cut[c]) for c in frame}
