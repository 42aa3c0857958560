"""CRT threads keep one Python thread state instead of one per callback
(crt_async/_thread_state.py), checked in fresh processes."""

from __future__ import annotations

import pytest

from benchmarks.common import run_module

from .conftest import LocalServer


def _survived(server: LocalServer, backend: str, *, keep: bool) -> list[bool]:
    figures, _ = run_module(
        "tests.thread_state_probe", server.https_url, server.ca_file, backend, int(keep), timeout=60
    )
    survived: list[bool] = figures["survived"]
    assert len(survived) >= 5  # at least one body callback per request
    return survived


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_crt_thread_keeps_its_thread_state_across_callbacks(
    h2_server: LocalServer, backend: str
) -> None:
    survived = _survived(h2_server, backend, keep=True)
    assert survived[0] is False  # the process's first callback: nothing set yet
    assert all(survived[1:])


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_without_keeping_awscrt_gives_every_callback_a_new_thread_state(
    h2_server: LocalServer, backend: str
) -> None:
    # What keep_thread_state() exists for, and proof that the test above can fail.
    assert not any(_survived(h2_server, backend, keep=False))
