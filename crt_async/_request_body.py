"""Request bodies: what callers may pass as ``content``, and how it reaches the CRT.

* ``bytes`` and binary files are handed to the CRT whole: it reads them on its
  own thread, a piece at a time.
* Iterables and async iterables are written piece by piece on HTTP/2 (one
  write in flight at a time, so a fast producer cannot grow memory).
* On HTTP/1.1 the CRT pulls the body from its own thread, which must never wait
  for the event loop, and it needs a ``content-length``: iterables (and files
  whose size is unknown) are first spooled to a ``SpooledTemporaryFile`` that
  keeps up to ``SPOOL_MEMORY_LIMIT`` bytes in memory and the rest on disk.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import IO, BinaryIO, Protocol, Union, cast

import anyio

__all__ = [
    "BodyReader",
    "Content",
    "PreparedBody",
    "check_content",
    "prepare_body",
    "prepare_body_sync",
]

Content = Union[bytes, bytearray, memoryview, IO[bytes], Iterable[bytes], AsyncIterable[bytes]]
"""A request body: bytes, a binary file, or an (async) iterable of bytes."""

SPOOL_MEMORY_LIMIT = 1024 * 1024


class PreparedBody:
    """A request body ready for the CRT: either a ``stream`` the CRT reads, or
    written piece by piece on HTTP/2 (``manual_write``): from ``chunks``
    (async), from ``sync_chunks``, or by the caller (a duplex stream).
    ``owns_stream`` is True for a spool we created, which must be closed once
    the CRT is done with it."""

    __slots__ = ("chunks", "content_length", "manual_write", "owns_stream", "stream", "sync_chunks")

    def __init__(
        self,
        stream: BinaryIO | None = None,
        content_length: int | None = None,
        chunks: BodyChunks | None = None,
        owns_stream: bool = False,
        sync_chunks: Iterator[bytes] | None = None,
        manual_write: bool = False,
    ) -> None:
        self.stream = stream
        self.content_length = content_length
        self.chunks = chunks
        self.owns_stream = owns_stream
        self.sync_chunks = sync_chunks
        self.manual_write = manual_write or chunks is not None or sync_chunks is not None


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"request body chunks must be bytes, got {type(chunk).__name__}")


def _remaining_size(file: IO[bytes]) -> int | None:
    try:
        if file.seekable():
            position = file.tell()
            return file.seek(0, os.SEEK_END) - file.seek(position)
        return os.fstat(file.fileno()).st_size
    except (OSError, ValueError, AttributeError):
        return None


class BodyChunks:
    """The chunks of an (async) iterable request body, checked to be bytes.

    A class rather than an async generator, so that a body abandoned half-way
    leaves nothing of ours to finalise; :meth:`aclose` closes the caller's
    iterator (e.g. their async generator) once we stop reading it.
    """

    __slots__ = ("_async", "_iterator")

    def __init__(self, content: Iterable[bytes] | AsyncIterable[bytes]) -> None:
        self._async = isinstance(content, AsyncIterable)
        self._iterator: AsyncIterator[bytes] | Iterator[bytes] = (
            content.__aiter__() if isinstance(content, AsyncIterable) else iter(content)
        )

    def __aiter__(self) -> BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._async:
            return _as_bytes(await cast("AsyncIterator[bytes]", self._iterator).__anext__())
        try:
            return _as_bytes(next(cast("Iterator[bytes]", self._iterator)))
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Close the caller's iterator, shielded from cancellation; never raises
        for what it finds there (the body has already ended or failed)."""
        close = getattr(self._iterator, "aclose" if self._async else "close", None)
        if close is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                result = close()
                if self._async:
                    await result
            except Exception:
                pass


class RequestProgress(Protocol):
    """Where a :class:`BodyReader` reports (an ``Exchange``)."""

    request_taken: int

    def on_request_sent(self) -> None: ...


