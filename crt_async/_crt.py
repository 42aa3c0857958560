"""The CRT seam: the only module that calls ``awscrt.http`` and ``awscrt.io``.

Everything above it speaks plain Python (strings, bytes, ``concurrent.futures``
futures and the ``Exchange`` callbacks), so protocol and state logic can be
tested without the CRT.  Callbacks wired here run on CRT threads and go
straight into ``Exchange``, which never raises.
"""

from __future__ import annotations

import concurrent.futures
import functools
import io
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

from awscrt import exceptions as crt_exceptions
from awscrt import http as crt_http
from awscrt import io as crt_io

from ._exchange import Exchange
from ._request_body import BodyReader

if TYPE_CHECKING:
    from ._connection import ProxyAddress

__all__ = [
    "HTTP2",
    "HTTP11",
    "close_connection",
    "http_version",
    "is_open",
    "new_tls_context",
    "open_connection",
    "shutdown_future",
    "start_stream",
    "tls_connection_options",
    "write_data",
]

HTTP2 = "HTTP/2"
HTTP11 = "HTTP/1.1"
# A server that does not announce SETTINGS_MAX_CONCURRENT_STREAMS allows any
# number (RFC 9113); we use at most this many streams per connection then.
UNANNOUNCED_MAX_CONCURRENT_STREAMS = 100

_MAX_UINT32 = 2**32 - 1

CRTConnection = Any  # awscrt.http.HttpClientConnection or Http2ClientConnection
CRTStream = Any  # awscrt.http.HttpClientStream or Http2ClientStream


def new_tls_context(
    *,
    ca_file: str | None,
    ca_data: bytes | None,
    verify: bool,
    cert_pem: bytes | None,
    key_pem: bytes | None,
    alpn: Sequence[str],
) -> Any:
    """Build a ``ClientTlsContext`` (expensive: build once, share)."""
    if cert_pem is not None and key_pem is not None:
        options = crt_io.TlsContextOptions.create_client_with_mtls(cert_pem, key_pem)
    else:
        options = crt_io.TlsContextOptions()
    if ca_file is not None:
        options.override_default_trust_store_from_path(None, ca_file)
    elif ca_data is not None:
        options.override_default_trust_store(ca_data)
    elif verify:
        ca_dir, system_ca_file = system_trust_store()
        if ca_dir is not None or system_ca_file is not None:
            options.override_default_trust_store_from_path(ca_dir, system_ca_file)
    options.verify_peer = verify
    options.alpn_list = list(alpn)
    return crt_io.ClientTlsContext(options)


# Where the CRT looks for the system trust store on Linux and the BSDs (aws-c-io's
# pki_utils); on macOS and Windows it uses the platform's own store.
_SYSTEM_CA_DIRS = (
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/system/etc/security/cacerts",
    "/usr/local/share/certs",
    "/etc/openssl/certs",
)
_SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
)


def system_trust_store() -> tuple[str | None, str | None]:
    """The system CA directory and bundle, as the CRT itself would find them.

    Passing them explicitly matters: left to itself, the CRT's TLS library
    (s2n, via libcrypto) also trusts whatever ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    name, and crt_async takes nothing from the environment.  ``(None, None)`` on
    macOS and Windows, where the CRT uses the platform's store.
    """
    if sys.platform in ("darwin", "win32"):
        return None, None
    ca_dir = next((path for path in _SYSTEM_CA_DIRS if os.path.isdir(path)), None)
    ca_file = next((path for path in _SYSTEM_CA_FILES if os.path.isfile(path)), None)
    return ca_dir, ca_file


def tls_connection_options(context: Any, server_name: str) -> Any:
    """Per-connection TLS options (cheap) with SNI set to ``server_name``."""
    options = context.new_connection_options()
    options.set_server_name(server_name)
    return options


def open_connection(
    host: str,
    port: int,
    *,
    tls_options: Any | None,
    connect_timeout: float | None,
    initial_window: int,
    on_max_concurrent_streams: Callable[[int], None],
    proxy: ProxyAddress | None = None,
) -> concurrent.futures.Future[CRTConnection]:
    """Start connecting; the future resolves to an HTTP/1.1 or HTTP/2 connection
    (ALPN decides), with manual flow-control windows on every stream.

    ``on_max_concurrent_streams`` gets the server's HTTP/2
    SETTINGS_MAX_CONCURRENT_STREAMS, on a CRT thread, whenever it is announced
    (about one round trip after the future resolves; a first SETTINGS frame
    without it counts as ``UNANNOUNCED_MAX_CONCURRENT_STREAMS``).  The public constructors
    cannot do this when ALPN may pick either protocol (``Http2ClientConnection.new``
    fails on HTTP/1.1, ``HttpClientConnection.new`` has no settings callback),
    so this uses the private ``_generic_new`` behind both; awscrt is pinned to
    0.38.x and ``tests/test_pool.py`` guards it.

    Through a ``proxy`` the CRT forwards cleartext requests and tunnels TLS
    ones (CONNECT), with Basic authentication when the proxy has credentials.
    """
    socket_options = crt_io.SocketOptions()
    if connect_timeout is not None:
        # A C uint32: longer limits are left to the shim's own deadline.
        socket_options.connect_timeout_ms = int(min(max(1, connect_timeout * 1000), _MAX_UINT32))

    first_settings = True

    def on_settings(settings: list[Any]) -> None:
        nonlocal first_settings
        values = {setting.id: setting.value for setting in settings}
        limit = values.get(crt_http.Http2SettingID.MAX_CONCURRENT_STREAMS)
        if limit is None and first_settings:
            limit = UNANNOUNCED_MAX_CONCURRENT_STREAMS
        first_settings = False
        if limit is not None:
            on_max_concurrent_streams(int(limit))

    future: concurrent.futures.Future[CRTConnection] = (
        crt_http.HttpClientConnectionBase._generic_new(
            host,
            port,
            socket_options=socket_options,
            tls_connection_options=tls_options,
            proxy_options=None if proxy is None else _proxy_options(proxy),
            expected_version=None,
            on_remote_settings_changed=on_settings,
            manual_window_management=True,
            initial_window_size=initial_window,
        )
    )
    return future


