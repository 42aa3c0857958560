"""The benchmark harness's child processes (benchmarks/child.py), against the local server."""

from __future__ import annotations

import pytest

from benchmarks.child import run_in_child
from benchmarks.clients.base import Download
from benchmarks.common import NotApplicable, Target

from .conftest import LocalServer

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def target(h2_server: LocalServer) -> Target:
    return Target(h2_server.https_url, h2_server.ca_file, "/bytes/1024")


def test_a_measurement_in_a_child_reports_its_result_and_peak_rss(target: Target) -> None:
    child = run_in_child("crt-async-trio", "small_gets", target, "/bytes/1024", 1024, 50, 8)
    assert child.result > 0  # seconds for 50 GETs
    assert child.peak_rss > 10 * MIB  # an interpreter with its imports


def test_a_download_comes_back_as_a_download(target: Target) -> None:
    child = run_in_child("raw-crt-kept", "download", target, f"/bytes/{MIB}", MIB)
    assert isinstance(child.result, Download)
    assert child.result.received == MIB


def test_a_workload_the_contender_cannot_run_is_not_applicable(target: Target) -> None:
    with pytest.raises(NotApplicable):
        run_in_child("aiohttp", "round_trips", target, "/echo", 10, 1024)


def test_a_failing_measurement_raises_with_the_childs_reason(target: Target) -> None:
    with pytest.raises(RuntimeError, match="404"):
        run_in_child("raw-crt", "latencies", target, "/no-such-path", 1024, 3)
