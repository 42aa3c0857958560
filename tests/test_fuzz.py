"""Bad input, fuzzed with hypothesis, against the real server.

Every case either works or raises a clear ``ValueError`` / ``TypeError`` /
``crt_async.CRTError`` (httpx errors through the httpx transport): never another
exception, never a crash in C code, never a hang (each example has a deadline).
Where the outcome is predictable the test predicts it: input the validation
rules accept must work and reach the server intact; input they refuse must fail
before any I/O (each example gets a fresh pool, which then has opened nothing).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pathlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import trustme
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crt_async import (
    Client,
    ConnectionPool,
    CRTError,
    Timeout,
    TLSConfig,
    UnsupportedTransportError,
    connect,
)
from crt_async.httpx import CRTTransport

from .conftest import LocalServer
from .tls_server import TinyTLSServer

pytestmark = pytest.mark.anyio

EXAMPLE_DEADLINE = 10.0  # seconds per example: a hang fails, it never blocks the suite
FUZZ = settings(
    max_examples=40,
    deadline=None,  # real I/O; the per-example bound is EXAMPLE_DEADLINE
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CLEAN_ERRORS = (ValueError, TypeError, CRTError)

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")

# -- strategies --------------------------------------------------------------------------

NASTY = st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x7f", " ", "é", "\u2028", "\ud800", ":"])
token_text = st.text(alphabet="!#$%&'*+-.^_`|~abcXYZ019", min_size=1, max_size=20)
nasty_text = st.builds(lambda a, n, b: a + n + b, st.text(max_size=5), NASTY, st.text(max_size=5))
huge_text = st.integers(min_value=8_000, max_value=200_000).map(lambda n: "v" * n)


def _as_bytes(text: str) -> Any:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return text


methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get", b"GET"]),
    token_text,
    nasty_text,
    st.text(max_size=10),
    st.binary(max_size=10),
    st.sampled_from([None, 1, ["GET"]]),
)
names = st.one_of(token_text, nasty_text, st.text(max_size=10), st.binary(max_size=10).map(bytes))
values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    nasty_text,
    huge_text,
    st.binary(max_size=20),
    st.sampled_from([None, 1, 2.5]),
)
header_lists = st.lists(st.tuples(names, values), max_size=4)


def valid_text(value: object, pattern: re.Pattern[str]) -> bool:
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return False
    return isinstance(value, str) and value.isascii() and pattern.match(value) is not None


def headers_are_valid(headers: list[tuple[object, object]]) -> bool:
    return all(
        valid_text(name, TOKEN) and valid_text(value, FIELD_VALUE) for name, value in headers
    )


def header_size(headers: list[tuple[object, object]]) -> int:
    return sum(len(value) for _, value in headers if isinstance(value, (str, bytes)))


# -- helpers -----------------------------------------------------------------------------


async def outcome(coro: Any) -> object:
    """Run one example: its result, or the exception it raised (which must be clean)."""
    with anyio.fail_after(EXAMPLE_DEADLINE):
        try:
            return await coro
        except CLEAN_ERRORS as exc:
            return exc


def pool_of(client: Client) -> ConnectionPool:
    pool = client.transport
    assert isinstance(pool, ConnectionPool)
    return pool


def assert_no_io(client: Client) -> None:
    stats = pool_of(client).stats()
    assert stats.connections == stats.connecting == stats.streams == 0, stats


# -- request line and headers --------------------------------------------------------------


@FUZZ
@given(method=methods)
@example(method="GET\r\nX: y")
@example(method="")
async def test_fuzzed_methods(h2_server: LocalServer, tls: TLSConfig, method: object) -> None:
    valid = valid_text(method, TOKEN)
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        result = await outcome(client.request(method, "/headers"))  # type: ignore[arg-type]
        if valid:  # the server answers: /headers for GET, 404 for the rest
            assert not isinstance(result, Exception), result
            text = method.decode() if isinstance(method, bytes) else method
            assert result.status == (200 if text.upper() == "GET" else 404)  # type: ignore[attr-defined]
            if text.upper() == "GET":  # ASGI servers upper-case the method
                assert json.loads(result.content)["method"] == "GET"  # type: ignore[attr-defined]
        else:
            assert isinstance(result, (ValueError, TypeError)), result
            assert_no_io(client)


paths = st.one_of(
    st.text(alphabet="abcXYZ019-._~!$&'()*+,;=:@%/?", max_size=30).map(lambda p: "/" + p),
    nasty_text.map(lambda p: "/" + p),
    st.text(max_size=30).map(lambda p: "/" + p),
    st.integers(min_value=1_000, max_value=100_000).map(lambda n: "/" + "p" * n),
)


@FUZZ
@given(path=paths)
@example(path="/a b")
@example(path="/a\r\nHost: evil")
@example(path="/\x00")
async def test_fuzzed_paths(h2_server: LocalServer, tls: TLSConfig, path: str) -> None:
    url = h2_server.https_url + path
    printable = all("\x21" <= char <= "\x7e" for char in path)
    async with Client(tls=tls) as client:
        result = await outcome(client.get(url))
        if printable:  # the server answers (404, 400, 431...), or the CRT refuses
            assert not isinstance(result, (ValueError, TypeError)), result
        else:
            assert isinstance(result, ValueError), result
            assert "\x00" not in str(result)
            assert "\r" not in str(result)
            assert_no_io(client)


@FUZZ
@given(headers=header_lists)
@example(headers=[("x-a", "ok\r\nx-injected: 1")])
@example(headers=[("x-a\n", "ok")])
@example(headers=[(":path", "/other")])
@example(headers=[("x-a", "caf\u00e9")])
@example(headers=[("x-a", "v" * 200_000)])
async def test_fuzzed_headers(
    h2_server: LocalServer, tls: TLSConfig, headers: list[tuple[object, object]]
) -> None:
    valid = headers_are_valid(headers) and not any(
        valid_text(name, TOKEN) and str(name).startswith(":") for name, _ in headers
    )
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        result = await outcome(client.get("/headers", headers=headers))  # type: ignore[arg-type]
        if not valid:
            assert isinstance(result, (ValueError, TypeError)), result
            assert_no_io(client)
        elif header_size(headers) < 8_000:  # small enough for any server: delivered intact
            assert not isinstance(result, Exception), result
            seen = json.loads(result.content)["headers"]  # type: ignore[attr-defined]
            for name, value in headers:
                text_name = name.decode() if isinstance(name, bytes) else str(name)
                text_value = value.decode() if isinstance(value, bytes) else str(value)
                assert [text_name.lower(), text_value.strip(" \t")] in seen
        else:  # huge: the server may refuse, but only with a clean error or a status
            assert not isinstance(result, (ValueError, TypeError)), result


# -- bodies, sizes and timeouts ------------------------------------------------------------


class BodyCase:
    """A request body and what the server should receive (None: must be refused)."""

    def __init__(self, kind: str, data: bytes) -> None:
        self.kind = kind
        self.data = data

    @property
    def expected(self) -> bytes | None:
        return None if self.kind in REFUSED else self.data

    def content(self) -> Any:
        data = self.data
        if self.kind == "bytes":
            return data
        if self.kind == "bytearray":
            return bytearray(data)
        if self.kind == "memoryview":
            return memoryview(data)
        if self.kind == "file":
            return io.BytesIO(data)
        if self.kind == "list":
            return [data[i : i + 7000] for i in range(0, len(data), 7000)]
        if self.kind == "generator":
            return (data[i : i + 5000] for i in range(0, len(data), 5000))
        if self.kind == "async-generator":

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(0, len(data), 3000):
                    yield data[i : i + 3000]

            return chunks()
        if self.kind == "str":
            return data.decode("latin-1")
        if self.kind == "int":
            return len(data)
        if self.kind == "dict":
            return {"a": data}
        if self.kind == "text-file":
            return io.StringIO("text")
        if self.kind == "mixed-chunks":
            return [data, "not bytes"]
        raise AssertionError(self.kind)

    def __repr__(self) -> str:
        return f"BodyCase({self.kind!r}, {len(self.data)} bytes)"


KINDS = [
    "bytes",
    "bytearray",
    "memoryview",
    "file",
    "list",
    "generator",
    "async-generator",
    "str",
    "int",
    "dict",
    "text-file",
    "mixed-chunks",
]
REFUSED = ("str", "int", "dict", "text-file", "mixed-chunks")
CHECKED_WHILE_SENT = ("dict", "mixed-chunks")  # a chunk that is not bytes: found when sent
sizes = st.one_of(
    st.sampled_from([0, 1, 16_383, 16_384, 65_535, 65_536, 1_048_577, 2_000_000]),
    st.integers(min_value=0, max_value=300_000),
)
bodies = st.builds(
    BodyCase,
    st.sampled_from(KINDS),
    st.one_of(
        st.binary(max_size=2000), sizes.map(lambda n: (bytes(range(251)) * (n // 251 + 1))[:n])
    ),
)


@FUZZ
@given(body=bodies, alpn=st.sampled_from(["h2", "http/1.1"]))
async def test_fuzzed_bodies_arrive_intact_or_are_refused(
    h2_server: LocalServer, body: BodyCase, alpn: str
) -> None:
    tls = TLSConfig(ca_file=h2_server.ca_file, alpn=[alpn])
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        result = await outcome(client.post("/upload", content=body.content()))
        if body.expected is None:
            assert isinstance(result, TypeError), result
            if body.kind not in CHECKED_WHILE_SENT:
                assert_no_io(client)
        else:
            assert not isinstance(result, Exception), result
            reply = json.loads(result.content)  # type: ignore[attr-defined]
            assert reply["length"] == len(body.expected)
            assert reply["sha256"] == hashlib.sha256(body.expected).hexdigest()


seconds = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-5, max_value=30),
    st.booleans(),
    st.text(max_size=3),
)


def seconds_are_valid(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value > 0 and math.isfinite(value)


@FUZZ
@given(default=seconds, read=seconds, connect_=seconds)
@example(default=float("nan"), read=None, connect_=None)
@example(default=0, read=None, connect_=None)
@example(default=1e-9, read=None, connect_=None)
@example(default=5, read=-1, connect_=None)  # -1 was taken for "not given"
@example(default=None, read=None, connect_=4294968.0)  # overflowed the CRT's uint32 ms
@example(default=None, read=None, connect_=1e308)
async def test_fuzzed_timeouts(
    h2_server: LocalServer, tls: TLSConfig, default: object, read: object, connect_: object
) -> None:
    valid = all(seconds_are_valid(value) for value in (default, read, connect_))
    try:
        timeout = Timeout(default, read=read, connect=connect_)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        assert not valid
        return
    assert valid
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        result = await outcome(client.get("/", timeout=timeout))
        # A tiny limit may expire (a clean crt_async timeout); anything else works.
        assert not isinstance(result, (ValueError, TypeError)), result


# -- URLs, through connect() ---------------------------------------------------------------

hosts = st.sampled_from(["127.0.0.1", "[::1]", "", "127.0.0.1:", "[::1", "a b", "héllo"])
ports = st.one_of(st.none(), st.sampled_from(["0", "-1", "65536", "99999", "x", "", "8e3"]))
schemes = st.sampled_from(["https", "http", "HTTPS", "ftp", "", "ws"])


@FUZZ
@given(scheme=schemes, host=hosts, port=ports, userinfo=st.sampled_from(["", "u:p@", "u@"]))
async def test_fuzzed_urls_through_connect(
    h2_server: LocalServer,
    tls: TLSConfig,
    scheme: str,
    host: str,
    port: str | None,
    userinfo: str,
) -> None:
    url = f"{scheme}://{userinfo}{host}" + ("" if port is None else f":{port}")
    result = await outcome(
        connect(url, tls=tls if scheme.lower() == "https" else None, connect_timeout=2.0)
    )
    if isinstance(result, Exception):
        if userinfo:
            assert isinstance(result, ValueError), result
            assert "u:p" not in str(result)
        return
    async with result:  # type: ignore[attr-defined]
        pass


# -- the httpx transport -------------------------------------------------------------------


# What httpx.AsyncClient takes as content (sync iterables are httpx's RuntimeError).
httpx_bodies = st.builds(
    BodyCase,
    st.sampled_from(["bytes", "async-generator", "str", "int"]),
    st.one_of(
        st.binary(max_size=2000), sizes.map(lambda n: (bytes(range(251)) * (n // 251 + 1))[:n])
    ),
)


@FUZZ
@given(method=st.one_of(token_text, nasty_text), headers=header_lists, body=httpx_bodies)
async def test_fuzzed_requests_through_the_httpx_transport(
    h2_server: LocalServer, method: str, headers: list[tuple[object, object]], body: BodyCase
) -> None:
    transport = CRTTransport(verify=h2_server.ca_file)
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        with anyio.fail_after(EXAMPLE_DEADLINE):
            try:
                await client.request(
                    method,
                    h2_server.https_url + "/upload",
                    headers=headers,  # type: ignore[arg-type]
                    content=body.content(),
                )
            except (ValueError, TypeError, httpx.HTTPError):
                pass  # httpx's own validation, ours, or a mapped transport error


# -- unsupported combinations fail before any I/O ------------------------------------------


async def test_duplex_to_an_http1_only_origin_fails_before_any_io(
    h2_server: LocalServer, tls_http1: TLSConfig
) -> None:
    async with Client(tls=tls_http1) as client:  # ALPN offers http/1.1 only
        with pytest.raises(UnsupportedTransportError, match="does not offer h2"):
            async with client.duplex("POST", h2_server.https_url + "/echo"):
                pass
        assert_no_io(client)
    async with Client() as client:  # cleartext: the CRT has no h2c
        with pytest.raises(UnsupportedTransportError, match=r"HTTP/1\.1 only"):
            async with client.duplex("POST", h2_server.http_url + "/echo"):
                pass
        assert_no_io(client)


async def test_duplex_to_an_origin_that_negotiated_http1_fails_before_any_io(
    tmp_path: pathlib.Path,
) -> None:
    ca = trustme.CA()
    ca_file = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    with TinyTLSServer(ca, "127.0.0.1") as server:  # ALPN: http/1.1 only
        url = f"https://127.0.0.1:{server.port}/"
        async with Client(tls=TLSConfig(ca_file=ca_file)) as client:  # offers h2 too
            response = await client.get(url)
            assert response.http_version == "HTTP/1.1"
            with pytest.raises(UnsupportedTransportError, match=r"negotiated HTTP/1\.1"):
                async with client.duplex("POST", url):
                    pass
        assert server.connections == 1  # the duplex attempt opened nothing


def test_sync_httpx_client_with_an_async_body_fails_before_any_io(h2_server: LocalServer) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"data"

    transport = CRTTransport(verify=h2_server.ca_file)
    request = httpx.Request("POST", h2_server.https_url + "/upload", content=body())
    with pytest.raises(TypeError, match="async"):
        transport.handle_request(request)
    stats = transport.blocking_pool.stats()
    assert stats.connections == stats.connecting == 0
    transport.close()


def test_sync_httpx_multipart_upload_is_sent(h2_server: LocalServer) -> None:
    """httpx's multipart body is both iterable and async iterable: the sync path iterates it."""
    with httpx.Client(transport=CRTTransport(verify=h2_server.ca_file)) as client:
        response = client.post(h2_server.https_url + "/upload", files={"f": b"x" * 10_000})
    assert response.status_code == 200
    assert response.json()["length"] > 10_000


