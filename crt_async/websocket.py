"""WebSocket client connections over the CRT (``awscrt.websocket``), for asyncio and trio.

Example::

    from crt_async import websocket

    async with websocket.connect("ws://127.0.0.1:8765/echo") as ws:
        await ws.send("hello")          # a text message (bytes: a binary one)
        print(await ws.receive())       # the next complete message: str or bytes
        await ws.ping()                 # returns when the pong arrives
        async for message in ws:        # until the server closes (1000/1001: cleanly)
            print(message)

How it works: the CRT's callbacks only copy frames into a
``WebSocketProtocol`` (``_websocket_protocol.py``), which reassembles messages,
enforces the size limit and tracks the closing handshake; the work that follows
(answering a close frame, re-opening the read window, matching pongs, waking a
reader) runs on the event loop, one loop callback per burst of frames.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.lowlevel

from . import _crt_websocket
from ._checks import check_byte_count
from ._connection import _default_tls, parse_origin
from ._exceptions import (
    ConnectionClosed,
    ConnectTimeout,
    HandshakeError,
    translate_crt_error,
)
from ._futures import wait_future
from ._headers import _TOKEN, Headers, HeaderTypes, validate_headers, validate_target
from ._loop import current_loop
from ._timeouts import check_seconds
from ._tls import TLSConfig
from ._websocket_protocol import (
    BINARY,
    CLEAN_CLOSE_CODES,
    CLOSE,
    MAX_CONTROL_PAYLOAD,
    PING,
    TEXT,
    Message,
    Pings,
    WebSocketProtocol,
    check_close,
    close_payload,
)

__all__ = ["ConnectionClosed", "HandshakeError", "Message", "WebSocket", "connect"]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DEFAULT_READ_WINDOW = 1024 * 1024
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_CLOSE_TIMEOUT = 10.0
# The CRT shuts a connection down by itself once asked; this only bounds a CRT bug.
_SHUTDOWN_TIMEOUT = 30.0
_SCHEMES = {"ws": "http", "wss": "https"}
# Set by the handshake itself; extensions (compression) are not supported by the CRT.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "content-length",
        "transfer-encoding",
    }
)


class _PingWaiter:
    __slots__ = ("answered", "event")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.answered = False


class WebSocket:
    """An open WebSocket client connection; obtain it from :func:`connect`.

    * :meth:`send` sends one message: ``str`` as a text frame, bytes as a
      binary frame; it returns once the CRT has written it to the socket.
    * :meth:`receive` returns the next complete message (``str`` or ``bytes``);
      ``async for message in ws`` receives until the connection closes.
    * :meth:`ping` returns when the matching pong arrives.
    * :meth:`aclose` performs the closing handshake (leaving ``connect()``'s
      block does it too); :attr:`close_code` and :attr:`close_reason` tell how
      the connection closed.

    One task at a time may receive; any number may send and ping.  Cancelling
    :meth:`receive` loses no message (the next call returns it); cancelling
    :meth:`send` never cuts a message short: it was handed to the CRT whole
    and still goes out, and the connection stays usable.

    Attributes:
        subprotocol: the subprotocol the server chose, or None.
        response_headers: the headers of the server's handshake response.
    """

    def __init__(self, *, max_message_size: int, read_window: int, close_timeout: float) -> None:
        self._schedule = current_loop().call_soon
        self._protocol = WebSocketProtocol(
            max_message_size=max_message_size, read_window=read_window, notify=self._notify
        )
        self._close_timeout = close_timeout
        self._handle: Any = None  # the CRT WebSocket, set on a CRT thread at setup
        self._reader: anyio.Event | None = None
        self._pings: Pings[_PingWaiter] = Pings()
        self._ended = anyio.Event()
        self._shut_down = anyio.Event()
        self.subprotocol: str | None = None
        self.response_headers = Headers()

    def _attach(self, handle: Any) -> None:
        """``on_setup`` of the seam (CRT thread): before any frame callback."""
        self._handle = handle

    def _notify(self) -> None:
        """Rung by the protocol on a CRT thread: run :meth:`_process` on the loop."""
        try:
            self._schedule(self._process)
        except Exception:  # the loop is gone: nobody is left to serve
            pass

    def _process(self) -> None:
        """Do on the loop what the frames received ask for; never raises."""
        actions = self._protocol.take_actions()
        handle = self._handle
        if actions.credit:
            _crt_websocket.increment_read_window(handle, actions.credit)
        if actions.close_frame is not None:
            self._send_quietly(CLOSE, close_payload(*actions.close_frame))
        for payload in actions.pongs:
            for waiter in self._pings.acknowledge(payload):
                waiter.answered = True
                waiter.event.set()
        if actions.ended:
            self._ended.set()
            for waiter in self._pings.take_all():
                waiter.event.set()
        if actions.shut_down:
            self._shut_down.set()
        if (actions.wake_reader or actions.ended) and self._reader is not None:
            self._reader.set()

    def _send_quietly(self, opcode: int, payload: bytes) -> None:
        """Queue a frame nobody waits for; if the CRT refuses it the connection is
        closing anyway, and that is what callers will see."""
        try:
            _crt_websocket.send_frame(self._handle, opcode, payload)
        except Exception:
            pass

    @property
    def buffered_bytes(self) -> int:
        """Bytes of received message data held for the application: unread
        messages plus the one arriving.  Bounded by about ``read_window`` plus
        ``max_message_size``, however slowly the application reads."""
        return self._protocol.buffered_bytes

    @property
    def close_code(self) -> int | None:
        """The close code once the connection has closed (None before): the peer's,
        else ours, else 1006 (closed without a close frame)."""
        info = self._protocol.close_info if self._protocol.ended else None
        return None if info is None else info[0]

    @property
    def close_reason(self) -> str | None:
        """The close reason that came with :attr:`close_code` (None before closing)."""
        info = self._protocol.close_info if self._protocol.ended else None
        return None if info is None else info[1]

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message: ``str`` as text (UTF-8), bytes-like as binary.

        Returns once the CRT has written the whole frame to the socket.  The
        message is handed to the CRT whole before the first wait, so a
        cancelled ``send()`` still sends it, never a part of it.

        Raises:
            TypeError: ``message`` is neither str nor bytes-like.
            ValueError: a ``str`` that cannot be encoded as UTF-8 (lone surrogates).
            ConnectionClosed: the connection is closing or closed.
        """
        if isinstance(message, str):
            try:
                payload = message.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"text message is not encodable as UTF-8: {exc}") from None
            opcode = TEXT
        elif isinstance(message, (bytes, bytearray, memoryview)):
            payload, opcode = bytes(message), BINARY
        else:
            raise TypeError(f"send() takes str or bytes, got {type(message).__name__}")
        written = self._hand_over(opcode, payload)
        try:
            await wait_future(written)
        except Exception as exc:
            error = self._closed_by(exc)
            raise error from error.__cause__

    def _hand_over(self, opcode: int, payload: bytes) -> concurrent.futures.Future[None]:
        """Give the CRT a frame to send; its future completes once it is written.

        Raises:
            ConnectionClosed: the connection is closing or closed.
        """
        self._protocol.check_open()
        try:
            return _crt_websocket.send_frame(self._handle, opcode, payload)
        except Exception as exc:
            error = self._closed_by(exc)
            raise error from error.__cause__

    def _closed_by(self, exc: BaseException) -> ConnectionClosed:
        """The ``ConnectionClosed`` for a frame the CRT refused or failed to send."""
        error = self._protocol.closed_error()
        if error.__cause__ is None:
            error.__cause__ = translate_crt_error(exc)
        return error

    async def receive(self) -> Message:
        """Return the next complete message: ``str`` (text) or ``bytes`` (binary).

        Messages that arrived before the connection closed are returned first.

        Raises:
            ConnectionClosed: the connection closed (its ``code`` and ``reason``
                say how); raised again by every later call.
            anyio.BusyResourceError: another task is already receiving.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                message, credit = self._protocol.next_message()
            except RuntimeError:
                raise anyio.BusyResourceError("receiving from") from None
            if credit:
                _crt_websocket.increment_read_window(self._handle, credit)
            if message is not None:
                await anyio.lowlevel.cancel_shielded_checkpoint()
                return message
            self._reader = reader = anyio.Event()
            try:
                await reader.wait()
            except BaseException:
                self._protocol.stop_waiting()
                raise
            finally:
                self._reader = None

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> Message:
        """The next message; the iteration ends when the peer closes with 1000,
        1001 or without a code, and raises :class:`ConnectionClosed` otherwise."""
        try:
            return await self.receive()
        except ConnectionClosed as exc:
            if exc.code in CLEAN_CLOSE_CODES:
                raise StopAsyncIteration from None
            raise

    async def ping(self, payload: bytes | str = b"") -> None:
        """Send a ping and return when the matching pong arrives.

        While unread messages fill the read window the CRT reads nothing, so
        the pong waits until the application reads them.  Pings from the peer
        are answered automatically (by the CRT).

        Raises:
            ValueError: ``payload`` is longer than 125 bytes.
            TypeError: ``payload`` is neither bytes-like nor str.
            ConnectionClosed: the connection closed before the pong arrived.
        """
        if isinstance(payload, str):
            data = payload.encode("utf-8")
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            data = bytes(payload)
        else:
            raise TypeError(f"ping payload must be bytes or str, got {type(payload).__name__}")
        if len(data) > MAX_CONTROL_PAYLOAD:
            raise ValueError(f"ping payload is {len(data)} bytes; at most 125 are allowed")
        waiter = _PingWaiter()
        self._pings.add(data, waiter)
        try:
            self._hand_over(PING, data)
            await waiter.event.wait()
        except BaseException:
            self._pings.discard(waiter)
            raise
        if not waiter.answered:
            raise self._protocol.closed_error()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with the closing handshake.

        Sends a close frame with ``code`` and ``reason`` (unless one was sent
        already), waits up to ``close_timeout`` for the peer's close frame while
        dropping unread messages, then shuts the connection down and waits for
        the CRT's last callback.  Calling it again does nothing more.  If it is
        cancelled it still shuts the connection down before re-raising.

        Raises:
            ValueError: a code no endpoint may send (1000-1003, 1007-1014 and
                3000-4999 are allowed), or a reason over 123 bytes in UTF-8.
        """
        check_close(code, reason)
        if self._handle is None:
            return
        send, credit = self._protocol.begin_close(code, reason)
        if credit:
            _crt_websocket.increment_read_window(self._handle, credit)
        if self._reader is not None:
            self._reader.set()
        if send:
            self._send_quietly(CLOSE, close_payload(code, reason))
        try:
            with anyio.move_on_after(self._close_timeout):
                await self._ended.wait()
        finally:
            with anyio.CancelScope(shield=True):
                _crt_websocket.close(self._handle)
                with anyio.move_on_after(_SHUTDOWN_TIMEOUT):
                    await self._shut_down.wait()

    def __repr__(self) -> str:
        state = "open" if self._protocol.close_info is None else f"closing({self.close_code})"
        return f"<WebSocket {state}>"


