"""DuplexStream against the local HTTP/2 server's /echo endpoint (asyncio and trio)."""

from __future__ import annotations

import random
import threading

import anyio
import anyio.streams.buffered
import anyio.streams.text
import pytest

from crt_async import (
    Connection,
    DuplexStream,
    RemoteProtocolError,
    StreamClosedError,
    Timeout,
    TLSConfig,
    UnsupportedTransportError,
    WriteTimeout,
    connect,
)

from .conftest import LocalServer

pytestmark = pytest.mark.anyio


async def receive_exactly(stream: DuplexStream, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        received += await stream.receive(size - len(received))
    return bytes(received)


async def test_response_head_arrives_before_the_request_body_ends(h2: Connection) -> None:
    async with h2.duplex("POST", "/echo") as stream:
        head = await stream.wait_response()
        assert head.status == 200
        assert head.http_version == "HTTP/2"
        assert head.headers["content-type"] == "application/octet-stream"
        await stream.send_eof()


async def test_each_echo_arrives_before_the_next_send(h2: Connection) -> None:
    async with h2.duplex("POST", "/echo") as stream:
        for i in range(20):
            message = f"message {i}".encode()
            await stream.send(message)
            # The server echoes only what it received: this cannot pass unless
            # sending and receiving interleave on the one stream.
            assert await receive_exactly(stream, len(message)) == message
        await stream.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_two_thousand_random_messages_are_echoed_byte_exact(h2: Connection) -> None:
    rng = random.Random(2000)
    messages = [rng.randbytes(rng.randint(1, 16 * 1024)) for _ in range(2000)]
    received = bytearray()
    async with h2.duplex("POST", "/echo") as stream:

        async def sender() -> None:
            for message in messages:
                await stream.send(message)
            await stream.send_eof()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            async for chunk in stream:
                received += chunk
    assert received == b"".join(messages)


async def test_send_after_send_eof_raises_stream_closed(h2: Connection) -> None:
    async with h2.duplex("POST", "/echo") as stream:
        await stream.send_eof()
        with pytest.raises(StreamClosedError, match="send_eof"):
            await stream.send(b"late")
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"late")
        with pytest.raises(StreamClosedError):
            await stream.send_eof()


async def test_stream_is_unusable_after_leaving_the_block(h2: Connection) -> None:
    async with h2.duplex("POST", "/echo") as stream:
        await stream.send(b"x")
    with pytest.raises(StreamClosedError):
        await stream.send(b"y")
    with pytest.raises(anyio.ClosedResourceError):
        await stream.receive()


async def test_send_and_receive_reject_bad_arguments_before_the_crt(h2: Connection) -> None:
    async with h2.duplex("POST", "/echo") as stream:
        with pytest.raises(TypeError, match="bytes"):
            await stream.send("text")  # type: ignore[arg-type]
        for bad_size in (0, -1, 1.5, True, "10"):
            with pytest.raises(ValueError, match="max_bytes"):
                await stream.receive(bad_size)  # type: ignore[arg-type]
        await stream.send(b"still usable")
        assert await stream.receive() == b"still usable"


async def test_composes_with_anyio_text_and_buffered_streams(h2: Connection) -> None:
    async with h2.duplex("POST", "/echo") as stream:
        text = anyio.streams.text.TextStream(stream)
        buffered = anyio.streams.buffered.BufferedByteReceiveStream(stream)
        await text.send("héllo\n")
        assert await buffered.receive_until(b"\n", 100) == "héllo".encode()
        await stream.send(b"12345")
        assert await buffered.receive_exactly(5) == b"12345"


async def test_stream_reset_by_the_server_fails_receive(h2: Connection) -> None:
    async with h2.duplex("GET", "/abort?after=1000") as stream:
        received = bytearray()
        with pytest.raises(RemoteProtocolError):
            async for chunk in stream:
                received += chunk
        assert len(received) <= 1000


async def test_sending_after_the_server_reset_the_stream_raises(h2: Connection) -> None:
    async with h2.duplex("GET", "/abort?after=0") as stream:
        with pytest.raises(RemoteProtocolError):
            await stream.receive()
        with pytest.raises(RemoteProtocolError):
            for _ in range(2):  # the first send may only queue the data; the next must fail
                await stream.send(b"x" * 1024)


async def test_a_peer_that_stops_reading_stops_the_sender(h2: Connection) -> None:
    chunk = b"x" * (1024 * 1024)
    sent = 0
    with pytest.raises(WriteTimeout):
        async with h2.duplex("POST", "/ignore-body", timeout=Timeout(5, write=0.5)) as stream:
            await stream.wait_response()
            while sent < 1024 * len(chunk):
                await stream.send(chunk)
                sent += len(chunk)
    # The server's and the sockets' buffers hold some; nothing piles up unbounded here.
    assert sent < 256 * len(chunk)


async def test_duplex_on_http1_fails_before_anything_is_sent(
    h2_server: LocalServer, tls: TLSConfig
) -> None:
    http1 = TLSConfig(ca_file=h2_server.ca_file, alpn=["http/1.1"])
    async with await connect(h2_server.https_url, tls=http1) as connection:
        with pytest.raises(UnsupportedTransportError, match=r"HTTP/1\.1"):
            async with connection.duplex("POST", "/echo"):
                pytest.fail("a duplex stream was opened over HTTP/1.1")
        # Nothing was sent: the connection is still good for a normal request.
        async with connection.stream("GET", "/") as response:
            assert response.status == 200


async def test_leaving_mid_exchange_keeps_the_connection_usable(h2: Connection) -> None:
    async with h2.duplex("POST", "/echo") as stream:
        await stream.send(b"a" * 100_000)
        await stream.receive(10)
    async with h2.duplex("POST", "/echo") as stream:
        await stream.send(b"ping")
        assert await receive_exactly(stream, 4) == b"ping"


async def test_cancelling_readers_and_writers_at_random_points_leaks_nothing(
    h2_server: LocalServer, tls: TLSConfig
) -> None:
    rng = random.Random(7)
    async with await connect(h2_server.https_url, tls=tls) as warmup:
        async with warmup.duplex("POST", "/echo") as stream:
            await stream.send(b"warm")
            await receive_exactly(stream, 4)
    baseline_threads = set(threading.enumerate())  # earlier tests' threads may still exit

    async with await connect(h2_server.https_url, tls=tls) as connection:
        for _ in range(40):
            async with connection.duplex("POST", "/echo") as stream:
                with anyio.move_on_after(rng.random() * 0.02):
                    async with anyio.create_task_group() as tg:

                        async def writer(s: DuplexStream = stream) -> None:
                            while True:
                                await s.send(rng.randbytes(rng.randint(1, 50_000)))

                        async def reader(s: DuplexStream = stream) -> None:
                            while True:
                                await s.receive()

                        tg.start_soon(writer)
                        tg.start_soon(reader)
        # After 40 cancelled exchanges the connection still carries a clean one.
        async with connection.duplex("POST", "/echo") as stream:
            await stream.send(b"still fine")
            assert await receive_exactly(stream, 10) == b"still fine"
    assert not connection.is_open
    assert set(threading.enumerate()) <= baseline_threads
