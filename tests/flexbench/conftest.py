"""Fixtures shared by the flexbench tests."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer


@pytest.fixture
def server():
    """A real HTTP server on loopback. Threaded, so a handler that sleeps (a slow trust) does
    not hold up the others."""
    srv = HTTPServer(host="127.0.0.1", threaded=True)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()
