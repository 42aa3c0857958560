"""Local WebSocket test server (the ``websockets`` library), ``ws://`` and ``wss://``.

Run it with::

    python examples/ws_server.py [--port 8765] [--tls-port 8766] [--cert-dir DIR]

or start it in a background thread with :func:`running` (its own asyncio loop, so
asyncio and trio clients can use it alike).  It listens on 127.0.0.1 only; the TLS
listener uses a throwaway CA made by ``trustme`` (``ca.pem`` in ``--cert-dir``).
The command line prints one JSON line once both listeners serve::

    {"ws_url": "ws://127.0.0.1:8765", "wss_url": "wss://127.0.0.1:8766", "ca_file": "..."}

Endpoints (every one takes an optional ``?id=NAME``: what the server saw of that
connection is kept under ``NAME``: ``open`` once the handshake is done, ``close`` once
the connection has ended, see :meth:`Server.wait_for`):

``/echo``
    Sends every message straight back (text as text, binary as binary).
``/fragmented``
    Sends the text message ``TEXT`` in fragments that split multi-byte characters,
    with a ping between fragments, then the binary message ``BINARY`` in fragments
    with a ping between them; then echoes.
``/message?size=N&kind=binary|text``
    Sends one message of N bytes (:func:`pattern`), then echoes.
``/close?code=C&reason=R``
    Sends the text ``closing`` and closes with code C (default 1000) and reason R.
``/ping``
    Pings the client, waits for the pong (5 s), sends the text ``pong received``, echoes.
``/flood?count=N&size=B``
    Sends N binary messages of B bytes as fast as the client takes them; message i
    starts with i as 8 bytes big-endian.  ``sent`` counts the messages sent so far.
``/drop``
    Sends the text ``dropping`` and aborts the TCP connection (no close frame).
``/bad-utf8``
    Sends a text frame that is not UTF-8.
``/headers``
    Sends the text JSON ``{"headers": [[name, value], ...], "subprotocol": ...}``.
``/reject``
    Refuses the upgrade: 403, header ``x-refused: yes``, body ``refused``.

Subprotocols: the server accepts ``chat`` (or ``superchat``) when offered, and answers
``not-offered`` to a client that offers ``want-unoffered``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import trustme
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

TEXT = "héllo, wörld: ✓ fragments ✓"
BINARY = bytes(range(256)) * 4


def pattern(size: int) -> bytes:
    """The ``size`` bytes ``/message`` sends: ASCII 'a' to 'z', repeated (valid as text too)."""
    return (b"abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]


class Server:
    """A running server: its URLs, CA file and what it saw of each connection."""

    def __init__(self, ws_url: str, wss_url: str, ca_file: str) -> None:
        self.ws_url = ws_url
        self.wss_url = wss_url
        self.ca_file = ca_file
        self._seen: dict[str, dict[str, Any]] = {}
        self._changed = threading.Condition()

    def record(self, name: str | None, key: str, value: Any) -> None:
        if name is None:
            return
        with self._changed:
            self._seen.setdefault(name, {})[key] = value
            self._changed.notify_all()

    def seen(self, name: str) -> dict[str, Any]:
        """What has been recorded for connection ``name`` so far."""
        with self._changed:
            return dict(self._seen.get(name, {}))

    def wait_for(self, name: str, key: str, timeout: float = 10.0) -> Any:
        """Block until ``key`` is recorded for connection ``name`` (e.g. ``"close"``:
        ``[code, reason]`` of the close frame the server received, or None)."""
        with self._changed:
            if not self._changed.wait_for(lambda: key in self._seen.get(name, {}), timeout):
                raise TimeoutError(f"the server recorded no {key!r} for {name!r}")
            return self._seen[name][key]


async def _fragments(ws: ServerConnection, parts: list[bytes]) -> AsyncIterator[bytes]:
    for index, part in enumerate(parts):
        if index:
            await ws.ping()  # a control frame between two fragments
        yield part


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def _handler(server: Server) -> Any:
    async def handle(ws: ServerConnection) -> None:
        assert ws.request is not None
        url = urlsplit(ws.request.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        name = query.get("id")
        server.record(name, "open", True)
        try:
            await _route(ws, url.path, query, server, name)
        except Exception as exc:  # the client went away: recorded below
            server.record(name, "error", repr(exc))
        finally:
            received = ws.protocol.close_rcvd
            server.record(
                name, "close", None if received is None else [received.code, received.reason]
            )

    return handle


async def _route(
    ws: ServerConnection, path: str, query: dict[str, str], server: Server, name: str | None
) -> None:
    if path == "/echo":
        await _echo(ws)
    elif path == "/fragmented":
        text = TEXT.encode()
        await ws.send(_fragments(ws, [text[:2], text[2:9], text[9:10], text[10:]]), text=True)
        await ws.send(_fragments(ws, [BINARY[:100], BINARY[100:101], b"", BINARY[101:]]))
        await _echo(ws)
    elif path == "/message":
        data = pattern(int(query["size"]))
        await ws.send(data, text=query.get("kind") == "text")
        await _echo(ws)
    elif path == "/close":
        await ws.send("closing")
        await ws.close(int(query.get("code", "1000")), query.get("reason", ""))
    elif path == "/ping":
        pong = await ws.ping(b"server ping")
        await asyncio.wait_for(pong, 5)
        await ws.send("pong received")
        await _echo(ws)
    elif path == "/flood":
        size = int(query["size"])
        for index in range(int(query["count"])):
            await ws.send(index.to_bytes(8, "big") + bytes(size - 8))
            server.record(name, "sent", index + 1)
        await _echo(ws)
    elif path == "/drop":
        await ws.send("dropping")
        ws.transport.abort()
    elif path == "/bad-utf8":
        await ws.send(b"ok \xff\xfe", text=True)
        await _echo(ws)
    elif path == "/headers":
        assert ws.request is not None
        headers = [[key, value] for key, value in ws.request.headers.raw_items()]
        await ws.send(json.dumps({"headers": headers, "subprotocol": ws.subprotocol}))
        await _echo(ws)
    else:
        await ws.close(1008, f"no endpoint {path}")


def _refuse(ws: ServerConnection, request: Request) -> Response | None:
    if urlsplit(request.path).path != "/reject":
        return None
    return Response(
        403, "Forbidden", Headers([("x-refused", "yes"), ("content-length", "7")]), b"refused"
    )


def _choose_subprotocol(ws: ServerConnection, offered: Any) -> str | None:
    if "want-unoffered" in offered:
        return "not-offered"
    return next((p for p in offered if p in ("chat", "superchat")), None)


async def _serve(
    ports: tuple[int, int], cert_dir: Path, on_ready: Callable[[Server, asyncio.Future[None]], None]
) -> None:
    """Serve until the future handed to ``on_ready`` is resolved."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(cert_dir / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = Server("", "", str(cert_dir / "ca.pem"))
    options: dict[str, Any] = {
        "process_request": _refuse,
        "select_subprotocol": _choose_subprotocol,
        "max_size": None,
        "compression": None,
        "ping_interval": None,
    }
    handler = _handler(server)
    async with (
        serve(handler, "127.0.0.1", ports[0], **options) as plain,
        serve(handler, "127.0.0.1", ports[1], ssl=context, **options) as secure,
    ):
        server.ws_url = f"ws://127.0.0.1:{next(iter(plain.sockets)).getsockname()[1]}"
        server.wss_url = f"wss://127.0.0.1:{next(iter(secure.sockets)).getsockname()[1]}"
        stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        on_ready(server, stop)
        await stop


