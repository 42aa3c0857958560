"""What a contender is, and the workload drivers shared by every async contender.

A :class:`Contender` runs each HTTP workload as one blocking call that connects, warms
up, and returns only the measured part (connecting is never timed).  Async contenders
provide a :class:`Session` (and optionally a :class:`Duplex` stream); the drivers in
:class:`AsyncContender` then run the identical workload on asyncio or trio through anyio.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

import anyio

from ..common import NotApplicable, Target, rss_bytes

MEASUREMENT_TIMEOUT = 300.0  # seconds; a hung client fails instead of stalling the run
DUPLEX_IN_FLIGHT = 16  # messages sent ahead of their echo (hypercorn stalls far beyond)

T = TypeVar("T")


@dataclass(frozen=True)
class IdlePlan:
    """Stop reading for ``seconds`` once ``after_bytes`` of the body have been read."""

    after_bytes: int
    seconds: float


@dataclass(frozen=True)
class Download:
    """One timed download; ``rss_growth`` is set when an :class:`IdlePlan` was followed."""

    seconds: float
    received: int
    rss_growth: int | None = None


class Contender:
    """One client library (in one configuration).  Every workload is n/a by default.

    Attributes:
        name: short name used on the command line and in tables.
        description: what is measured, in a few words.
    """

    name = ""
    description = ""

    def download(
        self, target: Target, path: str, size: int, idle: IdlePlan | None = None
    ) -> Download:
        """GET ``path`` (``size`` bytes) once; time from the request to the last byte."""
        raise NotApplicable

    def small_gets(
        self, target: Target, path: str, size: int, total: int, concurrency: int
    ) -> float:
        """Seconds for ``total`` GETs of ``path`` with ``concurrency`` in flight."""
        raise NotApplicable

    def latencies(self, target: Target, path: str, size: int, count: int) -> list[float]:
        """Seconds taken by each of ``count`` GETs of ``path``, one at a time."""
        raise NotApplicable

    def round_trips(self, target: Target, path: str, count: int, size: int) -> float:
        """Seconds for ``count`` echo round trips of ``size``-byte messages on one stream."""
        raise NotApplicable

    def duplex_stream(self, target: Target, path: str, total: int, size: int) -> float:
        """Seconds to echo ``total`` bytes sent as ``size``-byte messages, at most
        :data:`DUPLEX_IN_FLIGHT` ahead of their echo, which is received meanwhile."""
        raise NotApplicable


class Session(Protocol):
    """An open client (one connection or a pool) to one target."""

    async def get(self, path: str) -> int:
        """GET ``path``, read the whole body, return its length (raise unless 200)."""
        ...

    def stream(self, path: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """GET ``path`` and yield its body as it arrives (raise unless 200)."""
        ...


class Duplex(Protocol):
    """An open duplex HTTP/2 stream to an echo endpoint."""

    async def send(self, item: bytes) -> None: ...

    async def receive(self) -> bytes: ...


class AsyncContender(Contender):
    """A contender driven by an event loop; subclasses provide the session."""

    backend = "asyncio"

    def session(self, target: Target) -> AbstractAsyncContextManager[Session]:
        """Connect to ``target``."""
        raise NotImplementedError

    def duplex(self, target: Target, path: str) -> AbstractAsyncContextManager[Duplex]:
        """Open a duplex stream to ``path`` (e.g. ``POST /echo``)."""
        raise NotApplicable

    def download(
        self, target: Target, path: str, size: int, idle: IdlePlan | None = None
    ) -> Download:
        return self._run(self._download, target, path, size, idle)

    def small_gets(
        self, target: Target, path: str, size: int, total: int, concurrency: int
    ) -> float:
        return self._run(self._small_gets, target, path, size, total, concurrency)

    def latencies(self, target: Target, path: str, size: int, count: int) -> list[float]:
        return self._run(self._latencies, target, path, size, count)

    def round_trips(self, target: Target, path: str, count: int, size: int) -> float:
        return self._run(self._round_trips, target, path, count, size)

    def duplex_stream(self, target: Target, path: str, total: int, size: int) -> float:
        return self._run(self._duplex_stream, target, path, total, size)

    def _run(self, function: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``function(*args)`` on a new event loop of this backend, time-limited."""

        async def limited() -> T:
            with anyio.fail_after(MEASUREMENT_TIMEOUT):
                return await function(*args)

        return anyio.run(limited, backend=self.backend)

    async def _download(
        self, target: Target, path: str, size: int, idle: IdlePlan | None
    ) -> Download:
        async with self.session(target) as session:
            await _warm_up(session, target, 1)
            start = time.perf_counter()
            async with session.stream(path) as chunks:
                received, growth = await read_body(chunks, idle)
            elapsed = time.perf_counter() - start
        check_size(received, size, path)
        return Download(elapsed, received, growth)

    async def _small_gets(
        self, target: Target, path: str, size: int, total: int, concurrency: int
    ) -> float:
        remaining = total

        async def worker(session: Session) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                check_size(await session.get(path), size, path)

        async with self.session(target) as session:
            await _warm_up(session, target, concurrency)
            start = time.perf_counter()
            async with anyio.create_task_group() as group:
                for _ in range(concurrency):
                    group.start_soon(worker, session)
            return time.perf_counter() - start

    async def _latencies(self, target: Target, path: str, size: int, count: int) -> list[float]:
        samples = []
        async with self.session(target) as session:
            await _warm_up(session, target, 1)
            for _ in range(count):
                start = time.perf_counter()
                received = await session.get(path)
                samples.append(time.perf_counter() - start)
                check_size(received, size, path)
        return samples

    async def _round_trips(self, target: Target, path: str, count: int, size: int) -> float:
        message = b"x" * size
        async with self.duplex(target, path) as stream:
            await _echo(stream, message)  # the stream is open and has carried data
            start = time.perf_counter()
            for _ in range(count):
                await _echo(stream, message)
            return time.perf_counter() - start

    async def _duplex_stream(self, target: Target, path: str, total: int, size: int) -> float:
        message = b"x" * size
        count = total // size
        credits = anyio.Semaphore(DUPLEX_IN_FLIGHT)
        async with self.duplex(target, path) as stream:
            await _echo(stream, message)
            start = time.perf_counter()
            async with anyio.create_task_group() as group:
                group.start_soon(_send_all, stream, message, count, credits)
                received = 0
                while received < count * size:
                    echoed = received // size
                    received += len(await stream.receive())
                    for _ in range(received // size - echoed):
                        credits.release()
            return time.perf_counter() - start


async def _warm_up(session: Session, target: Target, concurrency: int) -> None:
    """Connect (pools connect lazily) and open ``concurrency`` streams or connections."""
    if target.warmup_path is None:
        return
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(session.get, target.warmup_path)


async def _echo(stream: Duplex, message: bytes) -> None:
    await stream.send(message)
    received = 0
    while received < len(message):
        received += len(await stream.receive())


async def _send_all(stream: Duplex, message: bytes, count: int, credits: anyio.Semaphore) -> None:
    """Send ``count`` messages, each once a credit is free (the reader gives them back)."""
    for _ in range(count):
        await credits.acquire()
        await stream.send(message)


async def read_body(chunks: AsyncIterable[bytes], idle: IdlePlan | None) -> tuple[int, int | None]:
    """Count a body's bytes, idling as planned; return (bytes, RSS growth while idle)."""
    received = 0
    growth = None
    async for chunk in chunks:
        received += len(chunk)
        if idle is not None and growth is None and received >= idle.after_bytes:
            before = rss_bytes()
            await anyio.sleep(idle.seconds)
            growth = rss_bytes() - before
    return received, growth


def read_body_sync(chunks: Iterable[bytes], idle: IdlePlan | None) -> tuple[int, int | None]:
    """The blocking counterpart of :func:`read_body`."""
    received = 0
    growth = None
    for chunk in chunks:
        received += len(chunk)
        if idle is not None and growth is None and received >= idle.after_bytes:
            before = rss_bytes()
            time.sleep(idle.seconds)
            growth = rss_bytes() - before
    return received, growth


def check_status(status: int, path: str) -> None:
    if status != 200:
        raise RuntimeError(f"GET {path}: status {status}")


def check_size(received: int, expected: int, path: str) -> None:
    if received != expected:
        raise RuntimeError(f"GET {path}: {received} bytes, expected {expected}")
