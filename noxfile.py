"""Developer sessions.  Each one runs on the interpreter nox itself runs on.

nox -s lint typecheck tests   # the checks CI cares about
nox -s demo                   # run every example against the local HTTP/2 server
nox -s bench                  # the benchmark table (apt-get install nginx-light first)
nox -s soak                   # the leak and soak runs (several minutes)
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

LINT_TOOLS = ("ruff==0.17.5",)
TYPECHECK_TOOLS = ("mypy==2.4.1",)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite under asyncio and trio."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Only the soak tests (100,000 requests and 1,000 duplex streams through one Client)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "soak", "-s", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*LINT_TOOLS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the library."""
    session.install(*TYPECHECK_TOOLS, "-e", ".[trio,httpx,aiobotocore]")
    session.run("mypy", "--strict", "crt_async")


@nox.session
def bench(session: nox.Session) -> None:
    """Every contender on the same workloads, one table with ratios (needs nginx:
    ``apt-get install nginx-light``; without it, hypercorn stands in).  Arguments
    after ``--`` go to ``python -m benchmarks`` (e.g. ``-- --quick``)."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Run every example; each starts the local server it needs."""
    session.install("-e", ".[examples]")
    for example in EXAMPLES:
        session.run("python", f"examples/{example}")


EXAMPLES = (
    "await_crt.py",
    "duplex_chat.py",
    "download.py",
    "httpx_client.py",
    "websocket_echo.py",
    "aiobotocore_s3.py",
)
