"""wait_future / AwaitableFuture: hand-off, cancellation, detachment (asyncio and trio)."""

from __future__ import annotations

import concurrent.futures
import random
import threading
from typing import Callable

import anyio
import anyio.lowlevel
import anyio.to_thread
import awscrt.http
import awscrt.io
import pytest

from crt_async import AwaitableFuture, wait_future
from crt_async._loop import Wakeup, current_loop

from .conftest import LocalServer
from .relay import GatedRelay

pytestmark = pytest.mark.anyio


def run_in_thread(function: Callable[..., object], *args: object) -> threading.Thread:
    """Start ``function(*args)`` on a new thread (as a CRT thread would complete a future)."""
    thread = threading.Thread(target=function, args=args)
    thread.start()
    return thread


async def test_returns_result_set_from_another_thread() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, future.set_result, 42)
        assert await wait_future(future) == 42


async def test_raises_the_futures_exception_unchanged() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    error = OSError("boom")
    run_in_thread(future.set_exception, error)
    with pytest.raises(OSError, match="boom") as info:
        await wait_future(future)
    assert info.value is error


async def test_already_done_future_returns_its_result() -> None:
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    future.set_result("ready")
    assert await wait_future(future) == "ready"


async def test_already_done_future_is_still_a_cancellation_point() -> None:
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    future.set_result("ready")
    abandoned: list[str] = []
    reached_after_await = False
    with anyio.CancelScope() as scope:
        scope.cancel()
        await wait_future(future, on_abandon=abandoned.append)
        reached_after_await = True
    assert scope.cancelled_caught
    assert not reached_after_await
    assert abandoned == ["ready"]


async def test_no_thread_per_future_with_1000_concurrent_waits() -> None:
    release = threading.Event()
    results: list[int] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(lambda i=i: (release.wait(), i)[1]) for i in range(1000)]
        threads_before_waits = set(threading.enumerate())

        async def wait_one(future: concurrent.futures.Future[int]) -> None:
            results.append(await wait_future(future))

        async with anyio.create_task_group() as tg:
            for future in futures:
                tg.start_soon(wait_one, future)
            await anyio.wait_all_tasks_blocked()
            assert set(threading.enumerate()) - threads_before_waits == set()  # none started
            release.set()
    assert sorted(results) == list(range(1000))


async def test_cancelled_awaiter_raises_backend_cancellation_and_leaves_future_alone() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    caught: list[BaseException] = []

    async def waiter(scope: anyio.CancelScope) -> None:
        with scope:
            try:
                await wait_future(future)
            except BaseException as exc:
                caught.append(exc)
                raise

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, scope)
        await anyio.wait_all_tasks_blocked()
        scope.cancel()
    assert len(caught) == 1
    assert isinstance(caught[0], anyio.get_cancelled_exc_class())
    assert not future.cancelled()
    assert not future.done()
    future.set_result(1)  # the owner can still complete it: no InvalidStateError


async def test_late_result_reaches_on_abandon(crt_thread_errors: list[BaseException]) -> None:
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    abandoned: list[str] = []
    with anyio.move_on_after(0):
        await wait_future(future, on_abandon=abandoned.append)
    run_in_thread(future.set_result, "late").join()
    assert abandoned == ["late"]
    assert crt_thread_errors == []


async def test_late_exception_is_dropped(crt_thread_errors: list[BaseException]) -> None:
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    abandoned: list[str] = []
    with anyio.move_on_after(0):
        await wait_future(future, on_abandon=abandoned.append)
    run_in_thread(future.set_exception, RuntimeError("late")).join()
    assert abandoned == []
    assert crt_thread_errors == []


