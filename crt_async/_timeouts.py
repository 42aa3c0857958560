"""``Timeout``: per-phase time limits, enforced by the shim with anyio deadlines."""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterator
from typing import Union

import anyio

__all__ = ["Timeout", "TimeoutTypes", "check_seconds", "fail_after"]


class _Unset(enum.Enum):
    """A per-phase limit not given: the phase takes the default (``-1`` is a bad limit)."""

    UNSET = enum.auto()


_UNSET = _Unset.UNSET


def check_seconds(value: float | None, what: str) -> float | None:
    """Return ``value`` as a float, or None; reject anything but positive finite seconds.

    Raises:
        TypeError: not a number (or None).
        ValueError: zero, negative, NaN or infinite.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


class Timeout:
    """Time limits for the phases of a request, in seconds (``None``: no limit).

    Args:
        timeout: the default for every phase.
        connect: TCP connect plus TLS handshake.
        read: waiting for the response head, and between two pieces of the body.
        write: each piece of the request body (each ``DuplexStream.send``).
        pool: waiting for a connection to become free in the pool.

    Raises:
        ValueError, TypeError: a limit that is not a positive number or None.

    Example::

        Timeout(10.0)                      # every phase
        Timeout(5.0, read=None)            # no read limit, 5 s for the rest
        Timeout(None, connect=2.0)         # only the connect phase is limited
    """

    __slots__ = ("connect", "pool", "read", "write")

    def __init__(
        self,
        timeout: float | None = None,
        *,
        connect: float | _Unset | None = _UNSET,
        read: float | _Unset | None = _UNSET,
        write: float | _Unset | None = _UNSET,
        pool: float | _Unset | None = _UNSET,
    ) -> None:
        default = check_seconds(timeout, "timeout")
        self.connect = default if connect is _UNSET else check_seconds(connect, "connect timeout")
        self.read = default if read is _UNSET else check_seconds(read, "read timeout")
        self.write = default if write is _UNSET else check_seconds(write, "write timeout")
        self.pool = default if pool is _UNSET else check_seconds(pool, "pool timeout")

    @classmethod
    def coerce(cls, value: TimeoutTypes) -> Timeout:
        """A ``Timeout`` from a ``Timeout``, a number of seconds or None."""
        return value if isinstance(value, Timeout) else cls(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timeout) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Timeout(connect={self.connect}, read={self.read}, write={self.write},"
            f" pool={self.pool})"
        )


TimeoutTypes = Union[Timeout, float, None]
"""A :class:`Timeout`, or seconds for every phase, or None for no limits."""

NO_TIMEOUT = Timeout(None)


_NO_DEADLINE: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def fail_after(
    seconds: float | None, error: type[TimeoutError], message: str
) -> contextlib.AbstractContextManager[None]:
    """Like ``anyio.fail_after``, raising ``error(message)`` when this deadline expires.

    Only this deadline's expiry is converted: a ``TimeoutError`` raised inside
    the block (e.g. a ``ConnectTimeout``) passes through unchanged.  Without a
    limit (``None``) it costs nothing: every body chunk goes through here.
    """
    if seconds is None:
        return _NO_DEADLINE
    return _deadline(seconds, error, message)


@contextlib.contextmanager
def _deadline(seconds: float, error: type[TimeoutError], message: str) -> Iterator[None]:
    with anyio.move_on_after(seconds) as scope:
        yield
    if scope.cancelled_caught:
        raise error(message)
