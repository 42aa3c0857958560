"""What the benchmarks ran on: CPU, memory, Python and the versions of every library."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess

from .common import ROOT
from .servers import nginx_version

PACKAGES = ("crt_async", "awscrt", "anyio", "trio", "httpx", "httpcore", "h2", "aiohttp")


def _proc_field(path: str, name: str) -> str:
    try:
        with open(path) as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _revision() -> str:
    """The repository's commit, marked when crt_async/ has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "crt_async"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:  # no git
        return "unknown"
    return f"{commit} (crt_async/ modified)" if changed else commit or "unknown"


def describe() -> dict[str, str]:
    """The machine and software, as printed above the tables and stored in the JSON."""
    memory = _proc_field("/proc/meminfo", "MemTotal")
    if memory != "unknown":
        memory = f"{int(memory.split()[0]) / 1024**2:.1f} GiB"
    nginx = nginx_version()
    info = {
        "cpus": str(os.cpu_count()),
        "cpu": _proc_field("/proc/cpuinfo", "model name"),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "nginx": ".".join(map(str, nginx)) if nginx else "not installed",
    }
    info.update({package: _version(package) for package in PACKAGES})
    info["revision"] = _revision()
    return info
