"""A fault-injection HTTP/2 server for the tests: every misbehaviour is chosen per request.

Built on the ``h2`` library over an anyio TLS listener (certificates from ``trustme``), it
runs on its own asyncio event loop in a thread (an anyio blocking portal) on 127.0.0.1.
Being in-process lets a test read what the server saw (:class:`Record`): when a fault was
injected, how much request body arrived, whether the client ended its body.

Endpoints (any method):

``/``
    200, ``ok``.
``/bytes/{n}``
    n bytes with content-length n; byte i is ``i % 251`` (as examples/h2_server.py).
``/upload``
    Reads the whole request body, replies JSON ``{"length": n, "sha256": hex}``.
``/echo``
    Duplex echo: 200 headers at once, then every request body chunk straight back.
    ``?seed=S&pause=P``: before reading a chunk, now and then (``PAUSE_CHANCE``) pause
    a random 0..P s (seeded RNG); the stream's receive window stays closed meanwhile.
``/slow?delay=S``
    200 headers, then after S s the body ``ok``.

Query parameters on any request:

``id``
    The key of the request's :class:`Record` in ``FaultServer.records``.
``fault``
    What goes wrong (below); ``*-mid-body`` faults act ``after`` bytes into the
    response body, ``*-mid-upload`` ones once ``after`` request body bytes were read,
    ``*-before-headers`` ones when the request headers arrive.
``once``
    Inject the fault only the first time a request with this ``id`` comes (a retry
    then succeeds).
``hold``
    With ``fault=window-zero``: the request body is not read (so the stream's receive
    window is 0 once the first 64 KiB are in) for ``hold`` seconds.
``to``
    With ``fault=lower-streams``: the connection's SETTINGS_MAX_CONCURRENT_STREAMS is
    lowered to this value, then the request is served normally.

Faults:

``rst-*``
    RST_STREAM (INTERNAL_ERROR) on the request's stream (``rst-after-headers``: right
    after the response headers).
``close-*``
    The TCP connection is dropped (no GOAWAY, no TLS close_notify).
``goaway-before-headers``
    GOAWAY whose last stream is below this one (it was never processed), then close.
``goaway-mid-body``
    GOAWAY that includes this stream, then close before the body is complete.
``goaway-graceful``
    GOAWAY that includes this stream, then the response is finished normally.
``stall-*``
    Nothing more is sent, until the client goes away.
``window-zero``
    The request body's window stays at the protocol's initial 65535 bytes and is not
    re-opened for ``hold`` seconds.
``malformed-headers`` / ``malformed-frame`` / ``malformed-mid-body``
    Instead of the response headers, a HEADERS frame with an undecodable HPACK block; a
    SETTINGS frame of an invalid size; a DATA frame on stream 0 after part of the body.
``short-body``
    END_STREAM before as many bytes as the content-length said.
``lower-streams``
    SETTINGS lowers MAX_CONCURRENT_STREAMS to ``to`` on this connection (not a failure).

Example::

    with FaultServer() as server:
        url = f"{server.url}/bytes/100000?fault=rst-mid-body&after=5000&id=r1"
        ...  # a client fails; then server.records["r1"].fault_at says when the reset went out
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import random
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import anyio.from_thread
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame
import trustme
from anyio.streams.tls import TLSStream
from h2.errors import ErrorCodes

HOST = "127.0.0.1"
PATTERN = bytes(range(251))  # /bytes body: byte i is i % 251
DEFAULT_WINDOW = 65535  # HTTP/2's initial flow-control window
PAUSE_CHANCE = 0.02  # /echo?pause=: how often the server pauses before reading a chunk

# A frame no client may accept: a SETTINGS frame must be a multiple of 6 bytes long.
BAD_FRAME_SIZE = b"\x00\x00\x05\x04\x00\x00\x00\x00\x00" + b"\x00" * 5
# DATA on stream 0 is a connection error (PROTOCOL_ERROR).
DATA_ON_STREAM_0 = b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x"

BEFORE_HEADERS = frozenset(
    {
        "rst-before-headers",
        "close-before-headers",
        "goaway-before-headers",
        "stall-before-headers",
        "malformed-headers",
        "malformed-frame",
    }
)
MID_BODY = frozenset(
    {
        "rst-mid-body",
        "close-mid-body",
        "goaway-mid-body",
        "stall-mid-body",
        "malformed-mid-body",
        "short-body",
    }
)
MID_UPLOAD = frozenset({"rst-mid-upload", "close-mid-upload"})
FAULTS = (
    BEFORE_HEADERS
    | MID_BODY
    | MID_UPLOAD
    | {"rst-after-headers", "goaway-graceful", "window-zero", "lower-streams"}
)


def body_pattern(size: int, offset: int = 0) -> bytes:
    """What ``/bytes/{n}`` sends, from byte ``offset`` on."""
    start = offset % len(PATTERN)
    repeats = (start + size) // len(PATTERN) + 1
    return (PATTERN * repeats)[start : start + size]


# -- for the clients in the tests -----------------------------------------------------------

UPLOAD = body_pattern(1024 * 1024)  # a request body
PIECE = 16384  # the size of its pieces when it is sent piece by piece
_request_ids = itertools.count()


def new_id() -> str:
    """A fresh ``id`` for a request's :class:`Record`."""
    return f"request-{next(_request_ids)}"


