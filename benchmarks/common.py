"""Small shared pieces: units, where a server is, and this process's memory figures."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
KIB = 1024
MIB = 1024 * KIB
# (a) reads the body in pieces of this size, as a downloader writing a file would,
# through each client's own way of asking for them (where it has one).
DOWNLOAD_PIECE = MIB


@dataclass(frozen=True)
class Target:
    """An HTTPS origin to benchmark against, and the CA file that trusts it.

    ``warmup_path`` (a small body) is fetched before timing starts, so that clients
    that connect lazily are connected; None: no warm-up request.
    """

    url: str  # e.g. "https://127.0.0.1:8443", no path
    ca_file: str
    warmup_path: str | None = None

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.url).port or 443

    @property
    def authority(self) -> str:
        """The ``host`` header value."""
        return f"{self.host}:{self.port}"


class NotApplicable(Exception):
    """A contender cannot run a workload (e.g. duplex over an HTTP/1.1-only client)."""


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def rss_bytes() -> int:
    """Resident set size of this process now (Linux)."""
    return _status_kib("VmRSS") * KIB


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (VmHWM, Linux)."""
    return _status_kib("VmHWM") * KIB
