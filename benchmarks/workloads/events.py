"""Workload (f): awaiting a ``threading.Event`` with ``crt_async.wait_event``.

* Wake-up latency: from ``event.set()`` in another thread to the awaiting task running
  again.  The event is set ``SETTLE`` seconds after the task started waiting.
* Cancellation latency: from ``CancelScope.cancel()`` (by another task, ``SETTLE``
  seconds into the wait) to the wait having returned and the scope exited.

The reference is ``anyio.to_thread.run_sync(event.wait, abandon_on_cancel=True)`` on
asyncio: a worker thread blocks in ``Event.wait()``, as crt_async's waiter thread does.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Awaitable, Sequence
from typing import Callable

import anyio
import anyio.to_thread

from crt_async import wait_event

from ..results import Metric, Section, percentile
from ..settings import Sizes
from .runner import Measure, run_rounds

Waiter = Callable[[threading.Event], Awaitable[object]]
BASELINE = "to_thread(Event.wait)"
SETTLE = 0.002  # seconds the task waits before it is woken or cancelled
MS = 1e3


async def _to_thread(event: threading.Event) -> None:
    await anyio.to_thread.run_sync(event.wait, abandon_on_cancel=True)


class _Setter:
    """A thread that sets each event it is handed ``SETTLE`` s later, noting when."""

    def __init__(self) -> None:
        self.set_at = 0.0
        self._events: queue.SimpleQueue[threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="event-setter")
        self._thread.start()

    def set_later(self, event: threading.Event) -> None:
        self._events.put(event)

    def close(self) -> None:
        self._events.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (event := self._events.get()) is not None:
            time.sleep(SETTLE)
            self.set_at = time.perf_counter()  # written before set(): seen by the woken task
            event.set()


async def _wake_ups(waiter: Waiter, samples: int) -> list[float]:
    setter = _Setter()
    latencies = []
    try:
        for _ in range(samples):
            event = threading.Event()
            setter.set_later(event)
            await waiter(event)
            latencies.append(time.perf_counter() - setter.set_at)
    finally:
        setter.close()
    return latencies


async def _cancellations(waiter: Waiter, samples: int) -> list[float]:
    latencies = []
    for _ in range(samples):
        event = threading.Event()
        cancelled_at = [0.0]
        async with anyio.create_task_group() as group:
            with anyio.CancelScope() as scope:
                group.start_soon(_cancel_later, scope, cancelled_at)
                await waiter(event)
            latencies.append(time.perf_counter() - cancelled_at[0])
        event.set()  # let the thread still blocked on it go
    return latencies


async def _cancel_later(scope: anyio.CancelScope, cancelled_at: list[float]) -> None:
    await anyio.sleep(SETTLE)
    cancelled_at[0] = time.perf_counter()
    scope.cancel()


async def _measure_wake_ups(waiter: Waiter, samples: int) -> dict[str, float]:
    wake = await _wake_ups(waiter, samples)
    return {"p50": percentile(wake, 0.5) * MS, "p99": percentile(wake, 0.99) * MS}


async def _measure_cancellations(waiter: Waiter, samples: int) -> dict[str, float]:
    cancel = await _cancellations(waiter, samples)
    return {"p50": percentile(cancel, 0.5) * MS, "p99": percentile(cancel, 0.99) * MS}


def events(selected: Sequence[str], sizes: Sizes, repeats: int) -> list[Section]:
    """Run (f) for the reference and the selected crt_async backends: two sections."""
    candidates: list[tuple[str, str, Waiter]] = [
        (BASELINE, "asyncio", _to_thread),
        ("crt-async-asyncio", "asyncio", wait_event),
        ("crt-async-trio", "trio", wait_event),
    ]
    samples = sizes.event_samples
    kinds = (
        (
            "events-wake",
            f"(f) wait_event wake-up latency, {samples:,} wake-ups",
            "From event.set() in another thread to the awaiting task running again.",
            _measure_wake_ups,
        ),
        (
            "events-cancel",
            f"(f) wait_event cancellation latency, {samples:,} cancellations",
            "From CancelScope.cancel() in another task to the wait having returned.",
            _measure_cancellations,
        ),
    )
    sections = []
    for key, title, note, measure in kinds:
        section = Section(
            key,
            title,
            [
                Metric("p50", "p50 ms", higher_is_better=False),
                Metric("p99", "p99 ms", higher_is_better=False),
            ],
            BASELINE,
            notes=[note],
        )
        entries: list[tuple[str, Measure]] = [
            (name, functools.partial(anyio.run, measure, waiter, samples, backend=backend))
            for name, backend, waiter in candidates
            if name == BASELINE or name in selected
        ]
        run_rounds(section, entries, repeats)
        sections.append(section)
    return sections