def _proxy_options(proxy: ProxyAddress) -> Any:
    basic = proxy.username is not None
    return crt_http.HttpProxyOptions(
        proxy.host,
        proxy.port,
        auth_type=crt_http.HttpProxyAuthenticationType.Basic
        if basic
        else crt_http.HttpProxyAuthenticationType.Nothing,
        auth_username=proxy.username,
        auth_password=(proxy.password or "") if basic else None,
        connection_type=crt_http.HttpProxyConnectionType.Legacy,  # forward http, tunnel https
    )


def http_version(connection: CRTConnection) -> str:
    return HTTP2 if connection.version == crt_http.HttpVersion.Http2 else HTTP11


def is_open(connection: CRTConnection) -> bool:
    return bool(connection.is_open())


def close_connection(connection: CRTConnection) -> None:
    """Ask the CRT to close; safe from any thread, and on a closed connection."""
    connection.close()


def shutdown_future(connection: CRTConnection) -> concurrent.futures.Future[None]:
    future: concurrent.futures.Future[None] = connection.shutdown_future
    return future


def start_stream(
    connection: CRTConnection,
    exchange: Exchange,
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: BodyReader | None = None,
    close_body: bool = False,
    manual_write: bool = False,
    on_complete: Callable[[], None] | None = None,
) -> CRTStream:
    """Create and activate a stream whose response goes into ``exchange``.

    ``body`` is read by the CRT on its own thread (and closed once the stream
    completes if ``close_body``); ``manual_write`` (HTTP/2 only) leaves the
    request body open for :func:`write_data`.  ``on_complete`` runs on a
    CRT thread once the CRT is done with the stream (it must not raise).
    """
    request = crt_http.HttpRequest(method, target, crt_http.HttpHeaders(headers), body)
    try:
        if manual_write:
            stream = connection.request(request, exchange.on_response, exchange.on_body, True)
        else:
            stream = connection.request(request, exchange.on_response, exchange.on_body)
    except BaseException as exc:
        if close_body and body is not None:
            body.close()
        if isinstance(exc, RuntimeError):
            raise _as_crt_error(exc) from exc
        raise
    if close_body and body is not None:
        stream.completion_future.add_done_callback(lambda _: _close_quietly(body))
    exchange.update_window = stream.update_window
    if (body is not None or manual_write) and isinstance(stream, crt_http.Http2ClientStream):
        # The response ends at the peer's END_STREAM, which may come before our
        # side is done sending (duplex, or a server that ignores the upload);
        # failures arrive through completion_future.
        stream.remote_end_stream_future.add_done_callback(
            functools.partial(_end_on_success, exchange)
        )
    try:
        stream.activate()
    except RuntimeError as exc:
        raise _as_crt_error(exc) from exc
    # After activate(): a stream that never started must not report completion.
    # (A stream that completes first runs the callback here, at once.)
    stream.completion_future.add_done_callback(functools.partial(_completed, exchange, on_complete))
    return stream


def _as_crt_error(exc: RuntimeError) -> Exception:
    """The bindings raise some CRT errors as ``RuntimeError("2058 (AWS_ERROR_...) ...")``;
    turn those back into the ``AwsCrtError`` they stand for."""
    match = re.match(r"(\d+) \(AWS_", str(exc))
    if match is None:
        return exc
    error: Exception = crt_exceptions.from_code(int(match.group(1)))
    return error


def _close_quietly(file: BodyReader) -> None:
    try:
        file.close()
    except Exception:  # runs on a CRT thread: never raise
        pass


def _end_on_success(exchange: Exchange, future: concurrent.futures.Future[Any]) -> None:
    if future.exception() is None:
        exchange.on_end()


def _completed(
    exchange: Exchange,
    on_complete: Callable[[], None] | None,
    future: concurrent.futures.Future[Any],
) -> None:
    error = future.exception()
    if error is None:
        exchange.on_end()
    else:
        exchange.on_error(error)
    if on_complete is not None:
        on_complete()


def write_data(
    stream: CRTStream, data: bytes | BinaryIO | None, end_stream: bool
) -> concurrent.futures.Future[None]:
    """Queue request body data on an HTTP/2 stream opened with ``manual_write``.

    The future completes when the CRT has taken the data.  A stream that has
    already completed (e.g. reset by the peer) may be reported either way: as the
    future's exception, or raised at once as an ``AwsCrtError``.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(data)
    try:
        future: concurrent.futures.Future[None] = stream.write_data(data, end_stream)
    except RuntimeError as exc:  # e.g. the stream has completed (reset by the peer)
        raise _as_crt_error(exc) from exc
    return future
