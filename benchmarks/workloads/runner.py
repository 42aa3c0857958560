"""Repeating measurements round-robin over the contenders, so that drift in the machine's
load spreads over all of them instead of favouring whoever runs first."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Callable

from ..common import NotApplicable
from ..results import Section

Measure = Callable[[], "dict[str, float]"]
"""One measurement: metric key -> figure."""


def run_rounds(section: Section, entries: Sequence[tuple[str, Measure]], repeats: int) -> None:
    """Call every entry's measurement ``repeats`` times and add the figures to ``section``.

    An entry that raises :class:`NotApplicable` is marked n/a; one that fails otherwise is
    marked failed (with the error) and not run again; the others go on.
    """
    active = list(entries)
    for repeat in range(1, repeats + 1):
        for entry in list(active):
            name, measure = entry
            try:
                figures = measure()
            except NotApplicable:
                section.fail(name, "n/a")
                active.remove(entry)
                continue
            except Exception as exc:
                section.fail(name, f"failed: {type(exc).__name__}: {exc}")
                active.remove(entry)
                log(f"{section.key} {name}: FAILED {type(exc).__name__}: {exc}")
                continue
            for metric, value in figures.items():
                section.add(name, metric, value)
            shown = ", ".join(f"{key} {value:.4g}" for key, value in figures.items())
            log(f"{section.key} {name} {repeat}/{repeats}: {shown}")


def log(line: str) -> None:
    """Progress, on stderr (the tables go to stdout)."""
    print(f"  .. {line}", file=sys.stderr, flush=True)
