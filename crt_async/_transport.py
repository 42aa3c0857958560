"""The duplex capability contract of transports.

A transport opts in to duplex streaming by declaring
``SUPPORTS_DUPLEX_STREAMING = True``.  Anything without the attribute (or with
any other value) is treated as not supporting it: a structural protocol cannot
force the attribute to exist, so the check is ``getattr(...) is True``.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from ._exceptions import UnsupportedTransportError
from ._headers import HeaderTypes
from ._timeouts import TimeoutTypes

if TYPE_CHECKING:
    from ._duplex import DuplexStream
    from ._request_body import Content
    from ._response import Response

__all__ = ["AsyncDuplexTransport", "AsyncTransport", "require_duplex", "supports_duplex"]


class AsyncTransport(Protocol):
    """What a ``Client`` needs from a transport (``ConnectionPool``, ``MockTransport``, ...)."""

    def stream(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        content: Content | None = None,
        timeout: TimeoutTypes = None,
    ) -> AbstractAsyncContextManager[Response]:
        """Send a request; the context manager yields the streamed response."""

    async def aclose(self) -> None:
        """Release everything the transport holds."""


class AsyncDuplexTransport(AsyncTransport, Protocol):
    """A transport that also opens duplex streams.

    It must declare ``SUPPORTS_DUPLEX_STREAMING = True`` as well: having the
    method is not enough (see :func:`require_duplex`).
    """

    def duplex(
        self,
        method: str | bytes,
        url: str,
        *,
        headers: HeaderTypes = None,
        timeout: TimeoutTypes = None,
    ) -> AbstractAsyncContextManager[DuplexStream]:
        """Open a duplex stream; the context manager yields it."""


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
