"""``Response``: a streamed HTTP response, read with backpressure."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

from ._exceptions import ReadTimeout, StreamClosedError
from ._exchange import Exchange, ResponseHead
from ._headers import Headers
from ._timeouts import fail_after

__all__ = ["Response"]

READ_ALL = 1 << 62  # receive() size meaning: everything buffered


class Response:
    """An HTTP response whose body is streamed from the CRT.

    Obtained from ``Connection.stream()`` (or ``Client.stream()``), which closes
    it when the ``async with`` block ends.  The body is delivered as fast as the
    caller reads it: a caller that stops reading stops the server once the
    stream's flow-control window is full.

    Attributes:
        status: the status code.
        headers: the response headers (case-insensitive, duplicates kept).
        http_version: ``"HTTP/2"`` or ``"HTTP/1.1"``.

    Example::

        async with connection.stream("GET", "/large") as response:
            async for chunk in response.aiter_bytes():
                sink.write(chunk)
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_content",
        "_exchange",
        "_head",
        "_keepalive",
        "_read_timeout",
    )

    def __init__(
        self,
        exchange: Exchange,
        head: ResponseHead,
        keepalive: object = None,
        *,
        read_timeout: float | None = None,
    ) -> None:
        self._exchange = exchange
        self._head = head
        self._keepalive = keepalive  # the CRT stream: alive as long as we read from it
        self._read_timeout = read_timeout
        self._content: bytes | None = None
        self._closed = False

    @property
    def status(self) -> int:
        return self._head.status

    @property
    def headers(self) -> Headers:
        return self._head.headers

    @property
    def http_version(self) -> str:
        return self._head.http_version

    @property
    def is_closed(self) -> bool:
        """True once :meth:`aclose` ran (or the ``async with`` block ended)."""
        return self._closed

    @property
    def content(self) -> bytes:
        """The whole body, once :meth:`aread` has read it.

        Raises:
            StreamClosedError: if the body has not been read with :meth:`aread`.
        """
        if self._content is None:
            raise StreamClosedError("the body has not been read: call 'await response.aread()'")
        return self._content

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Iterate over the body as it arrives, each time everything buffered so far.

        Stopping early is fine: the iterator holds nothing to clean up.

        Raises:
            RemoteProtocolError: (or another ``CRTError``) if the stream fails
                before the body is complete; a body is never silently truncated.
            ReadTimeout: no data arrived within the read timeout.
            StreamClosedError: if the response was closed.
        """
        return _BodyIterator(self)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _BodyIterator(self)

    async def aread(self) -> bytes:
        """Read and return the whole body (also kept as :attr:`content`)."""
        if self._content is None:
            chunks = _BodyIterator(self)
            first = await chunks.next_or_empty()
            parts = [first]
            while parts[-1]:  # a small body usually arrives whole: no join, no copy
                parts.append(await chunks.next_or_empty())
            self._content = first if len(parts) <= 2 else b"".join(parts)
        return self._content

    async def aclose(self) -> None:
        """Release the stream.  An unread rest of the body is discarded
        (see "Abandoned streams" in the README)."""
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._exchange.abandon()

    def __del__(self) -> None:
        if not self._closed:
            warnings.warn(
                f"unclosed {self!r}: use 'async with ....stream(...)' or call aclose()",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )
            self._close()

    def __repr__(self) -> str:
        return f"<Response [{self.status} {self.http_version}]>"


class _BodyIterator:
    """Async iterator over a response body (a class, not an async generator, so
    that breaking out of ``async for`` leaves nothing to finalise)."""

    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.next_or_empty()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def next_or_empty(self) -> bytes:
        """The next chunk, or ``b""`` at the end of the body."""
        response = self._response
        if response._closed:
            raise StreamClosedError("the response is closed")
        with fail_after(response._read_timeout, ReadTimeout, "no response data in time"):
            return await response._exchange.receive(READ_ALL)
