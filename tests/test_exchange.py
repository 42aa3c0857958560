"""Exchange: the receive buffer's state logic, flow control and wake-ups, without the CRT."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest

from crt_async import ReadTimeout, RemoteProtocolError
from crt_async._exchange import Exchange, ResponseHead
from crt_async._headers import Headers
from crt_async._loop import Wakeup, current_loop
from crt_async._response import Response

pytestmark = pytest.mark.anyio

KIB = 1024


class CountingWakeup:
    """Wraps a real wake-up and counts the wake-ups requested from CRT threads."""

    def __init__(self, inner: Wakeup, recording: RecordingExchange) -> None:
        self._inner = inner
        self._recording = recording

    def set_threadsafe(self) -> None:
        self._recording.wakeups += 1
        self._inner.set_threadsafe()

    def is_set(self) -> bool:
        return self._inner.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        return await self._inner.wait(timeout)


class RecordingExchange:
    """An Exchange whose window updates and requested wake-ups are recorded."""

    def __init__(self, initial_window: int = 64 * KIB, max_window: int = 512 * KIB) -> None:
        self.window_updates: list[int] = []
        self.exchange = Exchange("HTTP/2", initial_window=initial_window, max_window=max_window)
        self.exchange.update_window = self.window_updates.append
        self.wakeups = 0
        loop = current_loop()
        recording = self

        class CountingLoop:
            def new_wakeup(self) -> CountingWakeup:
                return CountingWakeup(loop.new_wakeup(), recording)

        self.exchange._loop = CountingLoop()  # type: ignore[assignment]


def feed_from_thread(exchange: Exchange, chunks: list[bytes], *, end: bool = False) -> None:
    def run() -> None:
        for chunk in chunks:
            exchange.on_body(chunk)
        if end:
            exchange.on_end()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


async def test_receive_returns_everything_buffered_in_one_call() -> None:
    exchange = RecordingExchange().exchange
    feed_from_thread(exchange, [b"a" * 10, b"b" * 10, b"c" * 10])
    assert await exchange.receive(1000) == b"a" * 10 + b"b" * 10 + b"c" * 10


async def test_receive_honours_max_bytes_across_chunk_boundaries() -> None:
    exchange = RecordingExchange().exchange
    feed_from_thread(exchange, [b"0123", b"4567", b"89"], end=True)
    assert await exchange.receive(3) == b"012"
    assert await exchange.receive(3) == b"345"
    assert await exchange.receive(5) == b"6789"
    assert await exchange.receive(5) == b""


async def test_a_burst_of_chunks_costs_one_wake_up() -> None:
    recording = RecordingExchange()
    exchange = recording.exchange
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await exchange.receive(1 << 20))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        feed_from_thread(exchange, [b"x"] * 100)
    assert received == [b"x" * 100]
    assert recording.wakeups == 1


async def test_chunk_buffer_is_copied_from_the_callback() -> None:
    exchange = RecordingExchange().exchange
    scratch = bytearray(b"abc")
    exchange.on_body(memoryview(scratch))
    scratch[:] = b"zzz"
    assert await exchange.receive(10) == b"abc"


async def test_error_after_data_is_raised_once_the_data_is_consumed() -> None:
    exchange = RecordingExchange().exchange
    feed_from_thread(exchange, [b"partial"])
    exchange.on_error(RemoteProtocolError("reset"))
    assert await exchange.receive(100) == b"partial"
    with pytest.raises(RemoteProtocolError, match="reset"):
        await exchange.receive(100)


async def test_head_waiter_is_woken_by_a_failure_before_headers() -> None:
    exchange = RecordingExchange().exchange
    async with anyio.create_task_group() as tg:

        async def fail_soon() -> None:
            await anyio.wait_all_tasks_blocked()
            exchange.on_error(RemoteProtocolError("refused stream"))

        tg.start_soon(fail_soon)
        with pytest.raises(RemoteProtocolError, match="refused stream"):
            await exchange.wait_head()


async def test_consumed_bytes_reopen_the_window_a_quarter_window_at_a_time() -> None:
    recording = RecordingExchange(initial_window=64 * KIB)
    exchange = recording.exchange
    feed_from_thread(exchange, [b"x" * KIB] * 3)
    assert await exchange.receive(1 << 20) == b"x" * 3 * KIB
    with anyio.move_on_after(0.01):
        await exchange.receive(1 << 20)  # parking does not flush: the peer still has 61 KiB
    assert recording.window_updates == []
    feed_from_thread(exchange, [b"x" * KIB] * 13)
    assert await exchange.receive(1 << 20) == b"x" * 13 * KIB
    assert recording.window_updates == [16 * KIB]


async def test_min_bytes_wakes_the_reader_once_that_much_is_buffered() -> None:
    recording = RecordingExchange(initial_window=256 * KIB)
    exchange = recording.exchange
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await exchange.receive(1 << 20, min_bytes=10 * KIB))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        feed_from_thread(exchange, [b"x" * KIB] * 9)
        await anyio.wait_all_tasks_blocked()
        assert (received, recording.wakeups) == ([], 0)
        feed_from_thread(exchange, [b"y" * KIB] * 2)
    assert received == [b"x" * 9 * KIB + b"y" * 2 * KIB]
    assert recording.wakeups == 1


async def test_min_bytes_waits_for_half_the_window_at_most() -> None:
    recording = RecordingExchange(initial_window=64 * KIB)
    exchange = recording.exchange
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await exchange.receive(1 << 20, min_bytes=1 << 20))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        feed_from_thread(exchange, [b"x" * KIB] * 32)  # the peer may send 64 KiB: half will do
    assert received == [b"x" * 32 * KIB]


async def test_min_bytes_gives_way_to_the_end_and_to_errors() -> None:
    exchange = RecordingExchange().exchange
    feed_from_thread(exchange, [b"tail"], end=True)
    assert await exchange.receive(1 << 20, min_bytes=1 << 20) == b"tail"
    failing = RecordingExchange().exchange
    feed_from_thread(failing, [b"part"])
    failing.on_error(RemoteProtocolError("reset"))
    assert await failing.receive(1 << 20, min_bytes=1 << 20) == b"part"
    with pytest.raises(RemoteProtocolError, match="reset"):
        await failing.receive(1 << 20, min_bytes=1 << 20)


async def test_min_bytes_read_timeout_returns_the_bytes_that_did_arrive() -> None:
    exchange = RecordingExchange().exchange
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await exchange.receive(1 << 20, timeout=0.2, min_bytes=10 * KIB))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        feed_from_thread(exchange, [b"slow"])  # less than asked for: no wake-up before the timer
    assert received == [b"slow"]
    with pytest.raises(ReadTimeout):
        await exchange.receive(1 << 20, timeout=0.01, min_bytes=10 * KIB)


async def test_window_grows_while_the_reader_keeps_up_and_stops_at_the_cap() -> None:
    recording = RecordingExchange(initial_window=64 * KIB, max_window=256 * KIB)
    exchange = recording.exchange
    sizes = []
    for _ in range(12):
        feed_from_thread(exchange, [b"x" * 16 * KIB] * (exchange.window // (16 * KIB)))
        while exchange.buffered:
            await exchange.receive(1 << 20)
        with anyio.move_on_after(0.001):
            await exchange.receive(1 << 20)  # reader waits: the window was the limit
        sizes.append(exchange.window)
    assert sizes[:3] == [128 * KIB, 256 * KIB, 256 * KIB]
    assert max(sizes) == 256 * KIB
    # Every byte consumed, plus the growth, went back to the peer.
    consumed = 64 * KIB + sum(sizes[:-1])  # round n feeds the window left by round n-1
    assert sum(recording.window_updates) == consumed + (256 - 64) * KIB


async def test_slow_reader_does_not_grow_the_window() -> None:
    recording = RecordingExchange(initial_window=64 * KIB, max_window=1024 * KIB)
    exchange = recording.exchange
    for _ in range(10):
        feed_from_thread(exchange, [b"x" * 8 * KIB] * 8)
        # The reader always finds data waiting: it is the bottleneck, not the window.
        while exchange.buffered > 8 * KIB:
            await exchange.receive(8 * KIB)
    assert exchange.window == 64 * KIB


async def test_abandon_drops_the_buffer_and_drains_the_rest() -> None:
    recording = RecordingExchange(initial_window=64 * KIB)
    exchange = recording.exchange
    feed_from_thread(exchange, [b"x" * KIB] * 4)
    exchange.abandon()
    assert exchange.buffered == 0
    assert recording.window_updates == [4 * KIB]
    feed_from_thread(exchange, [b"y" * 100])
    assert recording.window_updates == [4 * KIB, 100]


def http1_exchange(cleanups: list[str]) -> Exchange:
    """An HTTP/1.1 exchange whose abandon-while-incomplete cleanup is logged."""
    return Exchange(
        "HTTP/1.1",
        initial_window=KIB,
        max_window=KIB,
        on_abandon_incomplete=lambda: cleanups.append("close connection"),
    )


async def test_abandon_of_an_unfinished_exchange_calls_its_cleanup_once() -> None:
    cleanups: list[str] = []
    exchange = http1_exchange(cleanups)
    exchange.abandon()
    exchange.abandon()
    assert cleanups == ["close connection"]


async def test_abandon_after_the_end_needs_no_cleanup() -> None:
    cleanups: list[str] = []
    exchange = http1_exchange(cleanups)
    exchange.on_end()
    exchange.abandon()
    assert cleanups == []


async def test_two_concurrent_readers_are_refused() -> None:
    exchange = RecordingExchange().exchange
    async with anyio.create_task_group() as tg:
        tg.start_soon(exchange.receive, 10)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.BusyResourceError):
            await exchange.receive(10)
        exchange.on_end()


async def test_cancelled_reader_can_read_again_and_loses_nothing() -> None:
    exchange = RecordingExchange().exchange
    with anyio.move_on_after(0.001):
        await exchange.receive(10)
    feed_from_thread(exchange, [b"kept"], end=True)
    assert await exchange.receive(10) == b"kept"
    assert await exchange.receive(10) == b""


# -- blocking readers (no event loop) -----------------------------------------------


def blocking_exchange() -> Exchange:
    return Exchange("HTTP/2", initial_window=64 * KIB, max_window=64 * KIB, blocking=True)


def test_blocking_reader_gets_head_and_body_fed_from_another_thread() -> None:
    exchange = blocking_exchange()

    def respond() -> None:
        exchange.on_response(200, [(":status", "200"), ("x-a", "1")])
        exchange.on_body(b"hello ")
        exchange.on_body(b"world")
        exchange.on_end()

    threading.Timer(0.01, respond).start()
    head = exchange.wait_head_sync(timeout=5)
    assert (head.status, head.headers.multi_items()) == (200, [("x-a", "1")])
    body = b""
    while chunk := exchange.receive_sync(1024, timeout=5):
        body += chunk
    assert body == b"hello world"


def test_blocking_reader_times_out_and_can_read_again() -> None:
    exchange = blocking_exchange()
    with pytest.raises(ReadTimeout):
        exchange.wait_head_sync(timeout=0.01)
    with pytest.raises(ReadTimeout):
        exchange.receive_sync(10, timeout=0.01)
    feed_from_thread(exchange, [b"late"], end=True)
    assert exchange.receive_sync(10, timeout=5) == b"late"
    assert exchange.receive_sync(10, timeout=5) == b""


async def test_reader_times_out_and_can_read_again() -> None:
    exchange = RecordingExchange().exchange
    with pytest.raises(ReadTimeout, match="head"):
        await exchange.wait_head(timeout=0.01)
    with pytest.raises(ReadTimeout, match="data"):
        await exchange.receive(10, timeout=0.01)
    feed_from_thread(exchange, [b"late"], end=True)
    assert await exchange.receive(10, timeout=5) == b"late"
    assert await exchange.receive(10, timeout=5) == b""


async def test_a_wake_up_before_the_timeout_wins() -> None:
    wakeup = current_loop().new_wakeup()
    threading.Thread(target=wakeup.set_threadsafe).start()
    assert await wakeup.wait(timeout=5) is True
    assert wakeup.is_set()


async def test_a_wake_up_that_times_out_reports_false() -> None:
    wakeup = current_loop().new_wakeup()
    assert await wakeup.wait(timeout=0.01) is False
    assert not wakeup.is_set()


def test_blocking_exchange_refuses_async_reads() -> None:
    exchange = blocking_exchange()
    with pytest.raises(RuntimeError, match="_sync"):
        exchange.receive(10).send(None)


@contextlib.contextmanager
def response_over(exchange: Exchange) -> Iterator[Response]:
    response = Response(exchange, ResponseHead(200, Headers([]), "HTTP/2"))
    try:
        yield response
    finally:
        response.close()


async def cancel_once_parked(wait: Callable[[], Awaitable[object]]) -> None:
    """Run ``wait()`` and cancel it once every task is blocked; it must be cancelled."""
    with anyio.CancelScope() as scope:

        async def cancel() -> None:
            await anyio.wait_all_tasks_blocked()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel)
            await wait()
    assert scope.cancelled_caught


async def test_a_piece_interrupted_by_cancellation_is_completed_by_the_next_iteration() -> None:
    exchange = RecordingExchange(initial_window=64 * KIB).exchange  # waits cap at 32 KiB
    feed_from_thread(exchange, [b"a" * 40 * KIB])
    with response_over(exchange) as response:
        pieces = response.aiter_bytes(chunk_size=48 * KIB)
        await cancel_once_parked(pieces.__anext__)  # takes the 40 KiB, waits for 8 more
        feed_from_thread(exchange, [b"b" * 10 * KIB], end=True)
        rest = [piece async for piece in pieces]
    assert rest == [b"a" * 40 * KIB + b"b" * 8 * KIB, b"b" * 2 * KIB]


async def test_a_stream_failing_mid_piece_yields_what_came_first_then_raises() -> None:
    exchange = RecordingExchange(initial_window=64 * KIB).exchange
    feed_from_thread(exchange, [b"a" * 40 * KIB])
    exchange.on_error(RemoteProtocolError("reset"))
    with response_over(exchange) as response:
        pieces = response.aiter_bytes(chunk_size=48 * KIB)
        assert await pieces.__anext__() == b"a" * 40 * KIB
        with pytest.raises(RemoteProtocolError, match="reset"):
            await pieces.__anext__()


async def test_aread_cancelled_midway_goes_on_where_it_stopped() -> None:
    exchange = RecordingExchange(initial_window=64 * KIB).exchange  # waits cap at 32 KiB
    feed_from_thread(exchange, [b"a" * 40 * KIB])
    with response_over(exchange) as response:
        await cancel_once_parked(response.aread)  # takes the 40 KiB, waits for the end
        feed_from_thread(exchange, [b"b" * KIB], end=True)
        assert await response.aread() == b"a" * 40 * KIB + b"b" * KIB
