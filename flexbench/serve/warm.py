"""Imported once by the checks' forkserver (:mod:`flexbench.serve.checker`): pays the slow
part of a check (importing Great Expectations, building its context, a first GX run) before
any upload arrives, so that every check forked afterwards starts warm.
"""

from __future__ import annotations

import gc
from datetime import date

import tqdm

from flexbench.validate import validate_publication
from transforms.vocabulary import SUMMARY_COLUMNS

# No tqdm monitor thread: the forkserver forks, and forking a process with threads is unsafe.
tqdm.tqdm.monitor_interval = 0

_HEADER = ",".join(SUMMARY_COLUMNS)
_ROW = "RXX,2024-04-01,2024-06-30,All staff groups," + ",".join(
    ["10", "10"] + ["0"] * (len(SUMMARY_COLUMNS) - 6)
)

try:
    WARMED = validate_publication(
        f"{_HEADER}\n{_ROW}\n".encode(), "warm-up.csv", today=date(2025, 1, 1)
    ).accepted
except Exception:  # a check forked later pays the cost instead; never stop the forkserver
    WARMED = False


# Objects made so far are never collected again: a collection in a child would otherwise
# write to (and so copy) the pages it shares with this process.
gc.freeze()
