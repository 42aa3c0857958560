"""Regression guard on speed: RATIOS measured in the same run, never absolute times."""

from __future__ import annotations

from benchmarks.ratio_guard import measure_download_ratio

from .conftest import LocalServer

MIB = 1024 * 1024


# Measured here against hypercorn, reading in 1 MiB pieces, against raw callbacks that
# keep their CRT thread's Python thread state as crt_async does: 0.80-0.95 on 2 shared
# cores.  The example bound.
MIN_RATIO = 0.6


def test_download_keeps_up_with_raw_crt_callbacks(h2_server: LocalServer) -> None:
    ratio = measure_download_ratio(h2_server.https_url, h2_server.ca_file, 64 * MIB)
    print(f"crt_async / raw CRT download throughput: {ratio:.2f}")
    assert ratio >= MIN_RATIO
