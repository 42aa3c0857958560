"""TLS configuration: one cached ``ClientTlsContext`` per ``TLSConfig``."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from . import _crt
from ._exceptions import InsecureTLSWarning, TLSError

__all__ = ["TLSConfig"]


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside crt_async."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("crt_async."):
        frame = frame.f_back
        level += 1
    return level


def _readable_file(path: str | os.PathLike[str] | None, what: str) -> str | None:
    if path is None:
        return None
    text = os.fspath(path)
    if not os.path.isfile(text):
        raise ValueError(f"{what} {text!r} does not exist or is not a file")
    return text


def _pem_blocks(path: str, kind: re.Pattern[bytes], label: str, what: str) -> bytes:
    """The PEM blocks of one kind in a file (which may hold others: the CRT
    accepts neither a key in a certificate file nor certificates in a key file)."""
    with open(path, "rb") as file:
        blocks = [match.group(0) for match in _PEM_BLOCK.finditer(file.read())]
    wanted = b"\n".join(block for block in blocks if kind.match(block))
    if not wanted:
        raise ValueError(f"{what} {path!r} holds no PEM {label}")
    return wanted + b"\n"


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----")
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----")


class TLSConfig:
    """TLS settings for HTTPS connections, built once into a CRT TLS context.

    The context is expensive to build and is shared by every connection that
    uses this config.  The server name (SNI, and the name the certificate is
    checked against) always comes from the URL's host.

    Args:
        ca_file: PEM file of trusted CA certificates, replacing the system store.
        ca_data: PEM text of trusted CA certificates, replacing the system store.
        verify: verify the server's certificate and host name (default True).
            ``False`` accepts any certificate for any name and emits an
            :class:`~crt_async.InsecureTLSWarning` (once per ``TLSConfig``).
        cert_file: client certificate chain (PEM) for mutual TLS; needs ``key_file``.
        key_file: private key (PEM) of the client certificate; may be the same
            file as ``cert_file`` when that holds both.
        alpn: protocols offered with ALPN, in order of preference.

    Raises:
        ValueError: a file that does not exist, ``cert_file`` without
            ``key_file``, no certificate in ``cert_file`` or no private key in
            ``key_file``, both ``ca_file`` and ``ca_data``, an empty ``alpn``.
        TLSError: the CRT rejected the certificates (e.g. malformed PEM).

    Example::

        tls = TLSConfig(ca_file="ca.pem")
        async with await connect("https://127.0.0.1:8443", tls=tls) as connection:
            ...
    """

    __slots__ = ("_alpn", "_context", "verify")

    def __init__(
        self,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        ca_data: str | bytes | None = None,
        verify: bool = True,
        cert_file: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        alpn: Sequence[str] = ("h2", "http/1.1"),
    ) -> None:
        if not isinstance(verify, bool):
            raise TypeError(f"verify must be a bool, got {type(verify).__name__}")
        if not verify:
            warnings.warn(
                "TLSConfig(verify=False): certificates and host names are not checked;"
                " any server (or man in the middle) is accepted",
                InsecureTLSWarning,
                stacklevel=_caller_stacklevel(),
            )
        if ca_file is not None and ca_data is not None:
            raise ValueError("pass ca_file or ca_data, not both")
        if (cert_file is None) != (key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        if isinstance(alpn, str) or not alpn or not all(isinstance(p, str) and p for p in alpn):
            raise ValueError(f"alpn must be a non-empty sequence of protocol names, got {alpn!r}")
        ca_path = _readable_file(ca_file, "ca_file")
        cert_path = _readable_file(cert_file, "cert_file")
        key_path = _readable_file(key_file, "key_file")
        cert_pem = (
            None
            if cert_path is None
            else _pem_blocks(cert_path, _CERTIFICATE, "certificate", "cert_file")
        )
        key_pem = (
            None
            if key_path is None
            else _pem_blocks(key_path, _PRIVATE_KEY, "private key", "key_file")
        )

        try:
            self._context: Any = _crt.new_tls_context(
                ca_file=ca_path,
                ca_data=ca_data.encode("ascii") if isinstance(ca_data, str) else ca_data,
                verify=verify,
                cert_pem=cert_pem,
                key_pem=key_pem,
                alpn=alpn,
            )
        except Exception as exc:
            raise TLSError(f"could not build the TLS context: {exc}") from exc
        self.verify = verify
        self._alpn = tuple(alpn)

    @property
    def alpn(self) -> tuple[str, ...]:
        """The ALPN protocols offered, in order of preference."""
        return self._alpn

    def connection_options(self, server_name: str) -> Any:
        """A ``TlsConnectionOptions`` for one connection to ``server_name``."""
        return _crt.tls_connection_options(self._context, server_name)

    def __repr__(self) -> str:
        return f"<TLSConfig verify={self.verify} alpn={self._alpn!r}>"