async def upload_pieces() -> AsyncIterator[bytes]:
    """``UPLOAD`` as an async iterable: written piece by piece, under the write timeout."""
    for offset in range(0, len(UPLOAD), PIECE):
        yield UPLOAD[offset : offset + PIECE]


def upload_pieces_sync() -> Iterator[bytes]:
    """``UPLOAD`` as an iterable (the sync httpx client, sync bodies)."""
    for offset in range(0, len(UPLOAD), PIECE):
        yield UPLOAD[offset : offset + PIECE]


@dataclass
class Record:
    """What the server saw of one request (the one whose query had ``id=...``).

    Attributes:
        fault_at: ``time.monotonic()`` when the fault was first injected (None: not yet).
        faults: how many times it was injected (a retried request meets it again).
        body_received: request body bytes received.
        end_stream: the client ended its request body (END_STREAM).
        reset_by_client: the client reset the stream.
        connection: the number of the connection it came on (1, 2, ...).
    """

    fault_at: float | None = None
    faults: int = 0
    body_received: int = 0
    end_stream: bool = False
    reset_by_client: bool = False
    connection: int = 0


class _Stop(Exception):
    """The handler's work ends here (a fault was injected, or the stream is gone)."""


class _Stream:
    __slots__ = ("chunks", "ended", "gone", "headers", "id", "record", "scope")

    def __init__(self, stream_id: int, headers: dict[str, str], record: Record) -> None:
        self.id = stream_id
        self.headers = headers
        self.record = record
        self.chunks: deque[bytes] = deque()
        self.ended = False  # END_STREAM received
        self.gone = False  # reset, or the connection is closing
        self.scope = anyio.CancelScope()


