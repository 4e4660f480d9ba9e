"""The upload page: a trust checks its file against the Flex Data Standard in a browser.

``GET /`` is the form; ``POST /`` checks the file with the same code as ``flexbench validate``
(:func:`flexbench.validate.check_file`, the same GX suites) and answers with the report, as
a page or, with ``Accept: application/json``, as JSON. The upload is read as it streams in
(:mod:`flexbench.serve.upload`), checked in a child process of its own
(:mod:`flexbench.serve.checker`) and deleted before the answer is sent. How to run it in
production is in docs/deploy.md ("The file checker").
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from flexbench.serve.advice import advise
from flexbench.serve.checker import Busy, Checker, Limits, Unchecked
from flexbench.serve.upload import UploadError, receive
from flexbench.settings import PROJECT_ROOT
from transforms import zip_limits

logger = logging.getLogger(__name__)
HERE = Path(__file__).parent
DOCS = PROJECT_ROOT / "docs"
TEMPLATE_FILES = {
    "flex-summary-template.csv": "text/csv; charset=utf-8",
    "flex-summary-template.xlsx": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ),
    "flex-request-level-template.csv": "text/csv; charset=utf-8",
    "worked-example-summary.csv": "text/csv; charset=utf-8",
}
ROWS_SHOWN = 20
BUSY = "Too many files are being checked just now; try again in a minute"
NOT_SAVED = "The file could not be saved for checking just now; try again in a minute"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    return float(text) if text else default


@dataclass
class ServeConfig:
    """Limits and places of the upload service (each can be set in the environment).

    Attributes
    ----------
    tmp_dir : Path or None
        Where uploads are saved while they are checked (``FLEXBENCH_SERVE_TMP``; default the
        system's temporary directory). Each upload gets a directory of its own, deleted
        before the answer is sent.
    workers : int
        Checks at once (``FLEXBENCH_SERVE_WORKERS``, default 2).
    queue : int
        Checks waiting their turn at most (``FLEXBENCH_SERVE_QUEUE``, default 32); more are
        answered "busy" (429).
    check_seconds : float
        Time for one check (``FLEXBENCH_SERVE_CHECK_SECONDS``, default 180).
    upload_seconds : float
        Time for the upload to arrive (``FLEXBENCH_SERVE_UPLOAD_SECONDS``, default 60).
    memory_mb : int
        Memory one check may add (``FLEXBENCH_SERVE_MEMORY_MB``, default 1536).
    """

    tmp_dir: Path | None = None
    workers: int = 2
    queue: int = 32
    check_seconds: float = 180.0
    upload_seconds: float = 60.0
    memory_mb: int = 1536
    warm_modules: list[str] | None = field(default=None)

    @classmethod
    def from_env(cls) -> ServeConfig:
        tmp = os.environ.get("FLEXBENCH_SERVE_TMP")
        return cls(
            tmp_dir=Path(tmp) if tmp else None,
            workers=int(_env_number("FLEXBENCH_SERVE_WORKERS", 2)),
            queue=int(_env_number("FLEXBENCH_SERVE_QUEUE", 32)),
            check_seconds=_env_number("FLEXBENCH_SERVE_CHECK_SECONDS", 180.0),
            upload_seconds=_env_number("FLEXBENCH_SERVE_UPLOAD_SECONDS", 60.0),
            memory_mb=int(_env_number("FLEXBENCH_SERVE_MEMORY_MB", 1536)),
        )


class _SecurityHeaders:
    """ASGI middleware: the security headers on every answer, no caching of reports."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive_, send):
        if scope["type"] != "http":
            return await self.app(scope, receive_, send)
        dynamic = not scope["path"].startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode().lower() not in SECURITY_HEADERS
                ]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if dynamic:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive_, send_with_headers)


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["template_files"] = [n for n in TEMPLATE_FILES if (DOCS / "templates" / n).exists()]
    return env


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def standard_html() -> Markup:
    """docs/flex-data-standard.md as HTML, headings with ids (raw HTML not passed through)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    html = md.render((DOCS / "flex-data-standard.md").read_text(encoding="utf-8"))

    def with_id(m: re.Match) -> str:
        plain = re.sub(r"<[^>]+>", "", m.group(2))
        return f'<{m.group(1)} id="{_slug(plain)}">{m.group(2)}</{m.group(1)}>'

    return Markup(re.sub(r"<(h[1-4])>(.*?)</\1>", with_id, html))


def _refusal(rule: str, description: str) -> dict[str, Any]:
    """The report of a file refused as a whole (the shape of ``Verdict.report()``)."""
    return {
        "accepted": False,
        "form": None,
        "sheet": None,
        "rows": 0,
        "warnings": [],
        "failures": [
            {"rule": rule, "column": "(file)", "rows": [], "description": description,
             "example_rows": []}
        ],
    }  # fmt: skip


def _declares_too_much(path: Path, checker: Checker) -> bool:
    """Whether an uploaded zip (an XLSX) declares more than the limits allow
    (:func:`transforms.zip_limits.declared_too_large`); anything that is not a readable zip
    goes on to the check, which says what is wrong with it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return zip_limits.declared_too_large(
                archive, checker.max_inflated_bytes, checker.max_compression_ratio
            )
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def create_app(config: ServeConfig | None = None):
    """The upload service (an ASGI app: FastAPI inside the security-headers middleware),
    its checks in a warm forkserver started with the app."""
    from contextlib import asynccontextmanager

    config = config or ServeConfig.from_env()
    checker = Checker(
        workers=config.workers,
        queue=config.queue,
        limits=Limits(config.check_seconds, config.memory_mb * 1024 * 1024),
        warm_modules=config.warm_modules,
    )
    env = _templates()

    warm = asyncio.Event()
    inflight = [0]  # uploads being received or checked

    async def warmed() -> None:
        while True:
            try:
                await asyncio.to_thread(checker.warm_up)
                break
            except Exception as exc:  # the forkserver failed to start: say so, try again
                logger.error("flexbench serve: the checker did not start (%s); retrying", exc)
                await asyncio.sleep(5)
        env.globals["max_mib"] = checker.max_bytes // (1024 * 1024)
        warm.set()

    @asynccontextmanager
    async def lifespan(_app):
        warming = asyncio.create_task(warmed())
        yield
        warming.cancel()

    app = FastAPI(
        title="Check a flexible working file",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.checker = checker
    app.state.config = config

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def form_errors(error: UploadError, wants_json: bool, org: str = "") -> Response:
        problem = {"rule": error.rule, "field": error.field, "message": str(error)}
        # The body may be unread: close the connection rather than read the rest of it.
        headers = {"connection": "close"}
        if error.status in (429, 503):
            headers["retry-after"] = "60"
        if wants_json:
            body = {"status": "refused", "accepted": False, "kept": False, "problems": [problem]}
            return JSONResponse(body, status_code=error.status, headers=headers)
        response = page(
            "form.html", error.status, problems=[problem], errors={error.field: str(error)}, org=org
        )
        response.headers.update(headers)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def form() -> Response:
        await warm.wait()
        return page("form.html", problems=[], errors={}, org="")

    @app.post("/")
    async def check(request: Request) -> Response:
        wants_json = _wants_json(request)
        await warm.wait()
        # Uploads in hand at once are bounded too (and so the disk they take).
        if inflight[0] >= config.workers + config.queue:
            return form_errors(UploadError(429, "busy", BUSY), wants_json)
        inflight[0] += 1
        folder = None
        try:
            try:
                base = config.tmp_dir
                if base is not None:
                    base.mkdir(parents=True, exist_ok=True)
                folder = Path(tempfile.mkdtemp(prefix="flexbench-upload-", dir=base))
                upload = await receive(
                    request.headers.get("content-type"),
                    request.headers.get("content-length"),
                    request.stream(),
                    folder,
                    config.upload_seconds,
                    checker.max_bytes,
                )
            except UploadError as error:
                if error.rule == "too-large":  # a rule of the standard: a report, refused
                    report = _refusal("too-large", str(error))
                    return _report_response(
                        page, wants_json, error.status, "file", None, None, report, close=True
                    )
                return form_errors(error, wants_json)
            except OSError:  # the upload directory is full or gone: the service's fault
                return form_errors(UploadError(503, "busy", NOT_SAVED), wants_json)
            # A zip bomb is refused here, from the zip's directory alone, by the rule and in
            # the words of the check itself: no worker is started for it.
            if _declares_too_much(upload.path, checker):
                message = zip_limits.too_large_message(upload.name, checker.max_inflated_bytes)
                report = _refusal("too-large-inflated", message)
                return _report_response(
                    page, wants_json, 200, upload.name, upload.org, None, report
                )
            try:
                report = await checker.run(str(upload.path), upload.name, upload.org, None)
            except Busy as exc:
                return form_errors(UploadError(429, "busy", str(exc)), wants_json, upload.org or "")
            except Unchecked as exc:
                return _report_response(
                    page, wants_json, 422, upload.name, upload.org, str(exc), None
                )
            return _report_response(page, wants_json, 200, upload.name, upload.org, None, report)
        finally:
            inflight[0] -= 1
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    @app.get("/healthz")
    async def healthz() -> Response:
        ready = checker.ready
        body = {"status": "ok" if ready else "warming up", "running": checker.running}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/standard", response_class=HTMLResponse)
    async def standard() -> Response:
        return page("standard.html", body=standard_html())

    @app.get("/templates/{name}")
    async def template_file(name: str) -> Response:
        if name not in TEMPLATE_FILES or not (DOCS / "templates" / name).is_file():
            return page("not_found.html", 404)
        return FileResponse(
            DOCS / "templates" / name, media_type=TEMPLATE_FILES[name], filename=name
        )

    @app.get("/static/serve.css")
    async def css() -> Response:
        return FileResponse(HERE / "static" / "serve.css", media_type="text/css")

    @app.exception_handler(404)
    async def not_found(_request: Request, _exc) -> Response:
        return page("not_found.html", 404)

    return _SecurityHeaders(app)


def _report_response(
    page,
    wants_json: bool,
    status: int,
    name: str,
    org: str | None,
    unchecked: str | None,
    report: dict[str, Any] | None,
    close: bool = False,
) -> Response:
    """The answer to a checked (or uncheckable) file, as JSON or as the report page."""
    if report is not None:
        report = advise(report)
        verdict = "accepted" if report["accepted"] else "rejected"
    else:
        verdict = "unchecked"
    body = {
        "status": verdict,
        "accepted": verdict == "accepted",
        "file": name,
        "org": org,
        "kept": False,
        "standard": "/standard",
        "templates": [f"/templates/{n}" for n in TEMPLATE_FILES],
        **(report or {"failures": [], "warnings": []}),
    }
    if unchecked:
        body["message"] = f"We could not check this file: {unchecked}."
    if wants_json:
        response = JSONResponse(body, status_code=status)
    else:
        response = page("report.html", status, result=body, rows_shown=ROWS_SHOWN)
    if close:  # the rest of the upload was not read: close rather than read it
        response.headers["connection"] = "close"
    return response
