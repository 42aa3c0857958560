"""Every exception crt_async raises, and the one place CRT errors are translated.

Hierarchy::

    CRTError
    ├── ConnectError
    │   ├── TLSError
    │   ├── ConnectTimeout        (also a builtin TimeoutError)
    │   └── HandshakeError        (WebSocket upgrade refused)
    ├── ReadTimeout               (also a builtin TimeoutError)
    ├── WriteTimeout              (also a builtin TimeoutError)
    ├── PoolTimeout               (also a builtin TimeoutError)
    ├── RemoteProtocolError
    ├── StreamClosedError
    ├── UnsupportedTransportError
    └── ConnectionClosed          (WebSocket closed)

    InsecureTLSWarning            (a UserWarning: TLS verification was turned off)

Bad input is reported with the builtin ``ValueError`` / ``TypeError`` before it
reaches the CRT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from ._headers import Headers


class CRTError(Exception):
    """Base class of every error raised by crt_async.

    When the error comes from the CRT, the original
    ``awscrt.exceptions.AwsCrtError`` is kept as ``__cause__`` and its name is
    available as :attr:`crt_error_name`.

    Attributes:
        crt_error_name: the CRT's error name, e.g. ``"AWS_ERROR_HTTP_RST_STREAM_RECEIVED"``.
        retry_safe: True when the request is known not to have been processed
            by the server (nothing was sent, or the server refused the stream),
            so sending it again is safe even if it is not idempotent.
    """

    crt_error_name: str | None = None
    retry_safe: bool = False


class ConnectError(CRTError):
    """The connection could not be established (refused, DNS, reset during setup)."""


class TLSError(ConnectError):
    """The TLS handshake failed (untrusted certificate, wrong host name, no common ALPN).

    On Linux the CRT's TLS library (s2n) delays a failed handshake on purpose
    ("blinding", 10-30 s), so this can take that long unless a connect timeout
    is set.
    """


class ConnectTimeout(ConnectError, TimeoutError):
    """The connection was not established within the connect timeout."""


class ReadTimeout(CRTError, TimeoutError):
    """No response data arrived within the read timeout."""


class WriteTimeout(CRTError, TimeoutError):
    """The CRT did not take request data within the write timeout."""


class PoolTimeout(CRTError, TimeoutError):
    """No connection became free within the pool timeout."""


class RemoteProtocolError(CRTError):
    """The peer broke the protocol or the exchange: reset stream, GOAWAY, connection
    closed mid-response, malformed frames."""


class StreamClosedError(CRTError, anyio.ClosedResourceError):
    """The stream (or our side of it) is already closed: e.g. sending after
    ``send_eof()`` or using a stream after leaving its ``async with`` block.

    Also an ``anyio.ClosedResourceError``, as anyio's stream wrappers expect."""


class UnsupportedTransportError(CRTError):
    """The transport (or connection) cannot do what was asked, e.g. duplex
    streaming over HTTP/1.1. Raised before any request work starts."""


class HandshakeError(ConnectError):
    """The server did not accept the WebSocket upgrade.

    Attributes:
        status: the HTTP status the server answered with (e.g. 403), or None if
            no response arrived.
        headers: the response headers (empty if no response arrived).
        body: the response body, if the server sent one.
    """

    def __init__(
        self, message: str, *, status: int | None, headers: Headers, body: bytes = b""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body = body


class ConnectionClosed(CRTError):
    """The WebSocket connection is closed (or closing): raised by ``receive()``,
    ``send()`` and ``ping()`` once no more messages can pass.

    Attributes:
        code: the close code: the peer's, if it sent a close frame; else ours,
            if we closed (or failed) the connection; else 1006 (closed without a
            close frame).
        reason: the close reason that came with ``code`` ("" if none).
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class InsecureTLSWarning(UserWarning):
    """Emitted once for each ``TLSConfig(verify=False)`` (and ``CRTTransport(verify=False)``)
    built: connections using it accept any certificate for any host name."""


_CONNECT_TIMEOUT_ERRORS = frozenset({"AWS_IO_SOCKET_TIMEOUT"})
# The server never processed the stream: the CRT refused it locally (stream
# limit) or the server's GOAWAY says it was above the last stream it accepted.
_NOT_PROCESSED_ERRORS = frozenset(
    {"AWS_ERROR_HTTP_MAX_CONCURRENT_STREAMS_EXCEEDED", "AWS_ERROR_HTTP_GOAWAY_RECEIVED"}
)
_TLS_ERROR_PREFIXES = ("AWS_IO_TLS_", "S2N_")


def translate_crt_error(exc: BaseException, *, connecting: bool = False) -> BaseException:
    """Map an ``AwsCrtError`` to the matching crt_async exception.

    The original is kept as the new exception's ``__cause__``; other
    exceptions are returned unchanged, so ``raise translate_crt_error(exc)``
    is right either way.

    Args:
        exc: the exception a CRT future or callback delivered.
        connecting: True while establishing a connection: every failure then is
            a :class:`ConnectError` (or its TLS / timeout subclass); afterwards
            it is a :class:`RemoteProtocolError`.
    """
    name = getattr(exc, "name", None)
    if not isinstance(name, str) or type(exc).__name__ != "AwsCrtError":
        return exc
    message = f"{name}: {getattr(exc, 'message', '')}"
    error: CRTError
    if not connecting:
        error = RemoteProtocolError(message)
    elif name in _CONNECT_TIMEOUT_ERRORS:
        error = ConnectTimeout(message)
    elif name.startswith(_TLS_ERROR_PREFIXES):
        error = TLSError(message)
    else:
        error = ConnectError(message)
    error.crt_error_name = name
    error.retry_safe = name in _NOT_PROCESSED_ERRORS
    error.__cause__ = exc
    return error
