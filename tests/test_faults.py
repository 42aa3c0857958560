"""The fault matrix: every fault of tests/fault_server.py, through every way to use crt_async.

Each fault is one row of ``FAULTS`` (what goes wrong -> the documented exception, and the
httpx exception of the adapter).  Each row runs through ``Client.stream()``, a
``Client.duplex()`` echo stream, ``httpx.AsyncClient(transport=CRTTransport())`` (asyncio
and trio) and the sync ``httpx.Client``, and checks that:

* the documented exception is raised within ``BOUND`` (1 s) of the fault, or of the
  configured timeout when the fault is a stall -- never a hang;
* the bytes delivered before it are exactly a prefix of what was sent -- and since the
  exception is raised, a short body is never presented as complete;
* the same client completes a normal request right afterwards;
* no exception was raised inside a CRT callback, and the server saw no protocol violation.

Connecting fails the same way (a refused port, a certificate for another host), and the
faults that must not fail a request are checked too: a lowered stream limit, a graceful
GOAWAY with streams in flight, a window held at 0 for less than the write timeout, and
the pool's retry rules around GOAWAY and resets.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Union
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from awscrt.exceptions import AwsCrtError

from crt_async import (
    Client,
    ConnectError,
    ConnectTimeout,
    CRTError,
    ReadTimeout,
    RemoteProtocolError,
    Timeout,
    TLSConfig,
    TLSError,
    WriteTimeout,
)
from crt_async.httpx import CRTTransport

from .fault_server import (
    PIECE,
    UPLOAD,
    FaultServer,
    body_pattern,
    new_id,
    unlistened_port,
    upload_pieces,
    upload_pieces_sync,
)

pytestmark = pytest.mark.anyio

BOUND = 1.0  # the error comes within this of the fault (or of the timeout it waits for)
STALL = 0.5  # the read or write timeout a stalled exchange runs into
HOLD = 3.0  # how long the server keeps a request body's window at 0 (> STALL)
CONNECT_TIMEOUT = 1.0
AFTER = 50_000  # body bytes before a mid-body or mid-upload fault
DOWNLOAD = 200_000
ErrorTypes = Union[type[BaseException], tuple[type[BaseException], ...]]


@pytest.fixture(autouse=True)
def no_exception_in_crt_callbacks(crt_thread_errors: list[BaseException]) -> Iterator[None]:
    """Every test here also checks that nothing raised inside a CRT callback or thread."""
    yield
    assert crt_thread_errors == []


@dataclass(frozen=True)
class Fault:
    """A row of the fault matrix.

    Attributes:
        name: the fault server's fault.
        error: what crt_async raises (Client and duplex).
        httpx_error: what the httpx transport raises.
        upload: the fault hits the request body (``POST /upload``), else the response
            (``GET /bytes/...``).  The duplex adapter always uses ``/echo``.
        read, write: the read and write timeouts.
        duplex: whether the fault means anything on a duplex echo stream.
    """

    name: str
    error: type[CRTError]
    httpx_error: type[httpx.TransportError]
    upload: bool = False
    read: float = 5.0
    write: float = 5.0
    duplex: bool = True

    @property
    def wait(self) -> float:
        """The configured timeout the error comes after (0: it follows the fault at once)."""
        if self.error is ReadTimeout:
            return self.read
        if self.error is WriteTimeout:
            return self.write
        return 0.0

    def url(self, base: str, request_id: str, *, duplex: bool) -> str:
        query = urlencode({"fault": self.name, "after": AFTER, "hold": HOLD, "id": request_id})
        path = "/echo" if duplex else "/upload" if self.upload else f"/bytes/{DOWNLOAD}"
        return f"{base}{path}?{query}"


# After the response head, a broken stream is an httpx.ReadError (README, "httpx transport").
FAULTS = [
    Fault("rst-before-headers", RemoteProtocolError, httpx.RemoteProtocolError),
    Fault("rst-after-headers", RemoteProtocolError, httpx.ReadError),
    Fault("rst-mid-body", RemoteProtocolError, httpx.ReadError),
    Fault("rst-mid-upload", RemoteProtocolError, httpx.RemoteProtocolError, upload=True),
    Fault("close-before-headers", RemoteProtocolError, httpx.RemoteProtocolError),
    Fault("close-mid-body", RemoteProtocolError, httpx.ReadError),
    Fault("close-mid-upload", RemoteProtocolError, httpx.RemoteProtocolError, upload=True),
    Fault("goaway-before-headers", RemoteProtocolError, httpx.RemoteProtocolError),
    Fault("goaway-mid-body", RemoteProtocolError, httpx.ReadError),
    Fault("stall-before-headers", ReadTimeout, httpx.ReadTimeout, read=STALL),
    Fault("stall-mid-body", ReadTimeout, httpx.ReadTimeout, read=STALL),
    Fault("window-zero", WriteTimeout, httpx.WriteTimeout, upload=True, write=STALL),
    Fault("malformed-headers", RemoteProtocolError, httpx.RemoteProtocolError),
    Fault("malformed-frame", RemoteProtocolError, httpx.RemoteProtocolError),
    Fault("malformed-mid-body", RemoteProtocolError, httpx.ReadError),
    # content-length says more than the body that ends: a truncated body marked complete.
    # An echo stream has no content-length, so it means nothing there.
    Fault("short-body", RemoteProtocolError, httpx.ReadError, duplex=False),
]


# -- the ways to use crt_async -----------------------------------------------------------


class Adapter:
    """One way to use crt_async. ``fetch()`` does what a caller does and raises what the
    caller would see; ``received`` keeps the body bytes delivered before that."""

    is_duplex = False

    def __init__(self, ca_file: str, *, read: float, write: float, connect: float) -> None:
        self.received = bytearray()
        timeout = Timeout(5.0, read=read, write=write, connect=connect)
        self.client = Client(tls=TLSConfig(ca_file=ca_file), timeout=timeout)

    def expected(self, fault: Fault) -> ErrorTypes:
        return fault.error

    async def fetch(self, url: str, *, upload: bool) -> None:
        content = upload_pieces() if upload else None
        async with self.client.stream("POST" if upload else "GET", url, content=content) as r:
            async for chunk in r:
                self.received += chunk

    async def get(self, url: str) -> bytes:
        return (await self.client.get(url)).content

    async def aclose(self) -> None:
        await self.client.aclose()


class DuplexAdapter(Adapter):
    """A duplex echo stream: one task sends the upload, the caller receives the echo."""

    is_duplex = True

    async def fetch(self, url: str, *, upload: bool) -> None:
        errors: list[CRTError] = []  # what the caller sees first wins
        async with self.client.duplex("POST", url) as stream:

            async def send_all() -> None:
                for offset in range(0, len(UPLOAD), PIECE):
                    await stream.send(UPLOAD[offset : offset + PIECE])
                await stream.send_eof()

            async def receive_all() -> None:
                await stream.wait_response()
                async for chunk in stream:
                    self.received += chunk

            async with anyio.create_task_group() as tg:
                for job in (send_all, receive_all):
                    tg.start_soon(first_error, job, errors, tg.cancel_scope)
        if errors:
            raise errors[0]


async def first_error(
    job: Callable[[], Awaitable[None]], errors: list[CRTError], scope: anyio.CancelScope
) -> None:
    """Run ``job``; on a crt_async error, note it and cancel ``scope``."""
    try:
        await job()
    except CRTError as error:
        errors.append(error)
        scope.cancel()


class HttpxAdapter(Adapter):
    """``httpx.AsyncClient`` over ``CRTTransport``."""

    def __init__(self, ca_file: str, *, read: float, write: float, connect: float) -> None:
        self.received = bytearray()
        timeout = httpx.Timeout(5.0, read=read, write=write, connect=connect)
        self.httpx = httpx.AsyncClient(transport=CRTTransport(verify=ca_file), timeout=timeout)

    def expected(self, fault: Fault) -> ErrorTypes:
        return fault.httpx_error

    async def fetch(self, url: str, *, upload: bool) -> None:
        content = upload_pieces() if upload else None
        async with self.httpx.stream("POST" if upload else "GET", url, content=content) as r:
            async for chunk in r.aiter_raw():
                self.received += chunk

    async def get(self, url: str) -> bytes:
        return (await self.httpx.get(url)).content

    async def aclose(self) -> None:
        await self.httpx.aclose()


ADAPTERS: dict[str, type[Adapter]] = {
    "client": Adapter,
    "duplex": DuplexAdapter,
    "httpx": HttpxAdapter,
}


@pytest.fixture
def server(fault_server: FaultServer) -> Iterator[FaultServer]:
    """The session's fault server; the test fails if the server itself broke, or saw a
    client break the protocol."""
    errors, violations = len(fault_server.errors), len(fault_server.violations)
    yield fault_server
    assert fault_server.errors[errors:] == []
    assert fault_server.violations[violations:] == []


def assert_cause(error: BaseException, fault_error: type[CRTError], adapter: Adapter) -> None:
    """crt_async keeps the CRT's error as the cause; the httpx adapter keeps crt_async's."""
    if isinstance(adapter, HttpxAdapter):
        assert isinstance(error.__cause__, fault_error)
        error = error.__cause__
    if not isinstance(error, TimeoutError):
        assert isinstance(error.__cause__, AwsCrtError)


def assert_prefix(received: bytes, fault: Fault, *, duplex: bool) -> None:
    """What was delivered is exactly what the server sent before the fault."""
    if duplex:
        assert received == UPLOAD[: len(received)]
    elif fault.upload:
        assert received == b""
    else:
        assert len(received) <= AFTER
        assert received == body_pattern(len(received))


MATRIX = [
    pytest.param(fault, name, id=f"{name}-{fault.name}")
    for fault in FAULTS
    for name in ADAPTERS
    if fault.duplex or name != "duplex"
]


@pytest.mark.parametrize(("fault", "adapter_name"), MATRIX)
async def test_fault_raises_the_documented_error_then_the_client_recovers(
    fault: Fault,
    adapter_name: str,
    server: FaultServer,
) -> None:
    adapter = ADAPTERS[adapter_name](
        server.ca_file, read=fault.read, write=fault.write, connect=CONNECT_TIMEOUT
    )
    request_id = new_id()
    try:
        with anyio.fail_after(fault.wait + 10):  # a hang fails here
            with pytest.raises(adapter.expected(fault)) as info:
                await adapter.fetch(
                    fault.url(server.url, request_id, duplex=adapter.is_duplex),
                    upload=fault.upload,
                )
        raised_at = time.monotonic()
        fault_at = server.records[request_id].fault_at
        assert fault_at is not None
        assert raised_at - fault_at < fault.wait + BOUND
        assert_cause(info.value, fault.error, adapter)
        assert_prefix(adapter.received, fault, duplex=adapter.is_duplex)

        with anyio.fail_after(5):
            assert await adapter.get(f"{server.url}/") == b"ok\n"
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_sync_httpx_fault_raises_the_documented_error_then_the_client_recovers(
    fault: Fault, server: FaultServer
) -> None:
    request_id = new_id()
    timeout = httpx.Timeout(5.0, read=fault.read, write=fault.write, connect=CONNECT_TIMEOUT)
    received = bytearray()
    with httpx.Client(transport=CRTTransport(verify=server.ca_file), timeout=timeout) as client:
        content = upload_pieces_sync() if fault.upload else None
        url = fault.url(server.url, request_id, duplex=False)
        with pytest.raises(fault.httpx_error) as info:
            with client.stream("POST" if fault.upload else "GET", url, content=content) as r:
                for chunk in r.iter_raw():
                    received += chunk
        raised_at = time.monotonic()
        fault_at = server.records[request_id].fault_at
        assert fault_at is not None
        assert raised_at - fault_at < fault.wait + BOUND
        assert isinstance(info.value.__cause__, fault.error)
        assert_prefix(received, fault, duplex=False)

        assert client.get(f"{server.url}/").content == b"ok\n"


# -- connecting --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wrong_host_server(fault_server: FaultServer) -> Iterator[FaultServer]:
    """A fault server whose certificate (from the trusted CA) names another host."""
    with FaultServer(ca=fault_server.ca, hostnames=("wrong-host.test",)) as server:
        yield server


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections."""
    with unlistened_port() as port:
        yield port


