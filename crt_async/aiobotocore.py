"""aiobotocore on the CRT: HTTP session classes for ``AioConfig(http_session_cls=...)``.

* :class:`CRTSession` runs aiobotocore on asyncio (its default mode, as with
  its own aiohttp session).
* :class:`CRTAnyioSession` is the same session for aiobotocore's anyio mode,
  which runs on asyncio **and trio**.  aiobotocore switches its retry sleeps,
  paginators, waiters and credential providers to anyio only for subclasses of
  its ``HttpxSession``; this class is one in name only (httpx is never used):
  every method comes from :class:`CRTSession`.

Both send every request through a crt_async :class:`~crt_async.ConnectionPool`
(HTTP/2 over TLS where the server offers it, HTTP/1.1 otherwise) and stream
response bodies with its flow control: reading a 1 GiB object in 1 MiB pieces
keeps memory bounded.  Importing this module imports aiobotocore
(``pip install crt_async[aiobotocore]``, Python 3.10+); importing ``crt_async``
does not.

Example::

    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from crt_async.aiobotocore import CRTSession

    config = AioConfig(http_session_cls=CRTSession)
    async with get_session().create_client("s3", config=config) as s3:
        await s3.list_buckets()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Union, cast

import anyio
import anyio.to_thread
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.httpxsession import HttpxSession
from aiobotocore.response import AioReadTimeoutError
from botocore.compat import HTTPHeaders
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from botocore.httpsession import MAX_POOL_CONNECTIONS, ProxyConfiguration, mask_proxy_url

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
from ._pool import DEFAULT_KEEPALIVE_EXPIRY, ConnectionPool
from ._request_body import Content
from ._response import READ_ALL, Response
from ._timeouts import Timeout
from ._tls import TLSConfig

__all__ = ["CRTAnyioSession", "CRTSession"]

PathType = Union[str, "os.PathLike[str]"]
TimeoutArg = Union[float, Sequence[Union[float, None]], None]

# connector_args keys that aiobotocore documents for its aiohttp session and the
# CRT cannot (or need not) honour: accepted and ignored.
IGNORED_CONNECTOR_ARGS = frozenset(
    {"use_dns_cache", "ttl_dns_cache", "force_close", "resolver", "socket_factory"}
)
_HONOURED_CONNECTOR_ARGS = frozenset({"keepalive_timeout", "write_timeout", "pool_timeout"})
# Request headers the CRT path must not forward: the CRT sends a body at once
# (no waiting for "100 Continue") and frames it itself (content-length on
# HTTP/1.1, DATA frames on HTTP/2).
_DROPPED_REQUEST_HEADERS = frozenset({"expect", "transfer-encoding"})


def _timeouts(timeout: TimeoutArg) -> tuple[float | None, float | None]:
    if isinstance(timeout, (list, tuple)):
        if len(timeout) != 2:
            raise ValueError(f"timeout must be seconds or a (connect, read) pair, got {timeout!r}")
        return timeout[0], timeout[1]
    if timeout is None or isinstance(timeout, (int, float)):
        return timeout, timeout
    raise TypeError(f"timeout must be seconds or a (connect, read) pair, got {timeout!r}")


def _client_cert(client_cert: PathType | tuple[PathType, PathType] | None) -> tuple[Any, Any]:
    if client_cert is None:
        return None, None
    if isinstance(client_cert, (str, os.PathLike)):
        return client_cert, client_cert  # one PEM file holding certificate and key
    if isinstance(client_cert, tuple) and len(client_cert) == 2:
        return client_cert
    raise TypeError(f"client_cert must be a path or a (cert, key) pair, got {client_cert!r}")


class CRTSession:
    """An aiobotocore HTTP session on the CRT (aiobotocore's asyncio mode).

    Use ``AioConfig(http_session_cls=CRTSession)``; aiobotocore creates one
    session per client with the arguments below, enters it with the client
    and closes it with the client.  For trio, use :class:`CRTAnyioSession`.

    Args:
        verify: True (the system trust store: the CRT's default, not
            certifi's bundle), False (no verification), or the path of a CA
            bundle that replaces the system store.
        proxies: botocore's proxies by URL scheme (from the config or the
            ``HTTP(S)_PROXY`` environment): ``http://[user:password@]host[:port]``
            proxies are used through the CRT's proxy support (Basic
            authentication from the URL; ``https://`` requests tunnelled with
            CONNECT, ``http://`` ones forwarded).  A proxy URL with another
            scheme (TLS to the proxy itself) raises ``ValueError`` at the first
            request it applies to, rather than being bypassed.
        proxies_config: ignored (its settings concern TLS to the proxy).
        timeout: seconds, or a ``(connect, read)`` pair (botocore passes its
            ``connect_timeout`` and ``read_timeout``).  Connect covers TCP and
            TLS; read bounds the wait for the response head and for each piece
            of the body.  A request's ``context["read_timeout"]`` overrides it.
        max_pool_connections: the most connections per origin (HTTP/2
            connections carry many requests each).
        socket_options: ignored (as by aiobotocore's own sessions).
        client_cert: client certificate for mutual TLS: a PEM file holding
            certificate and key, or a ``(certificate, key)`` pair of paths.
        connector_args: honoured: ``keepalive_timeout`` (idle seconds a
            connection is kept; aiobotocore passes 12 s by default; None:
            forever), ``write_timeout`` (each piece of a request body; default:
            the read timeout), ``pool_timeout`` (waiting for a free connection;
            default: no limit).  Ignored: ``use_dns_cache``, ``ttl_dns_cache``,
            ``force_close``, ``resolver``, ``socket_factory`` (the CRT resolves
            and caches host names itself).

    Raises:
        TypeError: ``connector_args["ssl_context"]`` (the CRT does its own TLS:
            use ``verify`` / ``client_cert``), an unknown ``connector_args``
            key, or an argument of the wrong type.
        ValueError: (when the session is entered) a CA bundle or certificate
            file that does not exist, or holds no certificate or key.

    Errors are raised as aiobotocore's own sessions raise them, so botocore's
    retry logic retries them: TLS failure ``SSLError``; connect timeout (and
    pool timeout) ``ConnectTimeoutError``; read or write timeout
    ``ReadTimeoutError``; refused, unreachable or unknown host
    ``EndpointConnectionError`` (``ProxyConnectionError`` when a proxy
    applies); connection lost or stream reset ``ConnectionClosedError``;
    anything else ``HTTPClientError``.  While a streamed body (``get_object``,
    an event stream) is read: ``AioReadTimeoutError`` and ``ResponseStreamingError``.
    """

    def __init__(
        self,
        verify: bool | PathType = True,
        proxies: Mapping[str, str] | None = None,
        timeout: TimeoutArg = None,
        max_pool_connections: int = MAX_POOL_CONNECTIONS,
        socket_options: Sequence[Any] | None = None,
        client_cert: PathType | tuple[PathType, PathType] | None = None,
        proxies_config: Mapping[str, Any] | None = None,
        connector_args: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(verify, (bool, str, os.PathLike)):
            raise TypeError(
                f"verify must be True, False or a CA bundle path, got {type(verify).__name__}"
            )
        connector_args = dict(connector_args or {})
        if "ssl_context" in connector_args:
            raise TypeError(
                "connector_args['ssl_context'] cannot be used: the CRT does its own TLS."
                " Use verify (True, False or a CA bundle path) and client_cert instead."
            )
        unknown = set(connector_args) - _HONOURED_CONNECTOR_ARGS - IGNORED_CONNECTOR_ARGS
        if unknown:
            raise TypeError(f"unknown connector_args: {', '.join(sorted(unknown))}")
        connect_timeout, read_timeout = _timeouts(timeout)
        self._timeout = Timeout(
            None,
            connect=connect_timeout,
            read=read_timeout,
            write=connector_args.get("write_timeout", read_timeout),
            pool=connector_args.get("pool_timeout"),
        )
        self._verify = verify
        self._cert_file, self._key_file = _client_cert(client_cert)
        self._proxy_config = ProxyConfiguration(
            proxies=dict(proxies or {}), proxies_settings=dict(proxies_config or {})
        )
        self._pool_options: dict[str, Any] = {
            "max_connections_per_origin": max_pool_connections,
            "keepalive_expiry": connector_args.get("keepalive_timeout", DEFAULT_KEEPALIVE_EXPIRY),
        }
        self._tls: TLSConfig | None = None
        self._pools: dict[str | None, ConnectionPool] = {}

    def _new_tls(self) -> TLSConfig:
        return TLSConfig(
            ca_file=None if isinstance(self._verify, bool) else self._verify,
            verify=self._verify if isinstance(self._verify, bool) else True,
            cert_file=self._cert_file,
            key_file=self._key_file,
        )

    async def __aenter__(self) -> CRTSession:
        if self._tls is None:
            # Building the TLS context reads certificate files: off the event loop.
            self._tls = await anyio.to_thread.run_sync(self._new_tls)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every pooled connection (idempotent)."""
        pools = list(self._pools.values())
        self._pools.clear()
        self._tls = None
        for pool in pools:
            await pool.aclose()

    def _pool(self, proxy_url: str | None) -> ConnectionPool:
        """The pool for requests through ``proxy_url`` (None: direct)."""
        if self._tls is None:
            raise RuntimeError("the session is not open: use 'async with session' first")
        pool = self._pools.get(proxy_url)
        if pool is None:
            pool = ConnectionPool(tls=self._tls, proxy=proxy_url, **self._pool_options)
            self._pools[proxy_url] = pool
        return pool

    def _request_timeout(self, request: Any) -> Timeout:
        context = getattr(request, "context", None) or {}
        read_timeout = context.get("read_timeout")
        if read_timeout is None:
            return self._timeout
        timeout = self._timeout
        return Timeout(
            None, connect=timeout.connect, read=read_timeout, write=timeout.write, pool=timeout.pool
        )

    async def send(self, request: Any) -> AioAWSResponse:
        """Send a botocore ``AWSPreparedRequest``; return an ``AioAWSResponse``.

        The URL is sent exactly as botocore prepared it (S3 keys are not
        normalised).  Unless ``request.stream_output``, the body is read before
        this returns; otherwise ``response.raw`` streams it.

        Raises:
            botocore exceptions, as described in the class docstring.
            RuntimeError: the session has not been entered (or was closed).
            ValueError: the proxy for the URL's scheme is not an ``http://`` URL.
        """
        url: str = request.url
        proxy_url: str | None = self._proxy_config.proxy_url_for(url) or None
        pool = self._pool(proxy_url)
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _DROPPED_REQUEST_HEADERS and name.lower() != "accept-encoding"
        ]
        headers.append(("accept-encoding", "identity"))  # botocore issue 1255, as aiobotocore
        try:
            response = await pool.open(
                request.method,
                url,
                headers=headers,
                content=_content(request.body),
                timeout=self._request_timeout(request),
            )
            raw = CRTRawResponse(url, response)
            if not request.stream_output:
                try:
                    await raw._read_body()
                finally:
                    raw.close()
        except Exception as exc:
            raise _botocore_error(exc, request, proxy_url) from exc
        http_response = AioAWSResponse(
            url, response.status, HTTPHeaders.from_pairs(response.headers.multi_items()), raw
        )
        if not request.stream_output:
            await http_response.content  # the body read above, cached by raw.read()
        return http_response


class CRTAnyioSession(CRTSession, HttpxSession):  # type: ignore[misc]  # aiobotocore is untyped
    """:class:`CRTSession` for aiobotocore's anyio mode: runs on asyncio and trio.

    aiobotocore drives retry sleeps, paginators, waiters and credential
    providers with anyio only when ``http_session_cls`` is a subclass of its
    ``HttpxSession``; this class is one for that reason only.  Nothing of
    ``HttpxSession`` runs and httpx is not needed: every method, argument and
    error is :class:`CRTSession`'s.

    For credentials that aiobotocore resolves itself (environment, profiles,
    instance metadata) under trio, also make it the session's default:
    ``session.set_default_client_config(AioConfig(http_session_cls=CRTAnyioSession))``.

    Example::

        config = AioConfig(http_session_cls=CRTAnyioSession)
        async with get_session().create_client("s3", config=config) as s3:
            ...  # under trio.run() or anyio.run(..., backend="trio")
    """


def _content(body: Any) -> Content | None:
    """A botocore request body as crt_async request content."""
    if body is None or isinstance(body, (bytes, bytearray)):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, AsyncIterable):  # e.g. AioAwsChunkedWrapper (it also has an async read)
        return _async_chunks(body)
    return cast(Content, body)  # a file (the CRT reads it on its own thread) or an iterable


