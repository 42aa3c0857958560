"""Thread-safe wake-ups: the only way code on a CRT thread reaches an event loop.

A task captures its loop once (:func:`current_loop`) and creates a
:class:`Wakeup` before it parks.  Any thread may then call
``Wakeup.set_threadsafe()``, which hands the wake-up to that loop with the
backend's non-blocking call (``loop.call_soon_threadsafe`` on asyncio,
``TrioToken.run_sync_soon`` on trio) and never raises: a wake-up for a loop that
has already closed is dropped.

Each loop has one :class:`LoopHandle`, which coalesces a burst of calls from
foreign threads (many streams completing at once) into a single loop callback:
each backend call wakes the loop through a pipe, a system call that otherwise
dominates the cost of small requests.  Wake-ups are native to the backend (an
asyncio future, or trio's task rescheduling), created and resolved on the loop.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Awaitable
from typing import Any, Callable, Protocol

import anyio.lowlevel

Schedule = Callable[[Callable[[], object]], object]

logger = logging.getLogger("crt_async")


class Waiter(Protocol):
    """Anything a CRT callback may wake."""

    def set_threadsafe(self) -> None:
        """Wake the waiter from any thread; never raises, never blocks."""


class Wakeup(Waiter, Protocol):
    """A one-shot event for one task, set from any thread (see :meth:`LoopHandle.new_wakeup`)."""

    def is_set(self) -> bool:
        """True once the wake-up has been delivered on the loop."""

    def wait(self, timeout: float | None = None) -> Awaitable[bool]:
        """Wait until the wake-up is delivered (True) or ``timeout`` seconds have
        passed (False); a cancellation point.  The timer is the loop's own: no
        cancel scope per wait."""


class LoopHandle:
    """One event loop, as seen from other threads: run callbacks on it, wake its tasks."""

    __slots__ = (
        "__weakref__",
        "_asyncio_loop",
        "_lock",
        "_native_schedule",
        "_pending",
        "_trio_wakeup",
    )

    def __init__(self, native_token: Any) -> None:
        call_soon_threadsafe = getattr(native_token, "call_soon_threadsafe", None)
        if call_soon_threadsafe is not None:  # asyncio: the token is the loop itself
            self._asyncio_loop: Any = weakref.ref(native_token)
            native_schedule: Schedule = call_soon_threadsafe
        else:  # trio: a TrioToken
            from ._trio_wakeup import TrioWakeup  # trio is imported only when trio runs

            self._asyncio_loop = None
            self._trio_wakeup = TrioWakeup
            native_schedule = native_token.run_sync_soon
        # Weak references: a handle must not keep a finished loop alive.
        self._native_schedule = weakref.WeakMethod(native_schedule)
        self._lock = threading.Lock()
        self._pending: list[Callable[[], object]] = []

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` soon on the loop; any thread.  Raises if the loop is gone."""
        with self._lock:
            self._pending.append(callback)
            ring = len(self._pending) == 1
        if not ring:
            return  # a drain is already scheduled and will run this one too
        schedule = self._native_schedule()
        try:
            if schedule is None:
                raise RuntimeError("the event loop is gone")
            schedule(self._drain)
        except BaseException:
            with self._lock:
                self._pending.clear()
            raise

    def _drain(self) -> None:
        with self._lock:
            batch = self._pending
            self._pending = []
        for callback in batch:
            try:
                callback()
            except Exception:  # one faulty callback must not cost the others their turn
                logger.exception("crt_async: callback %r failed on the event loop", callback)

    def new_wakeup(self) -> Wakeup:
        """A wake-up for the calling task (call it on this loop)."""
        if self._asyncio_loop is not None:
            return _AsyncioWakeup(self._asyncio_loop().create_future(), self.call_soon)
        return self._trio_wakeup(self.call_soon)


class _AsyncioWakeup:
    """A wake-up backed by an asyncio future of the loop."""

    __slots__ = ("_call_soon", "_future")

    def __init__(self, future: Any, call_soon: Schedule) -> None:
        self._future = future
        self._call_soon = call_soon

    def set_threadsafe(self) -> None:
        try:
            self._call_soon(self._set)
        except Exception:  # the loop has closed: nobody is left to wake
            pass

    def _set(self) -> None:
        if not self._future.done():  # a cancelled waiter cancelled the future
            self._future.set_result(True)

    def _expire(self) -> None:
        if not self._future.done():
            self._future.set_result(False)

    def is_set(self) -> bool:
        future = self._future
        return bool(future.done() and not future.cancelled() and future.result())

    def wait(self, timeout: float | None = None) -> Awaitable[bool]:
        if timeout is None:
            future: Awaitable[bool] = self._future  # awaited directly: no coroutine per wait
            return future
        return self._wait_at_most(timeout)

    async def _wait_at_most(self, timeout: float) -> bool:
        timer = self._future.get_loop().call_later(timeout, self._expire)
        try:
            woken: bool = await self._future
        finally:
            timer.cancel()
        return woken


_handles: weakref.WeakKeyDictionary[object, LoopHandle] = weakref.WeakKeyDictionary()
_handles_lock = threading.Lock()


def current_loop() -> LoopHandle:
    """The :class:`LoopHandle` of the running event loop.

    Raises:
        anyio.NoEventLoopError: if called outside a running event loop.
    """
    native = anyio.lowlevel.current_token().native_token
    handle = _handles.get(native)
    if handle is None:
        with _handles_lock:
            handle = _handles.setdefault(native, LoopHandle(native))
    return handle


class ThreadWakeup:
    """The blocking counterpart of :class:`Wakeup`, for a thread that waits without a loop."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set_threadsafe(self) -> None:
        """Wake the waiting thread; never raises, never blocks."""
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        """Block until woken (True) or until ``timeout`` seconds pass (False)."""
        return self._event.wait(timeout)
