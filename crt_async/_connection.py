"""``connect()`` and ``Connection``: one HTTP/1.1 or HTTP/2 connection over the CRT."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import re
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Callable, NamedTuple

import anyio

from . import _crt
from ._duplex import DuplexStream, WriteData, send_body_data
from ._exceptions import (
    ConnectTimeout,
    CRTError,
    ReadTimeout,
    WriteTimeout,
    translate_crt_error,
)
from ._exchange import Exchange, ResponseHead
from ._futures import wait_future
from ._headers import HeaderTypes, build_request_headers, validate_method, validate_target
from ._loop import current_loop
from ._request_body import (
    BodyChunks,
    BodyReader,
    Content,
    PreparedBody,
    prepare_body,
    prepare_body_sync,
)
from ._response import Response
from ._tasks import helper_tasks
from ._timeouts import Timeout, TimeoutTypes, check_seconds, fail_after
from ._tls import TLSConfig
from ._transport import require_duplex

__all__ = ["Connection", "Origin", "connect"]

DEFAULT_CONNECT_TIMEOUT = 10.0
INITIAL_RECEIVE_WINDOW = 1024 * 1024
DEFAULT_MAX_RECEIVE_WINDOW = 8 * 1024 * 1024
_MAX_WINDOW_LIMIT = 2**31 - 1  # HTTP/2's largest flow-control window
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Printable ASCII without spaces (urlsplit would silently drop tabs and newlines).
_URL = re.compile(r"[\x21-\x7e]+\Z")
# A duplex stream's request body stays open for DuplexStream.send().
_DUPLEX_BODY = PreparedBody(manual_write=True)


class Origin(NamedTuple):
    """Scheme, host and port of a URL."""

    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        """The ``host`` header value: the port is left out when it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"


