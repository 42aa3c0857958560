"""The benchmark harness's goal checks (benchmarks/targets.py), on made-up figures."""

from __future__ import annotations

import pytest

from benchmarks.results import Metric, Section
from benchmarks.targets import CEILING, RATIO, Goal, Verdict, check


def section(key: str, metric: Metric, figures: dict[str, list[float]]) -> Section:
    result = Section(key, key, [metric], baseline="raw-crt")
    for contender, samples in figures.items():
        for sample in samples:
            result.add(contender, metric.key, sample)
    return result


def test_ratio_goals_compare_with_the_baseline_or_with_another_contender() -> None:
    speed = Metric("rps", "req/s", higher_is_better=True)
    runs = section(
        "small-gets",
        speed,
        {"raw-crt": [100, 100, 100], "crt-async-asyncio": [70, 80, 90], "awscrt-aio": [50]},
    )
    verdicts = {verdict.goal.label: verdict for verdict in check([runs])}
    against_baseline = verdicts["(b) small GETs, asyncio"]
    assert (against_baseline.value, against_baseline.met) == (pytest.approx(0.8), True)
    against_aio = verdicts["(b) small GETs vs awscrt-aio, asyncio"]
    assert (against_aio.value, against_aio.met) == (pytest.approx(1.6), True)
    assert "(b) small GETs, trio" not in verdicts  # no figures, no verdict


def test_a_lower_is_better_metric_is_compared_as_a_speed() -> None:
    latency = Metric("thread_us", "us", higher_is_better=False)
    runs = section(
        "futures",
        latency,
        {"raw-crt": [100], "crt-async-asyncio": [50], "crt-async-trio": [80]},
    )
    verdicts = {verdict.goal.label: verdict for verdict in check([runs])}
    trio = verdicts["(e) thread-completed, trio vs asyncio"]
    assert trio.value == pytest.approx(50 / 80)  # slower than asyncio: below 1
    assert not trio.met  # the goal is 1 / 1.5 of asyncio's speed


def test_ceiling_goals_use_the_median_in_their_unit() -> None:
    growth = Metric("idle_growth", "MiB", higher_is_better=False, compared=False)
    runs = section("download", growth, {"crt-async-asyncio": [4, 6, 30], "crt-async-trio": [20]})
    verdicts = {verdict.goal.label: verdict for verdict in check([runs])}
    assert str(verdicts["(a) idle reader RSS growth, asyncio"]).startswith(
        "met    (a) idle reader RSS growth, asyncio: 6.000 MiB"
    )
    assert not verdicts["(a) idle reader RSS growth, trio"].met


def test_a_ratio_just_short_of_its_goal_never_shows_as_reaching_it() -> None:
    goal = Goal("(a) download, trio", "download", "crt-async-trio", "mbps", RATIO, 0.9)
    shown = str(Verdict(goal, 0.8997, met=False))
    assert shown == "SHORT  (a) download, trio: 0.89x (goal >= 0.9x)"
    assert Goal("x", "s", "c", "p99", CEILING, 2.0).describe() == "< 2 ms"


def test_a_reference_ratio_is_shown_but_never_judged() -> None:
    speed = Metric("rps", "req/s", higher_is_better=True)
    runs = section(
        "small-gets", speed, {"raw-crt": [100], "raw-crt-kept": [250], "crt-async-trio": [100]}
    )
    verdicts = {verdict.goal.label: verdict for verdict in check([runs])}
    reference = verdicts["(b) small GETs vs raw-crt-kept, trio"]
    assert (reference.value, reference.met) == (pytest.approx(0.4), True)
    shown = "info   (b) small GETs vs raw-crt-kept, trio: 0.40x (goal none, for reference)"
    assert str(reference) == shown