class BodyReader:
    """The file object the CRT reads a request body from, on its own thread.

    It counts the bytes taken (``progress.request_taken``) and reports the end
    of the body once (``progress.on_request_sent()``): at end of file, or when
    ``content_length`` bytes are taken (the CRT then stops reading).  Read
    errors of the underlying file propagate: they fail the request.
    """

    __slots__ = ("_ended", "_file", "_progress", "_size")

    def __init__(
        self, file: BinaryIO, content_length: int | None, progress: RequestProgress
    ) -> None:
        self._file = file
        self._size = content_length
        self._progress = progress
        self._ended = False
        if content_length == 0:
            self._end()

    def readinto(self, buffer: memoryview) -> int | None:
        readinto = getattr(self._file, "readinto", None)
        if readinto is None:
            data = self.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        count: int | None = readinto(buffer)
        if count is not None:  # None: a non-blocking file with nothing yet
            self._taken(count)
        return count

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._taken(len(data))
        return data

    def _taken(self, count: int) -> None:
        progress = self._progress
        progress.request_taken += count
        if count == 0 or (self._size is not None and progress.request_taken >= self._size):
            self._end()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def close(self) -> None:
        self._file.close()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._progress.on_request_sent()


def _new_spool() -> IO[bytes]:
    return cast(IO[bytes], tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_LIMIT))


def _spooled(spool: IO[bytes]) -> PreparedBody:
    size = spool.tell()
    spool.seek(0)
    return PreparedBody(stream=cast(BinaryIO, spool), content_length=size, owns_stream=True)


def _spool(blocks: Iterable[bytes]) -> PreparedBody:
    """Spool ``blocks``; if they fail (a bad chunk, a read error), close the spool and re-raise."""
    spool = _new_spool()
    try:
        for block in blocks:
            spool.write(block)
    except BaseException:
        spool.close()
        raise
    return _spooled(spool)


def check_content(content: object, *, blocking: bool = False) -> None:
    """Raise ``TypeError`` for a request body :func:`prepare_body` (or, with
    ``blocking``, :func:`prepare_body_sync`) would refuse; reads nothing.

    Lets a pool reject bad input before it does any I/O.  A chunk that is not
    bytes can only be found while the body is sent.
    """
    if content is None or isinstance(content, (bytes, bytearray, memoryview)):
        return
    if isinstance(content, str):
        raise TypeError("content must be bytes, not str: encode it first (e.g. text.encode())")
    if isinstance(content, io.TextIOBase):
        raise TypeError("content must be a binary file: open it in binary mode ('rb')")
    if callable(getattr(content, "read", None)):
        return
    if blocking and isinstance(content, AsyncIterable) and not isinstance(content, Iterable):
        raise TypeError("an async iterable request body needs the async API")
    if not isinstance(content, (Iterable, AsyncIterable)):
        raise TypeError(
            "content must be bytes, a binary file, or an iterable or async iterable of bytes,"
            f" got {type(content).__name__}"
        )


def _prepare_known(content: Content | None, *, http2: bool, blocking: bool) -> PreparedBody | None:
    """Prepare bytes, files and None; return None for an (async) iterable.

    Raises:
        TypeError: see :func:`check_content`.
    """
    check_content(content, blocking=blocking)
    if content is None:
        return PreparedBody()
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
        return PreparedBody(stream=io.BytesIO(data), content_length=len(data))
    if callable(getattr(content, "read", None)):
        file = cast(IO[bytes], content)
        size = _remaining_size(file)
        if size is not None or http2:
            return PreparedBody(stream=cast(BinaryIO, file), content_length=size)
        return _spool(iter(lambda: file.read(SPOOL_MEMORY_LIMIT), b""))
    return None


async def prepare_body(content: Content | None, *, http2: bool) -> PreparedBody:
    """Validate ``content`` and decide how it is sent.

    Raises:
        TypeError: ``str`` (encode it first) or any other unsupported type, or
            a chunk that is not bytes.
    """
    prepared = _prepare_known(content, http2=http2, blocking=False)
    if prepared is not None:
        return prepared
    chunks = BodyChunks(cast("Iterable[bytes] | AsyncIterable[bytes]", content))
    if http2:
        return PreparedBody(chunks=chunks)
    spool = _new_spool()
    try:
        async for chunk in chunks:
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    finally:
        await chunks.aclose()
    return _spooled(spool)


def prepare_body_sync(content: Content | None, *, http2: bool) -> PreparedBody:
    """Like :func:`prepare_body`, for a caller without an event loop.

    Raises:
        TypeError: as :func:`prepare_body`, and for an async iterable.
    """
    prepared = _prepare_known(content, http2=http2, blocking=True)
    if prepared is not None:
        return prepared
    chunks = (_as_bytes(chunk) for chunk in cast("Iterable[bytes]", content))
    if http2:
        return PreparedBody(sync_chunks=chunks)
    return _spool(chunks)
