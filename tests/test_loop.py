"""The loop hand-off: calls from foreign threads arrive in order, batched, isolated."""

from __future__ import annotations

import threading

import anyio
import anyio.to_thread
import pytest

from crt_async._loop import current_loop

pytestmark = pytest.mark.anyio


async def wait_until(event: anyio.Event) -> None:
    with anyio.fail_after(5):
        await event.wait()


async def test_calls_from_a_thread_run_on_the_loop_in_order() -> None:
    schedule = current_loop().call_soon
    loop_thread = threading.get_ident()
    seen: list[tuple[int, bool]] = []
    done = anyio.Event()

    def burst() -> None:
        for i in range(100):
            schedule(lambda i=i: seen.append((i, threading.get_ident() == loop_thread)))
        schedule(done.set)

    await anyio.to_thread.run_sync(burst)
    await wait_until(done)
    assert seen == [(i, True) for i in range(100)]


async def test_a_failing_callback_does_not_cost_the_others_their_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    schedule = current_loop().call_soon
    seen: list[str] = []
    done = anyio.Event()

    def burst() -> None:
        schedule(lambda: seen.append("before"))
        schedule(lambda: 1 / 0)
        schedule(lambda: seen.append("after"))
        schedule(done.set)

    await anyio.to_thread.run_sync(burst)
    await wait_until(done)
    assert seen == ["before", "after"]
    assert "ZeroDivisionError" in caplog.text


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_scheduling_on_a_finished_loop_raises_instead_of_hanging(backend: str) -> None:
    async def get_scheduler() -> object:
        return current_loop().call_soon

    schedule = anyio.run(get_scheduler, backend=backend)
    with pytest.raises(RuntimeError):
        schedule(lambda: None)  # type: ignore[operator]