def _close_abandoned(setup: _crt_websocket.Setup) -> None:
    """A handshake that completed after its caller gave up: close the connection."""
    if setup.websocket is not None:
        _crt_websocket.close(setup.websocket)


def _split_url(url: str) -> tuple[str, str, int, str, bool]:
    """``(authority, host, port, path, tls)`` of a ``ws://`` or ``wss://`` URL."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}: use ws:// or wss://")
    if parts.fragment or url.endswith("#"):
        raise ValueError("a WebSocket URL cannot have a fragment (#...)")
    origin = parse_origin(urllib.parse.urlunsplit(parts._replace(scheme=_SCHEMES[scheme])))
    path = validate_target((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    return origin.authority, origin.host, origin.port, path, origin.scheme == "https"


def _handshake_headers(
    headers: HeaderTypes, subprotocols: Sequence[str] | None
) -> list[tuple[str, str]]:
    result = validate_headers(headers, http2=False)
    for name, _ in result:
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(
                f"header {name!r} is set by the WebSocket handshake"
                + (": use subprotocols=" if name.lower() == "sec-websocket-protocol" else "")
            )
    if subprotocols is not None:
        if isinstance(subprotocols, str) or not all(
            isinstance(p, str) and _TOKEN.match(p) for p in subprotocols
        ):
            raise ValueError(f"subprotocols must be a sequence of tokens, got {subprotocols!r}")
        if subprotocols:
            result.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    return result


@contextlib.asynccontextmanager
async def connect(
    url: str,
    *,
    tls: TLSConfig | None = None,
    headers: HeaderTypes = None,
    subprotocols: Sequence[str] | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    read_window: int = DEFAULT_READ_WINDOW,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> AsyncIterator[WebSocket]:
    """Open a WebSocket connection; ``async with`` yields the :class:`WebSocket`.

    Leaving the block closes the connection (see :meth:`WebSocket.aclose`);
    when it is left, no CRT callback for the connection is pending any more.

    Args:
        url: ``ws://host[:port]/path[?query]`` or ``wss://...`` (TLS).
        tls: TLS settings for ``wss://``; default: the system trust store.
            ALPN offers only ``http/1.1``, whatever ``tls.alpn`` says.
        headers: extra handshake request headers (not the handshake's own).
        subprotocols: subprotocols to offer, in order of preference; the one the
            server chose is ``WebSocket.subprotocol``.
        max_message_size: the largest message accepted, in bytes; a bigger one
            fails the connection with close code 1009 (nothing of it is buffered).
        read_window: bytes of received messages buffered ahead of the
            application; when unread messages hold this much, the CRT stops
            reading and the server is held back (TCP flow control).
        connect_timeout: seconds for TCP connect, TLS and the upgrade (None: no limit).
        close_timeout: seconds to wait for the peer's close frame when closing.

    Raises:
        HandshakeError: the server refused the upgrade (its ``status``,
            ``headers`` and ``body`` are attached), or its 101 response does not
            fit the request (e.g. it chose a subprotocol that was not offered).
        ConnectError: refused, unreachable, DNS failure; ``TLSError`` for TLS.
        ConnectTimeout: ``connect_timeout`` expired.
        ValueError, TypeError: invalid arguments (before any I/O).

    Example::

        async with connect("wss://127.0.0.1:8765/chat", tls=TLSConfig(ca_file="ca.pem")) as ws:
            await ws.send("hi")
    """
    authority, host, port, path, secure = _split_url(url)
    request_headers = _handshake_headers(headers, subprotocols)
    check_byte_count(max_message_size, "max_message_size")
    check_byte_count(read_window, "read_window")
    check_seconds(connect_timeout, "connect_timeout")
    close_seconds = check_seconds(close_timeout, "close_timeout")
    assert close_seconds is not None
    if tls is not None and not isinstance(tls, TLSConfig):
        raise TypeError(f"tls must be a TLSConfig, got {type(tls).__name__}")
    if tls is not None and not secure:
        raise ValueError("tls was given for a ws:// URL: use wss://")
    tls_options = (tls or _default_tls()).connection_options(host) if secure else None

    websocket = WebSocket(
        max_message_size=max_message_size, read_window=read_window, close_timeout=close_seconds
    )
    try:
        future = _crt_websocket.start_connect(
            host,
            port,
            authority=authority,
            path=path,
            headers=request_headers,
            tls_options=tls_options,
            connect_timeout=connect_timeout,
            read_window=read_window,
            sink=websocket._protocol,
            on_setup=websocket._attach,
        )
        with anyio.fail_after(connect_timeout):
            setup = await wait_future(future, on_abandon=_close_abandoned)
    except TimeoutError:
        raise ConnectTimeout(
            f"no WebSocket connection to {url} within {connect_timeout} s"
        ) from None
    except Exception as exc:
        raise translate_crt_error(exc, connecting=True)  # noqa: B904  # the cause is kept
    if setup.websocket is None:
        assert setup.error is not None
        if setup.status is None:
            raise translate_crt_error(setup.error, connecting=True)
        if setup.status == 101:
            # The CRT checks the 101 response: Sec-WebSocket-Accept, and that a
            # subprotocol in it was offered.
            message = "the server's 101 response is not a valid upgrade for this request"
        else:
            message = f"the server refused the WebSocket upgrade with status {setup.status}"
        raise HandshakeError(
            message,
            status=setup.status,
            headers=Headers(setup.headers),
            body=setup.body,
        ) from translate_crt_error(setup.error, connecting=True)
    websocket.response_headers = Headers(setup.headers)
    websocket.subprotocol = websocket.response_headers.get("sec-websocket-protocol")
    try:
        yield websocket
    finally:
        await websocket.aclose()
