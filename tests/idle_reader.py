"""Subprocess for the bounded-memory test: stream a large body, idle, then finish it.

Usage: python -m tests.idle_reader URL CA_FILE BACKEND SIZE WARMUP IDLE_SECONDS

It reads WARMUP bytes at full speed first, so the flow-control window has grown
to its cap before the reader idles.  Prints one JSON line:
{"rss_growth": bytes, "received": bytes}.
"""

from __future__ import annotations

import json
import sys

import anyio

from benchmarks.common import rss_bytes
from crt_async import TLSConfig, connect


async def main(url: str, ca_file: str, size: int, warmup: int, idle_seconds: float) -> None:
    async with await connect(url, tls=TLSConfig(ca_file=ca_file)) as connection:
        async with connection.stream("GET", f"/bytes/{size}") as response:
            body = response.aiter_bytes()
            received = 0
            while received < warmup:
                received += len(await body.__anext__())
            before = rss_bytes()
            await anyio.sleep(idle_seconds)  # the reader idles: the server must stop
            growth = rss_bytes() - before
            async for chunk in body:
                received += len(chunk)
    print(json.dumps({"rss_growth": growth, "received": received}))


if __name__ == "__main__":
    url, ca_file, backend, size, warmup, idle = sys.argv[1:]
    anyio.run(main, url, ca_file, int(size), int(warmup), float(idle), backend=backend)
