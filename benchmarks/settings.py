"""How big each workload is: the full run and the ``--quick`` smoke run."""

from __future__ import annotations

from dataclasses import dataclass

from .common import KIB, MIB


@dataclass(frozen=True)
class Sizes:
    """Workload sizes (bytes, counts, seconds)."""

    download_bytes: int  # (a) one body
    idle_seconds: float  # (a) how long the idle reader stops
    small_requests: int  # (b) GETs at `concurrency` in flight
    latency_requests: int  # (c) GETs one at a time
    round_trips: int  # (d) echo round trips of `small_message` bytes
    duplex_bytes: int  # (d) bytes echoed in `large_message` messages
    futures: int  # (e) futures awaited, per kind
    event_samples: int  # (f) wake-ups and cancellations, each
    concurrency: int = 64
    small_body: int = KIB
    small_message: int = KIB
    large_message: int = 64 * KIB
    future_batch: int = 1000  # (e) thread-completed futures awaited at once

    @property
    def idle_after(self) -> int:
        """(a) The idle reader stops after a quarter of the body."""
        return self.download_bytes // 4


FULL = Sizes(
    download_bytes=256 * MIB,
    idle_seconds=3.0,
    small_requests=20_000,
    latency_requests=5_000,
    round_trips=5_000,
    duplex_bytes=128 * MIB,
    futures=100_000,
    event_samples=1_000,
)
QUICK = Sizes(
    download_bytes=32 * MIB,
    idle_seconds=0.5,
    small_requests=2_000,
    latency_requests=500,
    round_trips=500,
    duplex_bytes=8 * MIB,
    futures=10_000,
    event_samples=100,
)
FULL_REPEATS = 5
QUICK_REPEATS = 2
