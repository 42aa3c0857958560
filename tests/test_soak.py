"""Leak and soak: many requests and duplex streams through one Client leave RSS, open
file descriptors and thread count stable after warm-up (growth under 10%).

The full run (100,000 requests and 1,000 duplex streams per event loop) takes
minutes: it is marked ``soak``, deselected by default, and run by ``nox -s soak``
(or ``pytest -m soak -s``).  A small variant runs in the normal suite.  Each run
is a subprocess (``tests/soak.py``), so the figures are its own; they are printed.
"""

from __future__ import annotations

import pytest

from benchmarks.common import run_module

from .conftest import LocalServer

MIB = 1024 * 1024
MAX_GROWTH = 0.10


def soak(
    server: LocalServer,
    backend: str,
    requests: int,
    duplex: int,
    *,
    warmup_rounds: int,
    timeout: float,
) -> None:
    """Run tests/soak.py; compare the last sample with the one after ``warmup_rounds``
    of its ten rounds."""
    report, stderr = run_module(
        "tests.soak", server.https_url, server.ca_file, backend, requests, duplex, timeout=timeout
    )
    assert stderr == ""
    samples = report["samples"]
    print(
        f"\n{backend}: {requests} requests + {duplex} duplex streams in {report['seconds']:.1f} s"
    )
    for s in samples:
        print(
            f"  round {s['round']}: {s['requests']:>7} requests {s['duplex']:>5} duplex"
            f"  RSS {s['rss'] / MIB:7.1f} MiB  fds {s['fds']:3}  threads {s['threads']}"
        )
    baseline, final = samples[warmup_rounds - 1], samples[-1]
    growth = {
        key: (final[key] - baseline[key]) / baseline[key] for key in ("rss", "fds", "threads")
    }
    print(
        f"  growth after {warmup_rounds} warm-up round(s): "
        + ", ".join(f"{k} {v:+.1%}" for k, v in growth.items())
    )
    for key, value in growth.items():
        assert value < MAX_GROWTH, f"{key} grew {value:.1%} after warm-up"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_two_thousand_requests_and_a_hundred_duplex_streams_leak_nothing(
    h2_server: LocalServer, backend: str
) -> None:
    # A short run: the allocator is still settling during the first few hundred requests.
    soak(h2_server, backend, requests=2_000, duplex=100, warmup_rounds=3, timeout=55)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_soak_100k_requests_and_1000_duplex_streams_through_one_client(
    h2_server: LocalServer, backend: str
) -> None:
    soak(h2_server, backend, requests=100_000, duplex=1_000, warmup_rounds=1, timeout=1700)
