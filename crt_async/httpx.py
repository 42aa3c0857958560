"""An httpx transport on the CRT: HTTP/2 and CRT speed under ``httpx.AsyncClient``.

Importing this module imports httpx (``pip install crt_async[httpx]``);
importing ``crt_async`` does not.

Example::

    import httpx
    from crt_async.httpx import CRTTransport

    async with httpx.AsyncClient(transport=CRTTransport(verify="ca.pem")) as client:
        response = await client.get("https://127.0.0.1:8443/")
        print(response.http_version)  # "HTTP/2"
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Iterator
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
from ._pool import DEFAULT_KEEPALIVE_EXPIRY, DEFAULT_MAX_CONNECTIONS_PER_ORIGIN, ConnectionPool
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


@contextlib.contextmanager
def _mapped_errors(request: httpx.Request, *, reading_body: bool = False) -> Iterator[None]:
    """Raise crt_async errors as the matching httpx errors, keeping the cause.

    A stream that fails while the body is read is an ``httpx.ReadError``.
    """
    try:
        yield
    except CRTError as exc:
        if reading_body and isinstance(exc, RemoteProtocolError):
            raise httpx.ReadError(str(exc), request=request) from exc
        for crt_error, httpx_error in _ERROR_MAP:
            if isinstance(exc, crt_error):
                raise httpx_error(str(exc), request=request) from exc
        raise httpx.TransportError(str(exc)) from exc


def _timeout(request: httpx.Request) -> Timeout:
    limits = request.extensions.get("timeout", {})
    return Timeout(
        None,
        connect=limits.get("connect"),
        read=limits.get("read"),
        write=limits.get("write"),
        pool=limits.get("pool"),
    )


class _ResponseBody(httpx.AsyncByteStream):
    """The streamed body of an httpx response; closing it releases the CRT stream.

    Iterates with a plain iterator object, not an async generator, so a caller
    that stops early leaves nothing to finalise.
    """

    def __init__(
        self, request: httpx.Request, response: Response, stack: contextlib.AsyncExitStack
    ) -> None:
        self._request = request
        self._chunks = response.aiter_bytes()
        self._stack = stack

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        with _mapped_errors(self._request, reading_body=True):
            return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._stack.aclose()


class CRTTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that sends requests through a crt_async ``ConnectionPool``.

    Options follow ``httpx.AsyncHTTPTransport``.

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
        self._pool = ConnectionPool(
            tls=self._tls,
            max_connections_per_origin=limits.max_connections or DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
            keepalive_expiry=limits.keepalive_expiry,
        )
        self._retries = retries

    @property
    def pool(self) -> ConnectionPool:
        """The connection pool behind this transport (``stats()`` shows what it holds)."""
        return self._pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return a response whose body streams from the CRT."""
        content: Any = request.stream
        if isinstance(content, httpx.ByteStream):
            content = b"".join(content)  # already in memory: hand the CRT bytes
        for attempt in range(self._retries + 1):
            stack = contextlib.AsyncExitStack()
            try:
                with _mapped_errors(request):
                    response = await stack.enter_async_context(
                        self._pool.stream(
                            request.method,
                            str(request.url),
                            headers=request.headers.raw,
                            content=content,
                            timeout=_timeout(request),
                        )
                    )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                await stack.aclose()
                if attempt == self._retries:
                    raise
                continue
            except BaseException:
                await stack.aclose()
                raise
            version = b"HTTP/2" if response.http_version == _crt.HTTP2 else b"HTTP/1.1"
            return httpx.Response(
                status_code=response.status,
                headers=response.headers.multi_items(),
                stream=_ResponseBody(request, response, stack),
                extensions={"http_version": version},
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._pool.aclose()
