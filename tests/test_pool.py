"""ConnectionPool and Client against the local server: sharing, limits, keep-alive, timeouts."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.lowlevel
import pytest

from crt_async import (
    Client,
    ConnectionPool,
    ConnectTimeout,
    MockRequest,
    MockTransport,
    PoolStats,
    PoolTimeout,
    ReadTimeout,
    StreamClosedError,
    Timeout,
    TLSConfig,
    UnsupportedTransportError,
    WriteTimeout,
)

from .conftest import LocalServer
from .relay import GatedRelay

pytestmark = pytest.mark.anyio

IDLE = PoolStats(connections=0, idle=0, in_use=0, streams=0, connecting=0)


def nothing_in_use(stats: PoolStats) -> bool:
    return stats.in_use == 0 and stats.streams == 0 and stats.connecting == 0


async def settled(pool: ConnectionPool) -> PoolStats:
    """The pool's stats once every stream the CRT still finishes has been counted out.

    A stream is counted until the CRT reports it complete, which can come a moment
    after the caller saw the end of the response; wait (bounded) for those changes.
    """
    with anyio.fail_after(5):
        while not nothing_in_use(stats := pool.stats()):
            busy = next(
                state
                for state in pool._origins.values()
                if any(pooled.open_streams for pooled in state.connections)
            )
            await pool._changed_event(busy).wait()
    return stats


@pytest.fixture(scope="module")
def low_limit_server() -> Iterator[LocalServer]:
    """A server that allows only 4 concurrent HTTP/2 streams per connection."""
    from h2_server import spawned

    with spawned("--h2-max-concurrent-streams", "4") as server:
        yield server


@pytest.fixture
async def client(h2_server: LocalServer, tls: TLSConfig) -> AsyncIterator[Client]:
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        yield client
        assert nothing_in_use(await settled(client.transport))


async def run_concurrently(count: int, request: functools.partial[object]) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(request)


async def test_learns_the_servers_stream_limit(client: Client) -> None:
    assert (await client.get("/")).status == 200
    [state] = client.transport._origins.values()
    assert state.connections[0].connection.stream_limits.max_concurrent_streams == 100


async def test_concurrent_first_requests_share_one_http2_connection(client: Client) -> None:
    statuses: list[int] = []

    async def get() -> None:
        statuses.append((await client.get("/")).status)

    await run_concurrently(50, functools.partial(get))
    assert statuses == [200] * 50
    assert client.transport.stats().connections == 1


async def test_500_concurrent_requests_use_the_fewest_connections_the_limit_allows(
    client: Client,
) -> None:
    # Every request stays open ~1 s, so all 500 are in flight at once: 100 per connection.
    peak: list[int] = []

    async def slow_get() -> None:
        async with client.stream("GET", "/drip?count=2&interval=1&size=1") as response:
            peak.append(client.transport.stats().connections)
            assert await response.aread() == b"xx"

    await run_concurrently(500, functools.partial(slow_get))
    assert max(peak) == 5
    assert client.transport.stats().connections == 5


async def test_low_server_stream_limit_never_fails_a_request(
    low_limit_server: LocalServer,
) -> None:
    tls = TLSConfig(ca_file=low_limit_server.ca_file)
    statuses: list[int] = []
    async with Client(
        base_url=low_limit_server.https_url,
        transport=ConnectionPool(tls=tls, max_connections_per_origin=2),
    ) as client:

        async def get() -> None:
            response = await client.get("/drip?count=2&interval=0.05&size=1")
            statuses.append(response.status)

        await run_concurrently(40, functools.partial(get))
        assert statuses == [200] * 40
        assert client.transport.stats().connections <= 2


async def test_http1_origin_respects_max_connections(h2_server: LocalServer) -> None:
    seen: list[int] = []
    async with Client(
        base_url=h2_server.http_url, transport=ConnectionPool(max_connections_per_origin=3)
    ) as client:

        async def get() -> None:
            async with client.stream("GET", "/drip?count=2&interval=0.1&size=1") as response:
                seen.append(client.transport.stats().in_use)
                await response.aread()

        await run_concurrently(12, functools.partial(get))
        assert max(seen) == 3
        assert client.transport.stats().connections == 3


async def test_idle_connections_expire(h2_server: LocalServer, tls: TLSConfig) -> None:
    pool = ConnectionPool(tls=tls, keepalive_expiry=0.2)
    async with Client(base_url=h2_server.https_url, transport=pool) as client:
        await client.get("/")
        [state] = pool._origins.values()
        first = state.connections[0].connection
        await anyio.sleep(0.3)  # the behaviour under test is the passing of idle time
        await client.get("/")
        assert not first.is_open
        assert state.connections[0].connection is not first
        assert pool.stats().connections == 1


async def test_server_restart_between_requests_is_survived(tmp_path: object) -> None:
    from h2_server import spawned

    with spawned() as first_server:
        assert first_server.http_url is not None
        port = first_server.http_url.rsplit(":", 1)[1]
        async with Client(base_url=first_server.http_url) as client:
            assert (await client.get("/")).status == 200
            first_server_stopped = True
    assert first_server_stopped
    with spawned("--http-port", port) as second_server:
        assert second_server.http_url == first_server.http_url
        async with Client(base_url=second_server.http_url) as client:
            assert (await client.get("/")).status == 200


async def test_pool_survives_its_server_restarting(tmp_path: object) -> None:
    from h2_server import spawned

    pool = ConnectionPool()
    async with Client(transport=pool) as client:
        with spawned() as server:
            assert server.http_url is not None
            url = server.http_url
            assert (await client.get(url + "/")).status == 200
        with spawned("--http-port", url.rsplit(":", 1)[1]):
            # The pooled connection died with the first server: it is dropped or
            # the request is retried on a fresh connection, never failed.
            assert (await client.get(url + "/")).status == 200
        assert nothing_in_use(await settled(pool))


async def test_read_timeout_aborts_only_that_request(
    h2_server: LocalServer, tls: TLSConfig
) -> None:
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        with anyio.fail_after(5):
            with pytest.raises(ReadTimeout):
                await client.get("/stall-before-headers", timeout=Timeout(5, read=0.2))
            with pytest.raises(ReadTimeout):
                await client.get("/stall", timeout=Timeout(5, read=0.2))
        assert (await client.get("/")).status == 200


async def test_connect_timeout(h2_server: LocalServer, tls: TLSConfig) -> None:
    with GatedRelay(h2_server.https_port) as relay:  # the gate stays shut: no handshake
        async with Client(tls=tls, timeout=Timeout(5, connect=0.3)) as client:
            with anyio.fail_after(5), pytest.raises(ConnectTimeout):
                await client.get(f"https://127.0.0.1:{relay.port}/")
            assert nothing_in_use(await settled(client.transport))


async def test_pool_timeout_when_every_connection_is_busy(h2_server: LocalServer) -> None:
    pool = ConnectionPool(max_connections_per_origin=1)
    async with Client(base_url=h2_server.http_url, transport=pool) as client:
        async with client.stream("GET", "/drip?count=2&interval=1&size=1") as busy:
            with anyio.fail_after(5), pytest.raises(PoolTimeout):
                await client.get("/", timeout=Timeout(5, pool=0.2))
            await busy.aread()
        assert (await client.get("/")).status == 200


async def test_client_merges_base_url_and_default_headers(
    h2_server: LocalServer, tls: TLSConfig
) -> None:
    async with Client(
        base_url=h2_server.https_url + "/", tls=tls, headers={"x-default": "1", "x-both": "client"}
    ) as client:
        response = await client.get("headers", headers={"X-Both": "request"})
    import json

    pairs = json.loads(response.content)["headers"]
    headers = dict(pairs)
    assert headers["x-default"] == "1"
    assert headers["x-both"] == "request"


async def test_client_shortcuts(client: Client) -> None:
    assert (await client.post("/upload", content=b"abc")).status == 200
    assert (await client.put("/upload", content=b"abc")).status == 200
    assert (await client.delete("/status/204")).status == 404  # the server has no DELETE
    head = await client.head("/")
    assert head.status == 404  # the server answers GET only: HEAD reached it as HEAD
    assert head.content == b""


async def test_client_duplex_over_the_pool(client: Client) -> None:
    async with client.duplex("POST", "/echo") as stream:
        await stream.send(b"ping")
        assert await stream.receive() == b"ping"
        await stream.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_client_duplex_fails_fast_for_a_transport_without_the_capability() -> None:
    calls: list[MockRequest] = []

    async def handler(request: MockRequest) -> None:
        calls.append(request)

    class NoDuplex:
        def __init__(self) -> None:
            self.mock = MockTransport(handler)

        def stream(self, *args: object, **kwargs: object) -> object:
            return self.mock.stream(*args, **kwargs)  # type: ignore[arg-type]

        async def aclose(self) -> None:
            pass

    async with Client(transport=NoDuplex()) as client:
        with pytest.raises(UnsupportedTransportError, match="NoDuplex"):
            async with client.duplex("POST", "https://test/echo"):
                pytest.fail("opened")
        assert (await client.get("https://test/")).status == 200
    assert len(calls) == 1  # only the GET reached the handler


async def echo_url(request: MockRequest) -> None:
    await request.respond(200)
    await request.send(request.url.encode())


async def test_client_over_mock_transport() -> None:
    async with Client(transport=MockTransport(echo_url), base_url="https://test") as client:
        assert (await client.get("/a?b=1")).content == b"https://test/a?b=1"


def test_bad_pool_and_client_arguments() -> None:
    with pytest.raises(ValueError, match="max_connections_per_origin"):
        ConnectionPool(max_connections_per_origin=0)
    with pytest.raises(ValueError, match="keepalive"):
        ConnectionPool(keepalive_expiry=-1)
    with pytest.raises(ValueError, match="base_url"):
        Client(base_url="ftp://x")
    with pytest.raises(ValueError, match="tls"):
        Client(
            transport=MockTransport(lambda request: anyio.lowlevel.checkpoint()), tls=TLSConfig()
        )
    with pytest.raises(ValueError, match="timeout"):
        Timeout(0)
    assert Timeout(3.0) == Timeout(3.0, connect=3.0)
    assert Timeout(None, read=1.0).connect is None


async def test_closed_pool_refuses_requests(h2_server: LocalServer) -> None:
    pool = ConnectionPool()
    async with Client(base_url=h2_server.http_url, transport=pool) as client:
        await client.get("/")
    assert pool.stats() == IDLE
    with pytest.raises(anyio.ClosedResourceError):
        await client.get("/")


async def test_write_timeout_when_the_server_stops_reading(
    h2_server: LocalServer, tls: TLSConfig
) -> None:
    # hypercorn buffers a few thousand DATA frames before it stops reading: send until
    # the CRT can no longer hand data to the socket, then the write limit fires.
    piece = b"w" * (1024 * 1024)
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        with anyio.fail_after(30):
            async with client.duplex(
                "POST", "/ignore-body", timeout=Timeout(5, write=0.5)
            ) as stream:
                with pytest.raises(WriteTimeout):
                    for _ in range(1000):
                        await stream.send(piece)


async def test_client_duplex_to_an_http1_origin_fails_before_anything_is_sent(
    h2_server: LocalServer,
) -> None:
    async with Client(base_url=h2_server.http_url) as client:
        with pytest.raises(UnsupportedTransportError, match=r"HTTP/1\.1"):
            async with client.duplex("POST", "/echo"):
                pytest.fail("a duplex stream was opened over HTTP/1.1")
        assert (await client.get("/")).status == 200
        assert nothing_in_use(await settled(client.transport))


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("https://127.0.0.1:3128", "only http:// proxies"),
        ("socks5://127.0.0.1:1080", "only http:// proxies"),
        ("http://127.0.0.1:3128/path", "a proxy URL is"),
        ("http://:3128", "a proxy URL is"),
        ("http://127.0.0.1:99999", "invalid port"),
    ],
)
def test_a_bad_proxy_url_is_refused_when_the_pool_is_made(proxy: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectionPool(proxy=proxy)


@pytest.mark.parametrize("alpn", [["h2"], ["http/1.1"]], ids=["h2", "h1"])
async def test_open_returns_a_response_the_caller_reads_in_pieces_and_closes(
    h2_server: LocalServer, alpn: list[str]
) -> None:
    expected = (bytes(range(251)) * 400)[:100_000]
    async with ConnectionPool(tls=TLSConfig(ca_file=h2_server.ca_file, alpn=alpn)) as pool:
        response = await pool.open("GET", f"{h2_server.https_url}/bytes/100000")
        try:
            first = await response.receive(1000)
            assert 0 < len(first) <= 1000
            assert first + await response.aread() == expected
            assert await response.receive() == b""
        finally:
            response.close()
        assert response.is_closed
        with pytest.raises(StreamClosedError):
            await response.receive()
        with pytest.raises(ValueError, match="max_bytes"):
            await response.receive(0)

        async def body() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 1000

        response = await pool.open("POST", f"{h2_server.https_url}/upload", content=body())
        try:
            assert json.loads(await response.aread())["length"] == 10_000  # written inline
        finally:
            await response.aclose()
