"""crt_async.httpx.CRTTransport under httpx.AsyncClient (asyncio and trio)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

import crt_async
from crt_async.httpx import CRTTransport

from .conftest import LocalServer
from .test_connection import body_pattern, closed_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(h2_server: LocalServer) -> AsyncIterator[httpx.AsyncClient]:
    transport = CRTTransport(verify=h2_server.ca_file)
    async with httpx.AsyncClient(transport=transport, base_url=h2_server.https_url) as client:
        yield client
    assert transport.pool.stats().connections == 0


async def test_get_over_http2(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.text == "hello from h2_server\n"
    assert response.headers["content-type"] == "text/plain"


async def test_http1_only(h2_server: LocalServer) -> None:
    transport = CRTTransport(verify=h2_server.ca_file, http2=False)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(h2_server.https_url + "/")
    assert response.http_version == "HTTP/1.1"
    assert response.status_code == 200


async def test_streaming_download(client: httpx.AsyncClient) -> None:
    size = 5 * 1024 * 1024
    received = bytearray()
    async with client.stream("GET", f"/bytes/{size}") as response:
        async for chunk in response.aiter_bytes():
            received += chunk
    assert received == body_pattern(size)


async def test_streaming_upload(client: httpx.AsyncClient) -> None:
    pieces = [bytes([i]) * 100_000 for i in range(20)]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    response = await client.post("/upload", content=body())
    expected = b"".join(pieces)
    assert json.loads(response.content) == {
        "length": len(expected),
        "sha256": hashlib.sha256(expected).hexdigest(),
    }


async def test_request_headers_reach_the_server(client: httpx.AsyncClient) -> None:
    response = await client.get("/headers", headers={"x-token": "abc"})
    headers = dict(json.loads(response.content)["headers"])
    assert headers["x-token"] == "abc"


async def test_refused_connection_maps_to_connect_error() -> None:
    async with httpx.AsyncClient(transport=CRTTransport()) as client:
        with pytest.raises(httpx.ConnectError) as info:
            await client.get(f"http://127.0.0.1:{closed_port()}/")
    assert isinstance(info.value.__cause__, crt_async.ConnectError)


async def test_read_timeout_maps_to_httpx_read_timeout(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ReadTimeout) as info:
        await client.get("/stall-before-headers", timeout=httpx.Timeout(5, read=0.2))
    assert isinstance(info.value.__cause__, crt_async.ReadTimeout)
    assert (await client.get("/")).status_code == 200


async def test_abort_mid_body_maps_to_read_error(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ReadError):
        await client.get("/abort?after=100000")


async def test_pool_timeout_maps_to_httpx_pool_timeout(h2_server: LocalServer) -> None:
    transport = CRTTransport(limits=httpx.Limits(max_connections=1))
    async with httpx.AsyncClient(transport=transport, base_url=h2_server.http_url) as client:
        async with client.stream("GET", "/drip?count=2&interval=1&size=1"):
            with pytest.raises(httpx.PoolTimeout):
                await client.get("/", timeout=httpx.Timeout(5, pool=0.2))


def test_ssl_context_is_rejected_with_advice() -> None:
    with pytest.raises(TypeError, match=r"verify='path/to/ca\.pem'"):
        CRTTransport(verify=ssl.create_default_context())
    with pytest.raises(ValueError, match="http1"):
        CRTTransport(http1=False, http2=False)


def test_importing_crt_async_does_not_import_httpx() -> None:
    code = "import sys, crt_async; assert 'httpx' not in sys.modules, 'httpx was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the same transport under the sync httpx.Client (no event loop) ---------------------


@pytest.fixture
def sync_client(h2_server: LocalServer) -> Iterator[httpx.Client]:
    transport = CRTTransport(verify=h2_server.ca_file)
    with httpx.Client(transport=transport, base_url=h2_server.https_url) as client:
        yield client
    assert transport.blocking_pool.stats().connections == 0


def test_sync_client_get_over_http2(sync_client: httpx.Client) -> None:
    response = sync_client.get("/")
    assert (response.status_code, response.http_version) == (200, "HTTP/2")
    assert response.text == "hello from h2_server\n"


def test_sync_streaming_download_and_upload(sync_client: httpx.Client) -> None:
    size = 5 * 1024 * 1024
    received = bytearray()
    with sync_client.stream("GET", f"/bytes/{size}") as response:
        for chunk in response.iter_bytes():
            received += chunk
    assert received == body_pattern(size)

    pieces = [bytes([i]) * 100_000 for i in range(20)]
    uploaded = sync_client.post("/upload", content=iter(pieces))
    expected = b"".join(pieces)
    assert json.loads(uploaded.content)["sha256"] == hashlib.sha256(expected).hexdigest()


def test_sync_concurrent_threads_share_one_http2_connection(sync_client: httpx.Client) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: sync_client.get("/").status_code, range(200)))
    assert statuses == [200] * 200
    transport = sync_client._transport
    assert isinstance(transport, CRTTransport)
    assert transport.blocking_pool.stats().connections == 1


def test_sync_http1_cleartext(h2_server: LocalServer) -> None:
    with httpx.Client(transport=CRTTransport()) as client:
        response = client.get(h2_server.http_url + "/bytes/1000")
    assert (response.http_version, response.content) == ("HTTP/1.1", body_pattern(1000))


def test_sync_error_mapping(sync_client: httpx.Client) -> None:
    with pytest.raises(httpx.ConnectError) as info:
        sync_client.get(f"http://127.0.0.1:{closed_port()}/")
    assert isinstance(info.value.__cause__, crt_async.ConnectError)
    with pytest.raises(httpx.ReadTimeout):
        sync_client.get("/stall-before-headers", timeout=httpx.Timeout(5, read=0.2))
    with pytest.raises(httpx.ReadError):
        sync_client.get("/abort?after=100000")
    assert sync_client.get("/").status_code == 200


def test_sync_pool_timeout(h2_server: LocalServer) -> None:
    transport = CRTTransport(limits=httpx.Limits(max_connections=1))
    with httpx.Client(transport=transport, base_url=h2_server.http_url) as client:
        with client.stream("GET", "/drip?count=2&interval=1&size=1"):
            with pytest.raises(httpx.PoolTimeout):
                client.get("/", timeout=httpx.Timeout(5, pool=0.2))


def test_one_transport_object_serves_sync_and_async(h2_server: LocalServer) -> None:
    import anyio

    transport = CRTTransport(verify=h2_server.ca_file)

    async def async_get() -> int:
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get(h2_server.https_url + "/")).status_code

    async def second_loop_get() -> None:
        with pytest.raises(RuntimeError, match="another event loop"):
            await async_get()

    with httpx.Client(transport=transport) as client:
        assert client.get(h2_server.https_url + "/").status_code == 200
        assert anyio.run(async_get) == 200
        assert client.get(h2_server.https_url + "/").status_code == 200
        anyio.run(second_loop_get, backend="trio")  # one async pool per transport: one loop
    assert transport.blocking_pool.stats().connections == 0
