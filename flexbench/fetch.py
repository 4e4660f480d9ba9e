"""Fetch a source URL safely and land it, unchanged, in the content-addressed landing zone.

Every source goes through :func:`fetch_to_landing`:

- only ``https://`` URLs, unless local use is switched on (then ``http://`` and ``file://``
  too); hosts that resolve to private, loopback, link-local or reserved addresses are refused
  outside local use, and every redirect hop is checked again (URLs come from outside: the
  pledge feed supplies them);
- retries with exponential backoff on connection errors, timeouts and 5xx (urllib3 ``Retry``);
- a conditional GET (ETag / Last-Modified) and a sha256 of the body, so an unchanged file
  costs one small request and is reported ``unchanged``;
- a response size cap, enforced while streaming (memory stays bounded), and a cap on the
  total time spent reading one response (a server that drips bytes cannot hold a run);
- the body is written to ``landing/<source>/<sha256>.<ext>`` with a provenance sidecar
  (URL, time, HTTP status, ETag/Last-Modified, sha256, size).

The limits have defaults fit for production and can be tightened (tests, slow links) through
the environment, read whenever a :class:`FetchPolicy` is made:

==============================  =====================================================
``FLEXBENCH_FETCH_TIMEOUT``     read timeout in seconds, or ``connect,read`` (``5,30``)
``FLEXBENCH_FETCH_RETRIES``     retries after the first attempt (``3``)
``FLEXBENCH_FETCH_BACKOFF``     exponential backoff factor in seconds (``0.5``)
``FLEXBENCH_FETCH_MAX_BYTES``   response size cap in bytes (``52428800``, 50 MiB)
``FLEXBENCH_FETCH_MAX_SECONDS`` total seconds to read one response (``300``)
==============================  =====================================================

Known limit: the address check resolves the host before the request; a DNS answer that
changes between the check and the connection (DNS rebinding) is not defended against.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse, urlsplit

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # 50 MiB: far above any trust's publication
DEFAULT_TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
DEFAULT_MAX_SECONDS = 300.0  # total time to read one response
MAX_REDIRECTS = 5
MAX_WAIT = 30  # seconds: the longest wait between two attempts (backoff or Retry-After)


class FetchError(Exception):
    """A fetch that failed; the message is one line a user can act on."""


class UnsafeURLError(FetchError):
    """A URL refused by the fetch safety rules."""


def _env_number(name: str, default: float, cast=float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = cast(text)
    except ValueError:
        raise FetchError(f"{name}={text!r} is not a number") from None
    if value < 0:
        raise FetchError(f"{name}={text!r} must not be negative")
    return value


def _env_timeout() -> tuple[float, float]:
    text = os.environ.get("FLEXBENCH_FETCH_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise FetchError(
            f"FLEXBENCH_FETCH_TIMEOUT={text!r} is not seconds or connect,read"
        ) from None
    if all(p > 0 for p in parts):
        if len(parts) == 1:
            return (min(DEFAULT_TIMEOUT[0], parts[0]), parts[0])
        if len(parts) == 2:
            return (parts[0], parts[1])
    raise FetchError(f"FLEXBENCH_FETCH_TIMEOUT={text!r} is not seconds or connect,read")


@dataclass
class FetchPolicy:
    """What a fetch may do. Defaults come from the environment (see the module docstring)."""

    allow_local: bool = False
    max_bytes: int = field(
        default_factory=lambda: int(
            _env_number("FLEXBENCH_FETCH_MAX_BYTES", DEFAULT_MAX_BYTES, int)
        )
    )
    timeout: tuple[float, float] = field(default_factory=_env_timeout)
    retries: int = field(
        default_factory=lambda: int(_env_number("FLEXBENCH_FETCH_RETRIES", 3, int))
    )
    backoff: float = field(default_factory=lambda: _env_number("FLEXBENCH_FETCH_BACKOFF", 0.5))
    max_seconds: float = field(
        default_factory=lambda: _env_number("FLEXBENCH_FETCH_MAX_SECONDS", DEFAULT_MAX_SECONDS)
    )


@dataclass
class FetchResult:
    source: str
    url: str
    status: str  # fetched | unchanged | failed
    fetched_at: str
    http_status: int | None = None
    sha256: str | None = None
    size: int | None = None
    path: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None

    def read_bytes(self) -> bytes:
        if not self.path:
            raise FetchError(f"{self.url}: nothing was landed")
        return Path(self.path).read_bytes()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def now_utc() -> str:
    # Microseconds: two fetches of one URL in the same second must still be ordered (the
    # newest version of a publication wins).
    return datetime.now(UTC).isoformat(timespec="microseconds")


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse a URL the fetch safety rules do not allow (raises UnsafeURLError)."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        if not policy.allow_local:
            raise UnsafeURLError(f"{url}: file:// URLs are allowed only for local use")
        return
    if scheme not in {"http", "https"}:
        raise UnsafeURLError(f"{url}: only https:// URLs are fetched")
    if scheme == "http" and not policy.allow_local:
        raise UnsafeURLError(f"{url}: only https:// URLs are fetched (http:// is for local use)")
    host = parsed.hostname
    if not host:
        raise UnsafeURLError(f"{url}: the URL has no host")
    try:
        infos = socket.getaddrinfo(host, parsed.port or (443 if scheme == "https" else 80))
    except socket.gaierror as exc:
        raise FetchError(f"{url}: cannot resolve host {host} ({exc.strerror})") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        local = addr.is_loopback
        forbidden = (
            addr.is_private
            or addr.is_link_local
            or addr.is_reserved
            or addr.is_multicast
            or addr.is_unspecified
        )
        if local and not policy.allow_local:
            raise UnsafeURLError(f"{url}: loopback addresses are allowed only for local use")
        if forbidden and not local:
            raise UnsafeURLError(f"{url}: {host} resolves to a non-public address ({addr})")


_SESSIONS: dict[tuple, Any] = {}

#: Connections kept per host by a session (requests' default is 10). A batch fetches with
#: many threads at once; a pool smaller than that would drop and reopen connections.
POOL_SIZE = 32


def _session_class():
    import requests

    class Session(requests.Session):
        """A requests session that reads the proxy environment once per (scheme, host).

        requests reads every environment variable (for ``*_proxy`` and ``no_proxy``) on
        every request; in a refresh of thousands of small conditional GETs that was a fifth
        of the client's CPU. The answer depends only on the URL's scheme and host and on the
        environment, which does not change during a run; it is kept per session.
        """

        def __init__(self):
            super().__init__()
            self._environment: dict[tuple, dict] = {}
            self._environment_lock = threading.Lock()

        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            parts = urlsplit(url)
            key = (
                parts.scheme,
                parts.netloc,
                tuple(sorted((proxies or {}).items())),
                stream,
                verify,
                cert if not isinstance(cert, list) else tuple(cert),
            )
            try:
                hash(key)
            except TypeError:
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            with self._environment_lock:
                found = self._environment.get(key)
            if found is None:
                found = super().merge_environment_settings(url, proxies, stream, verify, cert)
                with self._environment_lock:
                    self._environment[key] = found
            return {**found, "proxies": dict(found["proxies"])}

    return Session


def _session(policy: FetchPolicy):
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    # A server's Retry-After is honoured, but never for longer than MAX_WAIT (or the policy's
    # total read time): a hostile "Retry-After: 86400" cannot hold a run.
    wait = int(max(0, min(MAX_WAIT, policy.max_seconds)))
    key = (policy.retries, policy.backoff, wait)
    if key not in _SESSIONS:
        retry = Retry(
            total=policy.retries,
            connect=policy.retries,
            read=policy.retries,
            status=policy.retries,
            backoff_factor=policy.backoff,
            backoff_max=wait,
            retry_after_max=wait,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        s = _session_class()()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        s.headers["User-Agent"] = "flexbench/0.1 (+national NHS flexible working benchmark)"
        _SESSIONS[key] = s
    return _SESSIONS[key]


def get_bytes(url: str, policy: FetchPolicy, headers: dict[str, str] | None = None):
    """GET a URL under the safety rules; return (http_status, headers, body bytes).

    ``file://`` URLs are read from disk (local use only). Redirects are followed by hand so
    every hop is checked. The body is read in chunks and refused past ``policy.max_bytes``.
    """
    import requests

    check_url(url, policy)
    if urlparse(url).scheme == "file":
        path = Path(unquote(urlparse(url).path))
        if not path.exists():
            raise FetchError(f"{url}: no such file")
        if path.stat().st_size > policy.max_bytes:
            raise FetchError(f"{url}: larger than the {policy.max_bytes} byte limit")
        return 200, {}, path.read_bytes()
    session = _session(policy)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            resp = session.get(
                current,
                headers=headers or {},
                timeout=policy.timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.RetryError as exc:
            raise FetchError(f"{url}: server kept failing after retries ({_reason(exc)})") from None
        except requests.exceptions.Timeout:
            raise FetchError(f"{url}: timed out after retries") from None
        except requests.exceptions.ConnectionError as exc:
            reason = _reason(exc)
            if "timed out" in reason.lower():
                raise FetchError(f"{url}: timed out after retries ({reason})") from None
            raise FetchError(f"{url}: unreachable ({reason})") from None
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"{url}: request failed ({_reason(exc)})") from None
        if resp.is_redirect:
            location = resp.headers.get("Location", "")
            resp.close()
            current = urljoin(current, location)
            # A redirect may only lead to another web address, checked like the first one
            # (never to file://, even where local use is on).
            if urlparse(current).scheme.lower() not in {"http", "https"}:
                raise UnsafeURLError(f"{url}: redirected to {current}, which is not a web address")
            check_url(current, policy)
            continue
        with resp:
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise FetchError(f"{url}: response of {declared} bytes exceeds the size limit")
            chunks, total, started = [], 0, time.monotonic()
            try:
                for chunk in resp.iter_content(64 * 1024):
                    total += len(chunk)
                    if total > policy.max_bytes:
                        raise FetchError(
                            f"{url}: response exceeds the {policy.max_bytes} byte limit"
                        )
                    if time.monotonic() - started > policy.max_seconds:
                        raise FetchError(
                            f"{url}: reading the response took longer than {policy.max_seconds:g} s"
                        )
                    chunks.append(chunk)
            except requests.exceptions.RequestException as exc:
                raise FetchError(
                    f"{url}: connection broke while reading ({_reason(exc)})"
                ) from None
            return resp.status_code, dict(resp.headers), b"".join(chunks)
    raise FetchError(f"{url}: too many redirects")


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Caused by ", "caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()' ")[:160]


def _state_path(landing: Path, source: str, url: str) -> Path:
    key = hashlib.sha256(f"{source}\n{url}".encode()).hexdigest()[:32]
    return landing / "_state" / f"{key}.json"


def _ext(url: str, headers: dict[str, str]) -> str:
    name = urlparse(url).path.rsplit("/", 1)[-1]
    if "." in name:
        ext = name.rsplit(".", 1)[1].lower()
        if ext.isalnum() and len(ext) <= 5:
            return ext
    ctype = headers.get("Content-Type", "").lower()
    for marker, ext in (("json", "json"), ("csv", "csv"), ("html", "html"), ("sheet", "xlsx")):
        if marker in ctype:
            return ext
    return "bin"


def land_bytes(
    landing: Path, source: str, body: bytes, ext: str, provenance: dict
) -> tuple[str, Path]:
    """Write ``body`` to the landing zone, content-addressed; never overwrite existing content."""
    sha = hashlib.sha256(body).hexdigest()
    folder = landing / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sha}.{ext}"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    _record_provenance(folder, sha, {**provenance, "size": len(body)})
    return sha, path


def _record_provenance(folder: Path, sha: str, provenance: dict) -> None:
    """Every fetch of a content is recorded, one JSON line each, beside the content."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{sha}.provenance.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**provenance, "sha256": sha}) + "\n")