def parse_origin(url: str) -> Origin:
    """Return the origin of an ``http://`` or ``https://`` URL.

    Raises:
        ValueError: another scheme, no host, an invalid port, or credentials in
            the URL (``user:password@``); the message never repeats the URL.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    if not _URL.match(url):
        raise ValueError(
            "invalid URL: spaces, control and non-ASCII characters must be percent-encoded"
            " (and a non-ASCII host name IDNA-encoded)"
        )
    parts = urllib.parse.urlsplit(url)
    if "@" in parts.netloc:
        raise ValueError(
            "credentials in the URL (user:password@host) are not supported and are never"
            " sent: pass them in an Authorization header"
        )
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}: use http:// or https://")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("invalid port in URL") from None
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return Origin(scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS[scheme])


class ProxyAddress(NamedTuple):
    """An HTTP proxy: where it is and the Basic credentials it wants (if any)."""

    host: str
    port: int
    username: str | None
    password: str | None


def parse_proxy(url: str) -> ProxyAddress:
    """Parse ``http://[user:password@]host[:port]`` (port 80 by default).

    Raises:
        ValueError: another scheme (TLS to the proxy itself is not supported),
            no host, an invalid port, or a path.
    """
    if not isinstance(url, str):
        raise TypeError(f"proxy must be a str, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http":
        raise ValueError(
            f"unsupported proxy URL {_masked(parts)!r}: only http:// proxies are supported"
            " (https:// origins are tunnelled through them with CONNECT)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError("invalid port in the proxy URL") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(
            f"a proxy URL is http://[user:password@]host[:port], got {_masked(parts)!r}"
        )
    username = None if parts.username is None else urllib.parse.unquote(parts.username)
    password = None if parts.password is None else urllib.parse.unquote(parts.password)
    return ProxyAddress(parts.hostname, 80 if port is None else port, username, password)


def _masked(parts: urllib.parse.SplitResult) -> str:
    """The URL without its credentials, for error messages."""
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@functools.lru_cache(maxsize=1)
def _default_tls() -> TLSConfig:
    return TLSConfig()


async def connect(
    url: str,
    *,
    tls: TLSConfig | None = None,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    max_receive_window: int = DEFAULT_MAX_RECEIVE_WINDOW,
    proxy: str | None = None,
) -> Connection:
    """Open one connection to the origin of ``url``.

    ``https://`` uses TLS and offers HTTP/2 and HTTP/1.1 with ALPN (the server
    chooses); ``http://`` is cleartext HTTP/1.1 (the CRT's Python bindings
    cannot speak HTTP/2 without TLS).  Only the scheme, host and port of the URL
    are used.

    If the caller is cancelled (or times out) while connecting, a connection
    that the CRT completes later is closed at once.

    Args:
        url: e.g. ``"https://127.0.0.1:8443"``.
        tls: TLS settings; default: verify against the system trust store.
        connect_timeout: seconds for TCP connect plus TLS handshake (None: no
            limit).  On Linux a failed handshake is delayed 10-30 s on purpose
            by the CRT's TLS library; this timeout still bounds the wait.
        max_receive_window: largest flow-control window per stream, in bytes:
            the most a stream ever buffers for a reader that does not keep up.
        proxy: an HTTP proxy, ``http://[user:password@]host[:port]`` (Basic
            authentication from the URL).  ``https://`` origins are tunnelled
            through it (CONNECT, then TLS with the origin); ``http://`` requests
            are forwarded by it.

    Raises:
        ConnectError: refused, unreachable, DNS failure (of the proxy too, or
            the proxy refused the tunnel).
        TLSError: the TLS handshake failed.
        ConnectTimeout: ``connect_timeout`` expired.
        ValueError: an invalid URL or argument (before any I/O).

    Example::

        async with await connect("https://127.0.0.1:8443", tls=TLSConfig(ca_file="ca.pem")) as conn:
            print(conn.http_version)
    """
    origin, future, stream_limits = _start_connect(
        url, tls, connect_timeout, max_receive_window, proxy, blocking=False
    )
    try:
        with anyio.fail_after(connect_timeout):
            crt_connection = await wait_future(future, on_abandon=_crt.close_connection)
    except TimeoutError:
        raise ConnectTimeout(f"no connection to {origin} within {connect_timeout} s") from None
    except Exception as exc:
        raise translate_crt_error(exc, connecting=True)  # noqa: B904  # the cause is kept
    return Connection(crt_connection, origin, stream_limits, max_receive_window=max_receive_window)


def connect_sync(
    url: str,
    *,
    tls: TLSConfig | None = None,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    max_receive_window: int = DEFAULT_MAX_RECEIVE_WINDOW,
    proxy: str | None = None,
) -> Connection:
    """Like :func:`connect`, blocking the calling thread on the CRT's future (no event loop).

    The connection is for :meth:`Connection.open_blocking` only.
    """
    origin, future, stream_limits = _start_connect(
        url, tls, connect_timeout, max_receive_window, proxy, blocking=True
    )
    try:
        crt_connection = future.result(timeout=connect_timeout)
    except concurrent.futures.TimeoutError:
        future.add_done_callback(_close_late_connection)
        raise ConnectTimeout(f"no connection to {origin} within {connect_timeout} s") from None
    except Exception as exc:
        raise translate_crt_error(exc, connecting=True)  # noqa: B904  # the cause is kept
    return Connection(crt_connection, origin, stream_limits, max_receive_window=max_receive_window)


def _close_late_connection(future: concurrent.futures.Future[Any]) -> None:
    """Done-callback on a connect given up on: close what arrives (never raises)."""
    if not future.cancelled() and future.exception() is None:
        _crt.close_connection(future.result())


def _start_connect(
    url: str,
    tls: TLSConfig | None,
    connect_timeout: float | None,
    max_receive_window: int,
    proxy: str | None,
    *,
    blocking: bool,
) -> tuple[Origin, concurrent.futures.Future[Any], _StreamLimits]:
    """Validate the arguments of a connect, then start it."""
    origin = parse_origin(url)
    proxy_address = None if proxy is None else parse_proxy(proxy)
    check_seconds(connect_timeout, "connect_timeout")
    if not isinstance(max_receive_window, int) or not (
        INITIAL_RECEIVE_WINDOW <= max_receive_window <= _MAX_WINDOW_LIMIT
    ):
        raise ValueError(
            f"max_receive_window must be an int from {INITIAL_RECEIVE_WINDOW} to"
            f" {_MAX_WINDOW_LIMIT}, got {max_receive_window!r}"
        )
    if tls is not None and not isinstance(tls, TLSConfig):
        raise TypeError(f"tls must be a TLSConfig, got {type(tls).__name__}")
    tls_options = None
    if origin.scheme == "https":
        tls_options = (tls or _default_tls()).connection_options(origin.host)
    elif tls is not None:
        raise ValueError("tls was given for an http:// URL: use https://")
    stream_limits = _StreamLimits(blocking=blocking)
    try:
        future = _crt.open_connection(
            origin.host,
            origin.port,
            tls_options=tls_options,
            proxy=proxy_address,
            connect_timeout=connect_timeout,
            initial_window=INITIAL_RECEIVE_WINDOW,
            on_max_concurrent_streams=stream_limits.on_max_concurrent_streams,
        )
    except Exception as exc:
        raise translate_crt_error(exc, connecting=True)  # noqa: B904  # the cause is kept
    return origin, future, stream_limits


async def _write_chunks(
    write_data: WriteData,
    chunks: BodyChunks,
    exchange: Exchange,
    write_timeout: float | None,
) -> None:
    """Send an (async) iterable request body on an HTTP/2 stream, one write at a time.

    Once the CRT has taken END_STREAM, ``exchange.request_sent``.  A failure (of the
    stream, of the caller's iterable, or a write timeout) goes to the reader of
    the response.  The stream is then left without END_STREAM: a truncated body
    is never presented to the server as complete.
    """
    try:
        async for chunk in chunks:
            if chunk:
                with fail_after(write_timeout, WriteTimeout, "request body not taken in time"):
                    await send_body_data(write_data, chunk, end_stream=False)
        with fail_after(write_timeout, WriteTimeout, "END_STREAM not taken in time"):
            await send_body_data(write_data, None, end_stream=True)
        exchange.on_request_sent()
    except Exception as exc:
        if not _stream_completed(exc):
            exchange.on_error(exc)
    finally:
        await chunks.aclose()


async def _wait_head(exchange: Exchange, timeouts: Timeout, *, pulled_body: bool) -> ResponseHead:
    """The response head, with the read timeout counted from the end of the request.

    While the request body is still going out, the upload may take as long as it
    makes progress: a body the CRT reads itself (``pulled_body``) fails with
    :class:`WriteTimeout` if it takes nothing for the write timeout; an iterable
    body's writer enforces the write timeout on each piece.
    """
    stall_timeout = timeouts.write if pulled_body else None
    while not exchange.request_sent:
        taken = exchange.request_taken
        with anyio.move_on_after(stall_timeout):
            head = await exchange.wait_head_or_request_sent()
            if head is not None:
                return head
        if not exchange.request_sent and exchange.request_taken == taken:
            raise WriteTimeout("the request body was not taken in time")
    return await exchange.wait_head(timeouts.read)


def _wait_head_sync(exchange: Exchange, timeouts: Timeout, *, pulled_body: bool) -> ResponseHead:
    """The blocking counterpart of :func:`_wait_head`."""
    stall_timeout = timeouts.write if pulled_body else None
    while not exchange.request_sent:
        taken = exchange.request_taken
        try:
            head = exchange.wait_head_sync(stall_timeout, until_request_sent=True)
        except ReadTimeout:  # here: nothing happened for stall_timeout
            if not exchange.request_sent and exchange.request_taken == taken:
                raise WriteTimeout("the request body was not taken in time") from None
            continue
        if head is not None:
            return head
    head = exchange.wait_head_sync(timeouts.read)
    assert head is not None
    return head


def _stream_completed(error: BaseException) -> bool:
    """Whether a write failed only because the stream had already completed.

    Then the stream's own outcome -- the cause of its failure (e.g. a GOAWAY, with
    its ``retry_safe``) or a response the server ended early -- reaches the reader
    through the CRT's completion callback, and must not be masked by this
    consequence, which can win the race to the reader.
    """
    return getattr(error, "crt_error_name", None) == "AWS_ERROR_HTTP_STREAM_HAS_COMPLETED"


def _write_chunks_blocking(
    crt_stream: Any, chunks: Iterator[bytes], write_timeout: float | None
) -> None:
    """The blocking counterpart of :func:`_write_chunks` (raises instead of reporting;
    returns early if the stream has completed: waiting for the head then tells why)."""
    for data in itertools.chain((chunk for chunk in chunks if chunk), [None]):
        try:
            _crt.write_data(crt_stream, data, data is None).result(timeout=write_timeout)
        except concurrent.futures.TimeoutError:
            raise WriteTimeout("the CRT did not take the request body in time") from None
        except Exception as exc:
            error = translate_crt_error(exc)
            if _stream_completed(error):
                return
            raise error  # noqa: B904  # the cause is kept


class _Slot:
    """One started stream's place in its connection's count."""

    __slots__ = ("closed", "stuck")

    def __init__(self) -> None:
        self.closed = False
        self.stuck = False


class _StreamLimits:
    """How many streams a connection may carry, and how many it carries now.

    The server's SETTINGS_MAX_CONCURRENT_STREAMS arrives on a CRT thread;
    stream completions too, and are counted there at once (a count only ever
    drops there, so a choice made on the loop stays valid).  ``on_change`` (set
    by a pool) learns that capacity may have changed: on the loop for event-loop
    use; for blocking (thread) use on the CRT thread, where it must be
    thread-safe and never raise.

    ``stuck_streams`` counts open streams whose request body was cut short
    (cancelled or failed): they were left without END_STREAM, so the server may
    wait for the rest forever and, as the CRT's bindings cannot reset one
    stream, only closing the connection ends them.
    """

    __slots__ = (
        "_lock",
        "_loop_call",
        "max_concurrent_streams",
        "on_change",
        "open_streams",
        "stuck_streams",
    )

    def __init__(self, *, blocking: bool = False) -> None:
        self._loop_call = None if blocking else current_loop().call_soon
        self._lock = threading.Lock()
        self.max_concurrent_streams: int | None = None  # None: not announced yet
        self.open_streams = 0  # from stream start until the CRT is done with it
        self.stuck_streams = 0
        self.on_change: Callable[[], None] | None = None

    def on_max_concurrent_streams(self, value: int) -> None:  # CRT thread
        self.max_concurrent_streams = value
        self._call_soon(self._changed)

    def stream_opened(self) -> None:
        with self._lock:
            self.open_streams += 1

    def stream_completed(self, slot: _Slot) -> None:  # CRT thread
        self._release(slot)
        if self.on_change is not None:  # nobody listening: no loop callback at all
            self._call_soon(self._changed)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        try:
            if self._loop_call is None:
                callback()
            else:
                self._loop_call(callback)
        except Exception:  # the loop has closed: nobody is counting any more
            pass

    def stream_closed(self, slot: _Slot | None = None) -> None:
        """A stream ended (or never started: no slot)."""
        self._release(slot)
        self._changed()

    def _release(self, slot: _Slot | None) -> None:
        with self._lock:
            self.open_streams -= 1
            if slot is not None:
                slot.closed = True
                self.stuck_streams -= slot.stuck

    def stream_stuck(self, slot: _Slot) -> None:
        """The stream's request body was cut short (no END_STREAM will be sent)."""
        with self._lock:
            if slot.closed or slot.stuck:
                return
            slot.stuck = True
            self.stuck_streams += 1
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


