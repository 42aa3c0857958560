"""crt_async: structured-concurrency async layer for the AWS Common Runtime (awscrt).

Makes the CRT's ``concurrent.futures.Future`` and ``threading.Event`` objects
awaitable from asyncio and trio (through anyio), correctly under cancellation.
"""

from ._events import AwaitableEvent, wait_event
from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    CRTError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    StreamClosedError,
    TLSError,
    UnsupportedTransportError,
    WriteTimeout,
)
from ._futures import AwaitableFuture, wait_future

__all__ = [
    "AwaitableEvent",
    "AwaitableFuture",
    "CRTError",
    "ConnectError",
    "ConnectTimeout",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "StreamClosedError",
    "TLSError",
    "UnsupportedTransportError",
    "WriteTimeout",
    "wait_event",
    "wait_future",
]

__version__ = "0.1.0"
