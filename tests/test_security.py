"""Security defaults: verification on, explicit and warned opt-out, host names checked,
nothing taken from the environment, credentials in URLs never echoed."""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import warnings
from collections.abc import Iterator

import anyio
import anyio.to_thread
import httpx
import pytest
import trustme

from crt_async import (
    Client,
    ConnectTimeout,
    InsecureTLSWarning,
    TLSConfig,
    TLSError,
    connect,
)
from crt_async.httpx import CRTTransport

from .conftest import LocalServer
from .tls_server import TinyTLSServer, close_listener

pytestmark = pytest.mark.anyio

PASSWORD = "s3cr3t-Pa55"  # a marker to look for, not a secret
# The CRT's TLS library delays a failed handshake on purpose (blinding, 10-30 s):
# a rejected certificate shows up as TLSError or, first, as the connect timeout.
REJECTED = (TLSError, ConnectTimeout)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: os.PathLike[str]) -> str:
    path = os.path.join(tmp_path, "ca.pem")
    ca.cert_pem.write_to_path(path)
    return path


# -- verification on by default ------------------------------------------------------------


def test_tls_config_verifies_by_default() -> None:
    assert TLSConfig().verify is True


async def test_default_client_rejects_a_certificate_it_does_not_trust(
    h2_server: LocalServer,
) -> None:
    # No CA given: the system trust store, which does not know the test CA.
    async with Client(timeout=1.0) as client:
        with pytest.raises(REJECTED):
            await client.get(h2_server.https_url)
        assert client.transport.stats().connections == 0  # type: ignore[attr-defined]


async def test_default_httpx_transport_rejects_a_certificate_it_does_not_trust(
    h2_server: LocalServer,
) -> None:
    async with httpx.AsyncClient(transport=CRTTransport(), timeout=1.0) as client:
        with pytest.raises((httpx.ConnectError, httpx.ConnectTimeout)):
            await client.get(h2_server.https_url)


# -- verify=False: explicit, warned once per config ----------------------------------------


async def test_verify_false_warns_once_per_config_and_then_accepts_any_certificate(
    h2_server: LocalServer,
) -> None:
    with pytest.warns(InsecureTLSWarning, match="verify=False") as record:
        insecure = TLSConfig(verify=False)
    assert len(record) == 1
    assert record[0].filename == __file__  # points at the caller, not into crt_async
    # Using it does not warn again (warnings are errors in this suite).
    async with Client(tls=insecure) as client:
        for _ in range(3):
            assert (await client.get(h2_server.https_url)).status == 200


def test_httpx_transport_verify_false_warns_once_at_the_callers_line() -> None:
    with pytest.warns(InsecureTLSWarning) as record:
        CRTTransport(verify=False)
    assert len(record) == 1
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CRTTransport(verify=True)  # the default never warns


def test_insecure_tls_warning_is_a_user_warning() -> None:
    assert issubclass(InsecureTLSWarning, UserWarning)


# -- the host name is always checked -------------------------------------------------------


async def test_certificate_for_another_host_name_is_rejected(ca: trustme.CA, ca_file: str) -> None:
    tls = TLSConfig(ca_file=ca_file)
    # Control: the same CA, a certificate for the name we connect to, works.
    with TinyTLSServer(ca, "127.0.0.1") as right:
        async with await connect(f"https://127.0.0.1:{right.port}", tls=tls) as connection:
            async with connection.stream("GET", "/") as response:
                assert await response.aread() == b"ok"
    # A certificate from the trusted CA, but for another name, is refused.
    with TinyTLSServer(ca, "other.example") as wrong:
        with anyio.fail_after(10):
            with pytest.raises(REJECTED):
                await connect(f"https://127.0.0.1:{wrong.port}", tls=tls, connect_timeout=2.0)
        assert wrong.requests == []


async def test_no_alternative_name_matching_the_host_is_rejected_through_httpx(
    ca: trustme.CA, ca_file: str
) -> None:
    with TinyTLSServer(ca, "localhost") as wrong:  # we connect to 127.0.0.1
        transport = CRTTransport(verify=ca_file)
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
            with anyio.fail_after(10):
                with pytest.raises((httpx.ConnectError, httpx.ConnectTimeout)):
                    await client.get(f"https://127.0.0.1:{wrong.port}/")
        assert wrong.requests == []


# -- nothing from the environment ----------------------------------------------------------


