"""Subprocess for the shutdown tests: ``asyncio.run`` / ``trio.run`` return while work is
in flight, then late CRT callbacks arrive for a loop that is gone.

Usage: python -W default -m tests.shutdown_scenarios BACKEND SCENARIO HTTPS_URL CA_FILE

SCENARIO is ``streams``, ``connects`` or ``waits``.  The work is started as tasks the
event loop does not wait for (``asyncio.create_task``; trio system tasks), so the
loop's run function returns, cancelling them, while they are parked on the CRT.  The
client is never closed.  After the loop has gone the script completes what was
pending (a gated connect, events, futures) so that callbacks reach the dead loop,
then exits.  The test expects an exit status of 0 and nothing at all on stderr.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.lowlevel
import trio
import trio.lowlevel

from crt_async import Client, TLSConfig, connect, wait_event, wait_future

from .relay import GatedRelay

Job = Callable[[], Awaitable[object]]


class Scenario:
    """Pending work of one kind; ``jobs`` are started as tasks nobody waits for."""

    def __init__(self, https_url: str, ca_file: str) -> None:
        self.url = https_url
        self.tls = TLSConfig(ca_file=ca_file)
        port = int(https_url.rsplit(":", 1)[1])
        self.relay = GatedRelay(port).__enter__()  # connects held until after the loop
        self.peer = GatedRelay(port).__enter__()  # the client's way to the server
        self.peer.gate.set()
        self.client: Client | None = None
        self.events = [threading.Event() for _ in range(3)]
        self.futures: list[concurrent.futures.Future[int]] = [
            concurrent.futures.Future() for _ in range(3)
        ]
        self.ready: list[anyio.Event] = []
        self.silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
        self.pending = 0  # jobs started and not finished

    def _ready(self) -> anyio.Event:
        event = anyio.Event()
        self.ready.append(event)
        return event

    def jobs(self, name: str, client: Client) -> list[Job]:
        result: list[Job] = getattr(self, name)(client)
        return result

    def streams(self, client: Client) -> list[Job]:
        async def head_wait() -> None:
            ready = self._ready()
            ready.set()
            async with client.stream("GET", "/stall-before-headers") as response:
                await response.aread()

        async def body_wait() -> None:
            ready = self._ready()
            async with client.stream("GET", "/stall") as response:
                ready.set()
                await response.aread()

        async def dripping_body() -> None:  # data keeps arriving after the loop is gone
            ready = self._ready()
            async with client.stream("GET", "/drip?count=2000&interval=0.005") as response:
                async for _ in response.aiter_bytes():
                    ready.set()

        async def duplex_receive() -> None:
            ready = self._ready()
            async with client.duplex("POST", "/echo") as stream:
                await stream.send(b"ping")
                await stream.receive()
                ready.set()
                await stream.receive()

        async def duplex_blocked_send() -> None:
            ready = self._ready()
            async with client.duplex("POST", "/ignore-body") as stream:
                await stream.wait_response()
                ready.set()
                while True:  # the server never reads: the window fills, send() blocks
                    await stream.send(b"x" * 65536)

        async def iterable_upload() -> None:
            ready = self._ready()

            async def body() -> AsyncIterator[bytes]:
                while True:
                    yield b"y" * 65536

            async with client.stream("POST", "/ignore-body", content=body()) as response:
                ready.set()
                await response.aread()

        async def many_requests() -> None:
            ready = self._ready()
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(client.get, "/bytes/200000")
                ready.set()

        return [
            head_wait,
            body_wait,
            dripping_body,
            duplex_receive,
            duplex_blocked_send,
            iterable_upload,
            many_requests,
        ]

    def connects(self, client: Client) -> list[Job]:
        async def gated_connect() -> None:  # completes only after the loop is gone
            self._ready().set()
            await connect(f"https://127.0.0.1:{self.relay.port}", tls=self.tls)

        async def silent_server() -> None:  # the TLS handshake never progresses
            self._ready().set()
            port = self.silent.getsockname()[1]
            await connect(f"https://127.0.0.1:{port}", tls=self.tls)

        async def plain_connects() -> None:
            self._ready().set()
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(functools.partial(connect, self.url, tls=self.tls))

        async def pool_connect() -> None:
            self._ready().set()
            await client.get(f"https://127.0.0.1:{self.relay.port}/")

        return [gated_connect, silent_server, plain_connects, pool_connect]

    def waits(self, client: Client) -> list[Job]:
        def event_wait(event: threading.Event) -> Job:
            async def job() -> None:
                self._ready().set()
                await wait_event(event)

            return job

        def future_wait(future: concurrent.futures.Future[int]) -> Job:
            async def job() -> None:
                self._ready().set()
                await wait_future(future, on_abandon=lambda late: None)

            return job

        return [event_wait(event) for event in self.events] + [
            future_wait(future) for future in self.futures
        ]

    async def start(self, name: str, spawn: Callable[[Job], None]) -> None:
        peer_url = f"https://127.0.0.1:{self.peer.port}"
        self.client = client = Client(base_url=peer_url, tls=self.tls, timeout=None)  # never closed
        await client.get("/")  # a live connection, as in a real program
        jobs = self.jobs(name, client)
        for job in jobs:
            spawn(functools.partial(self._tracked, job))
        await anyio.lowlevel.checkpoint()
        for ready in self.ready:
            await ready.wait()
        await anyio.wait_all_tasks_blocked()
        print(f"pending {self.pending} of {len(jobs)}")

    async def _tracked(self, job: Job) -> None:
        self.pending += 1
        try:
            await job()
        finally:
            self.pending -= 1

    def after_the_loop(self) -> None:
        """Complete what was pending: every callback now reaches a loop that is gone."""
        for event in self.events:
            event.set()
        for number, future in enumerate(self.futures):
            future.set_result(number)
        # The CRT delivers the gated connection to a cancelled awaiter of a dead loop;
        # on_abandon closes it (relay.client_closed).  Only the connects scenario has one.
        self.relay.gate.set()
        if self.relay.accepted.is_set() and not self.relay.client_closed.wait(15):
            raise SystemExit("the late connection was not closed")
        # The peer goes away: the CRT fails every stream still open on the client's
        # connections, and reports each completion to the dead loop.
        self.peer.__exit__(None, None, None)
        assert self.client is not None
        stats = self.client.transport.stats  # type: ignore[attr-defined]
        deadline = time.monotonic() + 15
        while stats().connections and time.monotonic() < deadline:
            time.sleep(0.01)  # a plain thread: nothing to await, poll the CRT's state
        if stats().connections:
            raise SystemExit(f"the client's connections did not close: {stats()}")
        self.relay.__exit__(None, None, None)
        self.silent.close()


def run_asyncio(scenario: Scenario, name: str) -> None:
    tasks: set[asyncio.Task[object]] = set()

    def spawn(job: Job) -> None:
        tasks.add(asyncio.ensure_future(job()))

    async def main() -> None:
        await scenario.start(name, spawn)
        # Return with every task still pending: asyncio.run cancels them.

    asyncio.run(main())


def run_trio(scenario: Scenario, name: str) -> None:
    def spawn(job: Job) -> None:
        trio.lowlevel.spawn_system_task(job)

    async def main() -> None:
        await scenario.start(name, spawn)
        # Return with every system task still pending: trio.run cancels them.

    trio.run(main)


def main() -> None:
    backend, name, https_url, ca_file = sys.argv[1:]
    scenario = Scenario(https_url, ca_file)
    (run_asyncio if backend == "asyncio" else run_trio)(scenario, name)
    scenario.after_the_loop()
    print("done")


if __name__ == "__main__":
    main()
