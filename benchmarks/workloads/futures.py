"""Workload (e): awaiting ``concurrent.futures.Future`` objects.

``crt_async.wait_future`` on asyncio and trio against ``asyncio.wrap_future`` (the
baseline), for two kinds of futures:

* already complete: awaited one after another;
* completed by another thread: ``future_batch`` tasks each await one pending future and,
  once all of them are parked, a thread completes the batch.  Task start-up is included,
  the same for every contender on a loop.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import time
from collections.abc import Awaitable, Sequence
from concurrent.futures import Future
from typing import Callable

import anyio

from crt_async import wait_future

from ..results import Metric, Section
from ..settings import Sizes
from .runner import Measure, run_rounds

Awaiter = Callable[["Future[None]"], Awaitable[object]]
BASELINE = "asyncio.wrap_future"
US = 1e6


async def _wrap_future(future: Future[None]) -> None:
    await asyncio.wrap_future(future)


class _Completer:
    """A thread that completes the batches of futures it is handed."""

    def __init__(self) -> None:
        self._batches: queue.SimpleQueue[list[Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="future-completer")
        self._thread.start()

    def complete(self, batch: list[Future[None]]) -> None:
        self._batches.put(batch)

    def close(self) -> None:
        self._batches.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (batch := self._batches.get()) is not None:
            for future in batch:
                future.set_result(None)


async def _await_done(awaiter: Awaiter, count: int, batch_size: int) -> float:
    batch: list[Future[None]] = [Future() for _ in range(batch_size)]
    for future in batch:
        future.set_result(None)
    start = time.perf_counter()
    for index in range(count):
        await awaiter(batch[index % batch_size])
    return time.perf_counter() - start


async def _await_thread_completed(awaiter: Awaiter, count: int, batch_size: int) -> float:
    completer = _Completer()
    try:
        start = time.perf_counter()
        for offset in range(0, count, batch_size):
            batch: list[Future[None]] = [Future() for _ in range(min(batch_size, count - offset))]
            await _await_batch(awaiter, batch, completer)
        return time.perf_counter() - start
    finally:
        completer.close()


async def _await_batch(awaiter: Awaiter, batch: list[Future[None]], completer: _Completer) -> None:
    """One task per future; once every task is parked, the completer completes them."""
    parked = anyio.Event()
    waiting = len(batch)

    async def await_one(future: Future[None]) -> None:
        nonlocal waiting
        waiting -= 1
        if not waiting:
            parked.set()
        await awaiter(future)  # parks before the parent task runs again

    async with anyio.create_task_group() as group:
        for future in batch:
            group.start_soon(await_one, future)
        await parked.wait()
        completer.complete(batch)


async def _measure(awaiter: Awaiter, sizes: Sizes) -> dict[str, float]:
    count, batch = sizes.futures, sizes.future_batch
    done = await _await_done(awaiter, count, batch)
    threaded = await _await_thread_completed(awaiter, count, batch)
    return {"done_us": done / count * US, "thread_us": threaded / count * US}


def futures(selected: Sequence[str], sizes: Sizes, repeats: int) -> Section:
    """Run (e) for the baseline and the selected crt_async backends."""
    section = Section(
        "futures",
        f"(e) awaiting {sizes.futures:,} concurrent.futures.Future, per kind",
        [
            Metric("done_us", "done us", higher_is_better=False),
            Metric("thread_us", "threaded us", higher_is_better=False),
        ],
        BASELINE,
    )
    section.notes += [
        "done us: microseconds per await of an already-complete future.",
        f"threaded us: microseconds per future when {sizes.future_batch} tasks each await one"
        " and, once all are parked, another thread completes them (task start-up included).",
    ]
    candidates: list[tuple[str, str, Awaiter]] = [
        (BASELINE, "asyncio", _wrap_future),
        ("crt-async-asyncio", "asyncio", wait_future),
        ("crt-async-trio", "trio", wait_future),
    ]

    entries: list[tuple[str, Measure]] = [
        (name, functools.partial(anyio.run, _measure, awaiter, sizes, backend=backend))
        for name, backend, awaiter in candidates
        if name == BASELINE or name in selected
    ]
    run_rounds(section, entries, repeats)
    return section
