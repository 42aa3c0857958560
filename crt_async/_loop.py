"""Thread-safe wake-ups: the only way code on a CRT thread reaches an event loop.

A :class:`Wakeup` is created by a task, on its event loop, before it parks.  Any
thread may then call :meth:`Wakeup.set_threadsafe`, which schedules the wake-up on
that loop with the backend's non-blocking call (``loop.call_soon_threadsafe`` on
asyncio, ``TrioToken.run_sync_soon`` on trio) and never raises: a wake-up for a
loop that has already closed is dropped.
"""

from __future__ import annotations

import threading
from typing import Callable, Union

import anyio
import anyio.lowlevel

Schedule = Callable[[Callable[[], object]], object]


def current_scheduler() -> Schedule:
    """Return a function that runs a callable soon on the current event loop.

    The returned function may be called from any thread, never blocks, and raises
    only if the loop is gone (callers that run on CRT threads go through
    :meth:`Wakeup.set_threadsafe`, which swallows that).

    Raises:
        anyio.NoEventLoopError: if called outside a running event loop.
    """
    native = anyio.lowlevel.current_token().native_token
    call_soon_threadsafe = getattr(native, "call_soon_threadsafe", None)
    if call_soon_threadsafe is not None:  # asyncio: the token is the loop itself
        schedule: Schedule = call_soon_threadsafe
        return schedule
    run_sync_soon: Schedule = native.run_sync_soon  # type: ignore[attr-defined]  # trio.lowlevel.TrioToken
    return run_sync_soon


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