@pytest.mark.parametrize("adapter_name", ADAPTERS)
async def test_refused_port_raises_connect_error_then_the_client_recovers(
    adapter_name: str,
    server: FaultServer,
    refused_port: int,
) -> None:
    adapter = ADAPTERS[adapter_name](server.ca_file, read=5.0, write=5.0, connect=CONNECT_TIMEOUT)
    try:
        started = time.monotonic()
        expected: ErrorTypes = httpx.ConnectError if adapter_name == "httpx" else ConnectError
        with pytest.raises(expected) as info:
            await adapter.fetch(f"https://127.0.0.1:{refused_port}/", upload=False)
        assert time.monotonic() - started < BOUND
        error = info.value.__cause__ if adapter_name == "httpx" else info.value
        assert type(error) is ConnectError
        assert error.crt_error_name == "AWS_IO_SOCKET_CONNECTION_REFUSED"
        with anyio.fail_after(5):
            assert await adapter.get(f"{server.url}/") == b"ok\n"
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("adapter_name", ADAPTERS)
async def test_certificate_for_another_host_fails_within_the_connect_timeout(
    adapter_name: str,
    server: FaultServer,
    wrong_host_server: FaultServer,
) -> None:
    """The certificate is valid (our CA) but names another host.

    The CRT's TLS library (s2n) delays a failed handshake on purpose ("blinding"): without a
    connect timeout the ``TLSError`` came after 10.7-28.2 s here (not the CRT's ~10 s
    handshake timeout: blinding outlasts it). So the bound is the connect timeout, which
    crt_async enforces with an anyio deadline: the caller gets ``ConnectTimeout`` (a
    ``ConnectError``) within ``CONNECT_TIMEOUT + BOUND``, or ``TLSError`` if the CRT ever
    reports it sooner.
    """
    adapter = ADAPTERS[adapter_name](server.ca_file, read=5.0, write=5.0, connect=CONNECT_TIMEOUT)
    connections = wrong_host_server.connections
    try:
        started = time.monotonic()
        expected: ErrorTypes = (
            (httpx.ConnectError, httpx.ConnectTimeout)
            if adapter_name == "httpx"
            else (TLSError, ConnectTimeout)
        )
        with pytest.raises(expected) as info:
            await adapter.fetch(f"{wrong_host_server.url}/", upload=False)
        assert time.monotonic() - started < CONNECT_TIMEOUT + BOUND
        assert wrong_host_server.connections > connections  # it got as far as the handshake
        if adapter_name == "httpx":
            assert isinstance(info.value.__cause__, (TLSError, ConnectTimeout))
        with anyio.fail_after(5):
            assert await adapter.get(f"{server.url}/") == b"ok\n"
    finally:
        await adapter.aclose()


