"""Small shared pieces: units, where a server is, this process's memory figures, and
running a module in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def run_module(module: str, *args: object, timeout: float) -> tuple[dict[str, Any], str]:
    """Run ``python -m module args...`` from the repository root, in a process of its own
    (for figures that another run in the same process would distort).

    Returns the JSON object it printed on stdout, and its stderr.

    Raises:
        RuntimeError: it failed; the message is its stderr.
    """
    completed = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip() or f"exit status {completed.returncode}")
    figures: dict[str, Any] = json.loads(completed.stdout)
    return figures, completed.stderr
