"""Local HTTPS test server speaking HTTP/2 and HTTP/1.1 (hypercorn + a hand-written ASGI app).

Run it with::

    python examples/h2_server.py [--port 8443] [--http-port PORT | --no-http]
                                 [--h2-max-concurrent-streams 100] [--cert-dir DIR]

At start-up it makes a throwaway CA and a server certificate for ``127.0.0.1`` and
``localhost`` with ``trustme`` and writes ``ca.pem``, ``server.pem`` (certificate chain) and
``server.key`` into ``--cert-dir`` (default: a temporary directory, removed on exit). It
listens on 127.0.0.1 only: TLS with ALPN ``h2``/``http/1.1`` on ``--port`` and cleartext
HTTP/1.1 on ``--http-port``; port 0 picks a free port. Once both listeners are serving it
prints exactly one JSON line to stdout (``http_url`` is null with ``--no-http``)::

    {"https_url": "https://127.0.0.1:8443", "http_url": "http://127.0.0.1:40123",
     "ca_file": "/tmp/h2_server-xyz/ca.pem", "pid": 12345}

Logs go to stderr. SIGTERM or SIGINT stops the server with exit status 0. Requests still
running are cancelled: their HTTP/2 stream is reset or their HTTP/1.1 connection closed
(a request whose response has not started gets a 500).

Endpoints (a bad path or query value gives 400, anything not listed gives 404):

``GET /``
    200, ``hello from h2_server``.
``POST|PUT /echo``
    Duplex echo: 200 headers at once, then every request body chunk is sent straight back
    as a response body chunk; the response ends when the request body does.
``GET /bytes/{n}``
    n bytes with content-length n; byte i is ``i % 251``. ``?chunk=`` sets how many bytes
    each ASGI send carries (default 65536).
``GET /drip?count=N&interval=SECONDS&size=B``
    200 headers at once, then N chunks of B ``x`` bytes, ``interval`` seconds apart
    (defaults: 10, 0.1, 1).
``GET /status/{code}``
    That status (200-599) with body ``status {code}`` (empty for 204 and 304).
``GET /stall``
    200 headers, then nothing until the client goes away.
``GET /stall-before-headers``
    Nothing at all until the client goes away.
``POST|PUT /ignore-body``
    200 headers, then never reads the request body (until the connection closes), so
    the client's writes back up: for write timeouts.
``GET /abort?after=N&mode=reset|close``
    200 headers (content-length 2N when N > 0) and the first N bytes of what ``/bytes``
    sends, then the response is aborted: ``reset`` (default) sends RST_STREAM on HTTP/2,
    ``close`` drops the whole connection. HTTP/1.1 cannot reset a single request, so there
    both modes drop the connection.
``GET /headers``
    JSON ``{"method", "path", "http_version", "headers": [[name, value], ...]}``;
    ``path`` is the raw request target, query string included.
``POST|PUT /upload``
    Reads the whole request body, replies JSON ``{"length": n, "sha256": hex}``.

Hypercorn 0.18 needs a few fixes for this; see "Fixes for hypercorn" below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import hypercorn.asyncio.run
import hypercorn.protocol
import hypercorn.protocol.h2
import hypercorn.protocol.h11
import trustme
from h2.errors import ErrorCodes
from h2.events import DataReceived, RequestReceived
from h2.events import Event as H2Event
from hypercorn.asyncio import serve
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config
from hypercorn.events import Closed
from hypercorn.protocol.events import EndBody
from hypercorn.protocol.h2 import BUFFER_LOW_WATER, H2Protocol, StreamBuffer
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream

HOST = "127.0.0.1"
H2_WINDOW = 2**20  # HTTP/2 receive window (per stream and per connection), see _H2Protocol
APP_QUEUE_SIZE = 4096
KEEP_ALIVE_MAX_REQUESTS = 10**9  # see main()  # request body events buffered per stream, see main()
SHUTDOWN_TIMEOUT = 1.0  # at shutdown, connections still open after this are dropped
ABORT = "http.response.abort"  # this file's own ASGI message, see _HTTPStream
REQUEST_TASK = "h2_server request"  # name of the tasks running requests, see _serve()

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PATTERN = bytes(range(251))  # /bytes body: byte i is i % 251
_NO_BODY_STATUSES = (204, 304)


# --- The ASGI application ---------------------------------------------------------------


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """Route a request on method and path."""
    if scope["type"] != "http":
        return  # lifespan: nothing to set up or tear down
    asyncio.current_task().set_name(REQUEST_TASK)  # type: ignore[union-attr]
    method, path = scope["method"], scope["path"]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
    try:
        if method == "GET" and path == "/":
            await _respond(send, 200, b"hello from h2_server\n")
        elif method in ("POST", "PUT") and path == "/echo":
            await _echo(receive, send)
        elif method == "GET" and path.startswith("/bytes/"):
            await _bytes(send, _int(path[7:]), _int(query.get("chunk", "65536"), minimum=1))
        elif method == "GET" and path == "/drip":
            count, size = _int(query.get("count", "10")), _int(query.get("size", "1"))
            await _drip(send, count, float(query.get("interval", "0.1")), size)
        elif method == "GET" and path.startswith("/status/"):
            code = _int(path[8:], minimum=200, maximum=599)
            await _respond(send, code, b"" if code in _NO_BODY_STATUSES else b"status %d\n" % code)
        elif method == "GET" and path == "/stall":
            await _start(send, 200, b"application/octet-stream")
            await _wait_for_disconnect(receive)
        elif method == "GET" and path == "/stall-before-headers":
            await _wait_for_disconnect(receive)
        elif method in ("POST", "PUT") and path == "/ignore-body":
            await _start(send, 200, b"application/octet-stream")
            await asyncio.Event().wait()  # never reads: the client's sends back up
        elif method == "GET" and path == "/abort":
            mode = query.get("mode", "reset")
            if mode not in ("reset", "close"):
                raise ValueError(f"unknown mode {mode!r}")
            after = _int(query.get("after", "0"))
            await _send_then_abort(send, after, close_connection=mode == "close")
        elif method == "GET" and path == "/headers":
            await _headers(scope, send)
        elif method in ("POST", "PUT") and path == "/upload":
            await _upload(receive, send)
        else:
            await _respond(send, 404, b"not found\n")
    except ValueError as error:  # only raised while parsing, before any response is started
        await _respond(send, 400, f"bad request: {error}\n".encode())
    except ConnectionError:
        pass  # the client went away, see _HTTPStream


def _int(text: str, minimum: int = 0, maximum: int | None = None) -> int:
    value = int(text)
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{value} is out of range")
    return value


async def _start(send: Send, status: int, content_type: bytes, length: int | None = None) -> None:
    headers = [(b"content-type", content_type)]
    if length is not None:
        headers.append((b"content-length", b"%d" % length))
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"text/plain"
) -> None:
    await _start(send, status, content_type, len(body) if body else None)
    await send({"type": "http.response.body", "body": body})


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    """Yield the request body chunk by chunk; stop early if the client goes away."""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        more = message.get("more_body", False)


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _echo(receive: Receive, send: Send) -> None:
    await _start(send, 200, b"application/octet-stream")
    async for chunk in _request_body(receive):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body"})


async def _bytes(send: Send, size: int, chunk: int) -> None:
    await _start(send, 200, b"application/octet-stream", size)
    block = _PATTERN * (min(chunk, size) // len(_PATTERN) + 2)  # holds any chunk-sized window
    for offset in range(0, size, chunk):
        start = offset % len(_PATTERN)
        body = block[start : start + min(chunk, size - offset)]
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body"})


async def _drip(send: Send, count: int, interval: float, size: int) -> None:
    await _start(send, 200, b"application/octet-stream", count * size)
    for i in range(count):
        if i:
            await asyncio.sleep(interval)
        await send({"type": "http.response.body", "body": b"x" * size, "more_body": True})
    await send({"type": "http.response.body"})


async def _send_then_abort(send: Send, after: int, close_connection: bool) -> None:
    await _start(send, 200, b"application/octet-stream", 2 * after if after else None)
    body = (_PATTERN * (after // len(_PATTERN) + 1))[:after]
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": ABORT, "close_connection": close_connection})


async def _headers(scope: Message, send: Send) -> None:
    target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
    document = {
        "method": scope["method"],
        "path": target.decode("latin-1"),
        "http_version": scope["http_version"],
        "headers": [
            [name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]
        ],
    }
    await _respond(send, 200, json.dumps(document).encode(), b"application/json")


async def _upload(receive: Receive, send: Send) -> None:
    digest, length = hashlib.sha256(), 0
    async for chunk in _request_body(receive):
        digest.update(chunk)
        length += len(chunk)
    document = {"length": length, "sha256": digest.hexdigest()}
    await _respond(send, 200, json.dumps(document).encode(), b"application/json")


# --- Fixes for hypercorn (0.18) ---------------------------------------------------------
#
# Each class below replaces its hypercorn base class in the hypercorn module that uses it;
# main() installs them with _patch_hypercorn().


class _HTTPStream(HTTPStream):
    """Adds response aborts and stops apps whose client went away.

    Stock hypercorn cannot abort a response: if an app raises mid-response, it forgets the
    HTTP/2 stream and the client waits forever. This adds the ASGI message
    ``{"type": ABORT, "close_connection": bool}`` and aborts the same way when an app exits
    mid-response. HTTP/2 gets RST_STREAM(INTERNAL_ERROR) unless close_connection is true;
    HTTP/1.1 cannot reset a single request, so there the connection is always dropped.

    Stock hypercorn also silently accepts sends after the client has gone, so a streaming
    app runs on (over HTTP/1.1 logging a warning per send). Here such a send raises
    ConnectionResetError, as the ASGI spec asks. Every send also yields to the event loop:
    over TLS a send to a vanished peer never blocks, so the loop would never learn that the
    connection is lost, and a fast stream would starve everything else.
    """

    async def app_send(self, message: Any) -> None:
        await asyncio.sleep(0)
        if message is not None and self.closed:
            raise ConnectionResetError("the client went away")
        if message is None and self.state is ASGIHTTPState.RESPONSE and not self.closed:
            await self._abort(close_connection=False)  # the app raised or was cancelled
        if message is not None and message["type"] == ABORT:
            await self._abort(message.get("close_connection", False), flush_body=True)
        else:
            await super().app_send(message)  # for None: tells the protocol the stream is done

    async def _abort(self, close_connection: bool, flush_body: bool = False) -> None:
        self.state = ASGIHTTPState.CLOSED
        protocol = self.send.__self__  # type: ignore[attr-defined]  # owning H11/H2Protocol
        if isinstance(protocol, H2Protocol):
            buffer = protocol.stream_buffers.get(self.stream_id)
            if flush_body and buffer is not None and buffer.buffer:
                await buffer.drain()  # let the body sent so far go out first
            if not close_connection and not self.closed:
                protocol.connection.reset_stream(self.stream_id, ErrorCodes.INTERNAL_ERROR)
                await protocol._flush()
                # Drop unsent data, then EndBody makes hypercorn's sender forget the stream.
                if buffer is not None:
                    await buffer.close()
                await self.send(EndBody(stream_id=self.stream_id))
                return
        if not self.closed:
            await protocol.send(Closed())


class _StreamBuffer(StreamBuffer):
    """Fixes HTTP/2 send backpressure.

    Stock hypercorn lets the app send on whenever a pop returns little data, including when
    the client's flow-control window is closed, so a fast app buffers its whole response in
    memory (all 256 MiB of /bytes/268435456). Here the app waits until the buffer is low.
    """

    async def pop(self, max_length: int) -> bytes:
        data = bytes(self.buffer[:max_length])
        del self.buffer[:max_length]
        if len(self.buffer) < BUFFER_LOW_WATER:
            await self._paused.set()
        if not self.buffer:
            await self._is_empty.set()
        return data


class _H2Protocol(H2Protocol):
    """Opens larger HTTP/2 receive windows and survives early responses.

    Stock windows are 64 KiB; awscrt does not set TCP_NODELAY, so then the last segment of
    every window waits for a delayed ACK (40 ms on Linux) and uploads crawl at ~1 MB/s.
    The windows are widened with WINDOW_UPDATE frames: a larger SETTINGS_INITIAL_WINDOW_SIZE
    is not applied by awscrt to a stream it has already started, which then stalls. Stock
    hypercorn also drops the connection (KeyError) when body data arrives for a request
    whose response is already complete.
    """

    async def initiate(
        self, headers: list[tuple[bytes, bytes]] | None = None, settings: bytes | None = None
    ) -> None:
        await super().initiate(headers, settings)
        self._widen_window(None)
        await self._flush()

    async def _handle_events(self, events: list[H2Event]) -> None:
        for event in events:
            if isinstance(event, DataReceived) and event.stream_id not in self.streams:
                length, stream_id = event.flow_controlled_length, event.stream_id
                self.connection.acknowledge_received_data(length, stream_id)  # and ignore it
                continue
            await super()._handle_events([event])
            # (A request refused at shutdown has no stream; one with END_STREAM has no body.)
            if (
                isinstance(event, RequestReceived)
                and event.stream_id in self.streams
                and not event.stream_ended
            ):
                self._widen_window(event.stream_id)
        await self._flush()

    def _widen_window(self, stream_id: int | None) -> None:  # None: the connection's window
        default = self.connection.local_settings.initial_window_size
        self.connection.increment_flow_control_window(H2_WINDOW - default, stream_id)


class _TCPServer(TCPServer):
    """Closes connections without hanging or crashing.

    Stock hypercorn can wait forever for a connection to close if the peer does not read,
    and at shutdown fails (traceback, exit status 1) if the peer sends data after our TLS
    close_notify, which awscrt often does (hypercorn issue #261). Here connections still
    open SHUTDOWN_TIMEOUT after shutdown began are dropped, and that TLS error is ignored.
    """

    async def run(self) -> None:
        watchdog = asyncio.create_task(self._drop_after_shutdown())
        try:
            await super().run()
        finally:
            watchdog.cancel()

    async def _drop_after_shutdown(self) -> None:
        sock = self.writer.get_extra_info("socket")
        await self.context.terminated.wait()
        await asyncio.sleep(SHUTDOWN_TIMEOUT)
        # Not transport.abort(): a TLS transport ignores it once closed twice, as hypercorn does.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    async def _close(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            await super()._close()


def _patch_hypercorn() -> None:
    hypercorn.protocol.h11.HTTPStream = _HTTPStream  # type: ignore[attr-defined]
    hypercorn.protocol.h2.HTTPStream = _HTTPStream  # type: ignore[attr-defined]
    hypercorn.protocol.h2.StreamBuffer = _StreamBuffer  # type: ignore[misc]
    hypercorn.protocol.H2Protocol = _H2Protocol  # type: ignore[attr-defined]
    hypercorn.asyncio.run.TCPServer = _TCPServer  # type: ignore[attr-defined]


# --- Start-up ---------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument(
        "--port", type=int, default=8443, help="HTTPS port, 0 = any free port (default: 8443)"
    )
    http = parser.add_mutually_exclusive_group()
    http.add_argument(
        "--http-port", type=int, default=0, help="cleartext HTTP/1.1 port (default: any free port)"
    )
    http.add_argument(
        "--no-http", action="store_true", help="do not open the cleartext HTTP/1.1 port"
    )
    parser.add_argument(
        "--h2-max-concurrent-streams",
        type=int,
        default=Config.h2_max_concurrent_streams,
        metavar="N",
        help="HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (default: %(default)s)",
    )
    parser.add_argument(
        "--cert-dir",
        type=Path,
        help="where to write the CA and certificate files (default: a temporary directory)",
    )
    return parser.parse_args(argv)


def _write_certificates(cert_dir: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST, "localhost")
    ca.cert_pem.write_to_path(cert_dir / "ca.pem")
    (cert_dir / "server.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(cert_dir / "server.key")


def _listen(port: int) -> tuple[str, int]:
    """Open a listening socket; return a hypercorn ``fd://`` bind for it and its real port."""
    try:
        sock = socket.create_server((HOST, port))
    except OSError as error:
        raise SystemExit(f"h2_server: {error}") from None
    port = sock.getsockname()[1]
    return f"fd://{sock.detach()}", port  # hypercorn takes ownership of the file descriptor


async def _serve(config: Config, ready_line: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():  # only it can handle signals
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

    async def shutdown_trigger() -> None:
        print(ready_line, flush=True)  # hypercorn awaits this once all listeners are serving
        await stop.wait()

    async def cancel_requests() -> None:
        # Left alone, hypercorn would cancel whole connections after config.graceful_timeout,
        # which it handles badly (tracebacks, exit status 1). Cancel the requests instead,
        # until the server is down.
        await stop.wait()
        while True:
            for task in asyncio.all_tasks():
                if task.get_name() == REQUEST_TASK:
                    task.cancel()
            await asyncio.sleep(0.1)

    canceller = asyncio.create_task(cancel_requests())
    await serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
    canceller.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and serve until SIGTERM or SIGINT.

    Called in another thread than the main one, it serves until the process exits.
    """
    args = _parse_args(argv)
    _patch_hypercorn()
    with tempfile.TemporaryDirectory(prefix="h2_server-") as scratch:
        cert_dir = args.cert_dir or Path(scratch)
        cert_dir.mkdir(parents=True, exist_ok=True)
        _write_certificates(cert_dir)

        config = Config()
        config.certfile, config.keyfile = str(cert_dir / "server.pem"), str(cert_dir / "server.key")
        config.alpn_protocols = ["h2", "http/1.1"]
        config.h2_max_concurrent_streams = args.h2_max_concurrent_streams
        config.accesslog = None
        # hypercorn reads all of a connection's frames in one loop and blocks it while a
        # stream's app queue is full; an echo app blocked on flow control towards the client
        # then stops the loop from reading the client's WINDOW_UPDATE: a deadlock. A deep
        # queue avoids it (the HTTP/2 receive window still bounds what a client can send).
        config.max_app_queue_size = APP_QUEUE_SIZE
        # After keep_alive_max_requests (default 1000) hypercorn sends GOAWAY and then
        # drops streams it had already accepted: no client can tell those apart from a
        # crash. Benchmarks and pool tests send far more requests per connection.
        config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
        config.graceful_timeout = 2 * SHUTDOWN_TIMEOUT  # a backstop, see _TCPServer

        https_bind, https_port = _listen(args.port)
        config.bind = [https_bind]
        http_url = None
        if not args.no_http:
            http_bind, http_port = _listen(args.http_port)
            config.insecure_bind = [http_bind]
            http_url = f"http://{HOST}:{http_port}"

        ready = {
            "https_url": f"https://{HOST}:{https_port}",
            "http_url": http_url,
            "ca_file": str((cert_dir / "ca.pem").resolve()),
            "pid": os.getpid(),
        }
        asyncio.run(_serve(config, json.dumps(ready)))


@dataclass(frozen=True)
class RunningServer:
    """What a server started by :func:`spawned` prints: where it listens, what it trusts."""

    https_url: str
    http_url: str | None
    ca_file: str

    @property
    def https_port(self) -> int:
        return int(self.https_url.rsplit(":", 1)[1])


@contextlib.contextmanager
def spawned(*args: str) -> Iterator[RunningServer]:
    """Run this server in a subprocess on free ports until the block ends.

    ``args`` are extra command-line options, e.g. ``"--h2-max-concurrent-streams", "4"``.

    Example::

        with spawned() as server:
            print(server.https_url, server.ca_file)
    """
    command = [sys.executable, __file__, "--port", "0", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"h2_server.py exited with status {process.wait()}")
            info = json.loads(line)
            yield RunningServer(info["https_url"], info["http_url"], info["ca_file"])
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
