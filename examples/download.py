"""Stream a large download with bounded memory and a progress display.

``Connection.stream("GET", "/bytes/{size}")`` against the local HTTP/2 server
(``h2_server.py``, started here: runs offline).  ``aiter_bytes()`` hands over the body
as it arrives and flow control stops the server while we are busy, so memory stays
bounded (by the 8 MiB maximum receive window) however large the body is.  Prints
progress every 10 %, then the speed and the growth of the process's peak RSS::

    python examples/download.py [--backend asyncio|trio|both] [--size BYTES]
"""

from __future__ import annotations

import contextlib
import sys
import time

from example_support import RunningServer, example_arguments, run_on_loops

import crt_async

MiB = 1024 * 1024


def memory_kib() -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of this process, in KiB (Linux)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux 4.0+; if not allowed, the old peak stays)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


async def download(server: RunningServer, size: int) -> None:
    reset_peak()
    before = memory_kib()
    tty = sys.stdout.isatty()
    step = max(size // 10, 1)
    received = largest = 0
    next_report = step
    tls = crt_async.TLSConfig(ca_file=server.ca_file)
    async with await crt_async.connect(server.https_url, tls=tls) as connection:
        start = time.perf_counter()
        async with connection.stream("GET", f"/bytes/{size}") as response:
            print(f"{response.status} {response.http_version}, {size / MiB:.1f} MiB coming")
            if response.status != 200:
                raise RuntimeError(f"unexpected status {response.status}")
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                largest = max(largest, len(chunk))
                if received >= next_report:  # throttled: one line per 10 %
                    next_report = (received // step + 1) * step
                    line = f"{100 * received / size:5.1f} %  {received / MiB:8.1f} MiB"
                    print("\r" + line if tty else line, end="" if tty else "\n", flush=True)
        elapsed = time.perf_counter() - start
    if tty:
        print()
    if received != size:
        raise RuntimeError(f"received {received} bytes, expected {size}")
    after = memory_kib()
    growth = (after["VmHWM"] - before["VmRSS"]) / 1024
    print(f"{received} bytes in {elapsed:.2f} s: {received / elapsed / 1e6:.0f} MB/s")
    print(f"largest chunk {largest / MiB:.1f} MiB, peak RSS growth {growth:.1f} MiB")


def main() -> None:
    parser = example_arguments("Stream a large download.")
    parser.add_argument("--size", type=int, default=256 * MiB, help="bytes (default 256 MiB)")
    args = parser.parse_args()
    run_on_loops(args.backend, download, args.size)


if __name__ == "__main__":
    main()