class Connection:
    """One HTTP/1.1 or HTTP/2 connection.  Use :func:`connect` to open one.

    An async context manager: leaving the block closes the connection and
    waits for its shutdown.  An HTTP/2 connection carries many concurrent
    streams; an HTTP/1.1 connection one request at a time.

    Attributes:
        origin: scheme, host and port the connection goes to.
        http_version: ``"HTTP/2"`` or ``"HTTP/1.1"``.
        stream_limits: how many streams the server allows
            (``max_concurrent_streams``, None until an HTTP/2 server says) and
            how many are open (``open_streams``); what a pool decides by.
    """

    def __init__(
        self,
        crt_connection: Any,
        origin: Origin,
        stream_limits: _StreamLimits,
        *,
        max_receive_window: int,
    ) -> None:
        self._crt = crt_connection
        self.origin = origin
        self.http_version = _crt.http_version(crt_connection)
        self._max_receive_window = max_receive_window
        self.stream_limits = stream_limits
        if self.http_version != _crt.HTTP2:
            stream_limits.max_concurrent_streams = 1

    @property
    def SUPPORTS_DUPLEX_STREAMING(self) -> bool:  # the capability flag's name
        """True on HTTP/2: only HTTP/2 connections can carry a duplex stream."""
        return self.http_version == _crt.HTTP2

    @property
    def is_open(self) -> bool:
        """True while the connection is usable."""
        return _crt.is_open(self._crt)

    def _start_exchange(
        self,
        method: str | bytes,
        target: str | bytes,
        headers: HeaderTypes,
        body: PreparedBody,
        *,
        blocking: bool = False,
    ) -> tuple[Exchange, Any, _Slot]:
        http2 = self.http_version == _crt.HTTP2
        method_text = validate_method(method)
        target_text = validate_target(target)
        header_list = build_request_headers(
            headers, host=self.origin.authority, http2=http2, content_length=body.content_length
        )
        exchange = Exchange(
            self.http_version,
            initial_window=INITIAL_RECEIVE_WINDOW,
            max_window=self._max_receive_window,
            # HTTP/1.1 cannot abandon a response and go on: the connection must go.
            on_abandon_incomplete=None if http2 else self.close_nowait,
            blocking=blocking,
        )
        if body.stream is not None:
            request_body: BodyReader | None = BodyReader(body.stream, body.content_length, exchange)
        else:
            request_body = None
            exchange.request_sent = not body.manual_write  # no body at all
        slot = _Slot()
        try:
            crt_stream = _crt.start_stream(
                self._crt,
                exchange,
                method=method_text,
                target=target_text,
                headers=header_list,
                body=request_body,
                close_body=body.owns_stream,
                manual_write=body.manual_write,
                on_complete=functools.partial(self.stream_limits.stream_completed, slot),
            )
        except Exception as exc:
            error = translate_crt_error(exc)
            if isinstance(error, CRTError):
                error.retry_safe = True  # the CRT refused the stream: nothing was sent
            raise error  # noqa: B904  # the cause is kept
        return exchange, crt_stream, slot

    def stream(
        self,
        method: str | bytes,
        target: str | bytes,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: TimeoutTypes = None,
    ) -> AbstractAsyncContextManager[Response]:
        """Send a request and stream the response.

        An async context manager that yields the :class:`Response` once its
        head has arrived; leaving the block releases the stream.

        Args:
            method: e.g. ``"GET"``.
            target: path and query, e.g. ``"/items?page=2"``.
            headers: request headers; ``host`` is filled in when missing.
            content: request body (see :data:`crt_async.Content`).
            timeout: read and write limits (see :class:`Timeout`); default none.

        Raises:
            ValueError, TypeError: invalid method, target, headers or content
                (before anything is sent).
            RemoteProtocolError: the stream failed before the response head.
            ReadTimeout, WriteTimeout: a limit of ``timeout`` expired.

        Example::

            async with connection.stream("GET", "/bytes/1000") as response:
                body = await response.aread()
        """
        return _ResponseContext(self, method, target, headers, content, Timeout.coerce(timeout))

    async def _start_request(
        self,
        method: str | bytes,
        target: str | bytes,
        headers: HeaderTypes,
        content: Content | None,
    ) -> tuple[Exchange, Any, PreparedBody, _Slot]:
        """Count the stream, prepare the body and start the exchange (body not yet written)."""
        self.stream_limits.stream_opened()  # before any await: a pool's choice stays valid
        try:
            body = await prepare_body(content, http2=self.http_version == _crt.HTTP2)
            exchange, crt_stream, slot = self._start_exchange(method, target, headers, body)
        except BaseException:
            self.stream_limits.stream_closed()
            raise
        return exchange, crt_stream, body, slot

    async def open(
        self,
        method: str | bytes,
        target: str | bytes,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: TimeoutTypes = None,
    ) -> Response:
        """Send a request and return the response once its head has arrived.

        Like :meth:`stream`, for callers whose response outlives the calling
        block (e.g. a library's response object): the caller must release it
        with ``response.close()`` or ``await response.aclose()``.  A request
        body iterable is written before the head is awaited (no helper task).

        Raises:
            as :meth:`stream`.
        """
        timeouts = Timeout.coerce(timeout)
        exchange, crt_stream, body, slot = await self._start_request(
            method, target, headers, content
        )
        try:
            if body.chunks is not None:
                write_data = functools.partial(_crt.write_data, crt_stream)
                try:
                    await _write_chunks(write_data, body.chunks, exchange, timeouts.write)
                finally:
                    self._check_body_sent(slot, exchange)
            head = await _wait_head(exchange, timeouts, pulled_body=body.stream is not None)
        except BaseException:
            exchange.abandon()
            raise
        return Response(exchange, head, crt_stream, read_timeout=timeouts.read)

    @contextlib.asynccontextmanager
    async def duplex(
        self,
        method: str | bytes,
        target: str | bytes,
        *,
        headers: HeaderTypes = None,
        timeout: TimeoutTypes = None,
    ) -> AsyncIterator[DuplexStream]:
        """Open a duplex (bidirectional) HTTP/2 stream.

        The request is sent at once with an open body; the yielded
        :class:`DuplexStream` sends body data and receives the response at the
        same time.  Leaving the block closes the stream.

        Args:
            method, target, headers: as for :meth:`stream`.
            timeout: read limit for each receive, write limit for each send.

        Raises:
            UnsupportedTransportError: on an HTTP/1.1 connection (before
                anything is sent).
            ValueError, TypeError: invalid method, target or headers.

        Example::

            async with connection.duplex("POST", "/echo") as stream:
                await stream.send(b"hello")
                assert await stream.receive() == b"hello"
        """
        require_duplex(self)
        timeouts = Timeout.coerce(timeout)
        self.stream_limits.stream_opened()
        try:
            exchange, crt_stream, _ = self._start_exchange(method, target, headers, _DUPLEX_BODY)
        except BaseException:
            self.stream_limits.stream_closed()
            raise
        write_data = functools.partial(_crt.write_data, crt_stream)
        stream = DuplexStream(exchange, write_data, crt_stream, timeout=timeouts)
        try:
            yield stream
        finally:
            await stream.aclose()

    def open_blocking(
        self,
        method: str | bytes,
        target: str | bytes,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: TimeoutTypes = None,
    ) -> tuple[Exchange, ResponseHead]:
        """Send a request from a thread without an event loop; wait for the head.

        The caller must have counted the stream with
        ``stream_limits.stream_opened()`` (a pool does so under its lock), reads
        the body with ``exchange.receive_sync()`` and calls ``exchange.abandon()``
        when done (a no-op after the end).  A request body iterable is written
        before the head is awaited, one piece at a time.  Connections opened
        with :func:`connect_sync` only.

        Raises:
            as :meth:`stream`.
        """
        timeouts = Timeout.coerce(timeout)
        try:
            body = prepare_body_sync(content, http2=self.http_version == _crt.HTTP2)
            exchange, crt_stream, slot = self._start_exchange(
                method, target, headers, body, blocking=True
            )
        except BaseException:
            self.stream_limits.stream_closed()
            raise
        try:
            if body.sync_chunks is not None:
                try:
                    _write_chunks_blocking(crt_stream, body.sync_chunks, timeouts.write)
                except BaseException:
                    self.stream_limits.stream_stuck(slot)
                    raise
                exchange.on_request_sent()
            head = _wait_head_sync(exchange, timeouts, pulled_body=body.stream is not None)
            return exchange, head
        except BaseException:
            exchange.abandon()
            raise

    def close_blocking(self, timeout: float | None = DEFAULT_CONNECT_TIMEOUT) -> None:
        """Close the connection and block until it has shut down (or ``timeout``)."""
        _crt.close_connection(self._crt)
        with contextlib.suppress(Exception):  # why, or whether in time, does not matter here
            _crt.shutdown_future(self._crt).result(timeout=timeout)

    def _check_body_sent(self, slot: _Slot, exchange: Exchange) -> None:
        if not exchange.request_sent:
            self.stream_limits.stream_stuck(slot)

    def close_nowait(self) -> None:
        """Start closing the connection without waiting for its shutdown."""
        _crt.close_connection(self._crt)

    async def wait_closed(self) -> None:
        """Wait until the connection has shut down (closed by either side)."""
        with contextlib.suppress(Exception):  # why it shut down does not matter here
            await wait_future(_crt.shutdown_future(self._crt))

    async def aclose(self) -> None:
        """Close the connection and wait until the CRT has shut it down.

        Streams still open on it fail with :class:`RemoteProtocolError`.
        """
        _crt.close_connection(self._crt)
        await self.wait_closed()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<Connection {self.origin} {self.http_version} {state}>"


