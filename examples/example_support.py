"""What every example shares: a ``--backend`` option and running under asyncio and trio."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable
from typing import Callable

import anyio
from h2_server import RunningServer, spawned


def example_arguments(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--backend asyncio|trio|both`` (default: both)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    return parser


def run_on_loops(
    backend: str,
    demo: Callable[..., Awaitable[None]],
    *args: object,
    after: Callable[[RunningServer], None] | None = None,
) -> None:
    """Start the local server, run ``demo(server, *args)`` under each chosen loop,
    then ``after(server)`` (synchronous code, no event loop) if given."""
    with spawned() as server:
        for name in ["asyncio", "trio"] if backend == "both" else [backend]:
            print(f"--- {name} ---")
            anyio.run(demo, server, *args, backend=name)
        if after is not None:
            print("--- no event loop ---")
            after(server)
    print("OK")


__all__ = ["RunningServer", "example_arguments", "run_on_loops"]
