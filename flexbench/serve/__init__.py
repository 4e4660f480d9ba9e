"""``flexbench serve``: the file checker as a web page (see :mod:`flexbench.serve.app`)."""

from __future__ import annotations

import ipaddress
import os

DEFAULT_PORT = 8001


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, quiet: bool = False) -> int:
    """Run the checker with uvicorn until interrupted (loopback unless ``host`` says not)."""
    import uvicorn

    from flexbench.serve.app import ServeConfig, create_app

    config = ServeConfig.from_env()
    app = create_app(config)
    if not quiet:
        where = "" if is_loopback(host) else " (not loopback: put it behind the reverse proxy)"
        print(f"flexbench serve: http://{host}:{port}/{where}", flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        # X-Forwarded-For/-Proto are believed from these addresses only (the reverse proxy).
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FLEXBENCH_SERVE_FORWARDED_ALLOW_IPS", "127.0.0.1"),
        server_header=False,
        timeout_keep_alive=5,
        limit_concurrency=256,
        h11_max_incomplete_event_size=16 * 1024,
    )
    return 0
