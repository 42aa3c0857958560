"""Workloads (a)-(d): the HTTP/2 download, small GETs, their latency, and duplex echo.

Every measurement runs in a fresh process (:mod:`benchmarks.child`), so that no contender
changes the conditions of the next one.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..child import run_in_child
from ..clients import BASELINE, Contender, IdlePlan
from ..clients.base import DUPLEX_IN_FLIGHT
from ..common import DOWNLOAD_PIECE, KIB, MIB, Target
from ..results import Metric, Section, percentile
from ..servers import HttpServer
from ..settings import Sizes
from .runner import Measure, log, run_rounds

MB = 1e6
MS = 1e3
HTTP1_NOTE = "aiohttp speaks HTTP/1.1 only: it uses one connection per request in flight."


def _section(key: str, title: str, metrics: list[Metric], unavailable: dict[str, str]) -> Section:
    section = Section(key, title, metrics, BASELINE)
    for name, reason in unavailable.items():
        section.fail(name, reason)
    return section


def download(
    contenders: Sequence[Contender],
    server: HttpServer,
    sizes: Sizes,
    repeats: int,
    unavailable: dict[str, str],
) -> Section:
    """(a) One large body over HTTP/2: MB/s and peak RSS; then once per contender, RSS
    growth while the reader idles mid-body."""
    size = sizes.download_bytes
    section = _section(
        "download",
        f"(a) one {size // MIB} MiB download over HTTP/2 from {server.name}",
        [
            Metric("mbps", "MB/s", higher_is_better=True),
            Metric("peak_rss", "peak RSS MiB", higher_is_better=False, compared=False),
            Metric("idle_growth", "idle growth MiB", higher_is_better=False, compared=False),
        ],
        unavailable,
    )
    section.notes += [
        "Peak RSS is the VmHWM of the run's process (interpreter and imports included).",
        f"Idle growth: RSS growth while the reader stops for {sizes.idle_seconds:g} s after"
        f" {sizes.idle_after // MIB} MiB of the body (one run per contender).",
        "raw-crt-handoff: raw callbacks handing each chunk to the downloading thread (a"
        " queue.SimpleQueue), as any delivery to an event loop must; raw-crt's idle reader too.",
        f"The body is read in {DOWNLOAD_PIECE // MIB} MiB pieces where the client can ask for"
        " them (crt_async and httpx aiter_bytes(chunk_size), aiohttp iter_chunked);"
        " awscrt-aio has no way to, and crt-async-arrival reads as the body arrives.",
        HTTP1_NOTE,
    ]

    def measure(contender: Contender) -> Measure:
        def run() -> dict[str, float]:
            child = run_in_child(contender.name, "download", server.target, server.large_path, size)
            return {"mbps": size / child.result.seconds / MB, "peak_rss": child.peak_rss / MIB}

        return run

    run_rounds(section, [(c.name, measure(c)) for c in contenders], repeats)
    idle = IdlePlan(sizes.idle_after, sizes.idle_seconds)
    for contender in contenders:
        if contender.name not in section.rows:
            continue
        try:
            child = run_in_child(
                contender.name, "download", server.target, server.large_path, size, idle
            )
        except Exception as exc:
            section.notes.append(f"The idle reader of {contender.name} failed: {exc}")
            continue
        growth = (child.result.rss_growth or 0) / MIB
        section.add(contender.name, "idle_growth", growth)
        log(f"download {contender.name} idle reader: RSS +{growth:.1f} MiB")
    return section


def small_gets(
    contenders: Sequence[Contender],
    server: HttpServer,
    sizes: Sizes,
    repeats: int,
    unavailable: dict[str, str],
) -> Section:
    """(b) Many 1 KiB GETs, ``sizes.concurrency`` in flight on one HTTP/2 connection."""
    total, concurrency = sizes.small_requests, sizes.concurrency
    section = _section(
        "small-gets",
        f"(b) {total:,} GETs of 1 KiB, {concurrency} concurrent streams on one HTTP/2"
        f" connection, {server.name}",
        [Metric("rps", "req/s", higher_is_better=True)],
        unavailable,
    )
    section.notes.append(HTTP1_NOTE)

    def measure(contender: Contender) -> Measure:
        def run() -> dict[str, float]:
            child = run_in_child(
                contender.name,
                "small_gets",
                server.target,
                server.small_path,
                sizes.small_body,
                total,
                concurrency,
            )
            return {"rps": total / child.result}

        return run

    run_rounds(section, [(c.name, measure(c)) for c in contenders], repeats)
    return section


def latency(
    contenders: Sequence[Contender],
    server: HttpServer,
    sizes: Sizes,
    repeats: int,
    unavailable: dict[str, str],
) -> Section:
    """(c) The same GETs one at a time: p50 and p99 of each run's latencies."""
    count = sizes.latency_requests
    section = _section(
        "latency",
        f"(c) {count:,} GETs of 1 KiB one at a time (latency), {server.name}",
        [
            Metric("p50", "p50 ms", higher_is_better=False),
            Metric("p99", "p99 ms", higher_is_better=False),
        ],
        unavailable,
    )

    def measure(contender: Contender) -> Measure:
        def run() -> dict[str, float]:
            path, size = server.small_path, sizes.small_body
            samples = run_in_child(contender.name, "latencies", server.target, path, size, count)
            return {
                "p50": percentile(samples.result, 0.5) * MS,
                "p99": percentile(samples.result, 0.99) * MS,
            }

        return run

    run_rounds(section, [(c.name, measure(c)) for c in contenders], repeats)
    return section


def duplex(
    contenders: Sequence[Contender],
    echo: Target,
    sizes: Sizes,
    repeats: int,
    unavailable: dict[str, str],
) -> Section:
    """(d) Echo on one duplex HTTP/2 stream: round trips of small messages, and the
    throughput of large messages sent while the echo is read."""
    section = _section(
        "duplex",
        "(d) duplex echo on one HTTP/2 stream (examples/h2_server.py /echo)",
        [
            Metric("round_trips", "round trips/s", higher_is_better=True),
            Metric("mbps", "MB/s", higher_is_better=True),
        ],
        unavailable,
    )
    section.notes += [
        f"round trips/s: {sizes.round_trips:,} sends of {sizes.small_message // KIB} KiB, each"
        " waiting for its echo.",
        f"MB/s: {sizes.duplex_bytes // MIB} MiB sent in {sizes.large_message // KIB} KiB"
        f" messages, at most {DUPLEX_IN_FLIGHT} ahead of their echo, which is read meanwhile.",
        "The echo server is Python (hypercorn): it bounds every contender.",
    ]

    def measure(contender: Contender) -> Measure:
        def run() -> dict[str, float]:
            count = sizes.round_trips
            seconds = run_in_child(
                contender.name, "round_trips", echo, "/echo", count, sizes.small_message
            ).result
            total = sizes.duplex_bytes
            streamed = run_in_child(
                contender.name, "duplex_stream", echo, "/echo", total, sizes.large_message
            ).result
            return {"round_trips": count / seconds, "mbps": total / streamed / MB}

        return run

    run_rounds(section, [(c.name, measure(c)) for c in contenders], repeats)
    return section
