"""The goals crt_async is held to (issue 5), checked against a run's sections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .results import Section

RATIO = "ratio"  # the ratio against the section's baseline must be >= limit
CEILING = "ceiling"  # the median must be < limit, in the metric's unit


@dataclass(frozen=True)
class Goal:
    """One goal: ``kind`` is :data:`RATIO` or :data:`CEILING`."""

    label: str
    section: str
    contender: str
    metric: str
    kind: str
    limit: float

    def describe(self) -> str:
        return f">= {self.limit}x" if self.kind == RATIO else f"< {self.limit} ms"


ASYNCIO, TRIO = "crt-async-asyncio", "crt-async-trio"
GOALS = (
    Goal("(a) download, asyncio", "download", ASYNCIO, "mbps", RATIO, 0.9),
    Goal("(a) download, trio", "download", TRIO, "mbps", RATIO, 0.9),
    Goal("(b) small GETs, asyncio", "small-gets", ASYNCIO, "rps", RATIO, 0.75),
    Goal("(b) small GETs, trio", "small-gets", TRIO, "rps", RATIO, 0.65),
    Goal("(d) duplex round trips, asyncio", "duplex", ASYNCIO, "round_trips", RATIO, 0.8),
    Goal("(d) duplex round trips, trio", "duplex", TRIO, "round_trips", RATIO, 0.8),
    Goal("(e) done futures vs wrap_future", "futures", ASYNCIO, "done_us", RATIO, 1.0),
    Goal("(e) thread-completed vs wrap_future", "futures", ASYNCIO, "thread_us", RATIO, 1.0),
    Goal("(f) wake-up p99, asyncio", "events-wake", ASYNCIO, "p99", CEILING, 2.0),
    Goal("(f) wake-up p99, trio", "events-wake", TRIO, "p99", CEILING, 2.0),
    Goal("(f) cancellation p99, asyncio", "events-cancel", ASYNCIO, "p99", CEILING, 5.0),
    Goal("(f) cancellation p99, trio", "events-cancel", TRIO, "p99", CEILING, 5.0),
)


@dataclass(frozen=True)
class Verdict:
    goal: Goal
    value: float
    met: bool

    def __str__(self) -> str:
        shown = f"{self.value:.2f}x" if self.goal.kind == RATIO else f"{self.value:.3f} ms"
        state = "met  " if self.met else "SHORT"
        return f"{state}  {self.goal.label}: {shown} (goal {self.goal.describe()})"


def check(sections: Sequence[Section]) -> list[Verdict]:
    """A verdict for every goal whose figures this run has."""
    by_key = {section.key: section for section in sections}
    verdicts = []
    for goal in GOALS:
        section = by_key.get(goal.section)
        if section is None:
            continue
        if goal.kind == RATIO:
            value = section.ratio(goal.contender, goal.metric)
            if value is not None:
                verdicts.append(Verdict(goal, value, value >= goal.limit))
        else:
            summary = section.summary(goal.contender, goal.metric)
            if summary is not None:
                verdicts.append(Verdict(goal, summary.median, summary.median < goal.limit))
    return verdicts
