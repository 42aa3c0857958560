"""A task group for helper tasks that lives around a caller's ``async with`` block."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

import anyio
import anyio.abc

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["helper_tasks"]


@contextlib.asynccontextmanager
async def helper_tasks() -> AsyncIterator[anyio.abc.TaskGroup]:
    """Run helper tasks (which must not raise) while the caller's block runs.

    The helpers are cancelled when the block ends.  An exception from the
    block propagates as itself, not wrapped in an ``ExceptionGroup`` by the
    task group it crossed.
    """
    try:
        async with anyio.create_task_group() as tg:
            try:
                yield tg
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
        error.__suppress_context__ = True
        raise error  # noqa: B904  # the group only wrapped it
