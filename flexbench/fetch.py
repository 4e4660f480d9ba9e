"""Fetch a source URL safely and land it, unchanged, in the content-addressed landing zone.

Every source goes through :func:`fetch_to_landing`:

- only ``https://`` URLs, unless local use is switched on (then ``http://`` and ``file://``
  too). A URL is parsed once, strictly (:func:`parse_web_url`: no backslash, no userinfo,
  no malformed port or brackets, no numeric host other than a plain IP address), and the
  request is sent to the URL rebuilt from those parts. Every address a host resolves to must
  be public (:func:`address_refusal`: no special-purpose range of the IANA registries;
  loopback only for local use). The connection resolves the name once, checks the addresses
  and connects to those and no others (:func:`_pinned_connection`), so a DNS answer that
  changes after the check cannot lead inside. Every redirect hop is checked again (URLs come
  from outside: the pledge feed supplies them);
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

Known limit: through a proxy named in the environment (``https_proxy`` …), the connection
goes to the proxy, which resolves the target's name itself; the target is still checked
before the request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
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


#: Special-purpose ranges of the IANA IPv4 and IPv6 Special-Purpose Address Registries, and
#: multicast. ``ipaddress``'s ``is_global`` misses some of them in Python 3.11 (192.0.0.0/24,
#: multicast, NAT64, 6to4), so the list is written out; an address in any of them is refused
#: (loopback only is opened by local use). See docs/pipeline.md, "Fetch safety".
SPECIAL_PURPOSE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "192.175.48.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible addresses
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",  # Teredo, benchmarking, ORCHID and other IETF assignments
        "2001:db8::/32",
        "2002::/16",  # 6to4: carries any IPv4 address inside
        "2620:4f:8000::/48",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NETLOC = re.compile(r"^(?P<host>\[[^\[\]]*\]|[^:\[\]]*)(?::(?P<port>.*))?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class WebURL:
    """A web address parsed once, strictly: what is checked is what is connected to.

    ``url`` is rebuilt from the parts (no userinfo, no fragment), so the HTTP client reads
    the same host from it as the check did.
    """

    scheme: str
    host: str  # lower case; an IPv6 address without its brackets
    port: int
    url: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None  # when the host is a literal


def _refuse(url: str, why: str) -> UnsafeURLError:
    return UnsafeURLError(f"{url}: {why}")


def _numeric_host(host: str) -> bool:
    """A host whose last label is a number: the URL standard (and the C resolver) read it as
    an IPv4 address in one of many forms (``2130706433``, ``0x7f.1``, ``0177.0.0.1``)."""
    last = host.rstrip(".").rsplit(".", 1)[-1]
    return last.isdigit() or (
        last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])
    )


def parse_web_url(url: str) -> WebURL:
    """Parse an ``http(s)://`` URL strictly (raises UnsafeURLError on anything ambiguous).

    Refused: backslashes, spaces and control characters anywhere; userinfo (``user@host``);
    a port that is not a number from 1 to 65535; brackets around anything but an IPv6
    address, and IPv6 zone identifiers; percent-encoded or non-ASCII host names; a numeric
    host that is not a plain dotted quad (``2130706433``, ``0x7f.1``, ``127.1``).
    """
    if not isinstance(url, str) or not url:
        raise UnsafeURLError(f"{url!r}: not a URL")
    if "\\" in url:
        raise _refuse(url, "a backslash is not allowed in a URL")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        raise _refuse(url, "spaces and control characters are not allowed in a URL")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _refuse(url, f"malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _refuse(url, "only https:// URLs are fetched")
    netloc = parts.netloc
    if "@" in netloc:
        raise _refuse(url, "user names or passwords in a URL (user@host) are not allowed")
    match = _NETLOC.match(netloc)
    if not match:
        raise _refuse(url, "malformed host (brackets only around an IPv6 address)")
    host, port_text = match.group("host"), match.group("port")
    if port_text is None:
        port = _DEFAULT_PORTS[scheme]
    elif port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise _refuse(url, f"port {port_text!r} is not a port number (1 to 65535)")
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise _refuse(url, "IPv6 zone identifiers are not allowed")
        try:
            address = ipaddress.IPv6Address(inner)
        except ValueError:
            raise _refuse(url, f"{host} is not an IPv6 address") from None
        host = address.compressed
        shown = f"[{host}]"
    else:
        host = host.lower()
        if not host:
            raise _refuse(url, "the URL has no host")
        if not host.isascii() or "%" in host:
            raise _refuse(url, "write the host name in plain ASCII (its punycode form)")
        if _numeric_host(host):
            try:
                address = ipaddress.IPv4Address(host)  # dotted quad, no leading zeros
            except ValueError:
                raise _refuse(
                    url, f"{host} is not a plain IPv4 address (four decimal numbers)"
                ) from None
        elif not all(_LABEL.match(label) for label in host.removesuffix(".").split(".")):
            raise _refuse(url, f"{host} is not a valid host name")
        shown = host
    explicit = f":{port}" if port_text is not None else ""
    rebuilt = f"{scheme}://{shown}{explicit}{parts.path or '/'}"
    if parts.query:
        rebuilt += f"?{parts.query}"
    return WebURL(scheme, host, port, rebuilt, address)


def address_refusal(
    address: str | ipaddress.IPv4Address | ipaddress.IPv6Address, allow_local: bool
) -> str | None:
    """Why ``address`` may not be connected to, or None when it may.

    Every special-purpose range (:data:`SPECIAL_PURPOSE_NETWORKS`) and every address that is
    not global is refused; loopback (127.0.0.0/8, ::1) only outside local use.
    """
    addr = ipaddress.ip_address(address) if isinstance(address, str) else address
    if any(addr in net for net in LOOPBACK_NETWORKS):
        return None if allow_local else "loopback addresses are allowed only for local use"
    special = any(addr.version == net.version and addr in net for net in SPECIAL_PURPOSE_NETWORKS)
    if special or not addr.is_global or addr.is_multicast:
        return f"non-public address ({addr})"
    return None


def checked_addresses(host: str, port: int, allow_local: bool, url: str | None = None) -> list[str]:
    """Resolve ``host`` and return its addresses, every one checked by :func:`address_refusal`.

    One refused address refuses the host (a name that also points inside is not fetched).
    The connection goes to these addresses and no others (:func:`_pinned_connection`).
    """
    shown = url or host
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise FetchError(f"{shown}: cannot resolve host {host} ({exc.strerror})") from None
        found = []
        for info in infos:
            text = str(info[4][0])
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:  # a scoped IPv6 address (fe80::1%eth0) is link-local anyway
                raise UnsafeURLError(
                    f"{shown}: {host} resolves to a non-public address ({text})"
                ) from None
            if addr not in found:
                found.append(addr)
        if not found:
            raise FetchError(f"{shown}: cannot resolve host {host} (no address)")
    for addr in found:
        why = address_refusal(addr, allow_local)
        if why is not None:
            if why.startswith("loopback"):
                raise UnsafeURLError(f"{shown}: {why}")
            raise UnsafeURLError(f"{shown}: {host} resolves to a {why}")
    return [str(a) for a in found]


def check_url(url: str, policy: FetchPolicy) -> WebURL | None:
    """Refuse a URL the fetch safety rules do not allow (raises UnsafeURLError).

    Returns the parsed web address (None for an allowed ``file://`` URL). The check is made
    again, on the addresses actually connected to, when a connection is opened.
    """
    if url.split(":", 1)[0].lower() == "file":
        if not policy.allow_local:
            raise UnsafeURLError(f"{url}: file:// URLs are allowed only for local use")
        if urlsplit(url).netloc not in ("", "localhost"):
            raise UnsafeURLError(f"{url}: a file:// URL names no host")
        return None
    target = parse_web_url(url)
    if target.scheme == "http" and not policy.allow_local:
        raise UnsafeURLError(f"{url}: only https:// URLs are fetched (http:// is for local use)")
    checked_addresses(target.host, target.port, policy.allow_local, url)
    return target


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


def _pinned_connection(base, allow_local: bool):
    """``base`` (urllib3's HTTPConnection or HTTPSConnection) connecting only to checked
    addresses.

    A new connection resolves its host once, checks every address (:func:`checked_addresses`)
    and connects to those addresses and no others; a refused address raises UnsafeURLError
    before any socket is opened. The Host header, TLS SNI and the certificate check still use
    the host name (urllib3 takes them from ``self.host``, not from the socket's peer).
    """
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util.timeout import _DEFAULT_TIMEOUT

    class PinnedConnection(base):
        def _new_conn(self):
            try:
                host = self._dns_host.strip("[]")  # an IPv6 literal may keep its brackets
                addresses = checked_addresses(host, self.port, allow_local)
            except UnsafeURLError:
                raise
            except FetchError as exc:
                raise NameResolutionError(self.host, self, socket.gaierror(str(exc))) from None
            error: OSError | None = None
            for address in addresses:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    for option in self.socket_options or ():
                        sock.setsockopt(*option)
                    if self.timeout is not _DEFAULT_TIMEOUT:
                        sock.settimeout(self.timeout)
                    if self.source_address:
                        sock.bind(self.source_address)
                    sock.connect((address, self.port))
                    return sock
                except TimeoutError as exc:
                    sock.close()
                    raise ConnectTimeoutError(
                        self,
                        f"Connection to {self.host} timed out. (connect timeout={self.timeout})",
                    ) from exc
                except OSError as exc:
                    sock.close()
                    error = exc
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    PinnedConnection.__name__ = f"Pinned{base.__name__}"
    return PinnedConnection


def _adapter(policy: FetchPolicy, retry):
    """An HTTPAdapter whose direct connections are pinned to checked addresses.

    Connections through a proxy named in the environment go to the proxy (set by whoever
    runs flexbench, so trusted); the target is then checked by :func:`check_url` before the
    request, and the proxy resolves the name itself (a limit stated in docs/pipeline.md).
    """
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = _pinned_connection(HTTPConnection, policy.allow_local)

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _pinned_connection(HTTPSConnection, policy.allow_local)

    class PinnedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": PinnedHTTPPool,
                "https": PinnedHTTPSPool,
            }

    # One pool of kept-alive connections per host, POOL_SIZE connections each.
    return PinnedAdapter(max_retries=retry, pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE)


def _session(policy: FetchPolicy):
    from urllib3.util.retry import Retry

    # A server's Retry-After is honoured, but never for longer than MAX_WAIT (or the policy's
    # total read time): a hostile "Retry-After: 86400" cannot hold a run.
    wait = int(max(0, min(MAX_WAIT, policy.max_seconds)))
    key = (policy.retries, policy.backoff, wait, policy.allow_local)
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
        adapter = _adapter(policy, retry)
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

    target = check_url(url, policy)
    if target is None:  # a file:// URL, local use only
        path = Path(unquote(urlparse(url).path))
        if not path.exists():
            raise FetchError(f"{url}: no such file")
        if path.stat().st_size > policy.max_bytes:
            raise FetchError(f"{url}: larger than the {policy.max_bytes} byte limit")
        return 200, {}, path.read_bytes()
    session = _session(policy)
    # The request goes to the URL rebuilt from the parsed parts: the client reads the host the
    # check read (and the connection checks the addresses it connects to once more).
    current = target.url
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
            if "\\" in location:
                raise UnsafeURLError(f"{url}: redirected to {location}, which has a backslash")
            following = urljoin(current, location)
            # A redirect may only lead to another web address, checked like the first one
            # (never to file://, even where local use is on).
            if following.split(":", 1)[0].lower() not in {"http", "https"}:
                raise UnsafeURLError(
                    f"{url}: redirected to {following}, which is not a web address"
                )
            try:
                current = check_url(following, policy).url
            except UnsafeURLError as exc:
                raise UnsafeURLError(f"{url}: redirected to {exc}") from None
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


def _write_state(state_file: Path, state: dict[str, Any]) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state_file.parent, prefix=".state-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(state))
    os.replace(tmp, state_file)


def landed_state(landing: Path, source: str, url: str) -> dict[str, Any] | None:
    """What the landing zone knows of ``url``: its last fetch state (sha256, path, ETag …,
    and ``confirmed_at``, the time of the last fetch that got or confirmed the landed copy:
    a ``200`` landed or a ``304 Not Modified``), or None when there is none, it is unreadable,
    it predates ``confirmed_at``, or the landed copy is gone."""
    try:
        state = json.loads(_state_path(landing, source, url).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not state.get("sha256") or not state.get("confirmed_at"):
        return None
    if not Path(state.get("path") or "").exists():
        return None
    return state


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
        # Not modified: nothing is downloaded; the fetch is still recorded in the provenance,
        # and the state says when the landed copy was last confirmed current.
        _write_state(state_file, {**state, "confirmed_at": fetched_at})
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
        "confirmed_at": fetched_at,
    }
    _write_state(state_file, new_state)
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