def fetch_to_landing(
    source: str, url: str, landing: Path, policy: FetchPolicy, conditional: bool = True
) -> FetchResult:
    """Fetch ``url`` and land it; never raises for fetch problems (status ``failed``)."""
    fetched_at = now_utc()
    state_file = _state_path(landing, source, url)
    state: dict[str, Any] = {}
    if conditional and state_file.exists():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = {}
    # A conditional GET only when the landed copy it would stand for is still there.
    if not (state.get("sha256") and Path(state.get("path") or "").exists()):
        state = {}
    headers = {}
    if state.get("etag"):
        headers["If-None-Match"] = state["etag"]
    if state.get("last_modified"):
        headers["If-Modified-Since"] = state["last_modified"]
    try:
        status, resp_headers, body = get_bytes(url, policy, headers)
    except FetchError as exc:
        return FetchResult(source, url, "failed", fetched_at, error=str(exc))
    if status == 304 and state:
        # Not modified: nothing is downloaded; the fetch is still recorded in the provenance.
        _record_provenance(
            landing / source,
            state["sha256"],
            {
                "source": source,
                "url": url,
                "fetched_at": fetched_at,
                "http_status": 304,
                "etag": state.get("etag"),
                "last_modified": state.get("last_modified"),
                "size": state.get("size"),
            },
        )
        return FetchResult(
            source,
            url,
            "unchanged",
            fetched_at,
            http_status=304,
            sha256=state["sha256"],
            size=state.get("size"),
            path=state.get("path"),
            etag=state.get("etag"),
            last_modified=state.get("last_modified"),
        )
    if status >= 400 or status == 304:
        return FetchResult(
            source,
            url,
            "failed",
            fetched_at,
            http_status=status,
            error=f"{url}: HTTP {status}",
        )
    etag = resp_headers.get("ETag")
    last_modified = resp_headers.get("Last-Modified")
    provenance = {
        "source": source,
        "url": url,
        "fetched_at": fetched_at,
        "http_status": status,
        "etag": etag,
        "last_modified": last_modified,
    }
    sha, path = land_bytes(landing, source, body, _ext(url, resp_headers), provenance)
    unchanged = conditional and state.get("sha256") == sha
    new_state = {
        "url": url,
        "etag": etag,
        "last_modified": last_modified,
        "sha256": sha,
        "size": len(body),
        "path": str(path),
    }
    state_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(new_state))
    os.replace(tmp, state_file)
    return FetchResult(
        source,
        url,
        "unchanged" if unchanged else "fetched",
        fetched_at,
        http_status=status,
        sha256=sha,
        size=len(body),
        path=str(path),
        etag=etag,
        last_modified=last_modified,
    )