class _Connection:
    """One client connection: reads frames, runs one handler task per request."""

    def __init__(self, server: FaultServer, tls: TLSStream, number: int) -> None:
        self.server = server
        self.tls = tls
        self.number = number
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config)
        self.streams: dict[int, _Stream] = {}
        self.raw = False  # after malformed bytes: h2 is no longer used
        self.closed = False
        self._send_lock = anyio.Lock()
        self._changed = anyio.Event()
        self._tasks: anyio.abc.TaskGroup | None = None

    # -- plumbing ------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake every handler waiting for a change (data, window, reset)."""
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, stream: _Stream, ready: Callable[[], bool]) -> None:
        while not ready():
            if stream.gone or self.closed:
                raise _Stop
            await self._changed.wait()

    async def flush(self, extra: bytes = b"") -> None:
        """Send what h2 has queued, then ``extra`` (bytes past h2).  A connection that is
        gone (the client left, or a close fault) is marked closed instead of raising."""
        async with self._send_lock:
            data = self.h2.data_to_send() + extra
            if not data or self.closed:
                return
            try:
                await self.tls.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError):
                self.closed = True
                self.notify()

    async def send_goaway(self, last_stream_id: int) -> None:
        """Send GOAWAY (NO_ERROR) past h2, which cannot send anything after one: the
        streams up to ``last_stream_id`` can still be served."""
        frame = hyperframe.frame.GoAwayFrame(0, last_stream_id=last_stream_id, error_code=0)
        await self.flush(frame.serialize())

    async def send_raw(self, data: bytes) -> None:
        """Send bytes past h2 (after what it has queued); h2 is not used afterwards
        (its state no longer matches what the client sees)."""
        self.raw = True
        await self.flush(data)

    async def close(self) -> None:
        """Drop the TCP connection at once (no TLS close_notify, no GOAWAY)."""
        self.closed = True
        for stream in self.streams.values():
            stream.gone = True
        self.notify()
        await self.tls.transport_stream.aclose()
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    # -- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        self.h2.local_settings = h2.settings.Settings(
            client=False, initial_values=self.server.initial_settings()
        )
        self.h2.initiate_connection()
        self._widen_window(None)
        try:
            await self.flush()
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                while not self.closed:
                    try:
                        data = await self.tls.receive()
                    except (
                        anyio.EndOfStream,
                        anyio.BrokenResourceError,
                        anyio.ClosedResourceError,
                        ssl.SSLError,
                        OSError,
                    ):
                        break
                    if self.raw:
                        continue  # the client is expected to give up on this connection
                    try:
                        events = self.h2.receive_data(data)
                    except h2.exceptions.ProtocolError as error:
                        self.server.violations.append(repr(error))
                        break
                    for event in events:
                        self._dispatch(event, tasks)
                    await self.flush()
                tasks.cancel_scope.cancel()
        finally:
            self.closed = True
            self.notify()
            with anyio.CancelScope(shield=True):
                await self.tls.transport_stream.aclose()
            self.server.connection_closed(self.number).set()

    def _widen_window(self, stream_id: int | None) -> None:
        """Open a window (None: the connection's) from the protocol's default 65535 to
        ``receive_window`` with WINDOW_UPDATE.  Not with SETTINGS_INITIAL_WINDOW_SIZE:
        awscrt does not apply a larger one to a stream it has already started, which
        then stalls (as examples/h2_server.py notes)."""
        increment = self.server.receive_window - DEFAULT_WINDOW
        if increment > 0:
            self.h2.increment_flow_control_window(increment, stream_id)

    def _dispatch(self, event: h2.events.Event, tasks: anyio.abc.TaskGroup) -> None:
        stream = self.streams.get(getattr(event, "stream_id", None) or 0)
        if isinstance(event, h2.events.RequestReceived):
            headers = dict(event.headers)  # type: ignore[arg-type]
            query = parse_qs(urlsplit(headers[":path"]).query)
            record = Record(connection=self.number)
            if "id" in query:
                record = self.server.records.setdefault(query["id"][-1], record)
                record.connection = self.number
            stream = self.streams[event.stream_id] = _Stream(event.stream_id, headers, record)
            if not event.stream_ended and query.get("fault") != ["window-zero"]:
                self._widen_window(event.stream_id)
            self.server.max_streams_seen = max(
                self.server.max_streams_seen, self.h2.open_inbound_streams
            )
            tasks.start_soon(self._handle, stream)
        elif isinstance(event, h2.events.DataReceived) and stream is not None:
            # The connection's window is re-opened at once, the stream's once the handler
            # has taken the data: a handler that does not read stops only its stream.
            if event.flow_controlled_length:
                self.h2.increment_flow_control_window(event.flow_controlled_length)
            stream.chunks.append(event.data)
            stream.record.body_received += len(event.data)
        elif isinstance(event, h2.events.StreamEnded) and stream is not None:
            stream.ended = stream.record.end_stream = True
        elif isinstance(event, h2.events.StreamReset) and stream is not None:
            stream.gone = stream.record.reset_by_client = True
            stream.scope.cancel()
        elif isinstance(event, h2.events.ConnectionTerminated):
            for each in self.streams.values():
                each.gone = True
        self.notify()

    async def _handle(self, stream: _Stream) -> None:
        with stream.scope:
            try:
                await _Exchange(self, stream).run()
            except _Stop:
                pass
            except (h2.exceptions.StreamClosedError, anyio.BrokenResourceError):
                pass  # the client reset the stream or went away
            except anyio.ClosedResourceError:
                pass  # our own close() fault
            except Exception as error:
                self.server.errors.append(repr(error))
        self.streams.pop(stream.id, None)


