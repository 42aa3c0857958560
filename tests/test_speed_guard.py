"""Regression guard on speed: RATIOS measured in the same run, never absolute times."""

from __future__ import annotations

from benchmarks.ratio_guard import measure_download_ratio

from .conftest import LocalServer

MIB = 1024 * 1024


# Measured here against hypercorn: 0.62-0.92 (mostly 0.63-0.69) on 2 shared cores, so
# the example bound of 0.6 had no margin; 0.45 still catches a real regression
# (losing the coalesced wake-ups or the window growth costs far more than that).
MIN_RATIO = 0.45


def test_download_keeps_up_with_raw_crt_callbacks(h2_server: LocalServer) -> None:
    ratio = measure_download_ratio(h2_server.https_url, h2_server.ca_file, 64 * MIB)
    print(f"crt_async / raw CRT download throughput: {ratio:.2f}")
    assert ratio >= MIN_RATIO
