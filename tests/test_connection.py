"""connect() and Connection against the local hypercorn server (HTTP/2, HTTP/1.1, TLS)."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import pathlib
import socket
import threading
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.to_thread
import pytest
import trustme
from awscrt.exceptions import AwsCrtError

from crt_async import (
    ConnectError,
    Connection,
    ConnectTimeout,
    RemoteProtocolError,
    StreamClosedError,
    TLSConfig,
    TLSError,
    connect,
)
from crt_async._request_body import SPOOL_MEMORY_LIMIT

from .conftest import LocalServer
from .relay import GatedRelay

pytestmark = pytest.mark.anyio


def body_pattern(size: int) -> bytes:
    """What /bytes/{size} sends: byte i is i % 251."""
    block = bytes(range(251))
    return (block * (size // 251 + 1))[:size]


async def get_json(connection: Connection, target: str, **kwargs: object) -> dict[str, object]:
    async with connection.stream("GET", target, **kwargs) as response:  # type: ignore[arg-type]
        assert response.status == 200
        result: dict[str, object] = json.loads(await response.aread())
        return result


async def upload(connection: Connection, content: object) -> dict[str, object]:
    async with connection.stream("POST", "/upload", content=content) as response:  # type: ignore[arg-type]
        assert response.status == 200
        result: dict[str, object] = json.loads(await response.aread())
        return result


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- connecting ---------------------------------------------------------------------


async def test_https_negotiates_http2(h2_server: LocalServer, tls: TLSConfig) -> None:
    async with await connect(h2_server.https_url, tls=tls) as connection:
        assert connection.http_version == "HTTP/2"
        assert connection.is_open
        assert connection.SUPPORTS_DUPLEX_STREAMING is True
    assert not connection.is_open


async def test_alpn_http1_only_negotiates_http1(
    h2_server: LocalServer, tls_http1: TLSConfig
) -> None:
    async with await connect(h2_server.https_url, tls=tls_http1) as connection:
        assert connection.http_version == "HTTP/1.1"
        assert connection.SUPPORTS_DUPLEX_STREAMING is False


async def test_cleartext_http_is_http1(h2_server: LocalServer) -> None:
    async with await connect(h2_server.http_url) as connection:
        assert connection.http_version == "HTTP/1.1"
        async with connection.stream("GET", "/") as response:
            assert await response.aread() == b"hello from h2_server\n"


async def test_refused_port_raises_connect_error_with_the_crt_cause() -> None:
    with pytest.raises(ConnectError) as info:
        await connect(f"http://127.0.0.1:{closed_port()}")
    assert isinstance(info.value.__cause__, AwsCrtError)
    assert info.value.crt_error_name == info.value.__cause__.name


async def test_untrusted_certificate_fails_within_the_connect_timeout(
    h2_server: LocalServer,
) -> None:
    # s2n delays a failed handshake on purpose (10-30 s); the connect timeout bounds it.
    with anyio.fail_after(10):
        with pytest.raises(ConnectError) as info:
            await connect(h2_server.https_url, connect_timeout=1.0)
    assert isinstance(info.value, (TLSError, ConnectTimeout))


async def test_wrong_host_name_is_rejected(h2_server: LocalServer, tls: TLSConfig) -> None:
    # The certificate is for 127.0.0.1 and localhost, not for this name.
    url = h2_server.https_url.replace("127.0.0.1", "127.0.0.1.nip.invalid")
    with pytest.raises(ConnectError):
        await connect(url, tls=tls, connect_timeout=2.0)


async def test_cancelled_connect_closes_the_connection_that_arrives_late(
    h2_server: LocalServer, tls: TLSConfig, crt_thread_errors: list[BaseException]
) -> None:
    with GatedRelay(h2_server.https_port) as relay:
        url = f"https://127.0.0.1:{relay.port}"
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(connect, url, tls=tls))
                assert await anyio.to_thread.run_sync(relay.accepted.wait, 5)
                scope.cancel()
        assert scope.cancelled_caught
        relay.gate.set()  # now the handshake completes and the CRT delivers a connection
        assert await anyio.to_thread.run_sync(relay.client_closed.wait, 10)
    assert crt_thread_errors == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/", "unsupported URL scheme"),
        ("https:///path", "no host"),
        ("https://127.0.0.1:99999/", "port"),
    ],
)
async def test_bad_urls_raise_value_error_before_any_io(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await connect(url)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
async def test_bad_connect_timeout_raises_value_error(seconds: float) -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        await connect("https://127.0.0.1:1", connect_timeout=seconds)


def test_tls_config_rejects_bad_input(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        TLSConfig(ca_file="/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="together"):
        TLSConfig(cert_file=__file__)
    with pytest.raises(ValueError, match="alpn"):
        TLSConfig(alpn=[])
    with pytest.raises(TLSError):
        TLSConfig(ca_data="not a certificate")


def test_tls_config_takes_a_client_certificate_and_key_in_one_file(
    tmp_path: pathlib.Path,
) -> None:
    client = trustme.CA().issue_cert("client@example.com")
    combined, key = tmp_path / "client.pem", tmp_path / "key.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(combined))
    client.private_key_pem.write_to_path(str(key))
    TLSConfig(cert_file=combined, key_file=combined)  # the CRT alone rejects this file
    TLSConfig(cert_file=combined, key_file=key)
    with pytest.raises(ValueError, match="no PEM certificate"):
        TLSConfig(cert_file=key, key_file=key)
    with pytest.raises(ValueError, match="no PEM private key"):
        TLSConfig(cert_file=combined, key_file=__file__)


# -- requests and responses -------------------------------------------------------------


async def test_get_reads_status_headers_and_body(any_connection: Connection) -> None:
    async with any_connection.stream("GET", "/bytes/1000") as response:
        assert response.status == 200
        assert response.http_version == any_connection.http_version
        assert response.headers["Content-Length"] == "1000"
        assert "content-length" in response.headers
        assert await response.aread() == body_pattern(1000)
        assert response.content == body_pattern(1000)
    assert response.is_closed


async def test_status_codes_are_reported(any_connection: Connection) -> None:
    for code in (201, 404, 503):
        async with any_connection.stream("GET", f"/status/{code}") as response:
            assert response.status == code
            assert await response.aread() == f"status {code}\n".encode()


async def test_content_before_aread_raises(h2: Connection) -> None:
    async with h2.stream("GET", "/") as response:
        with pytest.raises(StreamClosedError, match="aread"):
            response.content  # noqa: B018


async def test_iterating_the_body_yields_every_byte(any_connection: Connection) -> None:
    size = 5 * 1024 * 1024 + 7
    received = bytearray()
    async with any_connection.stream("GET", f"/bytes/{size}") as response:
        async for chunk in response:
            received += chunk
    assert received == body_pattern(size)


async def test_chunk_size_iteration_yields_exact_pieces_and_a_short_last_one(
    any_connection: Connection,
) -> None:
    size = 5 * 1024 * 1024 + 7
    piece = 3 * 1024 * 1024 + 1  # more than half of any stream window: topped up
    async with any_connection.stream("GET", f"/bytes/{size}") as response:
        chunks = [chunk async for chunk in response.aiter_bytes(chunk_size=piece)]
    assert [len(chunk) for chunk in chunks] == [piece, size - piece]
    assert b"".join(chunks) == body_pattern(size)


@pytest.mark.parametrize("chunk_size", [0, -1, True, 1.5, "1"])
async def test_chunk_size_must_be_a_positive_int(h2: Connection, chunk_size: object) -> None:
    async with h2.stream("GET", "/") as response:
        with pytest.raises(ValueError, match="chunk_size must be a positive int"):
            response.aiter_bytes(chunk_size)  # type: ignore[arg-type]


async def test_request_headers_are_forwarded_and_host_filled_in(
    any_connection: Connection,
) -> None:
    info = await get_json(
        any_connection, "/headers?x=1", headers=[("X-Custom", "one"), (b"x-bytes", b"two")]
    )
    headers = {name.lower(): value for name, value in info["headers"]}  # type: ignore[attr-defined]
    assert headers["x-custom"] == "one"
    assert headers["x-bytes"] == "two"
    assert info["path"] == "/headers?x=1"
    expected_host = f"127.0.0.1:{any_connection.origin.port}"
    assert headers.get("host", headers.get(":authority")) == expected_host


async def test_response_headers_keep_duplicates_and_order(h2: Connection) -> None:
    async with h2.stream("GET", "/") as response:
        names = [name for name, _ in response.headers.multi_items()]
        assert not any(name.startswith(":") for name in names)
        assert response.headers.get_list("CONTENT-TYPE") == ["text/plain"]


UPLOAD = bytes(range(256)) * 4096  # 1 MiB


async def upload_async_chunks() -> AsyncIterator[bytes]:
    for i in range(0, len(UPLOAD), 10_000):
        yield UPLOAD[i : i + 10_000]


UPLOAD_BODIES: dict[str, Callable[[], object]] = {
    "bytes": lambda: UPLOAD,
    "bytearray": lambda: bytearray(UPLOAD),
    "memoryview": lambda: memoryview(UPLOAD),
    "iterable": lambda: [UPLOAD[:100], b"", UPLOAD[100:]],
    "generator": lambda: (UPLOAD[i : i + 300_000] for i in range(0, len(UPLOAD), 300_000)),
    "async-iterable": upload_async_chunks,
    "file": lambda: io.BytesIO(UPLOAD),
}


@pytest.mark.parametrize("kind", UPLOAD_BODIES)
async def test_request_bodies_arrive_intact(any_connection: Connection, kind: str) -> None:
    result = await upload(any_connection, UPLOAD_BODIES[kind]())
    assert result == {"length": len(UPLOAD), "sha256": hashlib.sha256(UPLOAD).hexdigest()}


async def test_request_body_from_a_real_file(
    any_connection: Connection, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "body.bin"
    path.write_bytes(UPLOAD)
    with path.open("rb") as file:
        result = await upload(any_connection, file)
    assert result["length"] == len(UPLOAD)


async def test_http1_async_body_larger_than_the_spool_memory_is_spooled_to_disk(
    h2_server: LocalServer,
) -> None:
    piece = b"s" * 65536
    count = 3 * SPOOL_MEMORY_LIMIT // len(piece)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield piece

    async with await connect(h2_server.http_url) as connection:
        result = await upload(connection, chunks())
    assert result["length"] == count * len(piece)


async def test_failing_request_body_iterable_raises_to_the_caller(h2: Connection) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"first"
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        async with h2.stream("POST", "/upload", content=broken()) as response:
            await response.aread()
    assert h2.is_open


@pytest.mark.parametrize(
    ("content", "error"),
    [("text", TypeError), (12, TypeError), ([b"ok", "text"], TypeError)],
)
async def test_bad_content_raises_type_error(
    h2: Connection, content: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        async with h2.stream("POST", "/upload", content=content) as response:  # type: ignore[arg-type]
            await response.aread()


# -- header and request-line validation ---------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({":method": "GET"}, "pseudo-header"),
        ({":authority": "example.com"}, "pseudo-header"),
        ({"x-bad": "a\r\nInjected: yes"}, "invalid value"),
        ({"x-bad": "nul\x00"}, "invalid value"),
        ({"x-bad\n": "v"}, "invalid header name"),
        ({"": "v"}, "invalid header name"),
        ({"x-bad": "café"}, "ASCII"),
        ({"x-bad": b"\xff"}, "ASCII"),
    ],
)
async def test_invalid_headers_raise_value_error_before_reaching_the_crt(
    h2: Connection, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        async with h2.stream("GET", "/", headers=headers):
            pass


@pytest.mark.parametrize(
    ("method", "target", "message"),
    [
        ("", "/", "method"),
        ("GET POST", "/", "method"),
        ("GE\nT", "/", "method"),
        ("GET", "no-slash", "target"),
        ("GET", "/a b", "target"),
        ("GET", "/caf\u00e9", "ASCII"),
        ("GET", "/\r\n", "target"),
    ],
)
async def test_invalid_request_line_raises_value_error(
    h2: Connection, method: str, target: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        async with h2.stream(method, target):
            pass


async def test_non_string_headers_raise_type_error(h2: Connection) -> None:
    with pytest.raises(TypeError):
        async with h2.stream("GET", "/", headers={"x": 1}):  # type: ignore[dict-item]
            pass
    with pytest.raises(TypeError):
        async with h2.stream("GET", "/", headers="x: 1"):  # type: ignore[arg-type]
            pass


async def test_connection_stays_usable_after_rejected_input(h2: Connection) -> None:
    with pytest.raises(ValueError, match="invalid value"):
        async with h2.stream("GET", "/", headers={"x": "\r"}):
            pass
    async with h2.stream("GET", "/") as response:
        assert response.status == 200


# -- errors never look like success -------------------------------------------------


@pytest.mark.parametrize("mode", ["reset", "close"])
async def test_abort_mid_body_raises_after_the_data_received(
    any_connection: Connection, mode: str
) -> None:
    received = bytearray()
    with pytest.raises(RemoteProtocolError):
        async with any_connection.stream("GET", f"/abort?after=100000&mode={mode}") as response:
            async for chunk in response:
                received += chunk
    assert len(received) <= 100000
    assert received == body_pattern(len(received))


async def test_stream_failing_before_headers_fails_the_status_wait(
    h2_server: LocalServer, tls: TLSConfig
) -> None:
    connection = await connect(h2_server.https_url, tls=tls)
    async with anyio.create_task_group() as tg:

        async def close_when_waiting() -> None:
            await anyio.wait_all_tasks_blocked()
            await connection.aclose()

        tg.start_soon(close_when_waiting)
        with pytest.raises(RemoteProtocolError):
            async with connection.stream("GET", "/stall-before-headers"):
                pytest.fail("a response head was reported for a failed stream")


async def test_closed_connection_refuses_new_requests(h2: Connection) -> None:
    await h2.aclose()
    with pytest.raises(RemoteProtocolError):
        async with h2.stream("GET", "/"):
            pass


async def test_leaving_an_http1_response_early_closes_the_connection(
    h2_server: LocalServer,
) -> None:
    async with await connect(h2_server.http_url) as connection:
        async with connection.stream("GET", "/bytes/10000000") as response:
            async for _ in response:
                break
        # HTTP/1.1 has no way to abandon one response and go on: the connection goes.
        with anyio.fail_after(5):
            await connection.wait_closed()
        assert not connection.is_open


async def test_leaving_an_http2_response_early_keeps_the_connection(h2: Connection) -> None:
    async with h2.stream("GET", "/bytes/50000000") as response:
        async for _ in response:
            break
    async with h2.stream("GET", "/") as response:
        assert await response.aread() == b"hello from h2_server\n"


async def test_unclosed_response_warns_when_collected(h2: Connection) -> None:
    import gc

    from crt_async._exchange import Exchange, ResponseHead
    from crt_async._headers import Headers
    from crt_async._response import Response

    exchange = Exchange("HTTP/2", initial_window=1024, max_window=1024)
    response = Response(exchange, ResponseHead(200, Headers(), "HTTP/2"))
    with pytest.warns(ResourceWarning, match="unclosed"):
        del response
        gc.collect()


async def test_no_threads_left_after_requests(h2_server: LocalServer, tls: TLSConfig) -> None:
    async with await connect(h2_server.https_url, tls=tls) as connection:
        async with connection.stream("GET", "/") as response:
            await response.aread()
    baseline = set(threading.enumerate())  # earlier tests' threads may still exit
    async with await connect(h2_server.https_url, tls=tls) as connection:
        for _ in range(20):
            async with connection.stream("GET", "/bytes/100000") as response:
                await response.aread()
    assert set(threading.enumerate()) <= baseline
