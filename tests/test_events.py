"""wait_event / AwaitableEvent: shared waiter threads, cancellation, no leaks (asyncio and trio)."""

from __future__ import annotations

import functools
import threading

import anyio
import anyio.to_thread
import awscrt.io
import pytest

from crt_async import AwaitableEvent, wait_event

pytestmark = pytest.mark.anyio

WAITER_THREAD_NAME = "crt_async-event-waiter"


def waiter_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WAITER_THREAD_NAME]


def assert_waiter_threads_exit_within_one_second() -> None:
    """Join every waiter thread (bounded), then assert none is left.

    Joins on the loop thread on purpose: a worker thread would change the thread count.
    """
    for thread in waiter_threads():
        thread.join(1.0)
    assert waiter_threads() == []


async def test_returns_true_when_set_from_another_thread() -> None:
    event = threading.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, event.set)
        assert await wait_event(event) is True
    assert_waiter_threads_exit_within_one_second()


async def test_already_set_event_returns_without_a_thread() -> None:
    event = threading.Event()
    event.set()
    assert await wait_event(event) is True
    assert waiter_threads() == []


async def test_already_set_event_is_still_a_cancellation_point() -> None:
    event = threading.Event()
    event.set()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await wait_event(event)
        pytest.fail("wait_event did not honour the cancellation")
    assert scope.cancelled_caught


async def test_fifty_waiters_on_one_event_share_one_thread() -> None:
    event = threading.Event()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await wait_event(event)
        woken.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(waiter, i)
        await anyio.wait_all_tasks_blocked()
        assert len(waiter_threads()) == 1
        event.set()
    assert sorted(woken) == list(range(50))
    assert_waiter_threads_exit_within_one_second()


async def test_hundred_events_do_not_starve_to_thread_run_sync() -> None:
    events = [threading.Event() for _ in range(100)]
    async with anyio.create_task_group() as tg:
        for event in events:
            tg.start_soon(wait_event, event)
        await anyio.wait_all_tasks_blocked()
        assert len(waiter_threads()) == 100
        # anyio's default limiter has 40 tokens: it must still be free for other work.
        results = []
        for _ in range(45):
            results.append(await anyio.to_thread.run_sync(lambda: "worker ran"))
        assert results == ["worker ran"] * 45
        for event in events:
            event.set()
    assert_waiter_threads_exit_within_one_second()


async def test_cancelled_wait_returns_and_the_thread_exits_after_its_last_waiter() -> None:
    event = threading.Event()
    caught: list[BaseException] = []
    scope = anyio.CancelScope()

    async def waiter() -> None:
        with scope:
            try:
                await wait_event(event)
            except BaseException as exc:
                caught.append(exc)
                raise

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert len(waiter_threads()) == 1
        scope.cancel()
    assert len(caught) == 1
    assert isinstance(caught[0], anyio.get_cancelled_exc_class())
    assert not event.is_set()
    assert_waiter_threads_exit_within_one_second()


async def test_no_thread_is_left_after_cancellations() -> None:
    # Compared as sets: a thread of an earlier test (an idle worker of anyio's or
    # trio's thread pool) may end meanwhile, which a plain count would take for ours.
    before = set(threading.enumerate())
    events = [threading.Event() for _ in range(20)]
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            for event in events:
                for _ in range(3):
                    tg.start_soon(wait_event, event)
            await anyio.wait_all_tasks_blocked()
            started = set(threading.enumerate()) - before
            assert sorted(thread.name for thread in started) == [WAITER_THREAD_NAME] * len(events)
            scope.cancel()
    assert_waiter_threads_exit_within_one_second()
    assert set(threading.enumerate()) - before == set()


async def test_one_thread_serves_waiters_from_two_event_loops(anyio_backend: str) -> None:
    event = threading.Event()
    other_backend = "trio" if anyio_backend == "asyncio" else "asyncio"
    other_loop_waiting = threading.Event()
    other_loop_result: list[bool] = []

    async def wait_on_other_loop() -> None:
        async def waiter() -> None:
            other_loop_result.append(await wait_event(event))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            other_loop_waiting.set()

    other_loop = threading.Thread(
        target=functools.partial(anyio.run, wait_on_other_loop, backend=other_backend)
    )
    other_loop.start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_event, event)
        assert await anyio.to_thread.run_sync(other_loop_waiting.wait, 5)
        await anyio.wait_all_tasks_blocked()
        assert len(waiter_threads()) == 1
        event.set()
    await anyio.to_thread.run_sync(other_loop.join, 5)
    assert other_loop_result == [True]
    assert_waiter_threads_exit_within_one_second()


async def test_event_loop_group_shutdown_event() -> None:
    group = awscrt.io.EventLoopGroup(1)
    shutdown_event = group.shutdown_event
    del group
    assert await wait_event(shutdown_event) is True


async def test_client_bootstrap_shutdown_event() -> None:
    group = awscrt.io.EventLoopGroup(1)
    resolver = awscrt.io.DefaultHostResolver(group)
    bootstrap = awscrt.io.ClientBootstrap(group, resolver)
    shutdown = AwaitableEvent(bootstrap.shutdown_event)
    del bootstrap, resolver, group
    assert await shutdown.wait() is True
    assert shutdown.is_set()


async def test_awaitable_event_wait_sync_and_is_set() -> None:
    event = threading.Event()
    awaitable = AwaitableEvent(event)
    assert awaitable.event is event
    assert not awaitable.is_set()
    assert awaitable.wait_sync(timeout=0) is False
    event.set()
    assert awaitable.is_set()
    assert awaitable.wait_sync() is True
    assert await awaitable.wait() is True


@pytest.mark.parametrize("not_an_event", [None, 1, object(), anyio.Event])
async def test_rejects_non_events_with_type_error(not_an_event: object) -> None:
    with pytest.raises(TypeError, match=r"threading\.Event"):
        await wait_event(not_an_event)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"threading\.Event"):
        AwaitableEvent(not_an_event)  # type: ignore[arg-type]


def test_outside_an_event_loop_raises_anyios_error() -> None:
    coroutine = wait_event(threading.Event())
    with pytest.raises(anyio.NoEventLoopError):
        coroutine.send(None)
