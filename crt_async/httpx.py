"""An httpx transport on the CRT: HTTP/2 and CRT speed under httpx, sync and async.

One ``CRTTransport`` object works with ``httpx.AsyncClient`` (asyncio and trio)
and with ``httpx.Client`` (which blocks on the CRT's futures: no event loop).
Importing this module imports httpx (``pip install crt_async[httpx]``);
importing ``crt_async`` does not.

Example::

    import httpx
    from crt_async.httpx import CRTTransport

    async with httpx.AsyncClient(transport=CRTTransport(verify="ca.pem")) as client:
        response = await client.get("https://127.0.0.1:8443/")
        print(response.http_version)  # "HTTP/2"

    with httpx.Client(transport=CRTTransport(verify="ca.pem")) as client:
        print(client.get("https://127.0.0.1:8443/").status_code)
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Union

import httpx

from . import _crt
from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    CRTError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    StreamClosedError,
    TLSError,
    WriteTimeout,
)
from ._exchange import Exchange, ResponseHead
from ._pool import (
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
    BlockingConnectionPool,
    ConnectionPool,
)
from ._response import READ_ALL as _READ_ALL
from ._response import Response
from ._timeouts import Timeout
from ._tls import TLSConfig

__all__ = ["CRTTransport"]

VerifyTypes = Union[bool, str, "os.PathLike[str]"]
DEFAULT_LIMITS = httpx.Limits(
    max_connections=DEFAULT_MAX_CONNECTIONS_PER_ORIGIN, keepalive_expiry=DEFAULT_KEEPALIVE_EXPIRY
)
CertTypes = Union[str, tuple[str, str]]

# crt_async error -> httpx error, most specific first.
_ERROR_MAP: tuple[tuple[type[CRTError], type[httpx.TransportError]], ...] = (
    (ConnectTimeout, httpx.ConnectTimeout),
    (ReadTimeout, httpx.ReadTimeout),
    (WriteTimeout, httpx.WriteTimeout),
    (PoolTimeout, httpx.PoolTimeout),
    (TLSError, httpx.ConnectError),
    (ConnectError, httpx.ConnectError),
    (StreamClosedError, httpx.ReadError),
    (RemoteProtocolError, httpx.RemoteProtocolError),
)


def _httpx_error(
    request: httpx.Request, exc: CRTError, *, reading_body: bool = False
) -> httpx.TransportError:
    """The httpx error a crt_async error stands for (a stream that fails while
    the body is read is an ``httpx.ReadError``)."""
    if reading_body and isinstance(exc, RemoteProtocolError):
        return httpx.ReadError(str(exc), request=request)
    for crt_error, httpx_error in _ERROR_MAP:
        if isinstance(exc, crt_error):
            return httpx_error(str(exc), request=request)
    return httpx.TransportError(str(exc))


@contextlib.contextmanager
def _mapped_errors(request: httpx.Request, *, reading_body: bool = False) -> Iterator[None]:
    """Raise crt_async errors as the matching httpx errors, keeping the cause."""
    try:
        yield
    except CRTError as exc:
        raise _httpx_error(request, exc, reading_body=reading_body) from exc


def _url(request: httpx.Request) -> str:
    """The request URL without credentials: httpx has already turned ``user:password@``
    into an Authorization header, and crt_async refuses URLs that carry them."""
    url = request.url
    return str(url.copy_with(userinfo=b"") if url.userinfo else url)


def _timeout(request: httpx.Request) -> Timeout:
    limits = request.extensions.get("timeout", {})
    return Timeout(
        None,
        connect=limits.get("connect"),
        read=limits.get("read"),
        write=limits.get("write"),
        pool=limits.get("pool"),
    )


class _BlockingResponseBody(httpx.SyncByteStream):
    """The streamed body of a sync httpx response, read by blocking on the CRT."""

    def __init__(
        self, request: httpx.Request, exchange: Exchange, read_timeout: float | None
    ) -> None:
        self._request = request
        self._exchange = exchange
        self._read_timeout = read_timeout

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with _mapped_errors(self._request, reading_body=True):
                chunk = self._exchange.receive_sync(_READ_ALL, self._read_timeout)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._exchange.abandon()


class _ResponseBody(httpx.AsyncByteStream):
    """The streamed body of an httpx response; closing it releases the CRT stream.

    Iterates with a plain iterator object, not an async generator, so a caller
    that stops early leaves nothing to finalise.
    """

    def __init__(
        self,
        request: httpx.Request,
        response: Response,
        context: AbstractAsyncContextManager[Response],
    ) -> None:
        self._request = request
        self._chunks = response.aiter_bytes()
        self._context: AbstractAsyncContextManager[Response] | None = context

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except CRTError as exc:
            raise _httpx_error(self._request, exc, reading_body=True) from exc

    async def aclose(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            await context.__aexit__(None, None, None)


class CRTTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """An ``httpx`` transport that sends requests through crt_async's connection pools.

    The same object serves ``httpx.AsyncClient`` (a ``ConnectionPool`` on the
    client's event loop) and ``httpx.Client`` (a ``BlockingConnectionPool``,
    created at the first sync request).  Options follow ``httpx.HTTPTransport``.

    Args:
        verify: True (system trust store), False (no verification), or the
            path of a CA bundle.  An ``ssl.SSLContext`` cannot be handed to the
            CRT and is rejected.
        cert: client certificate for mutual TLS: a path to a PEM file holding
            certificate and key, or a ``(certificate, key)`` pair of paths.
        http1, http2: the protocols offered with ALPN (HTTP/2 is on by default:
            it is what the CRT is for).
        limits: ``max_connections`` becomes the per-origin connection limit,
            ``keepalive_expiry`` the idle time; ``max_keepalive_connections`` is
            not used.
        retries: how many times to retry a failed connect.

    Raises:
        TypeError: ``verify`` is an ``ssl.SSLContext``.
        ValueError: neither HTTP/1.1 nor HTTP/2 enabled, or bad paths.
    """

    def __init__(
        self,
        *,
        verify: VerifyTypes = True,
        cert: CertTypes | None = None,
        http1: bool = True,
        http2: bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retries: int = 0,
    ) -> None:
        if isinstance(verify, ssl.SSLContext):
            raise TypeError(
                "verify=ssl.SSLContext cannot be used: the CRT does its own TLS. Pass"
                " verify=True (system trust store), verify=False, or verify='path/to/ca.pem'."
            )
        if not (http1 or http2):
            raise ValueError("enable at least one of http1 and http2")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        cert_file, key_file = (cert, cert) if isinstance(cert, str) else (cert or (None, None))
        self._tls = TLSConfig(
            ca_file=None if isinstance(verify, bool) else verify,
            verify=verify if isinstance(verify, bool) else True,
            cert_file=cert_file,
            key_file=key_file,
            alpn=[name for name, enabled in (("h2", http2), ("http/1.1", http1)) if enabled],
        )
        self._pool_options: dict[str, Any] = {
            "tls": self._tls,
            "max_connections_per_origin": limits.max_connections
            or DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
            "keepalive_expiry": limits.keepalive_expiry,
        }
        self._pool = ConnectionPool(**self._pool_options)
        self._blocking_pool: BlockingConnectionPool | None = None
        self._blocking_pool_lock = threading.Lock()  # httpx.Client may be shared by threads
        self._retries = retries

    @property
    def pool(self) -> ConnectionPool:
        """The pool behind ``httpx.AsyncClient`` (``stats()`` shows what it holds)."""
        return self._pool

    @property
    def blocking_pool(self) -> BlockingConnectionPool:
        """The pool behind ``httpx.Client`` (created at the first sync request)."""
        with self._blocking_pool_lock:
            if self._blocking_pool is None:
                self._blocking_pool = BlockingConnectionPool(**self._pool_options)
            return self._blocking_pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` from a thread without an event loop (``httpx.Client``)."""
        timeouts = _timeout(request)
        content = _request_content(request)
        for attempt in range(self._retries + 1):
            try:
                with _mapped_errors(request):
                    exchange, head = self.blocking_pool.open(
                        request.method,
                        _url(request),
                        headers=request.headers.raw,
                        content=content,
                        timeout=timeouts,
                    )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if attempt == self._retries:
                    raise
                continue
            return _httpx_response(head, _BlockingResponseBody(request, exchange, timeouts.read))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every connection of the sync pool."""
        if self._blocking_pool is not None:
            self._blocking_pool.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return a response whose body streams from the CRT."""
        content = _request_content(request)
        for attempt in range(self._retries + 1):
            context = self._pool.stream(
                request.method,
                _url(request),
                headers=request.headers.raw,
                content=content,
                timeout=_timeout(request),
            )
            try:
                response = await context.__aenter__()
            except CRTError as exc:
                error = _httpx_error(request, exc)
                if attempt < self._retries and isinstance(
                    error, (httpx.ConnectError, httpx.ConnectTimeout)
                ):
                    continue
                raise error from exc
            return _httpx_response(response, _ResponseBody(request, response, context))
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._pool.aclose()


def _request_content(request: httpx.Request) -> Any:
    """The request body for crt_async: bytes when httpx already holds them."""
    if isinstance(request.stream, httpx.ByteStream):
        return b"".join(request.stream)
    return request.stream


def _httpx_response(
    head: ResponseHead | Response, stream: httpx.SyncByteStream | httpx.AsyncByteStream
) -> httpx.Response:
    version = b"HTTP/2" if head.http_version == _crt.HTTP2 else b"HTTP/1.1"
    return httpx.Response(
        status_code=head.status,
        headers=head.headers.multi_items(),
        stream=stream,
        extensions={"http_version": version},
    )
