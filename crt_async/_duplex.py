"""``DuplexStream``: an HTTP/2 exchange that sends and receives at the same time."""

from __future__ import annotations

import concurrent.futures
from typing import Callable, Optional

import anyio
import anyio.abc
import anyio.lowlevel

from ._checks import check_byte_count
from ._exceptions import StreamClosedError, WriteTimeout, translate_crt_error
from ._exchange import Exchange, ResponseHead
from ._futures import wait_future
from ._timeouts import NO_TIMEOUT, Timeout, fail_after

__all__ = ["DuplexStream", "WriteData"]

WriteData = Callable[[Optional[bytes], bool], "concurrent.futures.Future[None]"]
"""Queues ``(data, end_stream)`` on the request body; the future completes when taken."""

DEFAULT_RECEIVE_SIZE = 65536


async def send_body_data(write_data: WriteData, data: bytes | None, *, end_stream: bool) -> None:
    """Write request body data and wait until the CRT has taken it.

    If the waiting task is cancelled the write is not undone (the CRT owns it):
    it still goes out, in order.
    """
    try:
        await wait_future(write_data(data, end_stream))
    except Exception as exc:
        raise translate_crt_error(exc)  # noqa: B904  # the cause is set by the translation


class DuplexStream(anyio.abc.ByteStream):
    """A bidirectional HTTP/2 stream: request body out, response body in, at once.

    It is an ``anyio.abc.ByteStream``, so anyio's ``BufferedByteReceiveStream``,
    ``TextStream`` and task groups compose with it.  Obtain it from
    ``Connection.duplex()`` or ``Client.duplex()``.

    * :meth:`send` queues the bytes on the stream and returns; one send is
      in flight at a time, so the next one first waits until the CRT has
      taken the previous (backpressure, with one message of buffering).
    * :meth:`send_eof` ends the request body; sending afterwards raises
      :class:`~crt_async.StreamClosedError` (a subclass of anyio's
      ``ClosedResourceError``).
    * :meth:`receive` returns the bytes that have arrived (up to
      ``max_bytes``) and raises ``anyio.EndOfStream`` at the end of the response.
    * :meth:`wait_response` returns the response head as soon as it arrives.
    * :meth:`aclose` ends our side and stops receiving; the rest of the
      response is drained in the background (see "Abandoned streams").

    Example::

        async with connection.duplex("POST", "/echo") as stream:
            await stream.send(b"ping")
            print(await stream.receive())
            await stream.send_eof()
    """

    def __init__(
        self,
        exchange: Exchange,
        write_data: WriteData,
        keepalive: object = None,
        *,
        timeout: Timeout = NO_TIMEOUT,
    ) -> None:
        self._exchange = exchange
        self._write_data = write_data
        self._keepalive = keepalive  # the CRT stream
        self._timeout = timeout
        self._eof_sent = False
        self._closed = False
        self._write_in_flight: concurrent.futures.Future[None] | None = None

    async def send(self, item: bytes) -> None:
        """Queue request body bytes on the stream (they are copied) and return.

        One send is in flight at a time: ``send()`` first waits until the CRT
        has taken the previous one, so a peer that stops reading stops the
        sender with at most one message buffered.  A failed write is raised
        by the next ``send()`` or :meth:`send_eof`, and fails the response.

        Raises:
            StreamClosedError: after :meth:`send_eof` or :meth:`aclose`.
            TypeError: ``item`` is not bytes-like.
            RemoteProtocolError: the stream failed (e.g. reset by the peer).
            WriteTimeout: the CRT did not take the previous data within the
                write timeout.
        """
        if not isinstance(item, (bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes bytes, got {type(item).__name__}")
        self._check_sending("send()")
        if not await self._previous_write_taken():
            await anyio.lowlevel.checkpoint()
        if item:
            self._check_sending("send()")  # aclose() may have run meanwhile
            self._write_in_flight = self._queue(bytes(item), end_stream=False)

    async def send_eof(self) -> None:
        """End the request body (HTTP/2 END_STREAM) once the CRT has taken
        everything sent before.  Receiving continues."""
        self._check_sending("send_eof()")
        self._eof_sent = True
        await self._previous_write_taken()
        with fail_after(
            self._timeout.write, WriteTimeout, "the CRT did not take END_STREAM in time"
        ):
            await send_body_data(self._write_data, None, end_stream=True)

    async def _previous_write_taken(self) -> bool:
        """Wait until the write in flight (if any) is taken; raise its failure.
        Returns whether it had to wait (an await that was a checkpoint)."""
        future, self._write_in_flight = self._write_in_flight, None
        if future is None:
            return False
        if future.done():
            error = future.exception()
            if error is not None:
                raise translate_crt_error(error)
            return False
        try:
            with fail_after(
                self._timeout.write, WriteTimeout, "the CRT did not take the data in time"
            ):
                await wait_future(future)
        except (WriteTimeout, anyio.get_cancelled_exc_class()):
            self._write_in_flight = future  # still in flight: the next send waits for it
            raise
        except Exception as exc:
            raise translate_crt_error(exc)  # noqa: B904  # the cause is set by the translation
        return True

    def _queue(self, data: bytes, *, end_stream: bool) -> concurrent.futures.Future[None]:
        try:
            return self._write_data(data, end_stream)
        except Exception as exc:
            raise translate_crt_error(exc)  # noqa: B904  # the cause is set by the translation

    def _check_sending(self, what: str) -> None:
        if self._closed:
            raise StreamClosedError(f"{what} on a closed duplex stream")
        if self._eof_sent:
            raise StreamClosedError(f"{what} after send_eof(): the request body has ended")

    async def receive(self, max_bytes: int = DEFAULT_RECEIVE_SIZE) -> bytes:
        """Return the response bytes that have arrived, at most ``max_bytes``.

        Raises:
            ValueError: ``max_bytes`` is not a positive int.
            anyio.EndOfStream: the response body has ended.
            anyio.ClosedResourceError: the stream was closed.
            RemoteProtocolError: the stream failed before the body ended.
            ReadTimeout: nothing arrived within the read timeout.
        """
        check_byte_count(max_bytes, "max_bytes")
        if self._closed:
            raise anyio.ClosedResourceError
        data = await self._exchange.receive(max_bytes, self._timeout.read)
        if not data:
            raise anyio.EndOfStream
        return data

    async def wait_response(self) -> ResponseHead:
        """Wait for the response head (status and headers) and return it.

        Raises:
            RemoteProtocolError: the stream failed before the head arrived.
            ReadTimeout: the head did not arrive within the read timeout.
        """
        return await self._exchange.wait_head(self._timeout.read)

    async def aclose(self) -> None:
        """End our side (if not ended yet) and stop receiving; never blocks."""
        if self._closed:
            return
        self._closed = True
        if not self._eof_sent:
            self._eof_sent = True
            try:
                self._write_data(None, True)
            except Exception:  # the stream has already completed
                pass
        self._exchange.abandon()
        await anyio.lowlevel.checkpoint()
