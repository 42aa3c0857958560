"""``MockTransport``: an in-memory transport for testing code that uses crt_async."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Callable

import anyio
import anyio.lowlevel

from ._connection import parse_origin
from ._duplex import DuplexStream
from ._exceptions import RemoteProtocolError, StreamClosedError
from ._exchange import Exchange
from ._headers import (
    Headers,
    HeaderTypes,
    build_request_headers,
    validate_headers,
    validate_method,
)
from ._request_body import Content, prepare_body
from ._response import Response
from ._tasks import helper_tasks
from ._timeouts import TimeoutTypes
from ._transport import require_duplex

__all__ = ["MockRequest", "MockTransport"]

_UNBOUNDED = 1 << 62
_READ_SIZE = 65536


def _unbounded_exchange() -> Exchange:
    return Exchange("HTTP/2", initial_window=_UNBOUNDED, max_window=_UNBOUNDED)


class MockRequest:
    """One request as a :class:`MockTransport` handler sees it.

    The handler reads the request body (:meth:`receive`, :meth:`aread`, or
    ``async for``) while it writes the response (:meth:`respond`, then
    :meth:`send` any number of times).  The response ends when the handler
    returns; if the handler raises, the caller's read fails with
    :class:`~crt_async.RemoteProtocolError`.

    Attributes:
        method: the request method.
        url: the URL as the caller passed it.
        headers: the request headers (with ``host`` filled in).
    """

    def __init__(
        self, method: str, url: str, headers: Headers, body: Exchange, response: Exchange
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self._body = body
        self._response = response
        self._responded = False

    async def receive(self, max_bytes: int = _READ_SIZE) -> bytes:
        """The next request body bytes, or ``b""`` at the end of the body."""
        return await self._body.receive(max_bytes)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.receive():
            yield chunk

    async def aread(self) -> bytes:
        """The whole request body."""
        return b"".join([chunk async for chunk in self])

    async def respond(self, status: int = 200, headers: HeaderTypes = None) -> None:
        """Send the response head.  Only once per request."""
        if self._responded:
            raise StreamClosedError("respond() was already called")
        self._responded = True
        self._response.on_response(status, validate_headers(headers, http2=True))
        await anyio.lowlevel.checkpoint()

    async def send(self, data: bytes) -> None:
        """Send response body bytes (responds 200 first if :meth:`respond` was not called)."""
        if not self._responded:
            await self.respond()
        self._response.on_body(data)
        await anyio.lowlevel.checkpoint()


Handler = Callable[[MockRequest], Awaitable[None]]


class MockTransport:
    """An in-memory transport that calls ``handler`` for every request.

    It supports duplex streaming, so code that uses ``Client.duplex()`` can be
    tested without a network.  Buffers are unbounded (no flow control).

    Args:
        handler: ``async def handler(request: MockRequest) -> None``.

    Example::

        async def echo(request: MockRequest) -> None:
            await request.respond(200, {"content-type": "application/octet-stream"})
            async for chunk in request:
                await request.send(chunk)

        transport = MockTransport(echo)
        async with transport.duplex("POST", "https://example.test/echo") as stream:
            await stream.send(b"hi")
            assert await stream.receive() == b"hi"
    """

    SUPPORTS_DUPLEX_STREAMING = True

    def __init__(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError("handler must be an async callable taking a MockRequest")
        self.handler = handler

    @contextlib.asynccontextmanager
    async def _exchange(
        self, method: str | bytes, url: str, headers: HeaderTypes
    ) -> AsyncIterator[tuple[Exchange, Exchange]]:
        body, response = _unbounded_exchange(), _unbounded_exchange()
        request = MockRequest(
            validate_method(method),
            url,
            Headers(build_request_headers(headers, host=parse_origin(url).authority, http2=True)),
            body,
            response,
        )
        async with helper_tasks() as tg:
            tg.start_soon(self._run_handler, request, response)
            yield body, response

    async def _run_handler(self, request: MockRequest, response: Exchange) -> None:
        try:
            await self.handler(request)
        except Exception as exc:
            error = RemoteProtocolError(f"the mock handler raised {exc!r}")
            error.__cause__ = exc
            response.on_error(error)
        else:
            if not request._responded:
                await request.respond()
            response.on_end()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: TimeoutTypes = None,
    ) -> AsyncIterator[Response]:
        """Like ``Connection.stream()``, answered by the handler.

        ``timeout`` is accepted for the transport interface; a mock has nothing to wait for.
        """
        prepared = await prepare_body(content, http2=True)
        async with self._exchange(method, url, headers) as (body, response_exchange):
            if prepared.stream is not None:
                body.on_body(prepared.stream.read())
            elif prepared.chunks is not None:
                async for chunk in prepared.chunks:
                    body.on_body(chunk)
            body.on_end()
            response = Response(response_exchange, await response_exchange.wait_head())
            try:
                yield response
            finally:
                response.close()

    @contextlib.asynccontextmanager
    async def duplex(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        timeout: TimeoutTypes = None,
    ) -> AsyncIterator[DuplexStream]:
        """Like ``Connection.duplex()``, answered by the handler (``timeout`` is ignored)."""
        require_duplex(self)
        async with self._exchange(method, url, headers) as (body, response_exchange):

            def write_data(data: bytes | None, end_stream: bool) -> concurrent.futures.Future[None]:
                if data:
                    body.on_body(data)
                if end_stream:
                    body.on_end()
                taken: concurrent.futures.Future[None] = concurrent.futures.Future()
                taken.set_result(None)
                return taken

            stream = DuplexStream(response_exchange, write_data)
            try:
                yield stream
            finally:
                await stream.aclose()

    async def aclose(self) -> None:
        """Nothing to release; present for the transport interface."""
        await anyio.lowlevel.checkpoint()
