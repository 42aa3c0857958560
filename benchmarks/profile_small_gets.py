"""Profile crt_async on workload (b), small GETs on one HTTP/2 connection, with pyinstrument.

Usage (needs ``pip install pyinstrument``)::

    python -m benchmarks.profile_small_gets [--backend asyncio|trio] [--requests N]

Prints pyinstrument's call tree of the event loop thread.  CRT callbacks run on the CRT's
own threads, which pyinstrument does not sample; the time they hold the GIL shows up as
the loop thread waiting.
"""

from __future__ import annotations

import argparse

from pyinstrument import Profiler

from .clients.crt_async_client import CrtAsync
from .common import KIB, MIB
from .servers import http_server
from .settings import FULL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--requests", type=int, default=FULL.small_requests)
    parser.add_argument("--concurrency", type=int, default=FULL.concurrency)
    args = parser.parse_args(argv)
    contender = CrtAsync(args.backend)
    with http_server(MIB) as server:
        profiler = Profiler(interval=0.0005)
        with profiler:
            seconds = contender.small_gets(
                server.target, server.small_path, KIB, args.requests, args.concurrency
            )
    print(f"{args.requests / seconds:,.0f} req/s under the profiler ({contender.name})")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
