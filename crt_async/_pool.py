"""``ConnectionPool``: connections per origin, HTTP/2 multiplexing, keep-alive, one retry.

How the pool knows a connection's capacity: each ``Connection`` counts its open
streams from the moment ``stream()`` / ``duplex()`` is entered until the CRT
is done with the stream (an abandoned HTTP/2 stream still counts while it
drains), and learns the server's SETTINGS_MAX_CONCURRENT_STREAMS from the CRT's
settings callback.  Until those settings arrive (about one round trip after
connecting) a new HTTP/2 connection carries one stream: the CRT itself does not
enforce the limit before then, and a server may answer a stream over its limit
by closing the whole connection.  HTTP/1.1 connections carry one stream.

A request the server provably never processed (the CRT refused to start it,
the stream limit was exceeded, or a GOAWAY said the stream was above the last
one accepted: ``CRTError.retry_safe``) is sent once more on another connection,
if its body can be replayed.

A pool belongs to the event loop that first uses it.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from . import _crt
from ._connection import (
    DEFAULT_MAX_RECEIVE_WINDOW,
    Connection,
    Origin,
    connect,
    connect_sync,
    parse_origin,
    parse_proxy,
)
from ._duplex import DuplexStream
from ._exceptions import CRTError, PoolTimeout, StreamClosedError, UnsupportedTransportError
from ._exchange import Exchange, ResponseHead
from ._headers import HeaderTypes, validate_headers, validate_method, validate_target
from ._request_body import Content, check_content
from ._response import Response
from ._timeouts import Timeout, TimeoutTypes, check_seconds
from ._tls import TLSConfig

__all__ = ["BlockingConnectionPool", "ConnectionPool", "PoolStats", "split_url"]

DEFAULT_MAX_CONNECTIONS_PER_ORIGIN = 10
DEFAULT_KEEPALIVE_EXPIRY = 4.0  # below the common 5 s idle timeout of servers

T = TypeVar("T")


def split_url(url: str) -> tuple[Origin, str]:
    """The origin of ``url`` and its request target (path and query, kept as given).

    Raises:
        ValueError: not an absolute ``http://`` / ``https://`` URL.
    """
    origin = parse_origin(url)
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return origin, target


def _replayable(content: Content | None) -> bool:
    """Whether a request body can be sent a second time."""
    return content is None or isinstance(content, (bytes, bytearray, memoryview))


@dataclass(frozen=True)
class PoolStats:
    """What a :class:`ConnectionPool` holds at one moment.

    Attributes:
        connections: open connections.
        idle: open connections carrying no stream.
        in_use: open connections carrying at least one stream.
        streams: open streams (including abandoned ones still draining).
        connecting: connections being opened.
    """

    connections: int
    idle: int
    in_use: int
    streams: int
    connecting: int


class _Pooled:
    """A pooled connection and what the pool knows about it."""

    __slots__ = ("connection", "idle_since", "retired")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.idle_since: float | None = None
        self.retired = False  # no new streams (GOAWAY); closed once idle

    @property
    def open_streams(self) -> int:
        return self.connection.stream_limits.open_streams

    def has_room(self) -> bool:
        limits = self.connection.stream_limits
        capacity = 1 if limits.max_concurrent_streams is None else limits.max_concurrent_streams
        return (
            not self.retired
            and limits.stuck_streams == 0
            and self.connection.is_open
            and self.open_streams < capacity
        )


class _OriginState:
    """The connections to one origin.

    ``changed`` is the event async waiters wait on (created when one waits,
    set and dropped on every change); blocking pools use a condition instead.
    """

    __slots__ = ("changed", "connecting", "connections", "http2")

    def __init__(self) -> None:
        self.connections: list[_Pooled] = []
        self.connecting = 0
        self.http2: bool | None = None  # None until the first connection says
        self.changed: anyio.Event | None = None

    def may_open(self, max_connections: int) -> bool:
        if len(self.connections) + self.connecting >= max_connections:
            return False
        if self.http2 is False:
            return True
        # HTTP/2 (or unknown): one connect at a time, and none while a connection's
        # stream limit is still unknown -- it will most likely have room in a moment.
        return self.connecting == 0 and all(
            pooled.connection.stream_limits.max_concurrent_streams is not None
            for pooled in self.connections
        )


class _PoolCore:
    """What the async and the blocking pool share: configuration, per-origin
    bookkeeping, the choice of a connection, pruning, retries and stats.

    Subclasses say how waiters are told that capacity changed (``_notify``).
    """

    def __init__(
        self,
        *,
        tls: TLSConfig | None,
        max_connections_per_origin: int,
        keepalive_expiry: float | None,
        max_receive_window: int,
        proxy: str | None,
    ) -> None:
        if proxy is not None:
            parse_proxy(proxy)  # a bad proxy URL fails here, not at the first request
        if tls is not None and not isinstance(tls, TLSConfig):
            raise TypeError(f"tls must be a TLSConfig, got {type(tls).__name__}")
        limit = max_connections_per_origin
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_connections_per_origin must be an int >= 1, got {limit!r}")
        check_seconds(keepalive_expiry, "keepalive_expiry")
        self._tls = tls
        self._max_connections = max_connections_per_origin
        self._keepalive_expiry = keepalive_expiry
        self._max_receive_window = max_receive_window
        self._proxy = proxy
        self._origins: dict[Origin, _OriginState] = {}
        self._closed = False

    def _notify(self, state: _OriginState) -> None:
        raise NotImplementedError

    def _state(self, origin: Origin) -> _OriginState:
        state = self._origins.get(origin)
        if state is None:
            state = self._origins[origin] = _OriginState()
        return state

    def _choose(self, state: _OriginState) -> _Pooled | None:
        """A connection with room (counted at once), or None.

        With None, ``state.connecting`` tells whether the caller should open a
        connection: it was incremented for it if so.
        """
        if self._closed:
            raise StreamClosedError("the connection pool is closed")
        self._prune(state)
        for pooled in state.connections:
            if pooled.has_room():
                pooled.idle_since = None
                return pooled
        return None

    @staticmethod
    def _check_request(
        method: str | bytes,
        target: str,
        headers: HeaderTypes,
        content: Content | None,
        *,
        blocking: bool = False,
    ) -> list[tuple[str, str]]:
        """Reject bad input before any I/O; return the checked headers (which the
        connection then need not check again).

        Raises:
            ValueError, TypeError: as ``Connection.stream()`` would, but before a
                connection is opened or chosen.
        """
        validate_method(method)
        validate_target(target)
        checked = validate_headers(headers, http2=False)
        check_content(content, blocking=blocking)
        return checked

    def _check_duplex(self, origin: Origin) -> None:
        """Refuse, before any I/O, a duplex stream to an origin that cannot speak HTTP/2.

        Raises:
            UnsupportedTransportError: an ``http://`` origin (no h2c in the CRT's
                bindings), TLS settings that do not offer ``h2``, or an origin
                whose connections negotiated HTTP/1.1.
        """
        state = self._origins.get(origin)
        if origin.scheme == "http":
            reason = "http:// is HTTP/1.1 only (the CRT has no HTTP/2 without TLS)"
        elif self._tls is not None and "h2" not in self._tls.alpn:
            reason = "the pool's TLSConfig does not offer h2 with ALPN"
        elif state is not None and state.http2 is False:
            reason = "the server negotiated HTTP/1.1"
        else:
            return
        raise UnsupportedTransportError(
            f"duplex streaming needs HTTP/2 and {origin} cannot provide it: {reason}."
            " Use an https:// origin that negotiates h2, or crt_async.MockTransport in tests."
        )

    def _connect_args(self, origin: Origin, timeouts: Timeout) -> dict[str, Any]:
        return {
            "tls": self._tls if origin.scheme == "https" else None,
            "connect_timeout": timeouts.connect,
            "max_receive_window": self._max_receive_window,
            "proxy": self._proxy,
        }

    def _add(self, state: _OriginState, connection: Connection) -> _Pooled:
        pooled = _Pooled(connection)
        state.http2 = connection.http_version == _crt.HTTP2
        state.connections.append(pooled)
        connection.stream_limits.on_change = lambda: self._capacity_changed(state, pooled)
        return pooled

    def _capacity_changed(self, state: _OriginState, pooled: _Pooled) -> None:
        # May run as a bare loop callback or on a CRT thread: nothing loop-specific here.
        if pooled.open_streams == 0:
            pooled.idle_since = time.monotonic()
        stuck = pooled.connection.stream_limits.stuck_streams
        if stuck and pooled.open_streams == stuck:
            # Only streams with a cut-short request body are left, and only closing
            # the connection ends them (it took no new streams since the first one).
            pooled.connection.close_nowait()
        self._notify(state)

    def _prune(self, state: _OriginState) -> None:
        """Drop closed connections; close retired or expired idle ones."""
        now = time.monotonic()
        expiry = self._keepalive_expiry
        kept = []
        for pooled in state.connections:
            idle = pooled.open_streams == 0
            expired = (
                idle
                and expiry is not None
                and pooled.idle_since is not None
                and now - pooled.idle_since > expiry
            )
            if pooled.connection.is_open and not expired and not (pooled.retired and idle):
                kept.append(pooled)
            elif idle:
                pooled.connection.close_nowait()
            else:
                kept.append(pooled)  # closed or retired, but a stream still drains
        state.connections = kept

    @staticmethod
    def _may_retry(error: CRTError, pooled: _Pooled, replayable: bool, attempt: int) -> bool:
        """Whether a request that failed to start goes once more to another connection."""
        if error.crt_error_name == "AWS_ERROR_HTTP_GOAWAY_RECEIVED":
            pooled.retired = True
        return error.retry_safe and replayable and attempt == 1

    @staticmethod
    def _pool_timeout(origin: Origin, timeouts: Timeout) -> PoolTimeout:
        return PoolTimeout(f"no connection to {origin} became free in {timeouts.pool} s")

    def stats(self) -> PoolStats:
        """Counts of open, idle and in-use connections and open streams."""
        connections = [
            pooled
            for state in self._origins.values()
            for pooled in state.connections
            if pooled.connection.is_open
        ]
        in_use = sum(1 for pooled in connections if pooled.open_streams > 0)
        return PoolStats(
            connections=len(connections),
            idle=len(connections) - in_use,
            in_use=in_use,
            streams=sum(pooled.open_streams for pooled in connections),
            connecting=sum(state.connecting for state in self._origins.values()),
        )

    def _close_all(self) -> list[Connection]:
        self._closed = True
        states = list(self._origins.values())
        self._origins.clear()
        for state in states:
            self._notify(state)
        return [pooled.connection for state in states for pooled in state.connections]


class ConnectionPool(_PoolCore):
    """A transport that keeps connections per origin and shares HTTP/2 ones.

    HTTP/2 connections carry as many concurrent streams as the server allows
    (another connection is opened, or the request waits, when they are full);
    HTTP/1.1 connections carry one request at a time.  Concurrent first requests
    to a new HTTP/2 origin share one connection.  Idle connections are closed
    after ``keepalive_expiry``; closed ones are never handed out.

    Args:
        tls: TLS settings for ``https://`` origins (default: system trust store).
        max_connections_per_origin: the most connections to one origin.
        keepalive_expiry: seconds an idle connection is kept (None: forever).
        max_receive_window: see :func:`connect`.
        proxy: an HTTP proxy for every connection, ``http://[user:password@]host[:port]``
            (see :func:`connect`).

    Raises:
        ValueError: an invalid limit or proxy URL.

    Example::

        async with ConnectionPool(tls=TLSConfig(ca_file="ca.pem")) as pool:
            async with pool.stream("GET", "https://127.0.0.1:8443/") as response:
                print(await response.aread())
    """

    SUPPORTS_DUPLEX_STREAMING = True

    def __init__(
        self,
        *,
        tls: TLSConfig | None = None,
        max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
        keepalive_expiry: float | None = DEFAULT_KEEPALIVE_EXPIRY,
        max_receive_window: int = DEFAULT_MAX_RECEIVE_WINDOW,
        proxy: str | None = None,
    ) -> None:
        super().__init__(
            tls=tls,
            max_connections_per_origin=max_connections_per_origin,
            keepalive_expiry=keepalive_expiry,
            max_receive_window=max_receive_window,
            proxy=proxy,
        )
        self._loop: object = None  # the native loop (or trio token) of the first request

    # -- requests ---------------------------------------------------------------------

    def stream(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: TimeoutTypes = None,
    ) -> AbstractAsyncContextManager[Response]:
        """Send a request on a pooled connection and stream the response.

        Like ``Connection.stream()``, with an absolute URL.

        Raises:
            PoolTimeout: no connection became free within ``timeout.pool``.
            ConnectError, ConnectTimeout, TLSError: opening a connection failed.
            ReadTimeout, WriteTimeout, RemoteProtocolError: as for ``Connection.stream()``.
        """
        origin, target = split_url(url)
        timeouts = Timeout.coerce(timeout)
        headers = self._check_request(method, target, headers, content)
        return _PooledStream(
            self,
            origin,
            timeouts,
            _replayable(content),
            lambda connection: connection.stream(
                method, target, headers=headers, content=content, timeout=timeouts
            ),
        )

    async def open(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: TimeoutTypes = None,
    ) -> Response:
        """Send a request on a pooled connection; return the response once its head arrived.

        Like ``Connection.open()``, with an absolute URL: the caller releases
        the response with ``response.close()`` or ``await response.aclose()``.

        Raises:
            as :meth:`stream`.
        """
        origin, target = split_url(url)
        timeouts = Timeout.coerce(timeout)
        headers = self._check_request(method, target, headers, content)
        return await self._enter(
            origin,
            timeouts,
            _replayable(content),
            lambda connection: connection.open(
                method, target, headers=headers, content=content, timeout=timeouts
            ),
        )

    def duplex(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        timeout: TimeoutTypes = None,
    ) -> AbstractAsyncContextManager[DuplexStream]:
        """Open a duplex HTTP/2 stream on a pooled connection (see ``Connection.duplex()``).

        Raises:
            UnsupportedTransportError: the origin cannot speak HTTP/2 (raised
                before any I/O when that is known beforehand: ``http://``, no
                ``h2`` in the ALPN list, or an origin that negotiated HTTP/1.1;
                else before anything is sent on the new connection).
        """
        origin, target = split_url(url)
        timeouts = Timeout.coerce(timeout)
        headers = self._check_request(method, target, headers, None)
        self._check_duplex(origin)
        return _PooledStream(
            self,
            origin,
            timeouts,
            True,
            lambda connection: connection.duplex(method, target, headers=headers, timeout=timeouts),
        )

    async def _enter(
        self,
        origin: Origin,
        timeouts: Timeout,
        replayable: bool,
        open_stream: Callable[[Connection], Awaitable[T]],
    ) -> T:
        """Acquire a connection and open a stream on it, retrying once when safe."""
        for attempt in (1, 2):
            pooled = await self._acquire(origin, timeouts)
            # No await between choosing the connection and entering the stream, which
            # counts itself at once: the choice cannot be invalidated in between.
            try:
                return await open_stream(pooled.connection)
            except CRTError as error:
                if not self._may_retry(error, pooled, replayable, attempt):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- connections ------------------------------------------------------------------

    def _notify(self, state: _OriginState) -> None:
        if state.changed is not None:
            state.changed.set()
            state.changed = None

    @staticmethod
    def _changed_event(state: _OriginState) -> anyio.Event:
        """The event set at the next change of ``state`` (capacity, connections)."""
        if state.changed is None:
            state.changed = anyio.Event()
        return state.changed

    def _check_loop(self) -> None:
        """A pool's connections report to the loop they were opened on: refuse another."""
        token = anyio.lowlevel.current_token().native_token
        if self._loop is None:
            self._loop = token
        elif token is not self._loop:
            raise RuntimeError(
                "this ConnectionPool belongs to another event loop: use one pool"
                " (or Client, or CRTTransport) per event loop"
            )

    async def _acquire(self, origin: Origin, timeouts: Timeout) -> _Pooled:
        self._check_loop()
        state = self._state(origin)
        deadline = None if timeouts.pool is None else anyio.current_time() + timeouts.pool
        while True:
            pooled = self._choose(state)
            if pooled is not None:
                return pooled
            if state.may_open(self._max_connections):
                return await self._open(origin, state, timeouts)
            changed = self._changed_event(state)
            with anyio.move_on_after(
                None if deadline is None else deadline - anyio.current_time()
            ) as scope:
                await changed.wait()
            if scope.cancelled_caught:
                raise self._pool_timeout(origin, timeouts)

    async def _open(self, origin: Origin, state: _OriginState, timeouts: Timeout) -> _Pooled:
        state.connecting += 1
        try:
            connection = await connect(str(origin), **self._connect_args(origin, timeouts))
        finally:
            state.connecting -= 1
            self._notify(state)
        return self._add(state, connection)

    # -- inspection and shutdown -----------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection and wait until they have shut down."""
        for connection in self._close_all():
            await connection.aclose()

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        stats = self.stats()
        return f"<ConnectionPool connections={stats.connections} streams={stats.streams}>"


