"""The duplex capability contract and MockTransport (in memory, by design: no server)."""

from __future__ import annotations

import anyio
import pytest

from crt_async import (
    MockRequest,
    MockTransport,
    RemoteProtocolError,
    UnsupportedTransportError,
    require_duplex,
    supports_duplex,
)

pytestmark = pytest.mark.anyio


async def echo(request: MockRequest) -> None:
    await request.respond(200, {"content-type": "application/octet-stream"})
    async for chunk in request:
        await request.send(chunk)


class NoFlag:
    """A transport that says nothing about duplex."""


class FlagFalse:
    SUPPORTS_DUPLEX_STREAMING = False


class FlagTruthyButNotTrue:
    SUPPORTS_DUPLEX_STREAMING = 1


def test_only_an_explicit_true_opts_in() -> None:
    assert supports_duplex(MockTransport(echo))
    assert not supports_duplex(NoFlag())
    assert not supports_duplex(FlagFalse())
    assert not supports_duplex(FlagTruthyButNotTrue())


@pytest.mark.parametrize("transport", [NoFlag(), FlagFalse(), FlagTruthyButNotTrue()])
def test_require_duplex_names_the_transport_and_the_alternative(transport: object) -> None:
    with pytest.raises(UnsupportedTransportError) as info:
        require_duplex(transport)
    message = str(info.value)
    assert type(transport).__qualname__ in message
    assert "MockTransport" in message
    assert "HTTP/2" in message


async def test_transport_without_duplex_fails_before_the_handler_is_called() -> None:
    calls: list[MockRequest] = []

    async def handler(request: MockRequest) -> None:
        calls.append(request)

    class HalfDuplexMock(MockTransport):
        SUPPORTS_DUPLEX_STREAMING = False  # type: ignore[assignment]

    with pytest.raises(UnsupportedTransportError, match="HalfDuplexMock"):
        async with HalfDuplexMock(handler).duplex("POST", "https://example.test/"):
            pytest.fail("the duplex stream opened")
    assert calls == []


async def test_mock_duplex_echo_interleaves() -> None:
    async with MockTransport(echo).duplex("POST", "https://example.test/echo") as stream:
        assert (await stream.wait_response()).status == 200
        for i in range(5):
            await stream.send(b"msg %d" % i)
            assert await stream.receive() == b"msg %d" % i
        await stream.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_mock_stream_sees_method_url_headers_and_body() -> None:
    seen: dict[str, object] = {}

    async def handler(request: MockRequest) -> None:
        seen.update(
            method=request.method,
            url=request.url,
            host=request.headers["host"],
            token=request.headers["x-token"],
            body=await request.aread(),
        )
        await request.respond(201, [("x-reply", "yes")])
        await request.send(b"created")

    transport = MockTransport(handler)
    async with transport.stream(
        "PUT", "https://example.test:8443/item", headers={"X-Token": "t"}, content=b"payload"
    ) as response:
        assert response.status == 201
        assert response.headers["x-reply"] == "yes"
        assert await response.aread() == b"created"
    assert seen == {
        "method": "PUT",
        "url": "https://example.test:8443/item",
        "host": "example.test:8443",
        "token": "t",
        "body": b"payload",
    }
    await transport.aclose()


async def test_mock_handler_that_returns_silently_gives_an_empty_200() -> None:
    async def handler(request: MockRequest) -> None:
        pass

    async with MockTransport(handler).stream("GET", "https://example.test/") as response:
        assert response.status == 200
        assert await response.aread() == b""


async def test_mock_handler_failure_reaches_the_reader_as_remote_protocol_error() -> None:
    async def handler(request: MockRequest) -> None:
        await request.send(b"partial")
        raise KeyError("bug in handler")

    with pytest.raises(RemoteProtocolError, match="bug in handler") as info:
        async with MockTransport(handler).stream("GET", "https://example.test/") as response:
            await response.aread()
    assert isinstance(info.value.__cause__, KeyError)


def test_mock_transport_rejects_a_non_callable_handler() -> None:
    with pytest.raises(TypeError, match="handler"):
        MockTransport("not a handler")  # type: ignore[arg-type]