@contextlib.contextmanager
def running() -> Iterator[Server]:
    """Run the server in a background thread (its own asyncio loop) until the block ends."""
    started: list[tuple[Server, asyncio.Future[None]]] = []
    ready = threading.Event()

    def on_ready(server: Server, stop: asyncio.Future[None]) -> None:
        started.append((server, stop))
        ready.set()

    with tempfile.TemporaryDirectory(prefix="ws_server-") as cert_dir:
        thread = threading.Thread(
            target=asyncio.run,
            args=(_serve((0, 0), Path(cert_dir), on_ready),),
            name="ws_server",
            daemon=True,
        )
        thread.start()
        if not ready.wait(30):
            raise RuntimeError("the WebSocket server did not start")
        server, stop = started[0]
        try:
            yield server
        finally:
            stop.get_loop().call_soon_threadsafe(stop.set_result, None)
            thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description="Local WebSocket test server.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tls-port", type=int, default=8766)
    parser.add_argument("--cert-dir", type=Path)
    args = parser.parse_args()

    def on_ready(server: Server, stop: asyncio.Future[None]) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            stop.get_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        urls = {"ws_url": server.ws_url, "wss_url": server.wss_url, "ca_file": server.ca_file}
        print(json.dumps(urls), flush=True)

    with contextlib.ExitStack() as stack:
        cert_dir = args.cert_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cert_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(_serve((args.port, args.tls_port), cert_dir, on_ready))


if __name__ == "__main__":
    main()
