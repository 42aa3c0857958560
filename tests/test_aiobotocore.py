"""aiobotocore on the CRT, end to end against moto's S3 server (and local servers for failures).

Every test runs in three flavours (the ``flavour`` fixture sets ``anyio_backend``):

* ``CRTSession`` under asyncio only: it runs aiobotocore in its asyncio mode,
  where aiobotocore itself uses asyncio primitives (``asyncio.sleep`` between
  retries, asyncio locks in paginators and credential providers), so it cannot
  run under trio whatever the HTTP layer does;
* ``CRTAnyioSession`` (aiobotocore's anyio mode) under asyncio and under trio.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, NamedTuple

import anyio
import anyio.abc
import pytest
import trustme
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ProxyConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from moto.server import ThreadedMotoServer

from benchmarks.common import run_module
from crt_async.aiobotocore import CRTAnyioSession, CRTSession

from .aiobotocore_reader import s3_client
from .conftest import ROOT, LocalServer

MIB = 1024 * 1024
FLAVOURS = [
    pytest.param((CRTSession, "asyncio"), id="CRTSession-asyncio"),
    pytest.param((CRTAnyioSession, "asyncio"), id="CRTAnyioSession-asyncio"),
    pytest.param((CRTAnyioSession, "trio"), id="CRTAnyioSession-trio"),
]

pytestmark = pytest.mark.anyio


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> tuple[type[CRTSession], str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(flavour: tuple[type[CRTSession], str]) -> str:
    return flavour[1]


@pytest.fixture
def session_cls(flavour: tuple[type[CRTSession], str]) -> type[CRTSession]:
    return flavour[0]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
async def s3(session_cls: type[CRTSession], moto_url: str) -> AsyncIterator[Any]:
    async with s3_client(session_cls, moto_url) as client:
        yield client


@pytest.fixture
async def bucket(s3: Any) -> str:
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=name)
    return name


async def get_bytes(s3: Any, bucket: str, key: str) -> bytes:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


# -- S3 against moto -------------------------------------------------------------------------

KEYS = {
    "empty": b"",
    "one-byte": b"x",
    "five-mib": bytes(range(256)) * (5 * MIB // 256),
    "with spaces in it": b"spaces",
    "ünïcødé/ключ/鍵": b"unicode",
    "100% sure %41 %2F": b"percent",
    "dots/./and/../kept": b"dots",
    "double//slash/": b"slashes",
}


async def test_put_get_and_list_keep_every_body_and_raw_key(
    s3: Any, bucket: str, session_cls: type[CRTSession]
) -> None:
    for key, body in KEYS.items():
        await s3.put_object(Bucket=bucket, Key=key, Body=body)
    for key, body in KEYS.items():
        assert await get_bytes(s3, bucket, key) == body, key
    listing = await s3.list_objects_v2(Bucket=bucket)
    assert sorted(item["Key"] for item in listing["Contents"]) == sorted(KEYS)
    endpoint = type(s3._endpoint).__name__
    assert endpoint == ("AioEndpoint" if session_cls is CRTSession else "AnyioEndpoint")


async def test_streaming_get_object_in_pieces(s3: Any, bucket: str) -> None:
    data = bytes(range(251)) * (5 * MIB // 251)
    await s3.put_object(Bucket=bucket, Key="big", Body=data)

    response = await s3.get_object(Bucket=bucket, Key="big")
    pieces = []
    async with response["Body"] as body:
        assert body.readable()
        while piece := await body.read(MIB):
            assert len(piece) <= MIB
            pieces.append(piece)
        assert not body.readable()  # the raw stream is at its end
    assert b"".join(pieces) == data

    response = await s3.get_object(Bucket=bucket, Key="big")
    async with response["Body"] as body:
        chunks = [chunk async for chunk in body.iter_chunks(256 * 1024)]
    assert b"".join(chunks) == data
    raw = response["Body"].raw_stream
    assert raw.content.at_eof()
    assert raw.closed

    response = await s3.get_object(Bucket=bucket, Key="big")
    async with response["Body"] as body:
        head = await body.read(1000)
        rest = await body.read()  # the rest, once
        assert await body.read() == b""
    assert head + rest == data

    response = await s3.get_object(Bucket=bucket, Key="big", Range="bytes=10-19")
    async with response["Body"] as body:
        assert await body.read() == data[10:20]


async def test_a_streamed_body_closed_early_releases_its_stream(s3: Any, bucket: str) -> None:
    await s3.put_object(Bucket=bucket, Key="big", Body=bytes(5 * MIB))
    response = await s3.get_object(Bucket=bucket, Key="big")
    async with response["Body"] as body:
        assert len(await body.read(1000)) <= 1000
    assert response["Body"].raw_stream.closed
    assert await get_bytes(s3, bucket, "big") == bytes(5 * MIB)  # the client goes on


async def test_an_event_stream_is_read_through_iter_chunks(s3: Any, bucket: str) -> None:
    await s3.put_object(Bucket=bucket, Key="data.csv", Body=b"name,n\na,1\nb,2\n")
    response = await s3.select_object_content(
        Bucket=bucket,
        Key="data.csv",
        Expression="SELECT * FROM S3Object s",
        ExpressionType="SQL",
        InputSerialization={"CSV": {"FileHeaderInfo": "USE"}},
        OutputSerialization={"JSON": {}},
    )
    events = [event async for event in response["Payload"]]
    records = b"".join(event["Records"]["Payload"] for event in events if "Records" in event)
    assert records.startswith(b'{"name":"a","n":"1"}\n{"name":"b","n":"2"}\n')
    assert "End" in events[-1]
    assert response["Payload"]._raw_stream.closed


async def test_head_object_and_a_missing_key(s3: Any, bucket: str) -> None:
    await s3.put_object(Bucket=bucket, Key="k", Body=b"12345", ContentType="text/plain")
    head = await s3.head_object(Bucket=bucket, Key="k")
    assert head["ContentLength"] == 5
    assert head["ContentType"] == "text/plain"
    with pytest.raises(ClientError) as caught:
        await s3.head_object(Bucket=bucket, Key="missing")
    assert caught.value.response["Error"]["Code"] == "404"


async def test_paginator_over_1500_keys(s3: Any, bucket: str) -> None:
    keys = [f"key-{index:04d}" for index in range(1500)]
    limiter = anyio.CapacityLimiter(10)

    async def put(key: str) -> None:
        async with limiter:
            await s3.put_object(Bucket=bucket, Key=key, Body=key.encode())

    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(put, key)

    listed = []
    pages = 0
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        pages += 1
        listed.extend(item["Key"] for item in page["Contents"])
    assert listed == keys
    assert pages == 2  # 1,000 keys per page


async def test_multipart_upload(s3: Any, bucket: str) -> None:
    parts_data = [bytes([1]) * (5 * MIB), b"tail"]
    upload = await s3.create_multipart_upload(Bucket=bucket, Key="multi")
    parts = []
    for number, data in enumerate(parts_data, start=1):
        part = await s3.upload_part(
            Bucket=bucket, Key="multi", UploadId=upload["UploadId"], PartNumber=number, Body=data
        )
        parts.append({"ETag": part["ETag"], "PartNumber": number})
    await s3.complete_multipart_upload(
        Bucket=bucket, Key="multi", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert await get_bytes(s3, bucket, "multi") == b"".join(parts_data)


async def test_delete_objects(s3: Any, bucket: str) -> None:
    for key in ("a", "b", "c"):
        await s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    await s3.delete_object(Bucket=bucket, Key="a")
    deleted = await s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "c"}]}
    )
    assert sorted(item["Key"] for item in deleted["Deleted"]) == ["b", "c"]
    assert (await s3.list_objects_v2(Bucket=bucket))["KeyCount"] == 0
    await s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError):
        await s3.head_bucket(Bucket=bucket)


async def test_a_file_body_is_uploaded(s3: Any, bucket: str, tmp_path: Any) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(bytes(range(256)) * 4096)
    with path.open("rb") as file:
        await s3.put_object(Bucket=bucket, Key="file", Body=file)
    assert await get_bytes(s3, bucket, "file") == path.read_bytes()


# -- HTTPS and HTTP/2 --------------------------------------------------------------------------


async def test_https_with_a_ca_bundle_speaks_http2(
    session_cls: type[CRTSession], h2_server: LocalServer
) -> None:
    # The local server's /bytes/{n} endpoint is "bucket" bytes, "key" n (path-style).
    async with s3_client(
        session_cls, h2_server.https_url, verify=h2_server.ca_file, s3={"addressing_style": "path"}
    ) as s3:
        response = await s3.get_object(Bucket="bytes", Key="100000")
        async with response["Body"] as body:
            assert body.raw_stream.http_version == "HTTP/2"
            assert await body.read() == (bytes(range(251)) * 400)[:100000]


class MutualTLSServer(NamedTuple):
    url: str
    ca_file: str
    client_pem: str  # the client's certificate chain and key in one file


@pytest.fixture(scope="module")
def mutual_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutualTLSServer]:
    """An HTTPS server (TLS 1.2, so a missing client certificate fails the handshake)
    that requires a client certificate and answers every HEAD with an empty 200."""
    ca = trustme.CA()
    directory = tmp_path_factory.mktemp("mtls")
    ca_file, client_pem = str(directory / "ca.pem"), str(directory / "client.pem")
    ca.cert_pem.write_to_path(ca_file)
    ca.issue_cert("client@example.com").private_key_and_cert_chain_pem.write_to_path(client_pem)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield MutualTLSServer(f"https://127.0.0.1:{server.server_address[1]}", ca_file, client_pem)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_client_certificate_is_presented(
    session_cls: type[CRTSession], mutual_tls_server: MutualTLSServer
) -> None:
    server = mutual_tls_server
    async with s3_client(
        session_cls, server.url, verify=server.ca_file, client_cert=server.client_pem
    ) as s3:
        response = await s3.head_bucket(Bucket="some-bucket")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


async def test_a_failed_tls_handshake_is_an_ssl_error(
    session_cls: type[CRTSession], mutual_tls_server: MutualTLSServer
) -> None:
    server = mutual_tls_server
    async with s3_client(session_cls, server.url, verify=server.ca_file) as s3:
        with pytest.raises(SSLError):  # no client certificate: the server refuses
            await s3.head_bucket(Bucket="some-bucket")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.timeout(180)
def test_a_1_gib_get_object_read_in_1_mib_pieces_stays_in_bounded_memory(
    h2_server: LocalServer, backend: str
) -> None:
    size = 1024 * MIB
    figures, _ = run_module(
        "tests.aiobotocore_reader",
        h2_server.https_url,
        h2_server.ca_file,
        backend,
        size,
        timeout=170,
    )
    print(f"{backend}: peak RSS growth {figures['peak_growth'] / MIB:.1f} MiB over 1 GiB")
    assert figures["received"] == size
    assert figures["http_version"] == "HTTP/2"
    assert figures["peak_growth"] < 32 * MIB


# -- error mapping and retries -----------------------------------------------------------------

Handler = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A purpose-built HTTP/1.1 server on loopback: ``handler`` gets each connection."""

    async def guarded(stream: anyio.abc.SocketStream) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.EndOfStream):
            async with stream:
                await handler(stream)

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, guarded)
            yield f"http://127.0.0.1:{port}"
            tg.cancel_scope.cancel()