class _ResponseContext:
    """What :meth:`Connection.stream` returns: sends the request on entry, yields
    the :class:`Response` once its head arrived, releases the stream on exit.

    A class rather than a generator-based context manager: this is every
    request's path, and a plain object costs a fraction of the generator and
    exit-stack machinery.
    """

    __slots__ = (
        "_connection",
        "_content",
        "_headers",
        "_method",
        "_response",
        "_target",
        "_timeouts",
        "_writer",
    )

    def __init__(
        self,
        connection: Connection,
        method: str | bytes,
        target: str | bytes,
        headers: HeaderTypes,
        content: Content | None,
        timeouts: Timeout,
    ) -> None:
        self._connection = connection
        self._method = method
        self._target = target
        self._headers = headers
        self._content = content
        self._timeouts = timeouts
        self._response: Response | None = None
        self._writer: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Response:
        connection = self._connection
        exchange, crt_stream, body, slot = await connection._start_request(
            self._method, self._target, self._headers, self._content
        )
        read_timeout = self._timeouts.read
        try:
            if body.chunks is not None:
                self._writer = writer = contextlib.AsyncExitStack()
                # Runs after the writer has stopped: was the body cut short?
                writer.callback(connection._check_body_sent, slot, exchange)
                group = await writer.enter_async_context(helper_tasks())
                write_data = functools.partial(_crt.write_data, crt_stream)
                write_timeout = self._timeouts.write
                group.start_soon(_write_chunks, write_data, body.chunks, exchange, write_timeout)
            head = await _wait_head(exchange, self._timeouts, pulled_body=body.stream is not None)
        except BaseException as exc:
            exchange.abandon()
            await self._stop_writer(type(exc), exc, exc.__traceback__)
            raise
        self._response = Response(exchange, head, crt_stream, read_timeout=read_timeout)
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._response is not None
        self._response.close()
        if self._writer is not None:
            await self._stop_writer(exc_type, exc, traceback)

    async def _stop_writer(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.__aexit__(exc_type, exc, traceback)
