"""aiohttp (asyncio, HTTP/1.1 only): concurrent requests use one connection each."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator

import aiohttp

from ..common import DOWNLOAD_PIECE, Target
from .base import AsyncContender, Session, check_status

TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=60.0)
MAX_CONNECTIONS = 64  # as many as the small-GET workload has requests in flight


class _Session:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def get(self, path: str) -> int:
        async with self._session.get(path) as response:
            check_status(response.status, path)
            return len(await response.read())

    @contextlib.asynccontextmanager
    async def stream(self, path: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._session.get(path) as response:
            check_status(response.status, path)
            yield response.content.iter_chunked(DOWNLOAD_PIECE)


class AioHTTP(AsyncContender):
    """``aiohttp.ClientSession`` with up to 64 keep-alive connections."""

    name = "aiohttp"
    description = "aiohttp ClientSession (HTTP/1.1)"

    @contextlib.asynccontextmanager
    async def session(self, target: Target) -> AsyncIterator[Session]:
        context = ssl.create_default_context(cafile=target.ca_file)
        connector = aiohttp.TCPConnector(ssl=context, limit=MAX_CONNECTIONS)
        async with aiohttp.ClientSession(
            base_url=target.url, connector=connector, timeout=TIMEOUT
        ) as session:
            yield _Session(session)
