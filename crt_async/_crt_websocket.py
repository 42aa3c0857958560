"""The WebSocket seam: the only module that calls ``awscrt.websocket``.

Above it everything is plain Python: opcodes are ints, payloads bytes, and the
CRT's callbacks arrive at a :class:`FrameSink` (``WebSocketProtocol``), which
never raises.  The handshake reports through a ``concurrent.futures`` future
that this module owns and completes itself.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Callable, NamedTuple, Protocol

from awscrt import io as crt_io
from awscrt import websocket as crt_websocket

from ._crt import _as_crt_error
from ._thread_state import keep_thread_state

__all__ = ["FrameSink", "Setup", "close", "increment_read_window", "send_frame", "start_connect"]

CRTWebSocket = Any  # awscrt.websocket.WebSocket


class FrameSink(Protocol):
    """Receives the CRT's frame and shutdown callbacks (on a CRT thread; never raises)."""

    def on_frame_begin(self, opcode: int, payload_length: int, fin: bool) -> None: ...
    def on_frame_payload(self, data: bytes) -> None: ...
    def on_frame_complete(self, error: BaseException | None, fin: bool) -> None: ...
    def on_shutdown(self, error: BaseException | None) -> None: ...


class Setup(NamedTuple):
    """Outcome of the opening handshake.

    Attributes:
        websocket: the CRT WebSocket, or None if the connection failed.
        error: why it failed (an ``AwsCrtError``), or None.
        status: the HTTP status of the handshake response, if one arrived.
        headers: its headers (empty if none arrived).
        body: the body of a refusal, if the server sent one.
    """

    websocket: CRTWebSocket | None
    error: BaseException | None
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes


def start_connect(
    host: str,
    port: int,
    *,
    authority: str,
    path: str,
    headers: list[tuple[str, str]],
    tls_options: Any | None,
    connect_timeout: float | None,
    read_window: int,
    sink: FrameSink,
    on_setup: Callable[[CRTWebSocket], None],
) -> concurrent.futures.Future[Setup]:
    """Start the TCP (and TLS) connection and the opening handshake.

    The CRT reads with a manual read window of ``read_window`` bytes of
    message data.  On success ``on_setup(websocket)`` runs on the CRT thread
    before the future resolves (frame callbacks may follow at once); the future
    always resolves to a :class:`Setup`, failure included.  With TLS, ALPN
    offers only ``http/1.1`` (the upgrade is an HTTP/1.1 request).
    """
    request = crt_websocket.create_handshake_request(host=authority, path=path)
    for name, value in headers:
        request.headers.add(name, value)
    socket_options = crt_io.SocketOptions()
    if connect_timeout is not None:
        socket_options.connect_timeout_ms = max(1, int(connect_timeout * 1000))
    if tls_options is not None:
        tls_options.set_alpn_list(["http/1.1"])
    future: concurrent.futures.Future[Setup] = concurrent.futures.Future()

    def on_connection_setup(data: crt_websocket.OnConnectionSetupData) -> None:
        keep_thread_state()  # every later callback of this WebSocket runs on this thread
        if data.websocket is not None:
            on_setup(data.websocket)
        future.set_result(
            Setup(
                data.websocket,
                data.exception,
                data.handshake_response_status,
                list(data.handshake_response_headers or ()),
                data.handshake_response_body or b"",
            )
        )

    def on_connection_shutdown(data: crt_websocket.OnConnectionShutdownData) -> None:
        sink.on_shutdown(data.exception)

    def on_begin(data: crt_websocket.OnIncomingFrameBeginData) -> None:
        sink.on_frame_begin(int(data.frame.opcode), data.frame.payload_length, data.frame.fin)

    def on_payload(data: crt_websocket.OnIncomingFramePayloadData) -> None:
        sink.on_frame_payload(bytes(data.data))

    def on_complete(data: crt_websocket.OnIncomingFrameCompleteData) -> None:
        sink.on_frame_complete(data.exception, data.frame.fin)

    crt_websocket.connect(
        host=host,
        port=port,
        handshake_request=request,
        socket_options=socket_options,
        tls_connection_options=tls_options,
        manage_read_window=True,
        initial_read_window=read_window,
        on_connection_setup=on_connection_setup,
        on_connection_shutdown=on_connection_shutdown,
        on_incoming_frame_begin=on_begin,
        on_incoming_frame_payload=on_payload,
        on_incoming_frame_complete=on_complete,
    )
    return future


def send_frame(
    websocket: CRTWebSocket, opcode: int, payload: bytes
) -> concurrent.futures.Future[None]:
    """Queue one complete frame (FIN set); the future completes once it is written
    to the socket, or fails with the CRT's error if the connection went first.

    Raises:
        AwsCrtError: the CRT refused the frame at once (e.g. after our close frame).
    """
    future: concurrent.futures.Future[None] = concurrent.futures.Future()

    def on_complete(data: crt_websocket.OnSendFrameCompleteData) -> None:
        if data.exception is None:
            future.set_result(None)
        else:
            future.set_exception(data.exception)

    try:
        websocket.send_frame(crt_websocket.Opcode(opcode), payload, on_complete=on_complete)
    except RuntimeError as exc:
        raise _as_crt_error(exc) from exc
    return future


def increment_read_window(websocket: CRTWebSocket, size: int) -> None:
    """Let the CRT deliver ``size`` more bytes of message data (no-op once shut down)."""
    try:
        websocket.increment_read_window(size)
    except Exception:  # the connection is gone: nothing left to open
        pass


def close(websocket: CRTWebSocket) -> None:
    """Shut the connection down now (idempotent); the shutdown callback follows."""
    websocket.close()
