"""The duplex capability contract of transports.

A transport opts in to duplex streaming by declaring
``SUPPORTS_DUPLEX_STREAMING = True``.  Anything without the attribute (or with
any other value) is treated as not supporting it: a structural protocol cannot
force the attribute to exist, so the check is ``getattr(...) is True``.
"""

from __future__ import annotations

from ._exceptions import UnsupportedTransportError

__all__ = ["require_duplex", "supports_duplex"]


def supports_duplex(transport: object) -> bool:
    """True if ``transport`` declares ``SUPPORTS_DUPLEX_STREAMING = True``."""
    return getattr(transport, "SUPPORTS_DUPLEX_STREAMING", False) is True


def require_duplex(transport: object) -> None:
    """Fail fast, before any request work, unless ``transport`` supports duplex.

    Every duplex entry point calls this first.

    Raises:
        UnsupportedTransportError: naming the transport class and what to use
            instead.

    Example::

        require_duplex(client.transport)  # raises for an HTTP/1.1-only transport
    """
    if supports_duplex(transport):
        return
    name = type(transport).__qualname__
    version = getattr(transport, "http_version", None)
    if isinstance(version, str):
        reason = f"{name} speaks {version}; duplex streaming needs HTTP/2"
    else:
        reason = f"{name} does not declare SUPPORTS_DUPLEX_STREAMING = True"
    raise UnsupportedTransportError(
        f"{reason}. Use a Connection to an https:// server that negotiates HTTP/2"
        " (ALPN h2), or crt_async.MockTransport in tests."
    )