class _Exchange:
    """One request: route it, serve it, inject its fault."""

    def __init__(self, connection: _Connection, stream: _Stream) -> None:
        self.connection = connection
        self.h2 = connection.h2
        self.stream = stream
        target = urlsplit(stream.headers[":path"])
        self.path = target.path
        self.query = {name: values[-1] for name, values in parse_qs(target.query).items()}
        self.fault = self.query.get("fault")
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}")
        if "once" in self.query and stream.record.faults:
            self.fault = None  # a retry of a request that met its fault already
        self.after = int(self.query.get("after", "0"))
        self.sent = 0  # response body bytes sent
        self.taken = 0  # request body bytes taken

    async def run(self) -> None:
        fault = self.fault
        if fault in BEFORE_HEADERS or fault == "goaway-graceful":
            await self.inject(fault)
        if fault == "lower-streams":
            self.h2.update_settings(
                {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: int(self.query["to"])}
            )
        if fault == "window-zero":
            await self.inject(fault)
        path = self.path
        if path == "/":
            await self.respond(b"ok\n")
        elif path.startswith("/bytes/"):
            size = int(path[len("/bytes/") :])
            await self.start(length=size)
            for offset in range(0, size, 16384):
                await self.send(body_pattern(min(16384, size - offset), offset))
            await self.end()
        elif path == "/upload":
            digest = hashlib.sha256()
            length = 0
            while (chunk := await self.receive()) is not None:
                digest.update(chunk)
                length += len(chunk)
            await self.respond(
                json.dumps({"length": length, "sha256": digest.hexdigest()}).encode()
            )
        elif path == "/echo":
            await self.echo()
        elif path == "/slow":
            await self.start()
            await anyio.sleep(float(self.query.get("delay", "1")))
            await self.send(b"ok\n")
            await self.end()
        else:
            await self.respond(b"not found\n", status=404)

    async def echo(self) -> None:
        rng = random.Random(self.query.get("seed", "0"))
        pause = float(self.query.get("pause", "0"))
        await self.start()
        while True:
            if pause and rng.random() < PAUSE_CHANCE:
                await anyio.sleep(rng.random() * pause)
            chunk = await self.receive()
            if chunk is None:
                break
            await self.send(chunk)
        await self.end()

    # -- faults --------------------------------------------------------------------------

    async def inject(self, fault: str) -> None:
        """Inject ``fault`` now; raises ``_Stop`` unless the stream goes on."""
        connection, stream = self.connection, self.stream
        record = stream.record
        if record.fault_at is None:
            record.fault_at = time.monotonic()
        record.faults += 1
        if fault.startswith("rst-"):
            self.h2.reset_stream(stream.id, ErrorCodes.INTERNAL_ERROR)
            await connection.flush()
        elif fault.startswith("close-"):
            await connection.close()
        elif fault == "goaway-before-headers":
            # The stream is above the last one processed: the client may retry it.
            await connection.send_goaway(last_stream_id=max(0, stream.id - 2))
            await connection.close()
        elif fault == "goaway-mid-body":
            # The stream was accepted, then the connection goes before it is finished.
            await connection.send_goaway(last_stream_id=stream.id)
            await connection.close()
        elif fault == "goaway-graceful":
            # Announce the shutdown, then finish this stream (the client closes).
            await connection.send_goaway(last_stream_id=stream.id)
            return
        elif fault.startswith("stall-"):
            await anyio.sleep_forever()
        elif fault == "window-zero":
            await anyio.sleep(float(self.query.get("hold", "1")))
            return
        elif fault == "malformed-headers":
            await connection.send_raw(_bad_hpack_headers(stream.id))
        elif fault == "malformed-frame":
            await connection.send_raw(BAD_FRAME_SIZE)
        elif fault == "malformed-mid-body":
            await connection.send_raw(DATA_ON_STREAM_0)
        elif fault == "short-body":
            # END_STREAM before content-length bytes: a truncated body marked complete.
            self.h2.end_stream(stream.id)
            await connection.flush()
        raise _Stop

    # -- the response ----------------------------------------------------------------------

    async def respond(self, body: bytes, status: int = 200) -> None:
        await self.start(status, length=len(body))
        await self.send(body)
        await self.end()

    async def start(self, status: int = 200, length: int | None = None) -> None:
        headers = [(":status", str(status)), ("content-type", "application/octet-stream")]
        if length is not None:
            headers.append(("content-length", str(length)))
        self.h2.send_headers(self.stream.id, headers)
        await self.connection.flush()
        if self.fault == "rst-after-headers":
            await self.inject(self.fault)

    async def send(self, data: bytes) -> None:
        """Send response body data within the client's flow-control windows."""
        if self.fault in MID_BODY and self.sent + len(data) >= self.after:
            before = self.after - self.sent
            await self._send(data[:before])
            await self.inject(self.fault)  # type: ignore[arg-type]
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        connection, stream = self.connection, self.stream
        view = memoryview(data)
        while view:
            await connection.until(stream, lambda: self.h2.local_flow_control_window(stream.id) > 0)
            size = min(
                len(view),
                self.h2.local_flow_control_window(stream.id),
                self.h2.max_outbound_frame_size,
            )
            self.h2.send_data(stream.id, bytes(view[:size]))
            view = view[size:]
            self.sent += size
            await connection.flush()

    async def end(self) -> None:
        self.h2.end_stream(self.stream.id)
        await self.connection.flush()

    # -- the request body ------------------------------------------------------------------

    async def receive(self) -> bytes | None:
        """The next request body chunk (its window re-opened), or None at END_STREAM."""
        connection, stream = self.connection, self.stream
        await connection.until(stream, lambda: bool(stream.chunks) or stream.ended)
        if not stream.chunks:
            return None
        chunk = stream.chunks.popleft()
        if chunk and not stream.ended:
            self.h2.increment_flow_control_window(len(chunk), stream_id=stream.id)
            await connection.flush()
        self.taken += len(chunk)
        if self.fault in MID_UPLOAD and self.taken >= self.after:
            await self.inject(self.fault)  # type: ignore[arg-type]
        return chunk


