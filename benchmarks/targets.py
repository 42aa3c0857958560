"""The goals crt_async is held to (issue 5), checked against a run's sections."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .results import Section

RATIO = "ratio"  # the ratio against the section's baseline must be >= limit
CEILING = "ceiling"  # the median must be < limit, in the metric's unit
REFERENCE = "reference"  # a ratio shown for context: no goal, never short


@dataclass(frozen=True)
class Goal:
    """One goal: ``kind`` is :data:`RATIO`, :data:`CEILING` or :data:`REFERENCE`.

    A :data:`RATIO` (or :data:`REFERENCE`) compares with the section's baseline, or with
    the contender ``against`` when given (both measured in the same run).
    """

    label: str
    section: str
    contender: str
    metric: str
    kind: str
    limit: float
    against: str | None = None
    unit: str = "ms"  # of a CEILING

    def describe(self) -> str:
        if self.kind == CEILING:
            return f"< {self.limit:g} {self.unit}"
        if self.kind == REFERENCE:
            return "none, for reference"
        return f">= {self.limit:g}x" + (f" {self.against}" if self.against else "")


ASYNCIO, TRIO = "crt-async-asyncio", "crt-async-trio"
AIO, HTTPX_H2 = "awscrt-aio", "httpx-h2"
# Raw callbacks with their thread state kept, as crt_async keeps it: crt_async's own cost.
KEPT = "raw-crt-kept"


def _per_backend(
    label: str,
    section: str,
    metric: str,
    kind: str,
    limit: float,
    against: str | None = None,
    unit: str = "ms",
) -> tuple[Goal, ...]:
    """The same goal for crt_async on asyncio and on trio."""
    return tuple(
        Goal(f"{label}, {backend}", section, contender, metric, kind, limit, against, unit)
        for backend, contender in (("asyncio", ASYNCIO), ("trio", TRIO))
    )


GOALS = (
    *_per_backend("(a) download", "download", "mbps", RATIO, 0.9),
    *_per_backend("(a) download vs awscrt-aio", "download", "mbps", RATIO, 2.5, AIO),
    *_per_backend("(a) download vs httpx-h2", "download", "mbps", RATIO, 5, HTTPX_H2),
    *_per_backend("(a) download vs raw-crt-kept", "download", "mbps", REFERENCE, 0, KEPT),
    *_per_backend("(a) idle reader RSS growth", "download", "idle_growth", CEILING, 16, unit="MiB"),
    Goal("(b) small GETs, asyncio", "small-gets", ASYNCIO, "rps", RATIO, 0.75),
    Goal("(b) small GETs, trio", "small-gets", TRIO, "rps", RATIO, 0.65),
    *_per_backend("(b) small GETs vs raw-crt-kept", "small-gets", "rps", REFERENCE, 0, KEPT),
    *_per_backend("(b) small GETs vs awscrt-aio", "small-gets", "rps", RATIO, 1.5, AIO),
    *_per_backend("(b) small GETs vs httpx-h2", "small-gets", "rps", RATIO, 8, HTTPX_H2),
    Goal(
        "(b) small GETs vs httpx-h2, httpx-crt",
        "small-gets",
        "httpx-crt",
        "rps",
        RATIO,
        4,
        HTTPX_H2,
    ),
    *_per_backend("(d) duplex round trips", "duplex", "round_trips", RATIO, 0.8),
    *_per_backend(
        "(d) duplex round trips vs raw-crt-kept", "duplex", "round_trips", REFERENCE, 0, KEPT
    ),
    Goal("(e) done futures vs wrap_future", "futures", ASYNCIO, "done_us", RATIO, 1.0),
    Goal("(e) thread-completed vs wrap_future", "futures", ASYNCIO, "thread_us", RATIO, 1.0),
    # "trio within 1.5x of the asyncio figure": trio's speed >= asyncio's / 1.5.
    Goal("(e) done futures, trio vs asyncio", "futures", TRIO, "done_us", RATIO, 0.67, ASYNCIO),
    Goal(
        "(e) thread-completed, trio vs asyncio", "futures", TRIO, "thread_us", RATIO, 0.67, ASYNCIO
    ),
    *_per_backend("(f) wake-up p99", "events-wake", "p99", CEILING, 2.0),
    *_per_backend("(f) cancellation p99", "events-cancel", "p99", CEILING, 5.0),
)


@dataclass(frozen=True)
class Verdict:
    goal: Goal
    value: float
    met: bool

    def __str__(self) -> str:
        goal = self.goal
        # Rounded down, so that a ratio short of its goal never looks like it meets it.
        ratio = math.floor(self.value * 100) / 100
        shown = f"{self.value:.3f} {goal.unit}" if goal.kind == CEILING else f"{ratio:.2f}x"
        state = "info " if goal.kind == REFERENCE else "met  " if self.met else "SHORT"
        return f"{state}  {goal.label}: {shown} (goal {goal.describe()})"


def check(sections: Sequence[Section]) -> list[Verdict]:
    """A verdict for every goal whose figures this run has."""
    by_key = {section.key: section for section in sections}
    verdicts = []
    for goal in GOALS:
        section = by_key.get(goal.section)
        if section is None:
            continue
        if goal.kind != CEILING:
            value = section.ratio(goal.contender, goal.metric)
            if value is not None and goal.against is not None:
                theirs = section.ratio(goal.against, goal.metric)
                value = None if not theirs else value / theirs
            if value is not None:
                verdicts.append(Verdict(goal, value, value >= goal.limit))
        else:
            summary = section.summary(goal.contender, goal.metric)
            if summary is not None:
                verdicts.append(Verdict(goal, summary.median, summary.median < goal.limit))
    return verdicts
