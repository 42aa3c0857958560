"""One download by one contender in a fresh process, so that its peak RSS is its own.

Usage::

    python -m benchmarks.download_child CONTENDER URL CA_FILE WARMUP_PATH PATH SIZE
                                        [--idle-after BYTES --idle-seconds SECONDS]

Prints one JSON line: ``seconds``, ``received``, ``rss_growth`` (bytes the RSS grew
while the reader idled, or null) and ``peak_rss`` (VmHWM at the end), in bytes.
:func:`run_download` is the parent's side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from .clients import IdlePlan, load
from .common import ROOT, Target, peak_rss_bytes

TIMEOUT = 600.0


@dataclass(frozen=True)
class ChildDownload:
    """What one child process measured."""

    seconds: float
    rss_growth: int | None
    peak_rss: int


def run_download(
    contender: str, target: Target, path: str, size: int, idle: IdlePlan | None = None
) -> ChildDownload:
    """Download in a child process; raise RuntimeError with its stderr if it fails."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.download_child",
        contender,
        target.url,
        target.ca_file,
        target.warmup_path or "",
        path,
        str(size),
    ]
    if idle is not None:
        command += ["--idle-after", str(idle.after_bytes), "--idle-seconds", str(idle.seconds)]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        raise RuntimeError(lines[-1])
    figures: dict[str, Any] = json.loads(result.stdout)
    return ChildDownload(figures["seconds"], figures["rss_growth"], figures["peak_rss"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("contender")
    parser.add_argument("url")
    parser.add_argument("ca_file")
    parser.add_argument("warmup_path", help="a small body fetched first ('' for none)")
    parser.add_argument("path")
    parser.add_argument("size", type=int)
    parser.add_argument("--idle-after", type=int)
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    contender = load(args.contender)
    idle = None if args.idle_after is None else IdlePlan(args.idle_after, args.idle_seconds)
    target = Target(args.url, args.ca_file, args.warmup_path or None)
    download = contender.download(target, args.path, args.size, idle)
    figures = {
        "seconds": download.seconds,
        "received": download.received,
        "rss_growth": download.rss_growth,
        "peak_rss": peak_rss_bytes(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