async def test_failing_on_abandon_is_logged_not_raised_in_the_completing_thread(
    crt_thread_errors: list[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()

    def broken_cleanup(result: int) -> None:
        raise ValueError("cleanup failed")

    with anyio.move_on_after(0):
        await wait_future(future, on_abandon=broken_cleanup)
    run_in_thread(future.set_result, 1).join()
    assert crt_thread_errors == []
    assert "cleanup failed" in caplog.text


async def test_every_result_reaches_exactly_one_place_when_completion_races_cancel() -> None:
    rounds = 300
    delivered: list[int] = []
    abandoned: list[int] = []
    rng = random.Random(1234)
    timers: list[threading.Timer] = []

    async def one_round(i: int) -> None:
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def race() -> None:
                    await anyio.sleep(rng.random() * 0.002)
                    scope.cancel()

                tg.start_soon(race)
                timer = threading.Timer(rng.random() * 0.002, future.set_result, args=(i,))
                timers.append(timer)
                timer.start()
                delivered.append(await wait_future(future, on_abandon=abandoned.append))
                scope.cancel()

    for i in range(rounds):
        await one_round(i)
    for timer in timers:
        await anyio.to_thread.run_sync(timer.join)
    assert sorted(delivered + abandoned) == list(range(rounds))
    assert set(delivered).isdisjoint(abandoned)


async def test_future_cancelled_by_someone_else_raises_concurrent_cancelled_error() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    threading.Thread(target=future.cancel).start()
    with pytest.raises(concurrent.futures.CancelledError):
        await wait_future(future)


async def test_cancel_opt_in_cancels_a_pending_executor_job() -> None:
    started = threading.Event()
    release = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        blocker = pool.submit(lambda: (started.set(), release.wait()))
        pending_job = pool.submit(lambda: 1)
        await anyio.to_thread.run_sync(started.wait)
        with anyio.move_on_after(0):
            await wait_future(pending_job, cancel=True)
        release.set()
        assert pending_job.cancelled()
        blocker.result()


async def test_cancel_opt_in_on_a_running_job_abandons_instead() -> None:
    started = threading.Event()
    release = threading.Event()
    abandoned: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(lambda: (started.set(), release.wait(), "finished")[2])
        await anyio.to_thread.run_sync(started.wait)
        with anyio.move_on_after(0):
            await wait_future(running, cancel=True, on_abandon=abandoned.append)
        release.set()
        assert running.result() == "finished"
    assert abandoned == ["finished"]


async def test_awaitable_future_await_and_wait_and_done() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    awaitable = AwaitableFuture(future)
    assert not awaitable.done()
    assert awaitable.future is future
    run_in_thread(future.set_result, 7).join()
    assert awaitable.done()
    assert await awaitable == 7
    assert await awaitable.wait() == 7


async def test_awaitable_future_passes_on_abandon() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    abandoned: list[int] = []
    with anyio.move_on_after(0):
        await AwaitableFuture(future, on_abandon=abandoned.append)
    run_in_thread(future.set_result, 5).join()
    assert abandoned == [5]


@pytest.mark.parametrize("not_a_future", [None, 1, "x", object(), threading.Event()])
async def test_rejects_non_futures_with_type_error(not_a_future: object) -> None:
    with pytest.raises(TypeError, match=r"concurrent\.futures\.Future"):
        await wait_future(not_a_future)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"concurrent\.futures\.Future"):
        AwaitableFuture(not_a_future)  # type: ignore[arg-type]


def test_outside_an_event_loop_raises_anyios_error() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    coroutine = wait_future(future)
    with pytest.raises(anyio.NoEventLoopError):
        coroutine.send(None)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_wakeup_after_the_loop_has_closed_is_dropped_silently(
    backend: str, crt_thread_errors: list[BaseException], capfd: pytest.CaptureFixture[str]
) -> None:
    async def make_wakeup() -> Wakeup:
        return current_loop().new_wakeup()

    wakeup = anyio.run(make_wakeup, backend=backend)
    thread = threading.Thread(target=wakeup.set_threadsafe)
    thread.start()
    thread.join()
    assert crt_thread_errors == []
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_future_completed_after_the_loop_has_closed_goes_to_on_abandon(
    backend: str, crt_thread_errors: list[BaseException], capfd: pytest.CaptureFixture[str]
) -> None:
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    abandoned: list[str] = []

    async def give_up_waiting() -> None:
        with anyio.move_on_after(0.01):
            await wait_future(future, on_abandon=abandoned.append)

    anyio.run(give_up_waiting, backend=backend)
    run_in_thread(future.set_result, "after the loop").join()
    assert abandoned == ["after the loop"]
    assert crt_thread_errors == []
    assert capfd.readouterr().err == ""


# -- real CRT futures -----------------------------------------------------------------


def crt_tls_options(ca_file: str) -> object:
    context_options = awscrt.io.TlsContextOptions()
    context_options.override_default_trust_store_from_path(None, ca_file)
    options = awscrt.io.ClientTlsContext(context_options).new_connection_options()
    options.set_server_name("127.0.0.1")
    return options


async def test_awaits_a_real_crt_connection_future(h2_server: LocalServer) -> None:
    future = awscrt.http.HttpClientConnection.new(
        "127.0.0.1", h2_server.https_port, tls_connection_options=crt_tls_options(h2_server.ca_file)
    )
    connection = await wait_future(future)
    assert connection.is_open()
    assert await wait_future(connection.close()) is None


async def test_cancelled_wait_on_a_real_connect_hands_the_late_connection_to_on_abandon(
    h2_server: LocalServer, crt_thread_errors: list[BaseException]
) -> None:
    late_connections: list[awscrt.http.HttpClientConnectionBase] = []
    with GatedRelay(h2_server.https_port) as relay:
        future = awscrt.http.HttpClientConnection.new(
            "127.0.0.1", relay.port, tls_connection_options=crt_tls_options(h2_server.ca_file)
        )
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def waiter() -> None:
                    await wait_future(future, on_abandon=late_connections.append)

                tg.start_soon(waiter)
                assert await anyio.to_thread.run_sync(relay.accepted.wait, 5)
                scope.cancel()
        relay.gate.set()  # the handshake completes after the awaiter has gone
        await anyio.to_thread.run_sync(future.exception, 10)
        assert not future.cancelled()
        assert len(late_connections) == 1
        await wait_future(late_connections[0].close())
        assert await anyio.to_thread.run_sync(relay.client_closed.wait, 10)
    assert crt_thread_errors == []
