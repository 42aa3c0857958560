"""``httpx.AsyncClient`` (asyncio) over crt_async's ``CRTTransport``, and over httpx's own
HTTP/2 transport (httpcore + h2), limited to one connection like the others."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator

import httpx

from crt_async.httpx import CRTTransport

from ..common import DOWNLOAD_PIECE, Target
from .base import AsyncContender, Session, check_status

TIMEOUT = httpx.Timeout(60.0)


class _Session:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def get(self, path: str) -> int:
        response = await self._client.get(path)
        check_status(response.status_code, path)
        return len(response.content)

    @contextlib.asynccontextmanager
    async def stream(self, path: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._client.stream("GET", path) as response:
            check_status(response.status_code, path)
            yield response.aiter_bytes(DOWNLOAD_PIECE)


class HttpxCRT(AsyncContender):
    """``httpx.AsyncClient(transport=CRTTransport(...))``."""

    name = "httpx-crt"
    description = "httpx.AsyncClient + crt_async CRTTransport"

    @contextlib.asynccontextmanager
    async def session(self, target: Target) -> AsyncIterator[Session]:
        transport = CRTTransport(verify=target.ca_file)
        async with httpx.AsyncClient(
            transport=transport, base_url=target.url, timeout=TIMEOUT
        ) as client:
            yield _Session(client)
            if transport.pool.stats().connections != 1:
                raise RuntimeError(f"CRTTransport used {transport.pool.stats()}")


class HttpxH2(AsyncContender):
    """``httpx.AsyncClient(http2=True)`` with one connection (``max_connections=1``)."""

    name = "httpx-h2"
    description = "httpx.AsyncClient(http2=True), httpcore + h2"

    @contextlib.asynccontextmanager
    async def session(self, target: Target) -> AsyncIterator[Session]:
        async with httpx.AsyncClient(
            http1=False,
            http2=True,
            verify=ssl.create_default_context(cafile=target.ca_file),
            limits=httpx.Limits(max_connections=1),
            base_url=target.url,
            timeout=TIMEOUT,
        ) as client:
            yield _Session(client)