# -- faults that must not fail a request -------------------------------------------------


@pytest.fixture
async def client(server: FaultServer) -> AsyncIterator[Client]:
    async with Client(tls=TLSConfig(ca_file=server.ca_file), timeout=Timeout(5.0)) as client:
        yield client


@pytest.fixture(scope="module")
def limited_server(fault_server: FaultServer) -> Iterator[FaultServer]:
    """A fault server that allows 4 concurrent streams per connection."""
    with FaultServer(ca=fault_server.ca, max_concurrent_streams=4) as server:
        yield server


async def test_server_lowering_its_stream_limit_mid_connection_fails_no_request(
    limited_server: FaultServer,
) -> None:
    """The server first allows 4 streams, then lowers its SETTINGS_MAX_CONCURRENT_STREAMS
    to 1 on the open connection.  Every request still succeeds, and the server (h2 checks
    the limit) never sees more streams than it allows."""
    tls = TLSConfig(ca_file=limited_server.ca_file)
    async with Client(tls=tls, timeout=Timeout(5.0)) as client:
        lowered = await client.get(f"{limited_server.url}/?fault=lower-streams&to=1")
        assert lowered.content == b"ok\n"
        bodies: list[bytes] = []

        async def slow() -> None:
            bodies.append((await client.get(f"{limited_server.url}/slow?delay=0.1")).content)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(slow)
    assert bodies == [b"ok\n"] * 20
    assert limited_server.violations == []
    assert limited_server.max_streams_seen <= 4


