"""A TCP relay on loopback that holds new connections until the test opens its gate.

It lets a test cancel a client while the CRT is still connecting (the TLS
handshake cannot start until the gate opens), and then observe whether the
connection the CRT completes later gets closed.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class GatedRelay:
    """Accepts on 127.0.0.1:<port>; after ``gate.set()`` pipes each connection upstream."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.gate = threading.Event()
        self.accepted = threading.Event()
        self.client_closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._stopping = False

    def __enter__(self) -> GatedRelay:
        self._spawn(self._accept_loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        self.gate.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        for sock in self._sockets:
            try:  # wakes the pipes blocked in recv(), and the peers see the close
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            self.accepted.set()
            self.gate.wait()
            if self._stopping:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets.append(upstream)
            self._spawn(self._pipe, client, upstream, True)
            self._spawn(self._pipe, upstream, client, False)

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        if from_client:
            self.client_closed.set()
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
