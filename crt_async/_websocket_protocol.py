"""The receiving and closing state of one WebSocket connection, without I/O.

CRT threads feed it frames (``on_frame_begin`` / ``on_frame_payload`` /
``on_frame_complete``, then ``on_shutdown``); those methods only copy data and
update state under a lock, and ring ``notify`` at most once until the event
loop has collected the resulting work with :meth:`WebSocketProtocol.take_actions`.
Everything that sends frames or touches the CRT happens on the loop, from the
:class:`Actions` this module hands out, so the rules below are testable without
the CRT:

* Messages are reassembled from their fragments; control frames between
  fragments are handled on their own.  Text is decoded as strict UTF-8.
* A message over ``max_message_size`` fails the connection with close code
  1009 as soon as the frame header announcing it arrives: its payload is
  dropped, never buffered.
* Read window (backpressure): the CRT stops reading from the socket once it
  has delivered ``read_window`` bytes of message data that were not given back.
  A complete message's bytes are given back when the application takes it, so
  unread messages hold at most ``read_window`` bytes.  A message larger than
  the window would then never complete: while the reader waits for it, the
  bytes of the message in progress are given back as they arrive (a message is
  bounded by ``max_message_size`` anyway).
* Close: a close frame from the peer is answered with one echoing its code;
  after our own close frame (or a failure) arriving data is dropped and its
  window given back, so the peer's close frame can still get through.
* Pings: the CRT answers the peer's pings itself; pongs are matched to our
  pings by :class:`Pings` on the loop.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Generic, NamedTuple, TypeVar, Union

from ._exceptions import ConnectionClosed, translate_crt_error

__all__ = [
    "BINARY",
    "CLEAN_CLOSE_CODES",
    "CLOSE",
    "MAX_CONTROL_PAYLOAD",
    "PING",
    "PROTOCOL_ERROR",
    "TEXT",
    "Actions",
    "Message",
    "Pings",
    "WebSocketProtocol",
    "check_close",
    "close_payload",
    "parse_close",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
NO_STATUS_RECEIVED = 1005
ABNORMAL_CLOSURE = 1006
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009
CLEAN_CLOSE_CODES = frozenset({NORMAL_CLOSURE, GOING_AWAY, NO_STATUS_RECEIVED})
"""Close codes after which iterating over a WebSocket simply ends."""

MAX_CONTROL_PAYLOAD = 125
# Codes an endpoint may send (RFC 6455 7.4): 1004-1006 and 1015 are reserved,
# 1012-1014 are registered since (IANA), 3000-4999 belong to libraries and applications.
_SENDABLE_CODES = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015))

Message = Union[str, bytes]
CloseInfo = tuple[int, str]


def _valid_code(code: int) -> bool:
    return code in _SENDABLE_CODES or 3000 <= code <= 4999


def check_close(code: object, reason: object) -> None:
    """Validate a close code and reason we are about to send.

    Raises:
        TypeError: ``code`` is not an int or ``reason`` not a str.
        ValueError: a code no endpoint may send, or a reason over 123 UTF-8 bytes.
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"close code must be an int, got {type(code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"close reason must be a str, got {type(reason).__name__}")
    if not _valid_code(code):
        raise ValueError(
            f"close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
        )
    if len(reason.encode("utf-8")) > MAX_CONTROL_PAYLOAD - 2:
        raise ValueError("close reason is longer than 123 bytes in UTF-8")


def close_payload(code: int | None, reason: str) -> bytes:
    """The payload of a close frame: nothing, or the code and the UTF-8 reason."""
    if code is None:
        return b""
    return code.to_bytes(2, "big") + reason.encode("utf-8")


