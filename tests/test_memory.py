"""Bounded memory: a reader that idles mid-body stops the server (RSS measured in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, LocalServer

MIB = 1024 * 1024


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_idle_reader_of_a_256_mib_body_stays_bounded_then_gets_every_byte(
    h2_server: LocalServer, backend: str
) -> None:
    size = 256 * MIB
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.idle_reader",
            h2_server.https_url,
            h2_server.ca_file,
            backend,
            str(size),
            str(64 * MIB),
            "5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout)
    print(f"{backend}: RSS growth while idle {figures['rss_growth'] / MIB:.1f} MiB")
    assert figures["rss_growth"] < 16 * MIB
    assert figures["received"] == size
