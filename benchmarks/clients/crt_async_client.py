"""crt_async itself: ``connect()`` + ``Connection.stream()`` / ``duplex()``, on asyncio or trio."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from crt_async import Connection, TLSConfig, connect

from ..common import DOWNLOAD_PIECE, Target
from .base import AsyncContender, Contender, Download, Duplex, IdlePlan, Session, check_status


class _Session:
    def __init__(self, connection: Connection, read_piece: int | None) -> None:
        self._connection = connection
        self._read_piece = read_piece

    async def get(self, path: str) -> int:
        async with self._connection.stream("GET", path) as response:
            check_status(response.status, path)
            return len(await response.aread())

    @contextlib.asynccontextmanager
    async def stream(self, path: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._connection.stream("GET", path) as response:
            check_status(response.status, path)
            yield response.aiter_bytes(self._read_piece)


class CrtAsync(AsyncContender):
    """One crt_async ``Connection`` (HTTP/2 by ALPN) on the given anyio backend; (a)
    reads in ``read_piece`` pieces (None: as the body arrives)."""

    def __init__(self, backend: str, read_piece: int | None = DOWNLOAD_PIECE) -> None:
        self.backend = backend
        self._read_piece = read_piece
        self.name = f"crt-async-{backend}"
        self.description = f"crt_async Connection ({backend})"

    @contextlib.asynccontextmanager
    async def _connection(self, target: Target) -> AsyncIterator[Connection]:
        async with await connect(target.url, tls=TLSConfig(ca_file=target.ca_file)) as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def session(self, target: Target) -> AsyncIterator[Session]:
        async with self._connection(target) as connection:
            yield _Session(connection, self._read_piece)

    @contextlib.asynccontextmanager
    async def duplex(self, target: Target, path: str) -> AsyncIterator[Duplex]:
        async with (
            self._connection(target) as connection,
            connection.duplex("POST", path) as stream,
        ):
            check_status((await stream.wait_response()).status, path)
            yield stream


class CrtAsyncAsItArrives(Contender):
    """Download only: crt_async on asyncio reading the body as it arrives
    (``aiter_bytes()``), one piece per wake-up, instead of in 1 MiB pieces."""

    name = "crt-async-arrival"
    description = "crt_async Connection (asyncio), body read as it arrives"

    def download(
        self, target: Target, path: str, size: int, idle: IdlePlan | None = None
    ) -> Download:
        return CrtAsync("asyncio", read_piece=None).download(target, path, size, idle)
