"""Argument checks shared by the public API: bad input fails in Python, before the CRT."""

from __future__ import annotations

__all__ = ["check_byte_count"]


def check_byte_count(value: object, what: str) -> int:
    """Return ``value`` if it is a positive ``int`` (a size in bytes).

    Raises:
        ValueError: anything else, ``bool`` included.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int (bytes), got {value!r}")
    return value