async def read_request_head(stream: anyio.abc.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    return data


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_closed_port_is_an_endpoint_connection_error_and_is_retried(
    session_cls: type[CRTSession],
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    attempts = []
    async with s3_client(session_cls, url, retries={"max_attempts": 1}) as s3:
        s3.meta.events.register("before-send.s3.HeadBucket", lambda **_: attempts.append(1))
        with pytest.raises(EndpointConnectionError):
            await s3.head_bucket(Bucket="some-bucket")
    assert len(attempts) == 2  # botocore's retry handler sent it once more


async def test_a_stalling_server_is_a_read_timeout_within_2_s(
    session_cls: type[CRTSession],
) -> None:
    async def stall(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        await anyio.sleep_forever()

    async with raw_server(stall) as url, s3_client(session_cls, url, read_timeout=1) as s3:
        start = time.monotonic()
        with anyio.fail_after(10), pytest.raises(ReadTimeoutError):
            await s3.head_bucket(Bucket="some-bucket")
        assert time.monotonic() - start < 2


async def test_a_request_read_timeout_overrides_the_clients(
    session_cls: type[CRTSession],
) -> None:
    async def stall(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        await anyio.sleep_forever()

    def short_read_timeout(context: dict[str, Any], **_: object) -> None:
        context["read_timeout"] = 1  # as botocore handlers do for long-polling calls

    async with raw_server(stall) as url, s3_client(session_cls, url, read_timeout=30) as s3:
        s3.meta.events.register("before-call.s3.HeadBucket", short_read_timeout)
        start = time.monotonic()
        with anyio.fail_after(10), pytest.raises(ReadTimeoutError):
            await s3.head_bucket(Bucket="some-bucket")
        assert time.monotonic() - start < 2


async def test_a_dropped_connection_is_connection_closed_and_retried(
    session_cls: type[CRTSession],
) -> None:
    connections = 0

    async def flaky(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        await read_request_head(stream)
        if connections <= 2:  # the first attempt of each client
            return  # close without a response
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await anyio.sleep_forever()

    async with raw_server(flaky) as url:
        async with s3_client(session_cls, url) as s3:
            with pytest.raises(ConnectionClosedError):
                await s3.head_bucket(Bucket="some-bucket")
        async with s3_client(session_cls, url, retries={"max_attempts": 1}) as s3:
            response = await s3.head_bucket(Bucket="some-bucket")
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert connections == 3


async def test_a_body_cut_short_raises_while_streaming(session_cls: type[CRTSession]) -> None:
    async def truncate(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 100)

    async with raw_server(truncate) as url, s3_client(session_cls, url) as s3:
        response = await s3.get_object(Bucket="some-bucket", Key="key")
        async with response["Body"] as body:
            assert await body.read(100) == b"x" * 100
            with pytest.raises(ResponseStreamingError):
                await body.read(100)


# -- configuration ---------------------------------------------------------------------------


def test_unsupported_options_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match="ssl_context"):
        CRTSession(connector_args={"ssl_context": object()})
    with pytest.raises(TypeError, match="unknown connector_args"):
        CRTSession(connector_args={"limit_per_host": 3})
    with pytest.raises(TypeError, match="client_cert"):
        CRTSession(client_cert=["cert.pem", "key.pem"])  # type: ignore[arg-type]
    CRTSession(
        timeout=(1, 2),
        socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        connector_args={"use_dns_cache": True, "keepalive_timeout": 12, "pool_timeout": 3},
    )


async def test_a_missing_ca_bundle_fails_when_the_client_opens(
    session_cls: type[CRTSession], moto_url: str, tmp_path: Any
) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        async with s3_client(session_cls, moto_url, verify=str(tmp_path / "missing.pem")):
            pass


# -- proxies ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def http_proxy(seen: list[tuple[str, str, str | None]]) -> AsyncIterator[str]:
    """A purpose-built HTTP proxy: tunnels CONNECT to loopback ports; answers forwarded
    requests itself with an empty 200 (as an S3 HeadBucket would be answered).  Records
    every request line and its Proxy-Authorization header in ``seen``."""

    async def pipe(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            async for data in source:
                await sink.send(data)
            await sink.send_eof()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        while True:
            head, _, rest = (await read_request_head(stream)).partition(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            fields = dict(line.split(": ", 1) for line in lines)
            seen.append((method, target, fields.get("Proxy-Authorization")))
            if method != "CONNECT":
                await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                continue
            host, port = target.rsplit(":", 1)
            assert host == "127.0.0.1"
            async with await anyio.connect_tcp(host, int(port)) as upstream:
                await stream.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    await upstream.send(rest)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pipe, stream, upstream)
                    tg.start_soon(pipe, upstream, stream)
            return

    async with raw_server(handle) as url:
        yield url.replace("http://", "http://user:p%40ss@")


async def test_https_requests_are_tunnelled_through_an_http_proxy(
    session_cls: type[CRTSession], h2_server: LocalServer
) -> None:
    seen: list[tuple[str, str, str | None]] = []
    async with (
        http_proxy(seen) as proxy,
        s3_client(
            session_cls,
            h2_server.https_url,
            verify=h2_server.ca_file,
            proxies={"https": proxy},
            s3={"addressing_style": "path"},
        ) as s3,
    ):
        response = await s3.get_object(Bucket="bytes", Key="1000")
        async with response["Body"] as body:
            assert body.raw_stream.http_version == "HTTP/2"  # ALPN through the tunnel
            assert await body.read() == bytes(range(251)) * 3 + bytes(range(247))
    authority = h2_server.https_url.removeprefix("https://")
    basic = "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert seen == [("CONNECT", authority, basic)]


async def test_http_requests_are_forwarded_to_an_http_proxy(
    session_cls: type[CRTSession],
) -> None:
    seen: list[tuple[str, str, str | None]] = []
    origin = f"http://127.0.0.1:{closed_port()}"  # only the proxy can answer
    async with (
        http_proxy(seen) as proxy,
        s3_client(session_cls, origin, proxies={"http": proxy}) as s3,
    ):
        await s3.head_bucket(Bucket="some-bucket")
    basic = "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert seen == [("HEAD", f"{origin}/some-bucket", basic)]  # absolute-form target


async def test_an_unreachable_proxy_is_a_proxy_connection_error(
    session_cls: type[CRTSession], moto_url: str
) -> None:
    proxy = f"http://127.0.0.1:{closed_port()}"
    async with s3_client(session_cls, moto_url, proxies={"http": proxy}) as s3:
        with pytest.raises(ProxyConnectionError):
            await s3.list_buckets()


async def test_a_tls_proxy_url_is_refused_not_bypassed(
    session_cls: type[CRTSession], moto_url: str
) -> None:
    async with s3_client(session_cls, moto_url, proxies={"http": "https://127.0.0.1:9"}) as s3:
        with pytest.raises(ValueError, match="only http:// proxies"):
            await s3.list_buckets()


def test_importing_crt_async_does_not_import_aiobotocore() -> None:
    code = (
        "import sys, crt_async; assert not {'aiobotocore', 'botocore'} & set(sys.modules),"
        " 'aiobotocore was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


async def test_close_is_idempotent(session_cls: type[CRTSession], moto_url: str) -> None:
    session = session_cls(timeout=(5, 5))
    async with session:
        pass
    await session.close()
    await session.close()
