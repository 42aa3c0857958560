"""Cancellation storms: many tasks cancelled at random points leave nothing behind.

Each task runs one phase (connect, response head, mid-body, mid-send on a duplex
stream, mid-``wait_event``) inside a cancel scope that fires either at a random
deadline or at a random checkpoint of the phase.  Afterwards: no extra threads,
nothing in use in the pool, no file descriptor left, nothing printed or logged,
no exception inside a CRT callback, and the same client still works.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import anyio
import anyio.lowlevel
import httpx
import pytest

from crt_async import (
    Client,
    ConnectionPool,
    DuplexStream,
    PoolStats,
    TLSConfig,
    connect,
    wait_event,
)
from crt_async.httpx import CRTTransport

from .conftest import LocalServer

pytestmark = pytest.mark.anyio

SEED = 6_2026
TASKS = 1000
CONCURRENCY = 50
PHASES = ("connect", "headers", "mid-body", "mid-send", "mid-upload", "wait_event")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    """Every thread of the process, the CRT's native ones included (``threading``
    knows only those that run Python)."""
    return len(os.listdir("/proc/self/task"))


async def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` (every 10 ms) until it holds; fail after ``seconds``.

    For states nothing signals (thread counts, open fds, CRT stream completions)."""
    with anyio.move_on_after(seconds):
        while not condition():  # noqa: ASYNC110  # no event to wait on
            await anyio.sleep(0.01)
    assert condition(), f"{what} (not within {seconds} s)"


class RandomCancel:
    """Cancels ``scope`` at a random checkpoint of a phase: the ``n``-th call to
    :meth:`point` (``n`` drawn at random), or never if the phase ends first.
    Without a scope (the task has a random deadline instead) it does nothing."""

    def __init__(self, rng: random.Random, scope: anyio.CancelScope | None) -> None:
        self._countdown = rng.randint(0, 6)
        self._scope = scope

    def point(self) -> None:
        if self._countdown == 0 and self._scope is not None:
            self._scope.cancel()
        self._countdown -= 1


async def drain(stream: DuplexStream) -> None:
    async for _ in stream:
        pass


class Storm:
    """The phases, each given its own RNG and cancellation points."""

    def __init__(self, server: LocalServer, tls: TLSConfig, client: Client) -> None:
        self.server = server
        self.tls = tls
        self.client = client
        self.events = [threading.Event() for _ in range(20)]  # shared by many waiters
        self.phases_run = dict.fromkeys(PHASES, 0)
        self.cancelled = 0

    async def connect(self, rng: random.Random, cancel: RandomCancel) -> None:
        cancel.point()
        async with await connect(self.server.https_url, tls=self.tls) as connection:
            cancel.point()
            assert connection.is_open

    async def headers(self, rng: random.Random, cancel: RandomCancel) -> None:
        # /upload answers only once the whole body has arrived: a long wait for the head.
        body = rng.randbytes(rng.randint(0, 300_000))
        cancel.point()
        async with self.client.stream("POST", "/upload", content=body) as response:
            cancel.point()
            assert response.status == 200

    async def mid_body(self, rng: random.Random, cancel: RandomCancel) -> None:
        size = rng.randint(1, 300_000)
        async with self.client.stream("GET", f"/bytes/{size}?chunk=8192") as response:
            async for _ in response.aiter_bytes():
                cancel.point()

    async def mid_send(self, rng: random.Random, cancel: RandomCancel) -> None:
        # A reader drains the echo meanwhile: an unread echo would stop the server
        # reading, and with it (its connection window is one stream window) every
        # upload on the connection until the write timeout.
        async with self.client.duplex("POST", "/echo") as stream:
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain, stream)
                while True:
                    cancel.point()
                    await stream.send(rng.randbytes(rng.randint(1, 64 * 1024)))

    async def mid_upload(self, rng: random.Random, cancel: RandomCancel) -> None:
        # An iterable body, cut short: the stream is left without END_STREAM (never
        # presented as complete), and its connection is retired and closed.
        async def body() -> AsyncIterator[bytes]:
            for _ in range(rng.randint(1, 40)):
                cancel.point()
                yield rng.randbytes(rng.randint(1, 32 * 1024))

        async with self.client.stream("POST", "/upload", content=body()) as response:
            assert response.status == 200

    async def wait_event(self, rng: random.Random, cancel: RandomCancel) -> None:
        event = rng.choice(self.events)  # never set: only cancellations end the waits
        while True:
            cancel.point()
            with anyio.move_on_after(rng.uniform(0, 0.005)):
                await wait_event(event)

    async def run_one(self, index: int, limiter: anyio.CapacityLimiter) -> None:
        rng = random.Random(SEED * 10_000 + index)
        phase = rng.choice(PHASES)
        run: Callable[[random.Random, RandomCancel], Awaitable[None]] = getattr(
            self, phase.replace("-", "_")
        )
        async with limiter:
            self.phases_run[phase] += 1
            with anyio.CancelScope() as scope:
                if rng.random() < 0.5:
                    scope.deadline = anyio.current_time() + rng.uniform(0, 0.03)
                    cancel = RandomCancel(rng, None)
                else:
                    cancel = RandomCancel(rng, scope)
                await run(rng, cancel)
            self.cancelled += scope.cancelled_caught


