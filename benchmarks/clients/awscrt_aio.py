"""``awscrt.aio.http`` (shipped with awscrt 0.38): the CRT's own asyncio layer.

Its streams buffer every chunk the CRT delivers (automatic flow-control windows: no
backpressure); like the baseline, the connection announces an 8 MiB stream window.
Duplex works through ``request_body_generator``: an async iterator that the stream
writes from while the response is read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from awscrt.aio.http import AIOHttp2ClientConnection

from ..common import Target
from .base import AsyncContender, Duplex, Session, check_status
from .raw_crt import request, tls_options, window_settings


class _Session:
    def __init__(self, connection: Any, target: Target) -> None:
        self._connection = connection
        self._target = target

    async def get(self, path: str) -> int:
        async with self.stream(path) as chunks:
            return sum([len(chunk) async for chunk in chunks])

    @contextlib.asynccontextmanager
    async def stream(self, path: str) -> AsyncIterator[AsyncIterator[bytes]]:
        stream = self._connection.request(request(self._target, "GET", path))
        check_status(await stream.get_response_status_code(), path)
        yield _chunks(stream)
        await stream.wait_for_completion()


async def _chunks(stream: Any) -> AsyncIterator[bytes]:
    while chunk := await stream.get_next_response_chunk():
        yield chunk


class _Duplex:
    """A duplex stream fed by a one-slot queue that its body generator drains."""

    def __init__(self, stream: Any, outgoing: asyncio.Queue[bytes | None]) -> None:
        self._stream = stream
        self._outgoing = outgoing

    async def send(self, item: bytes) -> None:
        await self._outgoing.put(item)

    async def receive(self) -> bytes:
        chunk: bytes = await self._stream.get_next_response_chunk()
        return chunk


async def _body(outgoing: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (item := await outgoing.get()) is not None:
        yield item


class AwscrtAio(AsyncContender):
    """``AIOHttp2ClientConnection`` on asyncio."""

    name = "awscrt-aio"
    description = "awscrt.aio.http (asyncio)"

    @contextlib.asynccontextmanager
    async def _connection(self, target: Target) -> AsyncIterator[Any]:
        connection = await AIOHttp2ClientConnection.new(
            target.host,
            target.port,
            tls_connection_options=tls_options(target, ["h2"]),
            initial_settings=window_settings(),
        )
        try:
            yield connection
        finally:
            await connection.close()

    @contextlib.asynccontextmanager
    async def session(self, target: Target) -> AsyncIterator[Session]:
        async with self._connection(target) as connection:
            yield _Session(connection, target)

    @contextlib.asynccontextmanager
    async def duplex(self, target: Target, path: str) -> AsyncIterator[Duplex]:
        async with self._connection(target) as connection:
            outgoing: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
            stream = connection.request(request(target, "POST", path), _body(outgoing))
            check_status(await stream.get_response_status_code(), path)
            yield _Duplex(stream, outgoing)
            await outgoing.put(None)
            while await stream.get_next_response_chunk():
                pass
            await stream.wait_for_completion()
