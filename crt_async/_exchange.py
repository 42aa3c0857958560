"""The receiving half of one HTTP exchange: response head and body, with flow control.

CRT threads call the ``on_*`` methods; they only copy data, update state under
a lock and schedule at most one wake-up per parked reader (so a burst of body
chunks costs one loop callback, not one per chunk), and only once the buffer
holds the reader's ``min_bytes`` (a bulk reader is woken per piece, not per
network read).  One task at a time reads the body with :meth:`Exchange.receive`,
which hands over everything buffered (up to ``max_bytes``) and re-opens the
flow-control window by what it took, a quarter window at a time.

Flow control works like TCP receive-window auto-tuning: every stream starts
with the connection's initial window; each time the reader drains a whole
window and then has to wait for more, the window doubles, up to
``max_window``.  A reader that stops reading stops the peer once the window is
used up, so buffered data never exceeds the window plus one frame.

This module does not import awscrt: the CRT is reached only through the
``update_window`` callable, so the state logic can be tested without it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, TypeVar

import anyio

from ._exceptions import ReadTimeout, RemoteProtocolError, translate_crt_error
from ._headers import Headers
from ._loop import LoopHandle, ThreadWakeup, Waiter, Wakeup, current_loop
from ._thread_state import keep_thread_state

__all__ = ["Exchange", "ResponseHead"]

W = TypeVar("W", bound=Waiter)


def _no_window(increment: int) -> None:
    """``update_window`` of an exchange whose stream is not open yet."""


class ResponseHead:
    """Status line and headers of a response.

    Attributes:
        status: the status code, e.g. 200.
        headers: the response headers.
        http_version: ``"HTTP/2"`` or ``"HTTP/1.1"``.
    """

    __slots__ = ("headers", "http_version", "status")

    def __init__(self, status: int, headers: Headers, http_version: str) -> None:
        self.status = status
        self.headers = headers
        self.http_version = http_version

    def __repr__(self) -> str:
        return f"<ResponseHead [{self.status} {self.http_version}]>"


class Exchange:
    """Thread-safe receiving state of one HTTP stream.

    Args:
        http_version: ``"HTTP/2"`` or ``"HTTP/1.1"``, reported in the head.
        initial_window: the window the stream starts with (as configured on
            the connection).
        max_window: the largest the window may grow to.
        on_abandon_incomplete: called once if the exchange is abandoned before
            the response ended (e.g. to close an HTTP/1.1 connection).
        blocking: read with the ``*_sync`` methods from threads, without an
            event loop (then it may be created outside one).

    Attributes:
        update_window: re-opens the stream's flow-control window by n bytes;
            set by whoever opens the stream, before it is activated.  Called on
            the loop, or on a CRT thread once the exchange is abandoned.
    """

    __slots__ = (
        "_abandoned",
        "_chunks",
        "_consumed_since_growth",
        "_credit",
        "_ended",
        "_error",
        "_head",
        "_head_waiters",
        "_lock",
        "_loop",
        "_max_window",
        "_on_abandon_incomplete",
        "_reader",
        "_wake_at",
        "_window",
        "buffered",
        "http_version",
        "request_sent",
        "request_taken",
        "update_window",
    )

    def __init__(
        self,
        http_version: str,
        *,
        initial_window: int,
        max_window: int,
        on_abandon_incomplete: Callable[[], None] | None = None,
        blocking: bool = False,
    ) -> None:
        self.http_version = http_version
        self.update_window: Callable[[int], None] = _no_window
        self._window = initial_window
        self._max_window = max(max_window, initial_window)
        self._on_abandon_incomplete = on_abandon_incomplete
        self._loop: LoopHandle | None = None if blocking else current_loop()
        self._lock = threading.Lock()
        self._head: ResponseHead | None = None
        self._chunks: deque[bytes] = deque()
        self.buffered = 0
        self._ended = False
        self._error: BaseException | None = None
        self._abandoned = False
        self._head_waiters: list[Waiter] = []
        self._reader: Waiter | None = None
        self._wake_at = 1  # buffered bytes at which the parked reader is woken
        self.request_sent = False  # the whole request (body included) has gone to the CRT
        self.request_taken = 0  # request body bytes the CRT has read (one writing thread)
        # Loop side only:
        self._credit = 0  # bytes consumed but not yet returned to the window
        self._consumed_since_growth = 0

    # -- CRT thread side: never raise, never block -------------------------------

    def on_response(self, status_code: int, headers: list[tuple[str, str]], **_: object) -> None:
        """``on_response`` callback of the CRT stream."""
        keep_thread_state()  # the stream's first callback: its thread's later ones are cheaper
        fields = Headers([pair for pair in headers if not pair[0].startswith(":")])
        head = ResponseHead(status_code, fields, self.http_version)
        with self._lock:
            self._head = head
            waiters = self._take_waiters()
        for waiter in waiters:
            waiter.set_threadsafe()

    def on_body(self, chunk: bytes, **_: object) -> None:
        """``on_body`` callback of the CRT stream: copy the chunk, wake the reader."""
        data = bytes(chunk)  # awscrt 0.38 passes bytes (no copy); a buffer view would need one
        with self._lock:
            if self._abandoned:
                drained = True
            else:
                drained = False
                self._chunks.append(data)
                self.buffered += len(data)
                if self.buffered >= self._wake_at:
                    reader = self._reader
                    self._reader = None
                else:
                    reader = None
        if drained:
            self._safe_update_window(len(data))
        elif reader is not None:
            reader.set_threadsafe()

    def on_request_sent(self) -> None:
        """The CRT has taken the whole request body (any thread)."""
        with self._lock:
            self.request_sent = True
            waiters = self._head_waiters
            self._head_waiters = []
        for waiter in waiters:
            waiter.set_threadsafe()

    def on_end(self) -> None:
        """The peer finished the response body."""
        self._finish(None)

    def on_error(self, error: BaseException) -> None:
        """The stream failed; a CRT error is translated, keeping it as ``__cause__``."""
        self._finish(translate_crt_error(error))

    def _finish(self, error: BaseException | None) -> None:
        with self._lock:
            if self._ended or self._error is not None:
                return
            if error is None:
                self._ended = True
            else:
                self._error = error
            waiters = self._take_waiters()
        # The window is moot now.  Dropping the stream's bound method breaks the
        # cycle stream -> on_body -> exchange -> stream, so refcounting frees both
        # (a cycle per request would leave them to the cyclic GC, at a real cost).
        self.update_window = _no_window
        for waiter in waiters:
            waiter.set_threadsafe()

    def _take_waiters(self) -> list[Waiter]:
        waiters = self._head_waiters
        self._head_waiters = []
        if self._reader is not None:
            waiters.append(self._reader)
            self._reader = None
        return waiters

    def _safe_update_window(self, increment: int) -> None:
        try:
            self.update_window(increment)
        except Exception:  # the stream has completed: nothing left to open
            pass

    # -- loop side ---------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once the response ended or failed."""
        return self._ended or self._error is not None

    @property
    def drained(self) -> bool:
        """True once the response ended cleanly and every byte has been taken."""
        return self._ended and not self._chunks

    def _head_or_park(
        self, new_waiter: Callable[[], W], *, until_request_sent: bool = False
    ) -> ResponseHead | W | None:
        """The head if it is there; else raise the stream's failure; else None if
        ``until_request_sent`` and the request has been sent; else park a waiter."""
        with self._lock:
            if self._head is not None:
                return self._head
            if self._error is not None:
                raise self._error
            if self._ended:
                raise RemoteProtocolError("the stream ended without a response")
            if until_request_sent and self.request_sent:
                return None
            waiter = new_waiter()
            self._head_waiters.append(waiter)
            return waiter

    def _unpark_head(self, waiter: Waiter) -> None:
        with self._lock:
            if waiter in self._head_waiters:
                self._head_waiters.remove(waiter)

    async def wait_head(self, timeout: float | None = None) -> ResponseHead:
        """Wait for the response head; raise if the stream failed before it.

        Raises:
            ReadTimeout: not within ``timeout`` seconds.
        """
        head = await self._wait_for_head(until_request_sent=False, timeout=timeout)
        assert head is not None
        return head

    async def wait_head_or_request_sent(self) -> ResponseHead | None:
        """Like :meth:`wait_head`, but return None as soon as the whole request has
        been sent (:meth:`on_request_sent`) while no head has arrived yet."""
        return await self._wait_for_head(until_request_sent=True, timeout=None)

    async def _wait_for_head(
        self, *, until_request_sent: bool, timeout: float | None
    ) -> ResponseHead | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = self._head_or_park(self._new_wakeup, until_request_sent=until_request_sent)
            if result is None or isinstance(result, ResponseHead):
                return result
            if not await _woken(result, deadline, self._unpark_head):
                raise ReadTimeout("no response head in time")

    def wait_head_sync(
        self, timeout: float | None, *, until_request_sent: bool = False
    ) -> ResponseHead | None:
        """Block the calling thread until the response head arrives (no event loop);
        with ``until_request_sent``, return None once the whole request is sent.

        Raises:
            ReadTimeout: not within ``timeout`` seconds.
        """
        while True:
            result = self._head_or_park(ThreadWakeup, until_request_sent=until_request_sent)
            if result is None or isinstance(result, ResponseHead):
                return result
            if not result.wait(timeout):
                self._unpark_head(result)
                raise ReadTimeout("no response head in time")

    def _data_or_park(self, max_bytes: int, wake_at: int, new_waiter: Callable[[], W]) -> bytes | W:
        """Buffered data once there are ``wake_at`` bytes or the body is over (``b""``
        at the end); else raise the failure, or park a reader to be woken then."""
        with self._lock:
            if self._chunks and (self.buffered >= wake_at or self.finished):
                return self._take(max_bytes)
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            if self._reader is not None:
                raise anyio.BusyResourceError("receiving from")
            waiter = new_waiter()
            self._reader = waiter
            self._wake_at = wake_at
        self._before_park()
        return waiter

    def _unpark_reader(self, waiter: Waiter) -> None:
        with self._lock:
            if self._reader is waiter:
                self._reader = None

    async def receive(
        self, max_bytes: int, timeout: float | None = None, *, min_bytes: int = 1
    ) -> bytes:
        """Return the next body bytes (at most ``max_bytes``), or ``b""`` at the end.

        With ``min_bytes``, wait until that many are buffered (or the body is
        over), so that a bulk reader is woken once per large piece rather than
        once per network read.  The wait is capped at half the flow-control
        window, which the peer can always fill; the caller loops for the rest.
        Raises the stream's error once the data that arrived before it is consumed.

        Raises:
            ReadTimeout: nothing arrived within ``timeout`` seconds.  If some,
                but fewer than ``min_bytes``, arrived, they are returned instead.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        wake_at = max(1, min(min_bytes, max_bytes, self._window // 2))
        while True:
            result = self._data_or_park(max_bytes, wake_at, self._new_wakeup)
            if isinstance(result, bytes):
                break
            if not await _woken(result, deadline, self._unpark_reader):
                if not self.buffered:
                    raise ReadTimeout("no response data in time")
                wake_at = 1  # data is arriving, just slowly: hand over what there is
        self._consumed(len(result))
        return result

    def receive_sync(self, max_bytes: int, timeout: float | None) -> bytes:
        """Like :meth:`receive`, blocking the calling thread (no event loop).

        Raises:
            ReadTimeout: nothing arrived within ``timeout`` seconds.
        """
        while True:
            result = self._data_or_park(max_bytes, 1, ThreadWakeup)
            if isinstance(result, bytes):
                break
            if not result.wait(timeout):
                self._unpark_reader(result)
                raise ReadTimeout("no response data in time")
        self._consumed(len(result))
        return result

    def _new_wakeup(self) -> Wakeup:
        if self._loop is None:
            raise RuntimeError("this exchange is read without an event loop: use *_sync methods")
        return self._loop.new_wakeup()

    def _take(self, max_bytes: int) -> bytes:
        """Pop up to ``max_bytes`` from the buffer (lock held)."""
        chunks = self._chunks
        if self.buffered <= max_bytes:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
        else:
            parts = []
            needed = max_bytes
            while needed:
                chunk = chunks[0]
                if len(chunk) <= needed:
                    parts.append(chunks.popleft())
                    needed -= len(chunk)
                else:
                    parts.append(chunk[:needed])
                    chunks[0] = chunk[needed:]
                    needed = 0
            data = b"".join(parts)
        self.buffered -= len(data)
        return data

    def _consumed(self, size: int) -> None:
        self._credit += size
        self._consumed_since_growth += size
        if self._credit >= self._window // 4:
            self._flush_credit()

    def _before_park(self) -> None:
        """The reader drained the buffer and must wait: grow the window if the reader
        has kept up with a whole window, giving back the growth and every credit."""
        if self._consumed_since_growth >= self._window and self._window < self._max_window:
            grown = min(self._window * 2, self._max_window)
            self._credit += grown - self._window
            self._window = grown
            self._consumed_since_growth = 0
            self._flush_credit()

    def _flush_credit(self) -> None:
        credit = self._credit
        self._credit = 0
        if not self.finished:
            self._safe_update_window(credit)

    @property
    def window(self) -> int:
        """The current flow-control window target in bytes."""
        return self._window

    def abandon(self) -> None:
        """Stop delivering: drop buffered data and let the rest of the body drain.

        From now on every arriving chunk is discarded and its window re-opened at
        once, so the peer can finish the stream.  If the response had not ended,
        ``on_abandon_incomplete`` is called (once).
        """
        with self._lock:
            if self._abandoned:
                return
            self._abandoned = True
            dropped = self.buffered
            self._chunks.clear()
            self.buffered = 0
            incomplete = not self.finished
        if not incomplete:
            return
        self._credit += dropped
        self._flush_credit()
        if self._on_abandon_incomplete is not None:
            self._on_abandon_incomplete()


async def _woken(wakeup: Wakeup, deadline: float | None, unpark: Callable[[Waiter], None]) -> bool:
    """Wait for ``wakeup`` until ``deadline`` (``time.monotonic()``); False if it
    passed first.  A waiter that stops waiting (deadline, cancellation) is unparked."""
    try:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        woken = await wakeup.wait(remaining)
    except BaseException:
        unpark(wakeup)
        raise
    if not woken:
        unpark(wakeup)
    return woken