class Reports:
    """Everything a test can leave behind besides its result: exceptions inside CRT
    callbacks (or other threads), warnings and errors logged, output on stderr."""

    def __init__(
        self,
        capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
        crt_thread_errors: list[BaseException],
    ) -> None:
        self._capfd = capfd
        self._caplog = caplog
        self._crt_thread_errors = crt_thread_errors
        caplog.set_level(logging.DEBUG)

    def assert_none(self) -> None:
        assert self._crt_thread_errors == []
        problems = [r for r in self._caplog.records if r.levelno >= logging.WARNING]
        assert problems == []
        _, err = self._capfd.readouterr()
        assert err == ""


@pytest.fixture
def reports(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    crt_thread_errors: list[BaseException],
) -> Reports:
    return Reports(capfd, caplog, crt_thread_errors)


async def test_a_thousand_tasks_cancelled_at_random_points_leave_nothing_behind(
    h2_server: LocalServer,
    tls: TLSConfig,
    reports: Reports,
) -> None:
    # Warm up the CRT (its event-loop threads, the TLS context) with a throwaway client.
    async with Client(tls=tls) as warmup:
        assert (await warmup.get(h2_server.https_url)).status == 200
    baseline_threads = threading.active_count()
    baseline_os_threads = os_threads()
    baseline_fds = open_fds()

    # Generous limits: the storm is about cancellation, and the machine may be loaded.
    async with Client(base_url=h2_server.https_url, tls=tls, timeout=30.0) as client:
        storm = Storm(h2_server, tls, client)
        limiter = anyio.CapacityLimiter(CONCURRENCY)
        with anyio.fail_after(50):
            async with anyio.create_task_group() as tg:
                for index in range(TASKS):
                    tg.start_soon(storm.run_one, index, limiter)
        print(f"phases: {storm.phases_run}, cancelled: {storm.cancelled}/{TASKS}")
        assert all(count > 100 for count in storm.phases_run.values()), storm.phases_run
        assert storm.cancelled > TASKS // 2

        pool = client.transport
        assert isinstance(pool, ConnectionPool)
        # Abandoned streams drain in the background; then nothing is in use.
        await wait_until(
            lambda: pool.stats().in_use == pool.stats().streams == pool.stats().connecting == 0,
            10,
            f"nothing in use in the pool: {pool.stats()}",
        )
        # Event waiter threads exit within 0.25 s of their last waiter leaving.
        await wait_until(
            lambda: threading.active_count() <= baseline_threads,
            2,
            f"threads back to {baseline_threads}: {threading.enumerate()}",
        )
        await wait_until(
            lambda: os_threads() <= baseline_os_threads,
            2,
            f"OS threads (CRT included) back to {baseline_os_threads}: {os_threads()}",
        )
        response = await client.get("/")
        assert response.status == 200
        assert response.content == b"hello from h2_server\n"

    # Every connection, those of cancelled connects included, is closed.
    await wait_until(
        lambda: open_fds() <= baseline_fds, 10, f"open fds back to {baseline_fds}: {open_fds()}"
    )
    reports.assert_none()


# -- duplex streams whose reader is cancelled -------------------------------------------------