async def test_graceful_goaway_with_streams_in_flight_loses_nothing(
    client: Client, server: FaultServer
) -> None:
    """GOAWAY (NO_ERROR) names the last stream the server will finish: the 8 streams in
    flight below it complete on that connection, byte-exact; later requests go to a new
    connection."""
    assert (await client.get(f"{server.url}/")).content == b"ok\n"  # the connection is up
    slow_ids = [new_id() for _ in range(8)]
    goaway_id = new_id()
    bodies: dict[str, bytes] = {}

    async def fetch(request_id: str, target: str) -> None:
        bodies[request_id] = (await client.get(f"{server.url}{target}&id={request_id}")).content

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for request_id in slow_ids:
                tg.start_soon(fetch, request_id, "/slow?delay=0.3")
            await anyio.wait_all_tasks_blocked()  # all 8 are waiting for their response
            await fetch(goaway_id, f"/bytes/{DOWNLOAD}?fault=goaway-graceful")
            after_id = new_id()
            await fetch(after_id, "/?x=1")

    assert bodies[goaway_id] == body_pattern(DOWNLOAD)
    assert all(bodies[request_id] == b"ok\n" for request_id in slow_ids)
    records = server.records
    assert records[goaway_id].fault_at is not None
    assert {records[request_id].connection for request_id in slow_ids} == {
        records[goaway_id].connection
    }
    assert records[after_id].connection != records[goaway_id].connection
    assert bodies[after_id] == b"ok\n"


