"""Nothing lost: what is sent arrives byte-exact, and an interrupted transfer always raises.

Against tests/fault_server.py (asyncio and trio).  The fault matrix (test_faults.py) checks
every fault on a streamed body; this file adds the long duplex echo, the buffered ways to
read a body (``Client.get``, ``httpx`` ``get``), every kind of request body, and what the
server is left with when the client's own body source fails.
"""

from __future__ import annotations

import io
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlencode

import anyio
import httpx
import pytest

from crt_async import Client, RemoteProtocolError, Timeout, TLSConfig, wait_event
from crt_async.httpx import CRTTransport

from .fault_server import (
    PIECE,
    UPLOAD,
    FaultServer,
    new_id,
    upload_pieces,
    upload_pieces_sync,
)

pytestmark = pytest.mark.anyio

BOUND = 1.0  # an interrupted transfer raises within this of the fault
MESSAGES = 10_000
MAX_MESSAGE = 256 * 1024
PAUSE = 0.02  # the longest random pause, on each side
PAUSE_CHANCE = 0.01  # how often the client's sender and receiver pause
AFTER = 50_000


@pytest.fixture(autouse=True)
def no_exception_in_crt_callbacks(crt_thread_errors: list[BaseException]) -> Iterator[None]:
    """Every test here also checks that nothing raised inside a CRT callback or thread."""
    yield
    assert crt_thread_errors == []


def url(server: FaultServer, path: str, **query: object) -> str:
    return f"{server.url}{path}?{urlencode(query)}" if query else f"{server.url}{path}"


@pytest.fixture
async def client(fault_server: FaultServer) -> AsyncIterator[Client]:
    async with Client(tls=TLSConfig(ca_file=fault_server.ca_file), timeout=Timeout(5.0)) as client:
        yield client


def message_sizes(rng: random.Random) -> list[int]:
    """Sizes from 0 B to 256 KiB, log-uniform (every order of magnitude as likely), with
    both ends included: 10,000 uniform sizes would be 1.3 GB through a pure-Python server."""
    sizes = [min(MAX_MESSAGE, int(2 ** rng.uniform(0, 18.01)) - 1) for _ in range(MESSAGES - 2)]
    return [0, MAX_MESSAGE, *sizes]


@pytest.mark.timeout(180)
async def test_ten_thousand_random_messages_echo_byte_exact_with_pauses_on_both_sides(
    client: Client, fault_server: FaultServer
) -> None:
    """Measured here: 218 MB each way in 13-19 s per backend on a shared 2-core machine
    (the pure-Python h2 server is the bottleneck: about 27 MB/s without the pauses)."""
    rng = random.Random(10_000)
    sizes = message_sizes(rng)
    source = rng.randbytes(2 * MAX_MESSAGE)
    expected = bytearray()  # sent and not yet echoed back
    received = 0
    started = time.monotonic()
    echo = url(fault_server, "/echo", seed=10_000, pause=PAUSE)
    async with client.duplex("POST", echo, timeout=Timeout(10.0)) as stream:

        async def send_all() -> None:
            for size in sizes:
                offset = rng.randrange(MAX_MESSAGE)
                message = source[offset : offset + size]
                expected.extend(message)
                await stream.send(message)
                if rng.random() < PAUSE_CHANCE:
                    await anyio.sleep(rng.random() * PAUSE)
            await stream.send_eof()

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_all)
            while True:
                try:
                    chunk = await stream.receive(rng.choice((1, 1000, 65536, MAX_MESSAGE)))
                except anyio.EndOfStream:
                    break
                assert chunk == expected[: len(chunk)], f"mismatch after {received} bytes"
                del expected[: len(chunk)]
                received += len(chunk)
                if rng.random() < PAUSE_CHANCE:
                    await anyio.sleep(rng.random() * PAUSE)
    elapsed = time.monotonic() - started
    assert received == sum(sizes)
    assert not expected
    print(f"echoed {len(sizes)} messages, {received / 1e6:.1f} MB, in {elapsed:.1f} s")


MID_BODY_FAULTS = ["rst-mid-body", "close-mid-body", "goaway-mid-body", "malformed-mid-body"]


