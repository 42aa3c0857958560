"""crt_async: structured-concurrency async layer for the AWS Common Runtime (awscrt).

Makes the CRT's ``concurrent.futures.Future`` and ``threading.Event`` objects
awaitable from asyncio and trio (through anyio), correctly under cancellation,
and builds HTTP/1.1 and HTTP/2 on them: streamed bodies with backpressure and
duplex HTTP/2 streams.  WebSocket clients are in :mod:`crt_async.websocket`.
"""

from ._client import USE_CLIENT_DEFAULT, Client
from ._connection import Connection, Origin, connect
from ._duplex import DuplexStream
from ._events import AwaitableEvent, wait_event
from ._exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    CRTError,
    HandshakeError,
    InsecureTLSWarning,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    StreamClosedError,
    TLSError,
    UnsupportedTransportError,
    WriteTimeout,
)
from ._exchange import ResponseHead
from ._futures import AwaitableFuture, wait_future
from ._headers import Headers, HeaderTypes
from ._mock import MockRequest, MockTransport
from ._pool import ConnectionPool, PoolStats
from ._request_body import Content
from ._response import Response
from ._timeouts import Timeout, TimeoutTypes
from ._tls import TLSConfig
from ._transport import AsyncDuplexTransport, AsyncTransport, require_duplex, supports_duplex

__all__ = [
    "USE_CLIENT_DEFAULT",
    "AsyncDuplexTransport",
    "AsyncTransport",
    "AwaitableEvent",
    "AwaitableFuture",
    "CRTError",
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "ConnectionPool",
    "Content",
    "DuplexStream",
    "HandshakeError",
    "HeaderTypes",
    "Headers",
    "InsecureTLSWarning",
    "MockRequest",
    "MockTransport",
    "Origin",
    "PoolStats",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "Response",
    "ResponseHead",
    "StreamClosedError",
    "TLSConfig",
    "TLSError",
    "Timeout",
    "TimeoutTypes",
    "UnsupportedTransportError",
    "WriteTimeout",
    "connect",
    "require_duplex",
    "supports_duplex",
    "wait_event",
    "wait_future",
]

__version__ = "0.1.0"