async def test_request_a_goaway_excluded_is_retried_once_on_a_new_connection(
    client: Client, server: FaultServer
) -> None:
    """The GOAWAY says the stream was above the last one processed: provably never
    processed, so a request whose body can be replayed is sent once more."""
    request_id = new_id()
    response = await client.get(f"{server.url}/?fault=goaway-before-headers&once=1&id={request_id}")
    assert response.content == b"ok\n"
    assert server.records[request_id].faults == 1


async def test_request_a_goaway_excluded_with_a_one_shot_body_raises_retry_safe(
    client: Client, server: FaultServer
) -> None:
    """A body that cannot be replayed is not resent: the caller gets the error, marked
    ``retry_safe`` (the server did not process the request)."""
    url = f"{server.url}/upload?fault=goaway-before-headers&id={new_id()}"
    with pytest.raises(RemoteProtocolError) as info:
        await client.post(url, content=upload_pieces())
    assert info.value.retry_safe
    assert info.value.crt_error_name == "AWS_ERROR_HTTP_GOAWAY_RECEIVED"


async def test_request_reset_by_the_server_is_not_retried(
    client: Client, server: FaultServer
) -> None:
    """A reset stream may have been processed: it is never sent again."""
    request_id = new_id()
    with pytest.raises(RemoteProtocolError) as info:
        await client.get(f"{server.url}/?fault=rst-before-headers&once=1&id={request_id}")
    assert not info.value.retry_safe
    assert server.records[request_id].faults == 1


async def test_flow_control_window_held_at_zero_for_a_while_loses_nothing(
    client: Client, server: FaultServer
) -> None:
    """The server keeps the request body's window at 0 for 0.5 s (less than the write
    timeout): the upload waits, then arrives byte-exact; so does a duplex echo."""
    query = f"fault=window-zero&hold={STALL}"
    response = await client.post(f"{server.url}/upload?{query}", content=upload_pieces())
    assert json.loads(response.content) == {
        "length": len(UPLOAD),
        "sha256": hashlib.sha256(UPLOAD).hexdigest(),
    }

    adapter = DuplexAdapter(server.ca_file, read=5.0, write=5.0, connect=CONNECT_TIMEOUT)
    try:
        await adapter.fetch(f"{server.url}/echo?{query}", upload=True)
    finally:
        await adapter.aclose()
    assert adapter.received == UPLOAD
