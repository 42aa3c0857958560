"""Every Python snippet in README.md runs, against the local server it refers to.

Blocks fenced as ```` ```python no-run ```` need another server (e.g. S3) and are not run.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import ROOT, LocalServer

SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)


def test_the_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 4


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet-{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs(
    snippet: str, h2_server: LocalServer, request: pytest.FixtureRequest
) -> None:
    assert h2_server.http_url is not None
    code = (
        snippet.replace("https://127.0.0.1:8443", h2_server.https_url)
        .replace('"127.0.0.1", 8080', f'"127.0.0.1", {h2_server.http_url.rsplit(":", 1)[1]}')
        .replace("/tmp/crt-certs/ca.pem", h2_server.ca_file)
    )
    if "ws://127.0.0.1:8765" in code:  # the WebSocket server, only where a snippet needs it
        code = code.replace("ws://127.0.0.1:8765", request.getfixturevalue("ws_server").ws_url)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)
