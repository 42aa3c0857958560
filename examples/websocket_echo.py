"""WebSocket echo over the CRT, under asyncio and trio: ``crt_async.websocket``.

Starts the local WebSocket server (``ws_server.py``, the ``websockets`` library, on
127.0.0.1 in a background thread: runs offline), then over ``ws://`` and ``wss://``:
a few messages and their echo, a ping, 200 messages streamed by a sender task while a
receiver task takes the echoes, and a close initiated by the server::

    python examples/websocket_echo.py [--backend asyncio|trio|both]
"""

from __future__ import annotations

import os

import anyio
from example_support import example_arguments
from ws_server import Server, running

from crt_async import TLSConfig, websocket


async def conversation(url: str, tls: TLSConfig | None) -> None:
    async with websocket.connect(url + "/echo", tls=tls) as ws:
        for message in ["hello", "héllo wörld ✓", b"\x00\x01binary", os.urandom(1 << 20)]:
            await ws.send(message)
            echo = await ws.receive()
            if echo != message:
                raise RuntimeError(f"echo mismatch for a {type(message).__name__} message")
            shown = message if len(message) < 40 else f"<{len(message)} bytes>"
            print(f"  {type(message).__name__:5} {shown!r} came back")
        with anyio.fail_after(5):
            await ws.ping(b"are you there?")
        print("  ping answered by a pong")

        messages = [os.urandom(100 * (1 + i % 50)) for i in range(200)]
        received: list[bytes] = []

        async def receiver() -> None:
            while len(received) < len(messages):
                received.append(await ws.receive())  # type: ignore[arg-type]

        async with anyio.create_task_group() as group:
            group.start_soon(receiver)
            for message in messages:
                await ws.send(message)
        if received != messages:
            raise RuntimeError("the streamed echo differs")
        print(f"  {len(messages)} messages streamed and echoed, in order")
    print(f"  closed by us: code {ws.close_code}")


async def server_closes(url: str, tls: TLSConfig | None) -> None:
    async with websocket.connect(url + "/close?code=1001&reason=shutting+down", tls=tls) as ws:
        async for message in ws:  # ends cleanly: 1001 is a normal close
            print(f"  received {message!r}")
    print(f"  closed by the server: code {ws.close_code}, reason {ws.close_reason!r}")


async def demo(server: Server) -> None:
    tls = TLSConfig(ca_file=server.ca_file)
    for url, config in [(server.ws_url, None), (server.wss_url, tls)]:
        print(url)
        await conversation(url, config)
        await server_closes(url, config)


def main() -> None:
    backend = example_arguments("WebSocket echo over the CRT.").parse_args().backend
    with running() as server:
        for name in ["asyncio", "trio"] if backend == "both" else [backend]:
            print(f"--- {name} ---")
            anyio.run(demo, server, backend=name)
    print("OK")


if __name__ == "__main__":
    main()
