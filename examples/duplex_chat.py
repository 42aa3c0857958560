"""A duplex HTTP/2 conversation: send and receive on one stream at the same time.

``Connection.duplex("POST", "/echo")`` to the local server (``h2_server.py``, started
here: runs offline), which echoes each body chunk at once.  A chat, one line at a time,
until ``send_eof()`` ends request and response; then a sender and a receiver task in one
anyio task group stream 100 messages and their echo, checked byte for byte::

    python examples/duplex_chat.py [--backend asyncio|trio|both]
"""

from __future__ import annotations

import os

import anyio
from example_support import RunningServer, example_arguments, run_on_loops

import crt_async


async def chat(connection: crt_async.Connection) -> None:
    async with connection.duplex("POST", "/echo") as stream:
        head = await stream.wait_response()
        print(f"response head: {head.status} {head.http_version} {head.headers['content-type']}")
        for line in [b"hello, server", b"are you an echo?", b"...an echo?", b"bye then"]:
            await stream.send(line)
            echo = b""
            while len(echo) < len(line):  # receive() returns what has arrived so far
                echo += await stream.receive(len(line) - len(echo))
            print(f"  sent {line.decode()!r:20} got back {echo.decode()!r}")
            if echo != line:
                raise RuntimeError(f"echo mismatch: {echo!r} != {line!r}")
        await stream.send_eof()
        try:
            await stream.receive()
        except anyio.EndOfStream:
            print("send_eof(): the response ended too (anyio.EndOfStream)")
        else:
            raise RuntimeError("the echo did not end after send_eof()")


async def pump(connection: crt_async.Connection, count: int = 100) -> None:
    messages = [os.urandom(1000 * (1 + i % 10)) for i in range(count)]  # 1-10 kB each
    received = bytearray()
    sent = early = 0  # messages sent; echo chunks that arrived before the last one was sent
    async with connection.duplex("POST", "/echo") as stream:

        async def sender() -> None:
            nonlocal sent
            for message in messages:
                await stream.send(message)
                sent += 1
            await stream.send_eof()

        async def receiver() -> None:
            nonlocal early
            async for chunk in stream:  # ends at anyio.EndOfStream
                received.extend(chunk)
                early += sent < count

        async with anyio.create_task_group() as group:
            group.start_soon(sender)
            group.start_soon(receiver)
    expected = b"".join(messages)
    if received != expected:
        raise RuntimeError(f"echo differs: {len(received)} bytes back, {len(expected)} sent")
    print(f"{count} messages, {len(expected)} B, byte-exact; {early} echo chunks during sending")


async def demo(server: RunningServer) -> None:
    tls = crt_async.TLSConfig(ca_file=server.ca_file)
    async with await crt_async.connect(server.https_url, tls=tls) as connection:
        await chat(connection)
        await pump(connection)


def main() -> None:
    run_on_loops(example_arguments("A duplex HTTP/2 echo conversation.").parse_args().backend, demo)


if __name__ == "__main__":
    main()
