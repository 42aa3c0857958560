"""``Client``: base URL, default headers and timeouts over any transport."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Union, cast

from ._connection import parse_origin
from ._duplex import DuplexStream
from ._headers import HeaderTypes, validate_headers
from ._pool import ConnectionPool
from ._request_body import Content
from ._response import Response
from ._timeouts import Timeout, TimeoutTypes
from ._tls import TLSConfig
from ._transport import AsyncDuplexTransport, AsyncTransport, require_duplex

__all__ = ["USE_CLIENT_DEFAULT", "Client"]

DEFAULT_TIMEOUT = Timeout(5.0)


class _UseClientDefault(enum.Enum):
    USE_CLIENT_DEFAULT = enum.auto()


USE_CLIENT_DEFAULT = _UseClientDefault.USE_CLIENT_DEFAULT
"""Per-request ``timeout`` default: use the client's."""

RequestTimeout = Union[TimeoutTypes, _UseClientDefault]


class Client:
    """An HTTP client over a transport (by default a :class:`ConnectionPool`).

    Args:
        transport: anything with the transport interface: ``stream()``,
            ``duplex()`` (if it declares ``SUPPORTS_DUPLEX_STREAMING = True``)
            and ``aclose()``, e.g. :class:`ConnectionPool` or
            :class:`MockTransport`.
        tls: TLS settings for the default transport (not with ``transport``).
        base_url: prefix for relative request URLs.
        headers: default headers, overridden per request by name.
        timeout: a :class:`Timeout`, seconds for every phase, or None
            (default: 5 s for every phase).

    Example::

        async with Client(base_url="https://127.0.0.1:8443", tls=tls) as client:
            response = await client.get("/")
            print(response.status, response.content)
    """

    def __init__(
        self,
        *,
        transport: AsyncTransport | None = None,
        tls: TLSConfig | None = None,
        base_url: str | None = None,
        headers: HeaderTypes = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
    ) -> None:
        if transport is None:
            transport = ConnectionPool(tls=tls)
        elif tls is not None:
            raise ValueError("pass tls to the transport, not to a Client given a transport")
        if base_url is not None:
            try:
                parse_origin(base_url)
            except ValueError as exc:  # the message never repeats the URL (credentials)
                raise ValueError(f"invalid base_url: {exc}") from None
        self.transport: AsyncTransport = transport
        self.base_url = base_url
        self.headers = validate_headers(headers, http2=False)
        self.timeout = Timeout.coerce(timeout)

    def _url(self, url: str) -> str:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        if url.lower().startswith(("http://", "https://")) or self.base_url is None:
            return url
        return self.base_url.rstrip("/") + "/" + url.lstrip("/")

    def _headers(self, headers: HeaderTypes) -> list[tuple[str, str]]:
        request_headers = validate_headers(headers, http2=False)
        overridden = {name.lower() for name, _ in request_headers}
        kept = [(name, value) for name, value in self.headers if name.lower() not in overridden]
        return kept + request_headers

    def _timeout(self, timeout: RequestTimeout) -> Timeout:
        return self.timeout if timeout is USE_CLIENT_DEFAULT else Timeout.coerce(timeout)

    def stream(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: RequestTimeout = USE_CLIENT_DEFAULT,
    ) -> AbstractAsyncContextManager[Response]:
        """Send a request and stream the response (an async context manager).

        Raises:
            ValueError, TypeError: invalid URL, method, headers or content.
            ConnectError, TLSError, RemoteProtocolError: the exchange failed.
            ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout: a limit expired.
        """
        return self.transport.stream(
            method,
            self._url(url),
            headers=self._headers(headers),
            content=content,
            timeout=self._timeout(timeout),
        )

    async def request(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: RequestTimeout = USE_CLIENT_DEFAULT,
    ) -> Response:
        """Send a request and return the response with its body read (``.content``)."""
        async with self.stream(
            method, url, headers=headers, content=content, timeout=timeout
        ) as response:
            await response.aread()
        return response

    async def get(
        self, url: str, *, headers: HeaderTypes = None, timeout: RequestTimeout = USE_CLIENT_DEFAULT
    ) -> Response:
        """``request("GET", url, ...)``."""
        return await self.request("GET", url, headers=headers, timeout=timeout)

    async def head(
        self, url: str, *, headers: HeaderTypes = None, timeout: RequestTimeout = USE_CLIENT_DEFAULT
    ) -> Response:
        """``request("HEAD", url, ...)``."""
        return await self.request("HEAD", url, headers=headers, timeout=timeout)

    async def delete(
        self, url: str, *, headers: HeaderTypes = None, timeout: RequestTimeout = USE_CLIENT_DEFAULT
    ) -> Response:
        """``request("DELETE", url, ...)``."""
        return await self.request("DELETE", url, headers=headers, timeout=timeout)

    async def post(
        self,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: RequestTimeout = USE_CLIENT_DEFAULT,
    ) -> Response:
        """``request("POST", url, ...)``."""
        return await self.request("POST", url, headers=headers, content=content, timeout=timeout)

    async def put(
        self,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: RequestTimeout = USE_CLIENT_DEFAULT,
    ) -> Response:
        """``request("PUT", url, ...)``."""
        return await self.request("PUT", url, headers=headers, content=content, timeout=timeout)

    @contextlib.asynccontextmanager
    async def duplex(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        timeout: RequestTimeout = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[DuplexStream]:
        """Open a duplex HTTP/2 stream (an async context manager).

        Raises:
            UnsupportedTransportError: the transport does not declare
                ``SUPPORTS_DUPLEX_STREAMING = True`` (checked before anything else).
        """
        require_duplex(self.transport)
        transport = cast(AsyncDuplexTransport, self.transport)  # it declared the capability
        async with transport.duplex(
            method, self._url(url), headers=self._headers(headers), timeout=self._timeout(timeout)
        ) as stream:
            yield stream

    async def aclose(self) -> None:
        """Close the transport (and with it every connection)."""
        await self.transport.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
