"""Subprocess for the thread-state test: do CRT callbacks keep their Python thread state?

Usage: python -m tests.thread_state_probe URL CA_FILE BACKEND KEEP

Makes a few GETs on one connection (so every callback runs on the same CRT thread),
with crt_async keeping that thread's state (KEEP=1) or not (KEEP=0).  Each ``on_body``
callback checks whether a thread-local marker set by an earlier callback is still
there: a thread-local lives in the thread state.  Prints one JSON line:
{"survived": [bool, ...]}, one entry per callback.
"""

from __future__ import annotations

import json
import sys
import threading

import anyio

import crt_async._exchange
from crt_async import TLSConfig, connect

marker = threading.local()
survived: list[bool] = []


def watch_callbacks(keep: bool) -> None:
    if not keep:
        crt_async._exchange.keep_thread_state = lambda: None  # type: ignore[attr-defined]
    on_body = crt_async._exchange.Exchange.on_body

    def watched_on_body(self: crt_async._exchange.Exchange, chunk: bytes, **extra: object) -> None:
        survived.append(getattr(marker, "set", False))
        marker.set = True
        on_body(self, chunk, **extra)

    crt_async._exchange.Exchange.on_body = watched_on_body  # type: ignore[method-assign]


async def main(url: str, ca_file: str) -> None:
    async with await connect(url, tls=TLSConfig(ca_file=ca_file)) as connection:
        for _ in range(5):
            async with connection.stream("GET", "/bytes/100") as response:
                assert len(await response.aread()) == 100
    print(json.dumps({"survived": survived}))


if __name__ == "__main__":
    url, ca_file, backend, keep = sys.argv[1:]
    watch_callbacks(keep == "1")
    anyio.run(main, url, ca_file, backend=backend)