def parse_close(payload: bytes) -> CloseInfo:
    """Code and reason of a received close frame (1005 and "" for an empty one).

    Raises:
        ValueError: a one-byte payload, a code no endpoint may send, or a reason
            that is not UTF-8.
    """
    if not payload:
        return NO_STATUS_RECEIVED, ""
    if len(payload) < 2:
        raise ValueError("close frame with a one-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_code(code):
        raise ValueError(f"close frame with invalid code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("close frame with a reason that is not UTF-8") from None
    return code, reason


class Actions(NamedTuple):
    """Work for the event loop, collected by :meth:`WebSocketProtocol.take_actions`.

    Attributes:
        credit: bytes to give back to the CRT's read window.
        close_frame: a close frame to send now: ``(code or None, reason)``.
        pongs: payloads of the pongs received, in order.
        wake_reader: a waiting reader has a message, or reading has ended.
        ended: the closing handshake is over or the connection is gone.
        shut_down: the connection is gone: the CRT will call back no more.
    """

    credit: int
    close_frame: tuple[int | None, str] | None
    pongs: list[bytes]
    wake_reader: bool
    ended: bool
    shut_down: bool


class WebSocketProtocol:
    """Thread-safe receive and close state of one WebSocket connection.

    Args:
        max_message_size: the largest message accepted, in bytes.
        read_window: bytes of message data the CRT may deliver ahead of the
            application (the CRT's initial read window).
        notify: rung (from a CRT thread) when :meth:`take_actions` has work;
            must not block or raise.  Not rung again until ``take_actions`` ran.
    """

    __slots__ = (
        "_close_received",
        "_close_sent",
        "_control",
        "_credit",
        "_discard",
        "_error",
        "_frame_dropped",
        "_frame_opcode",
        "_lock",
        "_max_message_size",
        "_messages",
        "_notify",
        "_partial",
        "_partial_credited",
        "_partial_opcode",
        "_partial_size",
        "_pongs",
        "_read_window",
        "_reader_waiting",
        "_rung",
        "_send_close",
        "_shutdown",
        "buffered_bytes",
    )

    def __init__(
        self, *, max_message_size: int, read_window: int, notify: Callable[[], None]
    ) -> None:
        self._lock = threading.Lock()
        self._max_message_size = max_message_size
        self._read_window = read_window
        self._notify = notify
        self._rung = False
        self._frame_opcode = CONTINUATION
        self._frame_dropped = False
        self._control = bytearray()
        self._partial: list[bytes] = []
        self._partial_size = 0
        self._partial_opcode = BINARY
        self._partial_credited = 0  # bytes of the message in progress given back early
        # (message, its size in bytes, bytes to give back to the window when taken)
        self._messages: deque[tuple[Message, int, int]] = deque()
        self.buffered_bytes = 0
        """Bytes of message data held: unread messages plus the one in progress."""
        self._credit = 0
        self._reader_waiting = False
        self._pongs: list[bytes] = []
        self._discard = False  # reading has ended: drop data, give its window back
        self._close_received: CloseInfo | None = None
        self._close_sent: CloseInfo | None = None
        self._send_close: tuple[int | None, str] | None = None
        self._shutdown = False
        self._error: BaseException | None = None

    # -- CRT thread side: never raise, never block -------------------------------

    def on_frame_begin(self, opcode: int, payload_length: int, fin: bool) -> None:
        """A frame starts; ``payload_length`` bytes of payload follow."""
        with self._lock:
            self._frame_opcode = opcode
            self._frame_dropped = self._discard
            if opcode >= CLOSE:
                self._control = bytearray()
                return
            if opcode != CONTINUATION:
                self._partial_opcode = opcode
            if self._discard or self._partial_size + payload_length <= self._max_message_size:
                return
            self._fail(MESSAGE_TOO_BIG, f"message over {self._max_message_size} bytes")
            ring = self._ring()
        if ring:
            self._notify()

    def on_frame_payload(self, data: bytes) -> None:
        """The next piece of the current frame's payload."""
        with self._lock:
            if self._frame_opcode >= CLOSE:
                self._control += data
                return
            if self._frame_dropped or self._discard:
                self._credit += len(data)
                ring = self._ring()
            else:
                self._partial.append(data)
                self._partial_size += len(data)
                self.buffered_bytes += len(data)
                ring = (
                    self._reader_waiting
                    and not self._messages
                    and self._partial_size - self._partial_credited >= self._read_window // 2
                    and self._ring()
                )
        if ring:
            self._notify()

    def on_frame_complete(self, error: BaseException | None, fin: bool) -> None:
        """The current frame is complete (or failed with ``error``)."""
        with self._lock:
            opcode = self._frame_opcode
            finished: tuple[list[bytes], int, int, int] | None = None
            if error is not None:
                self._error = self._error or error
                ring = False
            elif opcode == PONG:
                self._pongs.append(bytes(self._control))
                ring = self._ring()
            elif opcode == CLOSE:
                self._on_close_frame(bytes(self._control))
                ring = self._ring()
            elif opcode < CLOSE and fin and not (self._frame_dropped or self._discard):
                finished = (
                    self._partial,
                    self._partial_opcode,
                    self._partial_size,
                    self._partial_size - self._partial_credited,
                )
                self._partial = []
                self._partial_size = self._partial_credited = 0
                ring = False
            else:
                ring = False  # a ping (the CRT answers it), a fragment, dropped data
        if finished is not None:
            ring = self._queue_message(*finished)
        if ring:
            self._notify()

    def on_shutdown(self, error: BaseException | None) -> None:
        """The connection is gone; no frame callback follows."""
        with self._lock:
            if not self._ended():  # after the closing handshake the socket closing is no error
                self._error = self._error or error
            self._shutdown = True
            self._end_reading()
            ring = self._ring()
        if ring:
            self._notify()

    def _ring(self) -> bool:
        """Whether to ring ``notify`` now (lock held): only if not rung already."""
        if self._rung:
            return False
        self._rung = True
        return True

    def _queue_message(self, parts: list[bytes], opcode: int, size: int, due: int) -> bool:
        """Join (and decode) a finished message outside the lock, then queue it;
        True to ring the loop.  Only the CRT thread of this connection gets here."""
        payload = parts[0] if len(parts) == 1 else b"".join(parts)
        message: Message | None = payload
        if opcode == TEXT:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:  # the CRT checks UTF-8 itself; never trust it blindly
                message = None
        with self._lock:
            if message is None or self._discard:  # invalid, or we closed meanwhile
                self._credit += due
                self.buffered_bytes -= size
                if message is None:
                    self._fail(INVALID_DATA, "text message is not valid UTF-8")
                return self._ring()
            self._messages.append((message, size, due))
            return self._reader_waiting and self._ring()

    def _on_close_frame(self, payload: bytes) -> None:
        try:
            self._close_received = parse_close(payload)
        except ValueError as exc:
            self._close_received = (PROTOCOL_ERROR, str(exc))
            self._fail(PROTOCOL_ERROR, str(exc))
            return
        if self._close_sent is None:
            code, _ = self._close_received
            echo = None if code == NO_STATUS_RECEIVED else code
            self._close_sent = (code, "")
            self._send_close = (echo, "")
        self._end_reading()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection with close ``code`` (lock held)."""
        if self._close_sent is None and not self._shutdown:
            self._close_sent = (code, reason)
            self._send_close = (code, reason)
        self._end_reading()

    def _end_reading(self) -> None:
        """Drop what arrives from now on, and the message in progress (lock held);
        complete messages that arrived before stay readable."""
        self._discard = True
        self._credit += self._partial_size - self._partial_credited
        self.buffered_bytes -= self._partial_size
        self._partial = []
        self._partial_size = self._partial_credited = 0

    # -- loop side ---------------------------------------------------------------

    def take_actions(self) -> Actions:
        """Collect the work the frames received so far ask of the loop."""
        with self._lock:
            self._rung = False
            if self._reader_waiting and not self._messages:
                self._credit_partial()
            credit = self._credit
            self._credit = 0
            close_frame = self._send_close
            self._send_close = None
            pongs = self._pongs
            self._pongs = []
            wake = self._reader_waiting and (bool(self._messages) or self._discard)
            return Actions(credit, close_frame, pongs, wake, self._ended(), self._shutdown)

    def _credit_partial(self) -> None:
        """Give back the bytes of the message in progress (lock held): a reader waits for it."""
        self._credit += self._partial_size - self._partial_credited
        self._partial_credited = self._partial_size

    def _ended(self) -> bool:
        return self._shutdown or (self._close_received is not None and self._close_sent is not None)

    def next_message(self) -> tuple[Message | None, int]:
        """The next message, or None after registering the caller as the waiting reader.

        Also returns the bytes to give back to the read window now (batched:
        all of them before the reader waits).

        Raises:
            ConnectionClosed: no message is left and reading has ended.
            RuntimeError: another reader is already waiting.
        """
        with self._lock:
            if self._messages:
                message, size, due = self._messages.popleft()
                self.buffered_bytes -= size
                self._reader_waiting = False
                self._credit += due
                if self._credit < self._read_window // 4:
                    return message, 0
                credit = self._credit
                self._credit = 0
                return message, credit
            if self._discard:
                self._reader_waiting = False
                raise self.closed_error()
            if self._reader_waiting:
                raise RuntimeError("another task is already receiving from this WebSocket")
            self._reader_waiting = True
            self._credit_partial()
            credit = self._credit
            self._credit = 0
            return None, credit

    def stop_waiting(self) -> None:
        """The waiting reader gave up (it was cancelled)."""
        with self._lock:
            self._reader_waiting = False

    def begin_close(self, code: int, reason: str) -> tuple[bool, int]:
        """We close: drop unread messages and stop reading.

        Returns whether to send our close frame (not if one was sent or the
        connection is gone) and the bytes to give back to the read window.
        """
        with self._lock:
            send = self._close_sent is None and not self._shutdown
            if send:
                self._close_sent = (code, reason)
            self._end_reading()
            for _, size, due in self._messages:
                self._credit += due
                self.buffered_bytes -= size
            self._messages.clear()
            credit = self._credit
            self._credit = 0
            return send, credit

    def check_open(self) -> None:
        """Raise :class:`ConnectionClosed` if no more frames may be sent."""
        with self._lock:
            if self._close_sent is not None or self._close_received is not None or self._shutdown:
                raise self.closed_error()

    @property
    def ended(self) -> bool:
        """True once the closing handshake is over or the connection is gone."""
        return self._ended()

    @property
    def close_info(self) -> CloseInfo | None:
        """``(code, reason)`` once closing started (see :class:`ConnectionClosed`), else None."""
        if self._close_received is not None:
            return self._close_received
        if self._close_sent is not None:
            return self._close_sent
        if self._shutdown:
            return ABNORMAL_CLOSURE, ""
        return None

    def closed_error(self) -> ConnectionClosed:
        """The :class:`ConnectionClosed` to raise now, with the CRT's error as its cause."""
        code, reason = self.close_info or (ABNORMAL_CLOSURE, "")
        error = ConnectionClosed(code, reason)
        if self._error is not None:
            error.__cause__ = translate_crt_error(self._error)
        return error


T = TypeVar("T")


class Pings(Generic[T]):
    """Our pings waiting for their pong, in the order sent (loop side only).

    A pong answers the oldest ping with the same payload, and every ping sent
    before it (a peer may answer only the latest of several pings).
    """

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: list[tuple[bytes, T]] = []

    def add(self, payload: bytes, waiter: T) -> None:
        """Register a ping about to be sent."""
        self._waiting.append((payload, waiter))

    def discard(self, waiter: T) -> None:
        """Forget a ping whose sender gave up."""
        self._waiting = [entry for entry in self._waiting if entry[1] is not waiter]

    def acknowledge(self, payload: bytes) -> list[T]:
        """The waiters a pong with ``payload`` answers (empty if it answers none)."""
        for index, (sent, _) in enumerate(self._waiting):
            if sent == payload:
                answered = [waiter for _, waiter in self._waiting[: index + 1]]
                del self._waiting[: index + 1]
                return answered
        return []

    def take_all(self) -> list[T]:
        """Every waiter (the connection closed: none will be answered)."""
        waiters = [waiter for _, waiter in self._waiting]
        self._waiting = []
        return waiters