async def _async_chunks(body: AsyncIterable[bytes | str]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk.encode("utf-8") if isinstance(chunk, str) else chunk


def _botocore_error(error: Exception, request: Any, proxy_url: str | None) -> Exception:
    """The botocore exception aiobotocore's own sessions raise for ``error``."""
    url = request.url
    mapped: Exception
    if isinstance(error, TLSError):
        mapped = SSLError(endpoint_url=url, error=error)
    elif isinstance(error, (ConnectTimeout, PoolTimeout)):
        mapped = ConnectTimeoutError(endpoint_url=url, error=error)
    elif isinstance(error, ConnectError) and proxy_url:
        mapped = ProxyConnectionError(proxy_url=mask_proxy_url(proxy_url), error=error)
    elif isinstance(error, ConnectError):
        mapped = EndpointConnectionError(endpoint_url=url, error=error)
    elif isinstance(error, (ReadTimeout, WriteTimeout)):
        mapped = ReadTimeoutError(endpoint_url=url, error=error)
    elif isinstance(error, (RemoteProtocolError, StreamClosedError)):
        mapped = ConnectionClosedError(error=error, request=request, endpoint_url=url)
    else:
        mapped = HTTPClientError(error=error)
    return mapped


@contextlib.contextmanager
def _streaming_errors(url: str) -> Iterator[None]:
    """While a streamed body is read: the errors aiobotocore's streaming body raises."""
    try:
        yield
    except ReadTimeout as exc:
        raise AioReadTimeoutError(endpoint_url=url, error=exc) from exc
    except CRTError as exc:
        raise ResponseStreamingError(error=exc) from exc


class CRTRawResponse:
    """``AioAWSResponse.raw``: what aiobotocore's streaming body and event streams use.

    ``content`` has the subset of aiohttp's ``StreamReader`` they call
    (``read(n)``, ``at_eof()``, ``iter_chunks()``); ``read()`` returns the
    whole body (and keeps it); ``close()`` releases the stream.  The stream is
    released by itself once the body has been read to the end or has failed.

    Attributes:
        url: the request URL.
        status: the status code.
        http_version: ``"HTTP/2"`` or ``"HTTP/1.1"``.
        content: the body stream.
    """

    def __init__(self, url: str, response: Response) -> None:
        self.url = url
        self.status = response.status
        self.http_version = response.http_version
        self.content = CRTStreamReader(self)
        self._response = response
        self._eof = False
        self._body: bytes | None = None

    async def _receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the body, ``b""`` at the end (crt_async errors)."""
        if self._eof:
            return b""
        try:
            data = await self._response.receive(max_bytes)
        except Exception:
            self.close()
            raise
        if not data:
            self._eof = True
            self.close()
        return data

    async def _read_rest(self) -> bytes:
        """The rest of the body (crt_async errors); a cancelled call is resumed by
        the next one."""
        if self._eof:
            return b""
        try:
            data = await self._response.aread()  # one wake-up per half window
        except Exception:  # not cancellation: what was read so far stays with the response
            self.close()
            raise
        self._eof = True
        self.close()
        return data

    async def _read_body(self) -> bytes:
        """The (rest of the) body, kept for later calls (crt_async errors)."""
        if self._body is None:
            self._body = await self._read_rest()
        return self._body

    async def read(self) -> bytes:
        """The whole body (kept: later calls return it again)."""
        with _streaming_errors(self.url):
            return await self._read_body()

    def close(self) -> None:
        """Release the stream; an unread rest of the body is discarded."""
        self._response.close()

    @property
    def closed(self) -> bool:
        """True once the stream is released."""
        return self._response.is_closed

    def __repr__(self) -> str:
        return f"<CRTRawResponse [{self.status}] {self.url}>"


class CRTStreamReader:
    """``raw.content``: the body as aiohttp's ``StreamReader`` would give it."""

    def __init__(self, raw: CRTRawResponse) -> None:
        self._raw = raw

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes as soon as any have arrived (``n < 0``: the whole
        rest); ``b""`` at the end."""
        with _streaming_errors(self._raw.url):
            if n < 0:
                return await self._raw._read_rest()
            if n == 0:
                return b""
            return await self._raw._receive(n)

    def at_eof(self) -> bool:
        """True once a read has reached the end of the body."""
        return self._raw._eof

    def iter_chunks(self) -> CRTChunkIterator:
        """Iterate over ``(data, end_of_http_chunk)`` pairs as the body arrives;
        the CRT does not report HTTP/1.1 chunk boundaries, so the flag is always False."""
        return CRTChunkIterator(self)


class CRTChunkIterator:
    """Async iterator of ``(bytes, False)`` pairs (a class, so stopping early
    leaves nothing to finalise)."""

    def __init__(self, reader: CRTStreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> CRTChunkIterator:
        return self

    async def __anext__(self) -> tuple[bytes, bool]:
        data = await self._reader.read(READ_ALL)  # what has arrived (at most one window)
        if not data:
            raise StopAsyncIteration
        return data, False
