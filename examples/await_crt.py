"""The foundation layer: await awscrt's own futures and events from asyncio or trio.

Shows ``wait_future`` on ``HttpClientConnection.new()`` and on a connection's
``shutdown_future``, the ``AwaitableFuture`` wrapper, a connect that is cancelled
while the CRT is still connecting (``on_abandon`` closes the connection that arrives
too late) and ``wait_event`` on an ``EventLoopGroup``'s shutdown event.  It starts
its own local HTTP/2 server (``h2_server.py``), so it runs offline::

    python examples/await_crt.py [--backend asyncio|trio|both]
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

import anyio
import awscrt.http
import awscrt.io
from h2_server import RunningServer, spawned

import crt_async


def new_connection(server: RunningServer) -> Any:
    """Start connecting with plain awscrt; returns the CRT's concurrent.futures.Future."""
    options = awscrt.io.TlsContextOptions()
    options.override_default_trust_store_from_path(None, server.ca_file)
    options.alpn_list = ["h2", "http/1.1"]
    tls = awscrt.io.ClientTlsContext(options).new_connection_options()
    tls.set_server_name("127.0.0.1")
    port = server.https_port
    return awscrt.http.HttpClientConnection.new("127.0.0.1", port, tls_connection_options=tls)


async def demo(server: RunningServer) -> None:
    connection = await crt_async.wait_future(new_connection(server))
    print(f"wait_future: connected, negotiated {connection.version.name}")
    connection.close()
    await crt_async.wait_future(connection.shutdown_future)
    print(f"wait_future: shutdown_future done, is_open() = {connection.is_open()}")

    connection = await crt_async.AwaitableFuture(new_connection(server))
    print(f"AwaitableFuture: connected, negotiated {connection.version.name}")
    connection.close()
    await crt_async.AwaitableFuture(connection.shutdown_future)

    late: list[Any] = []
    abandoned = threading.Event()

    def close_late(connection: Any) -> None:  # runs on a CRT thread: must not block
        connection.close()
        late.append(connection)
        abandoned.set()

    future = new_connection(server)
    with anyio.move_on_after(0) as scope:
        await crt_async.wait_future(future, on_abandon=close_late)
    print(f"cancelled connect: waiter cancelled={scope.cancelled_caught}, CRT done={future.done()}")
    with anyio.fail_after(5):
        await crt_async.wait_event(abandoned)
        await crt_async.wait_future(late[0].shutdown_future)
    print(f"cancelled connect: on_abandon closed the late one, is_open() = {late[0].is_open()}")

    group = awscrt.io.EventLoopGroup(1)
    event = group.shutdown_event
    del group  # the last reference: the CRT shuts the event-loop thread down
    with anyio.fail_after(5):
        await crt_async.wait_event(event)
    print("wait_event: EventLoopGroup shutdown_event is set")


def main() -> None:
    parser = argparse.ArgumentParser(description="Await awscrt futures and events.")
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    backend = parser.parse_args().backend
    with spawned() as server:
        for name in ["asyncio", "trio"] if backend == "both" else [backend]:
            print(f"--- {name} ---")
            anyio.run(demo, server, backend=name)
    print("OK")


if __name__ == "__main__":
    main()
