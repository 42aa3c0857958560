"""``Response``: a streamed HTTP response, read with backpressure."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

from ._checks import check_byte_count
from ._exceptions import CRTError, ReadTimeout, StreamClosedError
from ._exchange import Exchange, ResponseHead
from ._headers import Headers

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
        "_read_so_far",
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
        self._read_so_far: list[bytes] = []  # aread()'s pieces, kept across cancellation
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

    def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """Iterate over the body as it arrives, each time everything buffered so far;
        or, with ``chunk_size``, in pieces of exactly that size (the last may be shorter).

        Reading a large body in large pieces is much cheaper: the task is woken
        once per piece (or per half flow-control window), not once per network read.
        A piece interrupted by cancellation or a read timeout is kept and completed
        by the next iteration; if the stream fails, the bytes that arrived first are
        yielded before the error is raised.
        Stopping early is fine: the iterator holds nothing to clean up.

        Args:
            chunk_size: bytes per piece, or None for whatever has arrived.

        Example::

            async with connection.stream("GET", "/large") as response:
                async for piece in response.aiter_bytes(chunk_size=1 << 20):
                    file.write(piece)

        Raises:
            ValueError: ``chunk_size`` is not a positive int (or None).
            RemoteProtocolError: (or another ``CRTError``) if the stream fails
                before the body is complete; a body is never silently truncated.
            ReadTimeout: no data arrived within the read timeout.
            StreamClosedError: if the response was closed.
        """
        if chunk_size is not None:
            check_byte_count(chunk_size, "chunk_size")
        return _BodyIterator(self, chunk_size)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _BodyIterator(self, None)

    async def aread(self) -> bytes:
        """Read and return the whole body (also kept as :attr:`content`).

        If it is cancelled (or times out), calling it again goes on where it stopped.
        """
        if self._content is None:
            parts = self._read_so_far
            if not parts:
                first = await self._receive(READ_ALL, READ_ALL)
                if self._exchange.drained:  # the usual small body, whole: no second call
                    self._content = first
                    return first
                parts.append(first)
            while parts[-1]:
                parts.append(await self._receive(READ_ALL, READ_ALL))
            self._content = parts[0] if len(parts) <= 2 else b"".join(parts)  # [x, b""]: no copy
            parts.clear()
        return self._content

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return up to ``max_bytes`` of the body as soon as any has arrived; ``b""`` at the end.

        Only what is returned is taken from the stream's buffer, so reading a
        large body in fixed pieces keeps the flow-control window (and memory) bounded.

        Raises:
            ValueError: ``max_bytes`` is not a positive int.
            RemoteProtocolError, ReadTimeout, StreamClosedError: as :meth:`aiter_bytes`.
        """
        check_byte_count(max_bytes, "max_bytes")
        return await self._receive(max_bytes, 1)

    async def _receive(self, max_bytes: int, min_bytes: int) -> bytes:
        if self._closed:
            raise StreamClosedError("the response is closed")
        return await self._exchange.receive(max_bytes, self._read_timeout, min_bytes=min_bytes)

    async def aclose(self) -> None:
        """Release the stream.  An unread rest of the body is discarded
        (see "Abandoned streams" in the README)."""
        self.close()

    def close(self) -> None:
        """Like :meth:`aclose`, without awaiting: for synchronous cleanup code
        (e.g. a response handed to a library whose ``close()`` is synchronous)."""
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
            self.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status} {self.http_version}]>"


class _BodyIterator:
    """Async iterator over a response body (a class, not an async generator, so
    that breaking out of ``async for`` leaves nothing to finalise)."""

    __slots__ = ("_chunk_size", "_filled", "_parts", "_response")

    def __init__(self, response: Response, chunk_size: int | None) -> None:
        self._response = response
        self._chunk_size = chunk_size
        self._parts: list[bytes] = []  # the piece being filled, kept across interruptions
        self._filled = 0

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        size = self._chunk_size
        if size is None:
            chunk = await self._response._receive(READ_ALL, 1)
        else:
            chunk = await self._next_piece(size)
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def _next_piece(self, size: int) -> bytes:
        """The next ``size`` bytes, or fewer at the end of the body.  The wait for
        a piece is capped by the window, so it may take several receives."""
        parts = self._parts
        while self._filled < size:
            missing = size - self._filled
            try:
                part = await self._response._receive(missing, missing)
            except CRTError as exc:
                if not parts or isinstance(exc, (ReadTimeout, StreamClosedError)):
                    raise
                break  # the stream failed: hand over what came first; the next call raises
            if not part:
                break
            parts.append(part)
            self._filled += len(part)
        piece = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        self._filled = 0
        return piece
