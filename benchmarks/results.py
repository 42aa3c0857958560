"""Results: one :class:`Section` per workload, holding every repeat's figure per contender
and metric, summarised by median and spread, with ratios against the section's baseline."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Metric:
    """A column of a section, e.g. MB/s (higher is better) or p99 ms (lower is better)."""

    key: str
    label: str
    higher_is_better: bool
    compared: bool = True  # show the ratio against the baseline


@dataclass(frozen=True)
class Summary:
    """Median and spread of a metric's samples (one per repeat)."""

    median: float
    low: float
    high: float
    q1: float
    q3: float
    count: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        q1, q3 = (
            statistics.quantiles(samples, n=4, method="inclusive")[::2]
            if len(samples) > 1
            else (samples[0], samples[0])
        )
        return cls(statistics.median(samples), min(samples), max(samples), q1, q3, len(samples))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0..1) percentile of ``values``, interpolating linearly."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass
class Section:
    """The figures of one workload.

    ``rows`` maps contender -> metric key -> samples; ``missing`` maps a contender that
    has no figures to why (n/a, unavailable, failed).  Contenders appear in the order
    they were first added.
    """

    key: str
    title: str
    metrics: list[Metric]
    baseline: str
    rows: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, contender: str, metric: str, value: float) -> None:
        self.rows.setdefault(contender, {}).setdefault(metric, []).append(value)

    def fail(self, contender: str, reason: str) -> None:
        """Drop ``contender``'s figures, and say why it has none."""
        self.rows.pop(contender, None)
        self.missing[contender] = reason

    def summary(self, contender: str, metric: str) -> Summary | None:
        samples = self.rows.get(contender, {}).get(metric)
        return Summary.of(samples) if samples else None

    def ratio(self, contender: str, metric: str) -> float | None:
        """Speed relative to the baseline (medians): above 1 is better, for latencies too."""
        mine = self.summary(contender, metric)
        base = self.summary(self.baseline, metric)
        if mine is None or base is None or not mine.median or not base.median:
            return None
        higher = next(m.higher_is_better for m in self.metrics if m.key == metric)
        return mine.median / base.median if higher else base.median / mine.median

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "baseline": self.baseline,
            "metrics": [asdict(metric) for metric in self.metrics],
            "results": {
                contender: {
                    metric: {
                        "samples": samples,
                        "summary": asdict(Summary.of(samples)),
                        "ratio": self.ratio(contender, metric),
                    }
                    for metric, samples in figures.items()
                }
                for contender, figures in self.rows.items()
            },
            "missing": self.missing,
            "notes": self.notes,
        }
