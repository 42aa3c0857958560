"""A speed check for the test suite that needs no absolute times: how fast crt_async
downloads a body compared with raw CRT callbacks, in the same process, against the
same server.  The raw callbacks keep their CRT thread's Python thread state, as
crt_async does (in one process, whoever runs first would otherwise decide for both):
the ratio is the cost of crt_async itself.

Example (a synchronous test; the function runs its own event loop)::

    from benchmarks.ratio_guard import measure_download_ratio

    def test_download_keeps_up_with_raw_crt(h2_server):
        ratio = measure_download_ratio(h2_server.https_url, h2_server.ca_file, 64 * 2**20)
        assert ratio >= 0.6
"""

from __future__ import annotations

import statistics
import urllib.parse

from .clients.crt_async_client import CrtAsync
from .clients.raw_crt import RawCRT
from .common import Target


def measure_download_ratio(url: str, ca_file: str, size: int, *, runs: int = 3) -> float:
    """Return crt_async's download throughput divided by raw CRT callbacks' throughput.

    Both download the same body ``runs`` times over HTTP/2 (alternating, each on a new
    connection, connecting not timed); the ratio is of the median times.  A 64 MiB body
    from ``examples/h2_server.py`` takes a few seconds in all.

    Args:
        url: the body's URL; one without a path (e.g. ``h2_server.https_url``) means the
            project's server's ``/bytes/{size}``.
        ca_file: the CA that signed the server's certificate.
        size: the body's length in bytes (checked).
        runs: downloads per client.

    Returns:
        crt_async (asyncio) throughput / raw CRT (thread state kept) throughput: 1.0
        means as fast.

    Raises:
        RuntimeError: a download failed or had the wrong length.
    """
    parts = urllib.parse.urlsplit(url)
    target = Target(f"{parts.scheme}://{parts.netloc}", ca_file)
    path = parts.path if parts.path not in ("", "/") else f"/bytes/{size}"
    if parts.query:
        path += "?" + parts.query
    raw, ours = RawCRT(keep_thread_state=True), CrtAsync("asyncio")
    raw_seconds, our_seconds = [], []
    for _ in range(runs):
        raw_seconds.append(raw.download(target, path, size).seconds)
        our_seconds.append(ours.download(target, path, size).seconds)
    return statistics.median(raw_seconds) / statistics.median(our_seconds)
