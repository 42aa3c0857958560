"""Bounded memory: a reader that idles mid-body stops the server (RSS measured in a
subprocess), and finished requests are freed by reference counting alone."""

from __future__ import annotations

import collections
import gc

import pytest

from benchmarks.common import run_module
from crt_async import Connection

from .conftest import LocalServer

MIB = 1024 * 1024


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_idle_reader_of_a_256_mib_body_stays_bounded_then_gets_every_byte(
    h2_server: LocalServer, backend: str
) -> None:
    size = 256 * MIB
    figures, _ = run_module(
        "tests.idle_reader",
        h2_server.https_url,
        h2_server.ca_file,
        backend,
        size,
        64 * MIB,
        5,
        timeout=120,
    )
    print(f"{backend}: RSS growth while idle {figures['rss_growth'] / MIB:.1f} MiB")
    assert figures["rss_growth"] < 16 * MIB
    assert figures["received"] == size


def _type_name(thing: object) -> str:
    return f"{type(thing).__module__}.{type(thing).__qualname__}"


@pytest.mark.anyio
async def test_finished_requests_leave_no_reference_cycles(any_connection: Connection) -> None:
    # A cycle per request leaves every stream, exchange and future to the cyclic
    # GC, which then runs every few dozen requests: that once cost a third of the
    # throughput of small GETs.
    async def exchange_some() -> None:
        async with any_connection.stream("GET", "/bytes/100") as response:
            await response.aread()
        async with any_connection.stream("POST", "/upload", content=b"x" * 1000) as response:
            await response.aread()
        async with any_connection.stream("GET", "/bytes/300000") as response:
            async for _ in response.aiter_bytes(chunk_size=65536):
                pass
        if any_connection.SUPPORTS_DUPLEX_STREAMING:
            async with any_connection.duplex("POST", "/echo") as stream:
                await stream.send(b"ping")
                assert await stream.receive() == b"ping"

    await exchange_some()  # first use creates long-lived state (TLS, loop handles)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            await exchange_some()
        gc.collect()
        ours = collections.Counter(
            name
            for name in map(_type_name, gc.garbage)
            if name.startswith(("crt_async.", "awscrt.", "concurrent.futures."))
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert ours == {}