class BlockingConnectionPool(_PoolCore):
    """The thread-safe, blocking counterpart of :class:`ConnectionPool`.

    For callers without an event loop (the sync httpx transport): requests
    block the calling thread on the CRT's futures.  Same options and policies
    as :class:`ConnectionPool`.
    """

    def __init__(
        self,
        *,
        tls: TLSConfig | None = None,
        max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
        keepalive_expiry: float | None = DEFAULT_KEEPALIVE_EXPIRY,
        max_receive_window: int = DEFAULT_MAX_RECEIVE_WINDOW,
        proxy: str | None = None,
    ) -> None:
        super().__init__(
            tls=tls,
            max_connections_per_origin=max_connections_per_origin,
            keepalive_expiry=keepalive_expiry,
            max_receive_window=max_receive_window,
            proxy=proxy,
        )
        # Reentrant: a CRT callback can run synchronously in a thread holding it.
        self._condition = threading.Condition(threading.RLock())

    def _notify(self, state: _OriginState) -> None:  # any thread, CRT threads included
        with self._condition:
            self._condition.notify_all()

    def open(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: TimeoutTypes = None,
    ) -> tuple[Exchange, ResponseHead]:
        """Send a request and wait for its head (see ``Connection.open_blocking``).

        Raises:
            PoolTimeout, ConnectError, ConnectTimeout, TLSError, ReadTimeout,
            WriteTimeout, RemoteProtocolError: as for ``ConnectionPool.stream()``.
        """
        origin, target = split_url(url)
        timeouts = Timeout.coerce(timeout)
        headers = self._check_request(method, target, headers, content, blocking=True)
        replayable = _replayable(content)
        for attempt in (1, 2):
            pooled = self._acquire(origin, timeouts)
            try:
                return pooled.connection.open_blocking(
                    method, target, headers=headers, content=content, timeout=timeouts
                )
            except CRTError as error:
                if not self._may_retry(error, pooled, replayable, attempt):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _acquire(self, origin: Origin, timeouts: Timeout) -> _Pooled:
        """A connection with the new stream already counted on it."""
        deadline = None if timeouts.pool is None else time.monotonic() + timeouts.pool
        with self._condition:
            state = self._state(origin)
            while True:
                pooled = self._choose(state)
                if pooled is not None:
                    pooled.connection.stream_limits.stream_opened()
                    return pooled
                if state.may_open(self._max_connections):
                    state.connecting += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise self._pool_timeout(origin, timeouts)
                self._condition.wait(remaining)
        try:
            connection = connect_sync(str(origin), **self._connect_args(origin, timeouts))
        finally:
            with self._condition:
                state.connecting -= 1
                self._condition.notify_all()
        with self._condition:
            pooled = self._add(state, connection)
            connection.stream_limits.stream_opened()
            return pooled

    def close(self) -> None:
        """Close every connection and wait until they have shut down."""
        with self._condition:
            connections = self._close_all()
        for connection in connections:
            connection.close_blocking()


class _PooledStream(Generic[T]):
    """What ``ConnectionPool.stream()`` / ``duplex()`` return: on entry, acquire a
    connection and enter ``open_stream`` on it (retrying once when safe); on exit,
    leave that stream's context.  A class, not a generator: it is every request's
    path."""

    __slots__ = ("_inner", "_open_stream", "_origin", "_pool", "_replayable", "_timeouts")

    def __init__(
        self,
        pool: ConnectionPool,
        origin: Origin,
        timeouts: Timeout,
        replayable: bool,
        open_stream: Callable[[Connection], AbstractAsyncContextManager[T]],
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._timeouts = timeouts
        self._replayable = replayable
        self._open_stream = open_stream
        self._inner: AbstractAsyncContextManager[T] | None = None

    async def __aenter__(self) -> T:
        return await self._pool._enter(
            self._origin, self._timeouts, self._replayable, self._enter_on
        )

    async def _enter_on(self, connection: Connection) -> T:
        inner = self._open_stream(connection)
        value = await inner.__aenter__()
        self._inner = inner
        return value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._inner is not None
        return await self._inner.__aexit__(exc_type, exc, traceback)