def test_sync_httpx_bad_input_fails_before_any_io(h2_server: LocalServer) -> None:
    transport = CRTTransport(verify=h2_server.ca_file)
    for method in ("GET\r\n", "", "GÉT"):
        request = httpx.Request("GET", h2_server.https_url + "/")
        request.method = method
        with pytest.raises(ValueError, match="method"):
            transport.handle_request(request)
    stats = transport.blocking_pool.stats()
    assert stats.connections == stats.connecting == 0
    transport.close()


def chunks_of(data: bytes) -> Iterator[bytes]:
    yield from (data[i : i + 1000] for i in range(0, len(data), 1000))


async def test_sync_and_async_clients_survive_a_fuzz_run_and_still_work(
    h2_server: LocalServer, tls: TLSConfig
) -> None:
    """After rejected input the same client (and its connection) serves normal requests."""
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        assert (await client.get("/")).status == 200
        for bad in ("/\r\n", "/\x00", "/ x"):
            with pytest.raises(ValueError, match="invalid URL"):
                await client.get(bad)
        with pytest.raises(TypeError):
            await client.post("/upload", content="text")  # type: ignore[arg-type]
        response = await client.post("/upload", content=chunks_of(b"z" * 10_000))
        assert json.loads(response.content)["length"] == 10_000
        assert pool_of(client).stats().connections == 1

    def sync_part() -> None:
        with httpx.Client(transport=CRTTransport(verify=h2_server.ca_file)) as sync_client:
            assert sync_client.get(h2_server.https_url).status_code == 200

    await anyio.to_thread.run_sync(sync_part)
