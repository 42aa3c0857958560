"""Regression guard on speed: RATIOS measured in the same run, never absolute times."""

from __future__ import annotations

from benchmarks.ratio_guard import measure_download_ratio

from .conftest import LocalServer

MIB = 1024 * 1024


def test_download_reaches_at_least_0_6x_raw_crt_callbacks(h2_server: LocalServer) -> None:
    ratio = measure_download_ratio(h2_server.https_url, h2_server.ca_file, 64 * MIB)
    print(f"crt_async / raw CRT download throughput: {ratio:.2f}")
    assert ratio >= 0.6