def _bad_hpack_headers(stream_id: int) -> bytes:
    """A HEADERS frame (END_HEADERS) whose block refers to HPACK index 191, in no
    table: a COMPRESSION_ERROR for the client."""
    block = b"\xff\x40"  # indexed header field, index 127 + 64 = 191: not in any table
    header = len(block).to_bytes(3, "big") + b"\x01\x04" + stream_id.to_bytes(4, "big")
    return header + block


class FaultServer:
    """The fault-injection HTTP/2 server, serving in a thread while the block runs.

    Args:
        ca: the CA that issues the server certificate (default: a new one).
        hostnames: the names the certificate is issued for.
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS announced at the start
            (None: not announced).
        receive_window: the flow-control window for each request body and for the
            connection (except ``fault=window-zero`` requests: 65535, the protocol's
            default).

    Attributes:
        url: ``https://127.0.0.1:<port>``.
        ca_file: PEM file of the CA (to trust the server).
        records: what the server saw of each request sent with ``id=``.
        connections: how many connections were accepted.
        violations: protocol errors the server detected in what clients sent
            (e.g. more concurrent streams than allowed); a correct client causes none.
        errors: unexpected exceptions inside the server (a test asserts none).
        max_streams_seen: the most concurrent streams one connection carried.
    """

    def __init__(
        self,
        *,
        ca: trustme.CA | None = None,
        hostnames: tuple[str, ...] = (HOST, "localhost"),
        max_concurrent_streams: int | None = None,
        receive_window: int = 1024 * 1024,
    ) -> None:
        self.ca = ca or trustme.CA()
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*hostnames).configure_cert(self._ssl)
        self._ssl.set_alpn_protocols(["h2"])
        self._max_concurrent_streams = max_concurrent_streams
        self.receive_window = receive_window
        self._scratch = tempfile.TemporaryDirectory(prefix="fault_server-")
        self.ca_file = str(Path(self._scratch.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.records: dict[str, Record] = {}
        self.connections = 0
        self._closed_events: dict[int, threading.Event] = {}
        self._closed_events_lock = threading.Lock()
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.max_streams_seen = 0
        self.port = 0
        self._stack = contextlib.ExitStack()

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def connection_closed(self, number: int) -> threading.Event:
        """Set once connection ``number`` is closed and everything it carried was read."""
        with self._closed_events_lock:
            return self._closed_events.setdefault(number, threading.Event())

    def initial_settings(self) -> dict[int, int]:
        settings = {}
        if self._max_concurrent_streams is not None:
            settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = self._max_concurrent_streams
        return settings  # type: ignore[return-value]

    def __enter__(self) -> FaultServer:
        portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal("asyncio"))
        future, self.port = portal.start_task(self._serve)
        self._stack.callback(future.cancel)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()
        self._scratch.cleanup()

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        async with await anyio.create_tcp_listener(local_host=HOST, local_port=0) as listener:
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._accept)

    async def _accept(self, client: anyio.abc.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        async with client:  # closed whatever happens, cancellation at shutdown included
            try:
                with anyio.fail_after(30):
                    tls = await TLSStream.wrap(
                        client, server_side=True, ssl_context=self._ssl, standard_compatible=False
                    )
            except (
                TimeoutError,
                ssl.SSLError,
                OSError,
                anyio.BrokenResourceError,
                anyio.EndOfStream,
            ):
                return  # e.g. the client rejected our certificate
            try:
                await _Connection(self, tls, number).run()
            except Exception as error:  # keep serving; the test sees it in .errors
                self.errors.append(repr(error))


@contextlib.contextmanager
def unlistened_port() -> Iterator[int]:
    """A loopback port where connections are refused: bound (so nobody else gets it)
    but not listening."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]
