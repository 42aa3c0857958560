"""Awaiting ``concurrent.futures.Future`` objects from asyncio or trio.

A done-callback and one thread-safe wake-up per await: no thread, no polling.
The future is never cancelled on the caller's behalf (the CRT owns its futures
and completes each one itself); a cancelled awaiter *detaches* instead, and a
result that arrives later is handed to ``on_abandon``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Generator
from typing import Any, Callable, Generic, Optional, TypeVar

import anyio.lowlevel

from ._loop import current_loop

__all__ = ["AwaitableFuture", "wait_future"]

T = TypeVar("T")
OnAbandon = Optional[Callable[[T], object]]

logger = logging.getLogger("crt_async")

_PENDING, _DONE, _ABANDONED = range(3)


def _hand_to_abandon(future: concurrent.futures.Future[T], on_abandon: OnAbandon[T]) -> None:
    """Give a successful late result to ``on_abandon``; drop failures.  Never raises."""
    if on_abandon is None or future.cancelled() or future.exception() is not None:
        return
    try:
        on_abandon(future.result())
    except Exception:
        logger.exception("crt_async: on_abandon callback %r failed", on_abandon)


class _Handoff(Generic[T]):
    """Delivers a future's outcome to exactly one place: the awaiter or ``on_abandon``.

    ``on_done`` runs on whichever thread completes the future (a CRT thread);
    ``abandon`` runs on the loop when the awaiter is cancelled.  The lock makes
    the two race-free: whichever comes second sees the other's state.
    """

    __slots__ = ("_lock", "_on_abandon", "_state", "wakeup")

    def __init__(self, on_abandon: OnAbandon[T]) -> None:
        self._lock = threading.Lock()
        self._state = _PENDING
        self._on_abandon = on_abandon
        self.wakeup = current_loop().new_wakeup()

    def on_done(self, future: concurrent.futures.Future[T]) -> None:
        with self._lock:
            pending = self._state == _PENDING
            if pending:
                self._state = _DONE
        if pending:
            self.wakeup.set_threadsafe()
        else:
            _hand_to_abandon(future, self._on_abandon)

    def abandon(self, future: concurrent.futures.Future[T]) -> None:
        with self._lock:
            already_done = self._state == _DONE
            self._state = _ABANDONED
        if already_done:
            _hand_to_abandon(future, self._on_abandon)


def _check_future(future: object) -> None:
    if not isinstance(future, concurrent.futures.Future):
        raise TypeError(
            f"expected a concurrent.futures.Future, got {type(future).__module__}."
            f"{type(future).__qualname__}"
        )


async def wait_future(
    future: concurrent.futures.Future[T],
    *,
    on_abandon: OnAbandon[T] = None,
    cancel: bool = False,
) -> T:
    """Wait for a ``concurrent.futures.Future`` without blocking the event loop.

    Works under asyncio and trio (through anyio).  Completion is observed with a
    done-callback that schedules one wake-up on the awaiting loop: no thread is
    used.  The call is always a cancellation point, even for a future that is
    already done.

    If the awaiting task is cancelled, the future is left alone (the CRT owns it
    and will complete it itself).  When it later completes successfully, its
    result is passed to ``on_abandon``, so that e.g. a connection that arrives
    after its caller gave up can be closed.  A late exception is dropped.  Every
    result reaches exactly one place: the awaiter or ``on_abandon``.
    ``on_abandon`` may run on any thread and must not block; an exception it
    raises is logged, never propagated into the thread that completed the future.

    Args:
        future: the future to wait for.
        on_abandon: called with the result if it arrives after the awaiter was
            cancelled.
        cancel: also cancel the future when the awaiter is cancelled.  Only for
            futures the caller owns and that are safe to cancel (e.g. a pending
            ``ThreadPoolExecutor`` job) -- never for a CRT future.  If the future
            cannot be cancelled any more, it is abandoned as above.

    Returns:
        The future's result.

    Raises:
        TypeError: if ``future`` is not a ``concurrent.futures.Future``.
        concurrent.futures.CancelledError: if someone else cancelled the future.
        Exception: whatever exception the future holds, unchanged.

    Example::

        connection = await wait_future(
            HttpClientConnection.new(host, port, tls_connection_options=tls),
            on_abandon=lambda late: late.close(),
        )
    """
    _check_future(future)
    if future.done():
        try:
            await anyio.lowlevel.checkpoint()
        except BaseException:
            _hand_to_abandon(future, on_abandon)
            raise
        return future.result()

    handoff: _Handoff[T] = _Handoff(on_abandon)
    future.add_done_callback(handoff.on_done)
    try:
        await handoff.wakeup.wait()
    except BaseException:
        if not (cancel and future.cancel()):
            handoff.abandon(future)
        raise
    return future.result()


class AwaitableFuture(Generic[T]):
    """An awaitable view of a ``concurrent.futures.Future``.

    ``await AwaitableFuture(f)`` and ``await AwaitableFuture(f).wait()`` both
    return the result, with the semantics of :func:`wait_future`.

    Args:
        future: the future to wrap.
        on_abandon: see :func:`wait_future`.

    Raises:
        TypeError: if ``future`` is not a ``concurrent.futures.Future``.

    Example::

        connection = await AwaitableFuture(HttpClientConnection.new(host, port))
    """

    __slots__ = ("_future", "_on_abandon")

    def __init__(
        self, future: concurrent.futures.Future[T], *, on_abandon: OnAbandon[T] = None
    ) -> None:
        _check_future(future)
        self._future = future
        self._on_abandon = on_abandon

    @property
    def future(self) -> concurrent.futures.Future[T]:
        """The wrapped future."""
        return self._future

    def done(self) -> bool:
        """Return True if the wrapped future has completed (or was cancelled)."""
        return self._future.done()

    async def wait(self) -> T:
        """Wait for the result; see :func:`wait_future`."""
        return await wait_future(self._future, on_abandon=self._on_abandon)

    def __await__(self) -> Generator[Any, None, T]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"<AwaitableFuture {self._future!r}>"
