"""HTTP header and request-line validation, and the response ``Headers`` type.

Everything here runs before the CRT sees a request: anything the CRT (or the
peer) would choke on is rejected with a clear ``ValueError`` / ``TypeError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Union

__all__ = ["HeaderTypes", "Headers"]

HeaderName = Union[str, bytes]
HeaderValue = Union[str, bytes]
HeaderTypes = Union[
    Mapping[HeaderName, HeaderValue], Sequence[tuple[HeaderName, HeaderValue]], "Headers", None
]
"""Request headers: a mapping, a sequence of ``(name, value)`` pairs, or :class:`Headers`."""

# RFC 9110 token characters: what a method or a header name may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Printable ASCII, space and tab: what a header value may contain.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")
# A request target: printable ASCII without spaces.
_TARGET = re.compile(r"[\x21-\x7e]+\Z")

# Connection-specific headers are forbidden in HTTP/2 (RFC 9113 8.2.2); the CRT
# would forward them and the peer would reset the stream.
_HTTP2_FORBIDDEN = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)


def _ascii_text(value: object, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{what} must be ASCII, got {value!r}") from None
    if isinstance(value, str):
        if not value.isascii():
            raise ValueError(f"{what} must be ASCII, got {value!r}")
        return value
    raise TypeError(f"{what} must be str or bytes, got {type(value).__name__}")


def validate_method(method: str | bytes) -> str:
    """Return the method as ``str``; raise ``ValueError`` if it is not an HTTP token."""
    text = _ascii_text(method, "HTTP method")
    if not _TOKEN.match(text):
        raise ValueError(f"invalid HTTP method {text!r}: must be a non-empty token")
    return text


def validate_target(target: str | bytes) -> str:
    """Return the request target (path and query) as ``str``.

    It must be ASCII without spaces or control characters (percent-encode
    anything else) and start with ``/`` (or be ``*``).
    """
    text = _ascii_text(target, "request target")
    if not _TARGET.match(text) or not (text.startswith("/") or text == "*"):
        raise ValueError(
            f"invalid request target {text!r}: must start with '/' and contain only"
            " printable ASCII without spaces (percent-encode the rest)"
        )
    return text


def _header_pairs(headers: HeaderTypes) -> Iterable[tuple[object, object]]:
    if headers is None:
        return ()
    if isinstance(headers, Headers):
        return headers.multi_items()
    if isinstance(headers, Mapping):
        return headers.items()
    if isinstance(headers, (str, bytes)) or not isinstance(headers, Sequence):
        raise TypeError(
            f"headers must be a mapping or a sequence of (name, value) pairs,"
            f" got {type(headers).__name__}"
        )
    return headers


class CheckedHeaders(list[tuple[str, str]]):
    """Headers :func:`validate_headers` has already checked (HTTP/1 style): a
    pool checks before it picks a connection, and the connection need not again."""


def validate_headers(headers: HeaderTypes, *, http2: bool) -> list[tuple[str, str]]:
    """Validate headers and return them as ``(name, value)`` pairs of ``str``.

    For HTTP/2, names are lower-cased and connection-specific headers dropped;
    otherwise the result is a :class:`CheckedHeaders`.

    Raises:
        ValueError: a pseudo-header (``:method`` ...), an invalid name, or a value
            with CR, LF, NUL or non-ASCII characters.
        TypeError: headers, names or values of the wrong type.
    """
    if isinstance(headers, CheckedHeaders):
        if not http2:
            return CheckedHeaders(headers)
        lowered = [(name.lower(), value) for name, value in headers]
        return [pair for pair in lowered if pair[0] not in _HTTP2_FORBIDDEN]
    result: list[tuple[str, str]] = []
    for pair in _header_pairs(headers):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"each header must be a (name, value) pair, got {pair!r}")
        raw_name, raw_value = pair
        name = _ascii_text(raw_name, "header name")
        if name.startswith(":"):
            raise ValueError(
                f"pseudo-header {name!r} is not allowed: crt_async derives :method,"
                " :path, :scheme and :authority from the request itself"
            )
        if not _TOKEN.match(name):
            raise ValueError(f"invalid header name {name!r}")
        value = _ascii_text(raw_value, f"value of header {name!r}")
        if not _FIELD_VALUE.match(value):
            raise ValueError(
                f"invalid value for header {name!r}: {value!r} (CR, LF, NUL and other"
                " control characters are not allowed)"
            )
        if http2:
            name = name.lower()
            if name in _HTTP2_FORBIDDEN:
                continue
        result.append((name, value.strip(" \t")))
    return result if http2 else CheckedHeaders(result)


def build_request_headers(
    headers: HeaderTypes, *, host: str, http2: bool, content_length: int | None = None
) -> list[tuple[str, str]]:
    """Validate request headers (see :func:`validate_headers`) and complete them.

    Adds ``host`` when missing (the CRT derives HTTP/2's ``:authority`` from
    it) and ``content-length`` when known and not given.
    """
    result = validate_headers(headers, http2=http2)
    names = {name.lower() for name, _ in result}
    if "host" not in names:
        result.insert(0, ("host", host))
    if content_length is not None and "content-length" not in names:
        result.append(("content-length", str(content_length)))
    return result


class Headers(Mapping[str, str]):
    """Response headers: case-insensitive, order and duplicates kept.

    ``headers["name"]`` joins repeated fields with ``", "``;
    :meth:`get_list` returns them separately; :meth:`multi_items` returns every
    ``(name, value)`` pair in the order received.

    Example::

        response.headers["Content-Type"]       # 'text/plain'
        response.headers.get_list("set-cookie")
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = list(items)

    def get_list(self, name: str) -> list[str]:
        """All values of ``name`` (case-insensitive), in the order received."""
        lower = name.lower()
        return [value for key, value in self._items if key.lower() == lower]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair in the order received, duplicates included."""
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        values = self.get_list(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(key.lower() == name.lower() for key, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for key, _ in self._items:
            lower = key.lower()
            if lower not in seen:
                seen.add(lower)
                yield lower

    def __len__(self) -> int:
        return len({key.lower() for key, _ in self._items})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"
