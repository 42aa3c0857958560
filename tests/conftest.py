"""Shared fixtures: both event loops, and the local HTTPS (HTTP/2 + HTTP/1.1) server."""

from __future__ import annotations

import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crt_async import Connection, TLSConfig, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from h2_server import RunningServer, spawned  # noqa: E402
from ws_server import Server as WebSocketServer  # noqa: E402
from ws_server import running as ws_running  # noqa: E402

from .fault_server import FaultServer  # noqa: E402


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs under asyncio and trio; a missing trio fails, never skips."""
    return str(request.param)


LocalServer = RunningServer

# aiobotocore and moto need Python 3.10+ (the extras say so): on 3.9 there is nothing to test.
collect_ignore = (
    ["test_aiobotocore.py", "aiobotocore_reader.py"] if sys.version_info < (3, 10) else []
)


@pytest.fixture(scope="session")
def h2_server() -> Iterator[LocalServer]:
    """examples/h2_server.py in a subprocess: HTTP/2 and HTTP/1.1 over TLS (ALPN),
    plus a cleartext HTTP/1.1 port."""
    with spawned() as server:
        yield server


@pytest.fixture(scope="session")
def ws_server() -> Iterator[WebSocketServer]:
    """examples/ws_server.py (the ``websockets`` library) in a background thread with its
    own asyncio loop: ``ws://`` and ``wss://`` on loopback, endpoints listed in its docstring."""
    with ws_running() as server:
        yield server


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    """tests/fault_server.py in a thread: HTTP/2 over TLS, each request picks its fault."""
    with FaultServer() as server:
        yield server


@pytest.fixture
def crt_thread_errors() -> Iterator[list[BaseException]]:
    """Collect every exception raised inside a CRT callback (or any other thread).

    Such exceptions surface as "Exception ignored in ..." (unraisable) or as
    thread exceptions; a test that expects none asserts the list stays empty.
    """
    errors: list[BaseException] = []
    previous_unraisable = sys.unraisablehook
    previous_thread = threading.excepthook

    def on_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
        if unraisable.exc_value is not None:
            errors.append(unraisable.exc_value)

    def on_thread_exception(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            errors.append(args.exc_value)

    sys.unraisablehook = on_unraisable
    threading.excepthook = on_thread_exception
    try:
        yield errors
    finally:
        sys.unraisablehook = previous_unraisable
        threading.excepthook = previous_thread


@pytest.fixture(scope="session")
def tls(h2_server: LocalServer) -> TLSConfig:
    """Trusts the local server's throwaway CA; offers h2 and http/1.1."""
    return TLSConfig(ca_file=h2_server.ca_file)


@pytest.fixture(scope="session")
def tls_http1(h2_server: LocalServer) -> TLSConfig:
    """Like ``tls`` but offers only http/1.1, so the server picks HTTP/1.1 over TLS."""
    return TLSConfig(ca_file=h2_server.ca_file, alpn=["http/1.1"])


@pytest.fixture
async def h2(h2_server: LocalServer, tls: TLSConfig) -> AsyncIterator[Connection]:
    """An HTTP/2 connection to the local server."""
    async with await connect(h2_server.https_url, tls=tls) as connection:
        assert connection.http_version == "HTTP/2"
        yield connection


@pytest.fixture(params=["h2", "h1-tls", "h1-cleartext"])
async def any_connection(
    request: pytest.FixtureRequest, h2_server: LocalServer, tls: TLSConfig, tls_http1: TLSConfig
) -> AsyncIterator[Connection]:
    """A connection to the local server over HTTP/2, HTTP/1.1 with TLS, and cleartext HTTP/1.1."""
    if request.param == "h2":
        url, config = h2_server.https_url, tls
    elif request.param == "h1-tls":
        url, config = h2_server.https_url, tls_http1
    else:
        url, config = h2_server.http_url, None
    async with await connect(url, tls=config) as connection:
        yield connection
