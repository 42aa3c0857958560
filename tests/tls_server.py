"""A tiny blocking HTTPS/1.1 server on loopback, with a certificate for any names."""

from __future__ import annotations

import socket
import ssl
import threading

import trustme


def close_listener(listener: socket.socket) -> None:
    """Close a listening socket, waking the thread blocked in its ``accept()``."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()


class TinyTLSServer:
    """A blocking HTTPS/1.1 server on loopback that answers every request with ``ok``
    and records what it received (the request heads)."""

    def __init__(self, ca: trustme.CA, *names: str) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(self._context)
        self._context.set_alpn_protocols(["http/1.1"])
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.connections = 0  # accepted TCP connections
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> TinyTLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        close_listener(self._listener)
        self._thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        try:
            with self._context.wrap_socket(client, server_side=True) as tls:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = tls.recv(4096)
                    if not data:
                        return
                    head += data
                self.requests.append(head)
                tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        except OSError:  # the client rejected the certificate
            pass