async def receive_exactly(stream: DuplexStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += await stream.receive(size - len(data))
    return data


async def test_cancelled_duplex_receives_lose_nothing_and_the_stream_goes_on(
    h2_server: LocalServer,
    tls: TLSConfig,
    reports: Reports,
) -> None:
    """A cancelled ``receive()`` is a no-op: what arrives later is delivered in order."""
    rng = random.Random(SEED)
    sent = bytearray()
    received = bytearray()
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        async with client.duplex("POST", "/echo") as stream:
            # A receive cancelled while nothing can have arrived yet.
            with anyio.move_on_after(0.01) as scope:
                await stream.receive()
            assert scope.cancelled_caught
            for _ in range(300):
                message = rng.randbytes(rng.randint(1, 20_000))
                await stream.send(message)
                sent += message
                with anyio.move_on_after(rng.uniform(0, 0.002)):
                    received += await stream.receive()
            await stream.send_eof()
            async for chunk in stream:
                received += chunk
        assert bytes(received) == bytes(sent)
        assert (await client.get("/")).status == 200
    reports.assert_none()


async def test_duplex_left_by_a_cancelled_reader_ends_our_side_and_frees_its_slot(
    h2_server: LocalServer,
    tls: TLSConfig,
    reports: Reports,
) -> None:
    """Abandoned streams policy: leaving the block sends END_STREAM, the echo server ends
    the response, the stream's slot is freed and the connection stays in service."""
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        pool = client.transport
        assert isinstance(pool, ConnectionPool)
        for round_ in range(20):
            with anyio.CancelScope() as scope:
                async with client.duplex("POST", "/echo") as stream:
                    await stream.send(b"x" * 100_000)
                    async with anyio.create_task_group() as tg:

                        async def reader(s: DuplexStream = stream) -> None:
                            while True:
                                await s.receive(1000)

                        tg.start_soon(reader)
                        await anyio.lowlevel.checkpoint()
                        scope.cancel()
            assert scope.cancelled_caught, round_
        await wait_until(
            lambda: pool.stats().streams == 0, 5, f"abandoned streams ended: {pool.stats()}"
        )
        assert pool.stats().connections == 1  # the same connection, still open
        async with client.duplex("POST", "/echo") as stream:
            await stream.send(b"still fine")
            assert await receive_exactly(stream, 10) == b"still fine"
    reports.assert_none()


# -- request bodies cut short ----------------------------------------------------------------


async def test_an_upload_cut_short_retires_its_connection_without_harming_the_others(
    h2_server: LocalServer,
    tls: TLSConfig,
    reports: Reports,
) -> None:
    """A stream whose iterable body was cut short can only end with its connection:
    the pool stops giving that connection new streams, lets the others finish, then
    closes it -- nothing stays in use."""
    async with Client(base_url=h2_server.https_url, tls=tls) as client:
        pool = client.transport
        assert isinstance(pool, ConnectionPool)
        async with client.stream("GET", "/drip?count=20&interval=0.02") as dripping:
            started = anyio.Event()

            async def body() -> AsyncIterator[bytes]:
                yield b"x" * 10_000
                started.set()
                await anyio.sleep_forever()  # cut short by the cancellation below
                yield b""  # pragma: no cover

            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(client.post, "/upload", content=body()))
                await started.wait()
                tg.cancel_scope.cancel()
            # The connection now carries the drip and the cut-short upload: a new
            # request goes to a new connection.
            assert (await client.get("/")).status == 200
            assert pool.stats().connections == 2
            # The drip on the retired connection is not harmed.
            assert len(await dripping.aread()) == 20
        await wait_until(
            lambda: pool.stats().connections == 1 and pool.stats().streams == 0,
            5,
            f"the retired connection closed: {pool.stats()}",
        )
    reports.assert_none()


def test_a_sync_upload_cut_short_closes_its_connection(h2_server: LocalServer) -> None:
    """The same for the blocking pool (httpx.Client): the failing body's error reaches the
    caller, and the connection whose stream can no longer end is closed."""

    class BodyFailed(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"x" * 10_000
        raise BodyFailed

    transport = CRTTransport(verify=h2_server.ca_file)
    with httpx.Client(transport=transport) as client:
        with pytest.raises(BodyFailed):
            client.post(h2_server.https_url + "/upload", content=body())
        pool = transport.blocking_pool
        deadline = time.monotonic() + 5
        while pool.stats().connections and time.monotonic() < deadline:
            time.sleep(0.01)  # no loop here: poll the CRT's state
        assert pool.stats() == PoolStats(connections=0, idle=0, in_use=0, streams=0, connecting=0)
        assert client.get(h2_server.https_url).status_code == 200
