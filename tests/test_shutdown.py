"""Loop shutdown with work in flight: ``asyncio.run`` / ``trio.run`` return while streams,
connects and waits are pending, and the process prints nothing and exits promptly.

Each scenario runs in its own interpreter (``tests/shutdown_scenarios.py``, with every
warning shown) so that its stderr and exit status are its own.  After the loop has
gone, the script completes what was pending -- a gated connect is let through, events
are set, futures completed, the client's connections dropped by the peer -- so CRT
callbacks reach the dead loop.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from .conftest import ROOT, LocalServer

# Work the script leaves pending at the loop's end (some jobs may finish first).
SCENARIOS = {"streams": 5, "connects": 3, "waits": 6}
WALL_BOUND = 20.0  # seconds: start-up, scenario and exit, on a loaded machine


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_loop_returning_with_work_in_flight_prints_nothing_and_exits_promptly(
    h2_server: LocalServer, backend: str, scenario: str
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",  # show every warning (ResourceWarning included) on stderr
            "-m",
            "tests.shutdown_scenarios",
            backend,
            scenario,
            h2_server.https_url,
            h2_server.ca_file,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    print(f"{backend} {scenario}: {result.stdout.strip()!r} in {elapsed:.2f} s")
    assert result.stderr == ""  # no "Event loop is closed", no unretrieved exceptions
    assert result.returncode == 0
    match = re.match(r"pending (\d+) of \d+\ndone\n\Z", result.stdout)
    assert match is not None, result.stdout
    assert int(match.group(1)) >= SCENARIOS[scenario]
    assert elapsed < WALL_BOUND
