"""The foundation layer: await awscrt's own futures and events from asyncio or trio.

Shows ``wait_future`` on ``HttpClientConnection.new()`` and on a connection's
``shutdown_future``, the ``AwaitableFuture`` wrapper, cancellation safety (the waiter
of a connect is cancelled; ``on_abandon`` closes the connection nobody is left to take)
and ``wait_event`` on an ``EventLoopGroup``'s shutdown event.  It starts its own local
HTTP/2 server (``h2_server.py``), so it runs offline::

    python examples/await_crt.py [--backend asyncio|trio|both]
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import anyio
import awscrt.http
import awscrt.io
from example_support import RunningServer, example_arguments, run_on_loops

import crt_async


def new_connection(server: RunningServer) -> Future[Any]:
    """Start connecting with plain awscrt: the CRT returns a concurrent.futures.Future."""
    options = awscrt.io.TlsContextOptions()
    options.override_default_trust_store_from_path(None, server.ca_file)
    options.alpn_list = ["h2", "http/1.1"]
    tls = awscrt.io.ClientTlsContext(options).new_connection_options()
    tls.set_server_name("127.0.0.1")
    future: Future[Any] = awscrt.http.HttpClientConnection.new(
        "127.0.0.1", server.https_port, tls_connection_options=tls
    )
    return future


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

    with anyio.move_on_after(0) as scope:  # cancel the waiter while the CRT is connecting
        await crt_async.wait_future(new_connection(server), on_abandon=close_late)
    print(f"cancelled connect: the waiter gave up (cancelled_caught={scope.cancelled_caught})")
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
    run_on_loops(example_arguments("Await awscrt futures and events.").parse_args().backend, demo)


if __name__ == "__main__":
    main()
