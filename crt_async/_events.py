"""Awaiting ``threading.Event`` objects from asyncio or trio.

A ``threading.Event`` has no callback, so someone has to block in
``Event.wait()``.  Each distinct event being awaited gets at most one waiter
thread of our own (not anyio's worker threads, so awaiting many events never
starves ``anyio.to_thread.run_sync``), shared by every task awaiting that event,
on any event loop.  The thread blocks in ``Event.wait()``, so the wake-up after
``set()`` is immediate; it wakes up every ``_IDLE_CHECK_SECONDS`` only to see
whether anyone is still waiting, and exits once nobody is.
"""

from __future__ import annotations

import threading

import anyio.lowlevel

from ._loop import Wakeup, current_loop

__all__ = ["AwaitableEvent", "wait_event"]

_IDLE_CHECK_SECONDS = 0.25

_registry_lock = threading.Lock()
_watchers: dict[threading.Event, _EventWatcher] = {}


class _EventWatcher:
    """The one thread blocking in ``event.wait()`` for every task awaiting ``event``.

    ``waiters`` and the registry entry are only touched under ``_registry_lock``.
    """

    __slots__ = ("event", "thread", "waiters")

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.waiters: set[Wakeup] = set()
        self.thread = threading.Thread(target=self._run, name="crt_async-event-waiter", daemon=True)

    def _run(self) -> None:
        while True:
            is_set = self.event.wait(_IDLE_CHECK_SECONDS)
            with _registry_lock:
                if not is_set and self.waiters:
                    continue
                del _watchers[self.event]
                waiters = list(self.waiters)
                self.waiters.clear()
            for wakeup in waiters:
                wakeup.set_threadsafe()
            return


def _check_event(event: object) -> None:
    if not isinstance(event, threading.Event):
        raise TypeError(
            f"expected a threading.Event, got {type(event).__module__}.{type(event).__qualname__}"
        )


async def wait_event(event: threading.Event) -> bool:
    """Wait until a ``threading.Event`` is set, without blocking the event loop.

    Works under asyncio and trio.  All tasks awaiting the same event share one
    waiter thread, which exits shortly (within 0.25 s) after its last waiter has
    left.  The call is a cancellation point, even when the event is already set;
    a cancelled wait returns at once.

    Args:
        event: the event to wait for, e.g. ``ClientBootstrap.shutdown_event``.

    Returns:
        True (the event is set).

    Raises:
        TypeError: if ``event`` is not a ``threading.Event``.

    Example::

        event_loop_group = awscrt.io.EventLoopGroup(1)
        shutdown = event_loop_group.shutdown_event
        del event_loop_group
        await wait_event(shutdown)
    """
    _check_event(event)
    wakeup = current_loop().new_wakeup()
    watcher: _EventWatcher | None = None
    new_watcher = False
    with _registry_lock:
        if not event.is_set():
            watcher = _watchers.get(event)
            if watcher is None:
                watcher = _watchers[event] = _EventWatcher(event)
                new_watcher = True
            watcher.waiters.add(wakeup)
    if watcher is None:
        await anyio.lowlevel.checkpoint()
        return True
    if new_watcher:
        try:
            watcher.thread.start()
        except BaseException:
            with _registry_lock:
                del _watchers[event]
            raise
    try:
        await wakeup.wait()
    except BaseException:
        with _registry_lock:
            watcher.waiters.discard(wakeup)
        raise
    return True


class AwaitableEvent:
    """An awaitable view of a ``threading.Event``.

    Args:
        event: the event to wrap.

    Raises:
        TypeError: if ``event`` is not a ``threading.Event``.

    Example::

        shutdown = AwaitableEvent(bootstrap.shutdown_event)
        await shutdown.wait()
    """

    __slots__ = ("_event",)

    def __init__(self, event: threading.Event) -> None:
        _check_event(event)
        self._event = event

    @property
    def event(self) -> threading.Event:
        """The wrapped event."""
        return self._event

    def is_set(self) -> bool:
        """Return True if the event is set."""
        return self._event.is_set()

    async def wait(self) -> bool:
        """Wait until the event is set; see :func:`wait_event`.  Returns True."""
        return await wait_event(self._event)

    def wait_sync(self, timeout: float | None = None) -> bool:
        """Block the calling thread until the event is set or ``timeout`` expires.

        For synchronous code only: calling it on an event loop thread blocks the loop.

        Returns:
            True if the event is set, False on timeout.
        """
        return self._event.wait(timeout)

    def __repr__(self) -> str:
        state = "set" if self._event.is_set() else "unset"
        return f"<AwaitableEvent {state}>"