class RecordingListener:
    """A TCP listener that counts the connections made to it (a would-be proxy)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            client.close()

    def close(self) -> None:
        close_listener(self._listener)
        self._thread.join(5)


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture
def bogus_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingListener]:
    """Every proxy variable (both cases) points at a listener that records connections."""
    proxy = RecordingListener()
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, proxy.url)
        monkeypatch.setenv(name.lower(), proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield proxy
    proxy.close()


async def test_proxy_variables_are_ignored(
    h2_server: LocalServer, tls: TLSConfig, bogus_proxy: RecordingListener
) -> None:
    async with Client(tls=tls) as client:
        assert (await client.get(h2_server.https_url)).status == 200
        assert (await client.get(h2_server.http_url)).status == 200
    transport = CRTTransport(verify=h2_server.ca_file)
    async with httpx.AsyncClient(transport=transport) as async_client:
        assert (await async_client.get(h2_server.https_url)).status_code == 200
        assert (await async_client.get(h2_server.http_url)).status_code == 200

    def sync_requests() -> None:
        with httpx.Client(transport=CRTTransport(verify=h2_server.ca_file)) as sync_client:
            assert sync_client.get(h2_server.https_url).status_code == 200
            assert sync_client.get(h2_server.http_url).status_code == 200

    await anyio.to_thread.run_sync(sync_requests)
    assert bogus_proxy.accepted == 0


async def test_ssl_cert_file_and_dir_are_ignored(
    h2_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Left alone, the CRT's TLS library would trust these: crt_async must not.
    monkeypatch.setenv("SSL_CERT_FILE", h2_server.ca_file)
    monkeypatch.setenv("SSL_CERT_DIR", os.path.dirname(h2_server.ca_file))
    with anyio.fail_after(10):
        with pytest.raises(REJECTED):
            await connect(h2_server.https_url, tls=TLSConfig(), connect_timeout=1.0)
    # Asked for explicitly, the same CA works.
    async with await connect(h2_server.https_url, tls=TLSConfig(ca_file=h2_server.ca_file)):
        pass


# -- credentials in URLs -------------------------------------------------------------------


def credentials_url(url: str) -> str:
    return url.replace("://", f"://user:{PASSWORD}@", 1)


def assert_no_password(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    chain: BaseException | None = exc
    while chain is not None:
        assert PASSWORD not in str(chain)
        assert PASSWORD not in repr(chain)
        chain = chain.__cause__ or chain.__context__
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()


async def test_credentials_in_urls_are_refused_and_never_echoed(
    h2_server: LocalServer, tls: TLSConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = credentials_url(h2_server.https_url)
    with pytest.raises(ValueError, match="credentials in the URL") as info:
        await connect(url, tls=tls)
    assert_no_password(info.value, caplog)
    with pytest.raises(ValueError, match="credentials in the URL") as info:
        Client(base_url=url, tls=tls)
    assert_no_password(info.value, caplog)
    async with Client(tls=tls) as client:
        with pytest.raises(ValueError, match="credentials in the URL") as info:
            await client.get(url + "/")
        assert_no_password(info.value, caplog)
        assert client.transport.stats().connections == 0  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="credentials in the URL") as info:
            async with client.duplex("POST", url + "/echo"):
                pass
        assert_no_password(info.value, caplog)


async def test_httpx_sends_url_credentials_as_basic_auth_and_never_echoes_them(
    h2_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crt_async")
    transport = CRTTransport(verify=h2_server.ca_file)
    async with httpx.AsyncClient(transport=transport) as client:
        # httpx turns user:password@ into an Authorization header; the transport
        # sends the request without them in the URL.
        response = await client.get(credentials_url(h2_server.https_url) + "/headers")
        seen = response.json()
        assert seen["path"] == "/headers"
        token = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
        assert ["authorization", f"Basic {token}"] in seen["headers"]
        # A failure (refused port) does not put the password in the error.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        with pytest.raises(httpx.ConnectError) as info:
            await client.get(credentials_url(f"https://127.0.0.1:{closed}") + "/")
    assert_no_password(info.value, caplog)


def test_sync_httpx_errors_never_echo_url_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="crt_async")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with httpx.Client(transport=CRTTransport()) as client:
        with pytest.raises(httpx.ConnectError) as info:
            client.get(credentials_url(f"https://127.0.0.1:{closed}") + "/")
    assert_no_password(info.value, caplog)