@pytest.mark.parametrize("fault", [*MID_BODY_FAULTS, "short-body"])
async def test_interrupted_download_read_whole_raises_never_a_short_body(
    client: Client, fault_server: FaultServer, fault: str
) -> None:
    """``Client.get()`` reads the whole body: it raises; it never returns the part that came."""
    request_id = new_id()
    with pytest.raises(RemoteProtocolError):
        await client.get(
            url(fault_server, "/bytes/200000", fault=fault, after=AFTER, id=request_id)
        )
    fault_at = fault_server.records[request_id].fault_at
    assert fault_at is not None
    assert time.monotonic() - fault_at < BOUND


@pytest.mark.parametrize("fault", [*MID_BODY_FAULTS, "short-body"])
async def test_interrupted_download_through_httpx_raises_never_a_short_body(
    fault_server: FaultServer, fault: str
) -> None:
    request_id = new_id()
    transport = CRTTransport(verify=fault_server.ca_file)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ReadError):
            await client.get(
                url(fault_server, "/bytes/200000", fault=fault, after=AFTER, id=request_id)
            )
    fault_at = fault_server.records[request_id].fault_at
    assert fault_at is not None
    assert time.monotonic() - fault_at < BOUND


BODIES: dict[str, Callable[[], object]] = {
    "bytes": lambda: UPLOAD,
    "file": lambda: io.BytesIO(UPLOAD),
    "iterable": upload_pieces_sync,
    "async-iterable": upload_pieces,
}


@pytest.mark.parametrize("kind", BODIES)
@pytest.mark.parametrize("fault", ["rst-mid-upload", "close-mid-upload"])
async def test_upload_interrupted_by_the_server_raises_for_every_body_kind(
    client: Client, fault_server: FaultServer, fault: str, kind: str
) -> None:
    request_id = new_id()
    target = url(fault_server, "/upload", fault=fault, after=AFTER, id=request_id)
    with pytest.raises(RemoteProtocolError):
        await client.post(target, content=BODIES[kind]())  # type: ignore[arg-type]
    record = fault_server.records[request_id]
    assert record.fault_at is not None
    assert time.monotonic() - record.fault_at < BOUND
    assert not record.end_stream


@pytest.mark.parametrize("fault", ["rst-mid-upload", "close-mid-upload", "rst-before-headers"])
async def test_duplex_send_after_the_server_broke_the_stream_raises(
    client: Client, fault_server: FaultServer, fault: str
) -> None:
    """Once the stream has failed, ``send()`` raises ``RemoteProtocolError`` (awscrt reports
    a write on a completed stream as a bare ``RuntimeError``; crt_async translates it)."""
    request_id = new_id()
    target = url(fault_server, "/echo", fault=fault, after=AFTER, id=request_id)
    async with client.duplex("POST", target) as stream:
        with pytest.raises(RemoteProtocolError):
            for offset in itertools.count(0, PIECE):
                await stream.send(UPLOAD[offset % len(UPLOAD) :][:PIECE])
        with pytest.raises(RemoteProtocolError):
            while True:
                await stream.receive()
        with pytest.raises(RemoteProtocolError):  # the stream has completed now
            await stream.send(b"more")
    fault_at = fault_server.records[request_id].fault_at
    assert fault_at is not None
    assert time.monotonic() - fault_at < BOUND


async def test_failing_request_body_never_reaches_the_server_as_complete(
    client: Client, fault_server: FaultServer
) -> None:
    """The caller's body iterable fails half-way: the caller gets its exception, and the
    server never sees the body end (no END_STREAM), so it cannot take the half for all."""
    request_id = new_id()

    async def half_then_fail() -> AsyncIterator[bytes]:
        yield UPLOAD[: len(UPLOAD) // 2]
        raise OSError("the source broke")

    with pytest.raises(OSError, match="the source broke"):
        await client.post(url(fault_server, "/upload", id=request_id), content=half_then_fail())
    # The stream is left open without END_STREAM, so the pool retires its connection and
    # closes it: once the server has seen it closed, it has read everything sent on it.
    record = fault_server.records[request_id]
    with anyio.fail_after(5):
        await wait_event(fault_server.connection_closed(record.connection))
    assert record.body_received <= len(UPLOAD) // 2  # the close may cut what was in flight
    assert not record.end_stream
    response = await client.get(url(fault_server, "/"))  # the client goes on
    assert response.content == b"ok\n"
