"""The trio wake-up: reschedules the parked task directly (imported only under trio)."""

from __future__ import annotations

from typing import Callable

import trio
import trio.lowlevel


class TrioWakeup:
    """A one-shot wake-up for one trio task, set from any thread through ``call_soon``."""

    __slots__ = ("_call_soon", "_flag", "_task")

    def __init__(self, call_soon: Callable[[Callable[[], object]], object]) -> None:
        self._call_soon = call_soon
        self._flag = False
        self._task: trio.lowlevel.Task | None = None

    def set_threadsafe(self) -> None:
        try:
            self._call_soon(self._set)
        except Exception:  # the run has finished: nobody is left to wake
            pass

    def _set(self) -> None:
        self._flag = True
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)

    def is_set(self) -> bool:
        return self._flag

    async def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            await trio.lowlevel.checkpoint()
            return True
        if timeout is None:
            await self._parked()
            return True
        with trio.move_on_after(timeout):
            await self._parked()
            return True
        return False

    async def _parked(self) -> None:
        self._task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._task = None  # cancelled: a later _set must not reschedule us
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
