"""Plain-text tables of the sections, the goal verdicts, and the JSON dump."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .results import Section, Summary
from .targets import Verdict


def number(value: float) -> str:
    """Three or so significant digits, thousands separated."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _spread(summary: Summary) -> str:
    if summary.count < 2:
        return ""
    return f"[{number(summary.low)}..{number(summary.high)}]"


def render_section(section: Section, repeats: int) -> str:
    """The section as an aligned table, with its notes below."""
    header = ["contender"]
    for metric in section.metrics:
        header += [metric.label, "min..max"]
        if metric.compared:
            header.append("x base")
    table = [header]
    for contender, figures in section.rows.items():
        row = [contender]
        for metric in section.metrics:
            summary = Summary.of(figures[metric.key]) if metric.key in figures else None
            row += ["-", ""] if summary is None else [number(summary.median), _spread(summary)]
            if metric.compared:
                ratio = section.ratio(contender, metric.key)
                row.append("" if ratio is None else f"{ratio:.2f}")
        table.append(row)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [section.title, "=" * len(section.title)]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:])
        ]
        lines.append("  ".join(cells).rstrip())
    not_applicable = [name for name, why in section.missing.items() if why == "n/a"]
    if not_applicable:
        lines.append(f"n/a: {', '.join(not_applicable)}")
    lines += [f"{name}: {why}" for name, why in section.missing.items() if why != "n/a"]
    lines.append(
        f"Median of {repeats} repeat{'s' if repeats != 1 else ''}, [min..max];"
        f" x base: speed relative to {section.baseline}"
        " (above 1 is better, for latencies too)."
    )
    lines += section.notes
    return "\n".join(lines)


def render_verdicts(verdicts: Sequence[Verdict]) -> str:
    title = "Goals for crt_async (medians)"
    return "\n".join([title, "=" * len(title), *map(str, verdicts)])


def render_machine(machine: dict[str, str]) -> str:
    return "\n".join(f"{key:>9}: {value}" for key, value in machine.items())


def write_json(
    path: Path,
    machine: dict[str, str],
    settings: dict[str, Any],
    sections: Sequence[Section],
    verdicts: Sequence[Verdict],
) -> None:
    document = {
        "machine": machine,
        "settings": settings,
        "sections": [section.to_json() for section in sections],
        "goals": [
            {
                "goal": f"{verdict.goal.label} {verdict.goal.describe()}",
                "value": verdict.value,
                "met": verdict.met,
            }
            for verdict in verdicts
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
