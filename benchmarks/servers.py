"""The servers the benchmarks talk to, all on 127.0.0.1 and stopped when their block ends.

* :func:`nginx_server`: nginx in the foreground with a configuration written into a
  temporary directory (TLS with a ``trustme`` certificate, HTTP/2 and HTTP/1.1 by ALPN)
  serving a large file and a 1 KiB file.
* :func:`echo_server`: the project's hypercorn server (``examples/h2_server.py``), whose
  ``/echo`` answers every request body chunk at once (duplex), and ``/bytes/{n}``.
* :func:`http_server`: nginx if it is installed, else the hypercorn server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

from .common import KIB, MIB, ROOT, Target

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
NGINX_INSTALL_HINT = "install it with `apt-get install nginx-light` (Debian/Ubuntu)"
_HTTP2_ON_VERSION = (1, 25, 1)  # from here on `http2 on;`, before it `listen ... http2`


@dataclass(frozen=True)
class HttpServer:
    """A running server and the paths of its two bodies."""

    name: str  # e.g. "nginx 1.22.1"
    target: Target
    large_path: str  # download_size bytes
    small_path: str  # 1 KiB


def nginx_version() -> tuple[int, ...] | None:
    """The installed nginx's version, or None if there is no nginx on PATH."""
    if shutil.which("nginx") is None:
        return None
    result = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"nginx/(\d+(?:\.\d+)*)", result.stderr + result.stdout)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


@contextlib.contextmanager
def http_server(download_size: int) -> Iterator[HttpServer]:
    """nginx if installed, else (with a note on stderr) the hypercorn server."""
    if nginx_version() is None:
        print(f"nginx not found: {NGINX_INSTALL_HINT}.", file=sys.stderr)
        print(
            "Falling back to examples/h2_server.py (hypercorn) for every workload.", file=sys.stderr
        )
        with echo_server() as server:
            small_path = f"/bytes/{KIB}"
            yield HttpServer(
                "hypercorn (examples/h2_server.py; nginx missing)",
                dataclasses.replace(server, warmup_path=small_path),
                f"/bytes/{download_size}",
                small_path,
            )
        return
    with nginx_server(download_size) as server:
        yield server


@contextlib.contextmanager
def echo_server() -> Iterator[Target]:
    """examples/h2_server.py in a subprocess (hypercorn, HTTP/2 and HTTP/1.1 over TLS)."""
    examples = str(ROOT / "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    from h2_server import spawned  # type: ignore[import-not-found]  # in examples/

    with spawned("--no-http") as server:
        yield Target(server.https_url, server.ca_file)


@contextlib.contextmanager
def nginx_server(download_size: int) -> Iterator[HttpServer]:
    """nginx with one worker, serving ``/large.bin`` (``download_size`` bytes) and
    ``/small.bin`` (1 KiB) over TLS, HTTP/2 and HTTP/1.1 chosen by ALPN."""
    version = nginx_version()
    if version is None:
        raise RuntimeError(f"nginx not found: {NGINX_INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="crt-bench-nginx-") as scratch:
        root = Path(scratch)
        ca_file = _write_certificates(root)
        www = root / "www"
        www.mkdir()
        _write_body(www / "large.bin", download_size)
        _write_body(www / "small.bin", KIB)
        # The workers run as an unprivileged user when nginx is started by root.
        for path in (root, www, www / "large.bin", www / "small.bin"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        port = _free_port()
        config = root / "nginx.conf"
        config.write_text(_nginx_config(root, port, version))
        command = ["nginx", "-p", str(root), "-c", str(config)]
        with subprocess.Popen(command, stderr=subprocess.PIPE) as process:
            try:
                _wait_until_listening(port, process, root / "error.log")
                name = "nginx " + ".".join(map(str, version))
                target = Target(f"https://{HOST}:{port}", ca_file, warmup_path="/small.bin")
                yield HttpServer(name, target, "/large.bin", "/small.bin")
            finally:
                _stop(process)


def _nginx_config(root: Path, port: int, version: tuple[int, ...]) -> str:
    if version >= _HTTP2_ON_VERSION:
        listen = f"listen {HOST}:{port} ssl;\n        http2 on;"
    else:
        listen = f"listen {HOST}:{port} ssl http2;"
    temp_paths = "\n".join(
        f"    {kind}_temp_path {root}/temp-{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    default_type application/octet-stream;
{temp_paths}
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 128;
    server {{
        {listen}
        ssl_certificate {root}/server.pem;
        ssl_certificate_key {root}/server.key;
        root {root}/www;
    }}
}}
"""


def _write_certificates(directory: Path) -> str:
    """A throwaway CA and a certificate for 127.0.0.1; returns the CA file's path."""
    ca = trustme.CA()
    cert = ca.issue_cert(HOST, "localhost")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    (directory / "server.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return str(directory / "ca.pem")


def _write_body(path: Path, size: int) -> None:
    block = bytes(range(256)) * (MIB // 256)
    with path.open("wb") as file:
        for offset in range(0, size, len(block)):
            file.write(block[: size - offset])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], error_log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = error_log.read_text() if error_log.exists() else ""
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"nginx exited with status {process.returncode}:\n{stderr}{log}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on port {port} within {START_TIMEOUT} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
