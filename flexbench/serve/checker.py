"""Run each check of an uploaded file in a process of its own, a bounded number at once.

A hostile file must not take the service down, so no upload is ever parsed in the web
server's process. Each check runs in a fresh child forked from a *forkserver* that has
already imported Great Expectations and run one check (:mod:`flexbench.serve.warm`): the
child starts in milliseconds with everything warm, and its memory is shared with the
forkserver until it writes to it. The child sets its own limits (address space, CPU time)
and is killed when the time limit passes; a child that dies or is killed gives the answer
"could not check this file", and the next check gets a fresh child.

At most ``workers`` checks run at once; up to ``queue`` more wait their turn, and past that
the service answers "busy" at once rather than piling up work.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Modules the forkserver imports (and so warms) before it forks any check.
WARM_MODULES = ["flexbench.serve.warm"]


class Busy(Exception):
    """Too many checks running or waiting: try again later."""


class Unchecked(Exception):
    """The check did not finish: the child died, ran out of memory or time."""


@dataclass(frozen=True)
class Limits:
    """What one check may use.

    Attributes
    ----------
    seconds : float
        Wall-clock time for one check; the child is killed after it.
    memory_bytes : int
        Address space the child may add to what it inherits from the forkserver.
    """

    seconds: float = 180.0
    memory_bytes: int = 1536 * 1024 * 1024


def check_job(path: str, name: str, org: str | None, today: str | None) -> dict[str, Any]:
    """The check a child runs: the same as ``flexbench validate`` (:func:`check_file`)."""
    from flexbench.validate import check_file

    day = date.fromisoformat(today) if today else None
    verdict = check_file(Path(path), org, day, name=name)
    return verdict.report()


def upload_limits() -> dict[str, int]:
    """The size limit of a publication, read where the check runs (the web server itself
    never imports pandas: it would double its memory)."""
    import sys

    warm = all(m in sys.modules for m in WARM_MODULES)  # before this import adds any
    from transforms.publications import (
        MAX_COMPRESSION_RATIO,
        MAX_DOWNLOAD_BYTES,
        MAX_INFLATED_BYTES,
    )

    return {
        "max_bytes": MAX_DOWNLOAD_BYTES,
        "max_inflated_bytes": MAX_INFLATED_BYTES,
        "max_compression_ratio": MAX_COMPRESSION_RATIO,
        "warm": warm,
    }


def _child(job: Callable, args: tuple, conn, limits: Limits) -> None:
    """Entry point of a child: limit itself, run the job, send the result, exit."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
        try:
            import psutil

            vms = psutil.Process().memory_info().vms
        except Exception:  # pragma: no cover - psutil is a dependency
            vms = 0
        cap = vms + limits.memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        cpu = int(limits.seconds) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        try:
            result = ("ok", job(*args))
        except MemoryError:
            result = ("error", "the file needs more memory to check than is allowed")
        except Exception as exc:  # a bug or an unforeseen file: never a traceback to the user
            print(f"flexbench serve: a check failed: {type(exc).__name__}", file=sys.stderr)
            result = ("error", "the file holds something the checker cannot handle")
        conn.send(result)
    finally:
        conn.close()
        os._exit(0)


class Checker:
    """A bounded set of checks, each in a fresh child of a warm forkserver.

    Parameters
    ----------
    workers : int
        Checks running at once at most.
    queue : int
        Checks waiting for a turn at most; one more is refused with :class:`Busy`.
    limits : Limits
        Time and memory for one check.
    queue_seconds : float
        How long a check may wait for its turn before it is refused with :class:`Busy`.
    job : callable
        What a child runs (default :func:`check_job`); must be importable by name.
    warm_modules : list of str
        Modules the forkserver imports first (default :data:`WARM_MODULES`).
    """

    def __init__(
        self,
        workers: int = 2,
        queue: int = 32,
        limits: Limits | None = None,
        queue_seconds: float = 120.0,
        job: Callable = check_job,
        warm_modules: list[str] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.queue = max(0, queue)
        self.limits = limits or Limits()
        self.queue_seconds = queue_seconds
        self.job = job
        self._ctx = multiprocessing.get_context("forkserver")
        self._warm_modules = WARM_MODULES if warm_modules is None else warm_modules
        self._ctx.set_forkserver_preload(self._warm_modules)
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self.ready = False
        self.max_bytes = 0
        self.max_inflated_bytes = 0
        self.max_compression_ratio = 0

    def warm_up(self) -> dict[str, Any]:
        """Start the forkserver, wait until it has imported and warmed everything (the
        first fork waits for it) and return :func:`upload_limits`. Blocking; sets
        :attr:`ready` and :attr:`max_bytes`."""
        limits = self._run_child((), upload_limits)
        self.max_bytes = limits["max_bytes"]
        self.max_inflated_bytes = limits["max_inflated_bytes"]
        self.max_compression_ratio = limits["max_compression_ratio"]
        if self._warm_modules == WARM_MODULES and not limits["warm"]:
            # The forkserver could not import them (it only sees PYTHONPATH and the working
            # directory): every check would pay the Great Expectations import itself.
            logger.warning("flexbench serve: checks are not pre-warmed (%s)", WARM_MODULES)
        self.ready = True
        return limits

    @property
    def running(self) -> int:
        if self._slots is None:
            return 0
        return self.workers - self._slots._value  # noqa: SLF001 - asyncio has no public count

    async def run(self, *args: Any) -> dict[str, Any]:
        """Run ``job(*args)`` in a fresh child; its result, or :class:`Unchecked`/:class:`Busy`."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        if self._slots.locked() and self._waiting >= self.queue:
            raise Busy("Too many files are being checked just now; try again in a minute")
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_seconds)
        except TimeoutError:
            raise Busy("Too many files are being checked just now; try again in a minute") from None
        finally:
            self._waiting -= 1
        try:
            return await asyncio.to_thread(self._run_child, args)
        finally:
            self._slots.release()

    def _run_child(self, args: tuple, job: Callable | None = None) -> dict[str, Any]:
        receive, send = self._ctx.Pipe(duplex=False)
        child = self._ctx.Process(
            target=_child, args=(job or self.job, args, send, self.limits), daemon=True
        )
        try:
            child.start()
            send.close()  # the child holds the only writer: its death is an EOF here
            deadline = time.monotonic() + self.limits.seconds
            try:
                if not receive.poll(max(0.0, deadline - time.monotonic())):
                    raise Unchecked("checking the file took longer than is allowed")
                status, value = receive.recv()
            except (EOFError, OSError):
                raise Unchecked("the check stopped before it finished") from None
            if status != "ok":
                raise Unchecked(value)
            return value
        finally:
            receive.close()
            send.close()
            if child.is_alive():
                child.kill()
            child.join(timeout=10)
