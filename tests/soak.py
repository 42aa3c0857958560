"""Subprocess for the leak and soak tests: many requests and duplex streams through one Client.

Usage: python -m tests.soak URL CA_FILE BACKEND REQUESTS DUPLEX_STREAMS

The work runs in ROUNDS equal rounds (requests by WORKERS concurrent workers: small
GETs, 16 KiB downloads and 4 KiB uploads; duplex streams ten at a time, each echoing a
few messages).  After every round it samples RSS, open file descriptors and OS threads.
Prints one JSON line: {"samples": [{"round", "requests", "duplex", "rss", "fds",
"threads"}, ...], "seconds": float}.  Round 0 is the warm-up.
"""

from __future__ import annotations

import json
import os
import sys
import time

import anyio

from benchmarks.common import rss_bytes
from crt_async import Client, TLSConfig

ROUNDS = 10
WORKERS = 20
DUPLEX_AT_ONCE = 10
UPLOAD = b"u" * 4096


def sample(round_: int, requests: int, duplex: int) -> dict[str, int]:
    return {
        "round": round_,
        "requests": requests,
        "duplex": duplex,
        "rss": rss_bytes(),
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": len(os.listdir("/proc/self/task")),  # CRT threads included
    }


async def requests_round(client: Client, count: int, first: int) -> None:
    next_index = first
    end = first + count

    async def worker() -> None:
        nonlocal next_index
        while next_index < end:
            index = next_index
            next_index += 1
            kind = index % 10
            if kind == 8:
                response = await client.get("/bytes/16384")
                assert len(response.content) == 16384
            elif kind == 9:
                response = await client.post("/upload", content=UPLOAD)
                assert json.loads(response.content)["length"] == len(UPLOAD)
            else:
                response = await client.get("/")
                assert response.status == 200

    async with anyio.create_task_group() as tg:
        for _ in range(WORKERS):
            tg.start_soon(worker)


async def duplex_round(client: Client, count: int) -> None:
    limiter = anyio.CapacityLimiter(DUPLEX_AT_ONCE)

    async def one(index: int) -> None:
        async with limiter, client.duplex("POST", "/echo") as stream:
            for message in (b"a" * 10, b"b" * 1000, index.to_bytes(4, "big") * 2000):
                await stream.send(message)
                received = b""
                while len(received) < len(message):
                    received += await stream.receive()
                assert received == message
            await stream.send_eof()
            async for _ in stream:
                raise AssertionError("the echo sent more than it got")

    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(one, index)


async def main(url: str, ca_file: str, requests: int, duplex: int) -> None:
    started = time.monotonic()
    samples = []
    done_requests = done_duplex = 0
    async with Client(base_url=url, tls=TLSConfig(ca_file=ca_file), timeout=30.0) as client:
        for round_ in range(ROUNDS):
            request_count = requests // ROUNDS
            duplex_count = duplex // ROUNDS
            async with anyio.create_task_group() as tg:
                tg.start_soon(requests_round, client, request_count, done_requests)
                tg.start_soon(duplex_round, client, duplex_count)
            done_requests += request_count
            done_duplex += duplex_count
            samples.append(sample(round_, done_requests, done_duplex))
    print(json.dumps({"samples": samples, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    url, ca_file, backend, requests, duplex = sys.argv[1:]
    anyio.run(main, url, ca_file, int(requests), int(duplex), backend=backend)
