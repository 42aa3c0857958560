"""Thread-safe wake-ups: the only way code on a CRT thread reaches an event loop.

A :class:`Wakeup` is created by a task, on its event loop, before it parks.  Any
thread may then call :meth:`Wakeup.set_threadsafe`, which schedules the wake-up on
that loop with the backend's non-blocking call (``loop.call_soon_threadsafe`` on
asyncio, ``TrioToken.run_sync_soon`` on trio) and never raises: a wake-up for a
loop that has already closed is dropped.

Calls from foreign threads go through one :class:`_Doorbell` per loop, which
coalesces a burst of them (many streams completing at once) into a single loop
callback: each backend call wakes the loop through a pipe, a system call that
otherwise dominates the cost of small requests.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Callable, Union

import anyio
import anyio.lowlevel

Schedule = Callable[[Callable[[], object]], object]

logger = logging.getLogger("crt_async")


class _Doorbell:
    """Runs callbacks handed over from any thread on one loop, one loop callback per burst."""

    __slots__ = ("__weakref__", "_lock", "_native_schedule", "_pending")

    def __init__(self, native_schedule: Schedule) -> None:
        # A weak reference: the doorbell must not keep a finished loop alive.
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


_doorbells: weakref.WeakKeyDictionary[object, _Doorbell] = weakref.WeakKeyDictionary()
_doorbells_lock = threading.Lock()


def current_scheduler() -> Schedule:
    """Return a function that runs a callable soon on the current event loop.

    The returned function may be called from any thread, never blocks, and raises
    only if the loop is gone (callers that run on CRT threads go through
    :meth:`Wakeup.set_threadsafe`, which swallows that).  Calls made close
    together share one loop callback.

    Raises:
        anyio.NoEventLoopError: if called outside a running event loop.
    """
    native = anyio.lowlevel.current_token().native_token
    doorbell = _doorbells.get(native)
    if doorbell is None:
        # asyncio: the token is the loop itself; trio: a TrioToken.
        native_schedule: Schedule = (
            getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon  # type: ignore[attr-defined]
        )
        with _doorbells_lock:
            doorbell = _doorbells.setdefault(native, _Doorbell(native_schedule))
    return doorbell.call_soon


class Wakeup:
    """A one-shot event that a foreign thread can set without touching the loop.

    Create it in the task that will wait, then hand :meth:`set_threadsafe` to the
    thread that will wake it.  Setting it more than once is harmless.
    """

    __slots__ = ("_event", "_schedule")

    def __init__(self, schedule: Schedule | None = None) -> None:
        self._event = anyio.Event()
        self._schedule = schedule if schedule is not None else current_scheduler()

    def set_threadsafe(self) -> None:
        """Wake the waiter from any thread; never raises, never blocks."""
        try:
            self._schedule(self._event.set)
        except Exception:  # the loop has closed: nobody is left to wake
            pass

    def is_set(self) -> bool:
        """Return True once the wake-up has been delivered on the loop."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Wait until the wake-up is delivered (a cancellation point)."""
        await self._event.wait()


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


Waiter = Union[Wakeup, ThreadWakeup]
"""Anything a CRT callback may wake: both have ``set_threadsafe()``."""
