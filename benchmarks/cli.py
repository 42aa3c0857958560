"""``python -m benchmarks``: every contender on the same workloads, in one run.

Workloads (``--only``, by name or letter):

  a download    one large body over HTTP/2 (nginx): MB/s, peak RSS, RSS growth when idle
  b small-gets  1 KiB GETs, 64 concurrent streams on one HTTP/2 connection: req/s
  c latency     the same GETs one at a time: p50 and p99 latency
  d duplex      echo on one duplex HTTP/2 stream (hypercorn): round trips/s, MB/s
  e futures     awaiting concurrent.futures.Future: wait_future vs asyncio.wrap_future
  f events      wait_event: wake-up and cancellation latency
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import clients
from .common import MIB
from .machine import describe
from .report import render_machine, render_section, render_verdicts, write_json
from .results import Section
from .servers import HttpServer, echo_server, http_server
from .settings import FULL, FULL_REPEATS, QUICK, QUICK_REPEATS, Sizes
from .targets import check
from .workloads import events, futures, http
from .workloads.runner import log

WORKLOADS = ("download", "small-gets", "latency", "duplex", "futures", "events")
LETTERS = dict(zip("abcdef", WORKLOADS))
HTTP_WORKLOADS = {"download": http.download, "small-gets": http.small_gets, "latency": http.latency}


def _names(text: str, choices: Sequence[str], aliases: dict[str, str]) -> list[str]:
    names = [aliases.get(name.strip(), name.strip()) for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown: {', '.join(unknown)} (choose from {', '.join(choices)})"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes and {QUICK_REPEATS} repeats: a smoke run of under a minute",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help=f"repeats of each measurement (default {FULL_REPEATS}, --quick {QUICK_REPEATS})",
    )
    parser.add_argument(
        "--only",
        type=lambda text: _names(text, WORKLOADS, LETTERS),
        default=list(WORKLOADS),
        metavar="WORKLOAD[,...]",
        help="run only these workloads (names or letters a-f)",
    )
    parser.add_argument(
        "--contenders",
        type=lambda text: _names(text, list(clients.FACTORIES), {}),
        default=list(clients.FACTORIES),
        metavar="NAME[,...]",
        help=f"contenders (default: all): {', '.join(clients.FACTORIES)};"
        f" the baseline {clients.BASELINE} always runs",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    sizes = parser.add_argument_group("sizes (override the full or --quick ones)")
    sizes.add_argument("--download-mib", type=int, metavar="N", help="(a) body size in MiB")
    sizes.add_argument("--requests", type=int, metavar="N", help="(b) number of GETs")
    sizes.add_argument("--latency-requests", type=int, metavar="N", help="(c) number of GETs")
    sizes.add_argument("--futures", type=int, metavar="N", help="(e) futures per kind")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def _sizes(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    overrides = {
        "download_bytes": args.download_mib and args.download_mib * MIB,
        "small_requests": args.requests,
        "latency_requests": args.latency_requests,
        "futures": args.futures,
    }
    return dataclasses.replace(sizes, **{k: v for k, v in overrides.items() if v})


def _load(names: Sequence[str]) -> tuple[list[clients.Contender], dict[str, str]]:
    """The contenders that can run (baseline first), and why the others cannot."""
    loaded, unavailable = [], {}
    for name in [clients.BASELINE, *(n for n in names if n != clients.BASELINE)]:
        try:
            loaded.append(clients.load(name))
        except ImportError as exc:
            unavailable[name] = f"unavailable: {exc}"
    return loaded, unavailable


def _emit(text: str) -> None:
    print(f"\n{text}", flush=True)


@dataclasses.dataclass
class _Run:
    """One invocation: what to run, and the servers, started when first needed."""

    contenders: list[clients.Contender]
    unavailable: dict[str, str]
    sizes: Sizes
    repeats: int
    servers: contextlib.ExitStack
    server: HttpServer | None = None

    def http_server(self) -> HttpServer:
        if self.server is None:
            self.server = self.servers.enter_context(http_server(self.sizes.download_bytes))
        return self.server

    def workload(self, workload: str) -> list[Section]:
        common = (self.sizes, self.repeats)
        if workload in HTTP_WORKLOADS:
            run = HTTP_WORKLOADS[workload]
            return [run(self.contenders, self.http_server(), *common, self.unavailable)]
        if workload == "duplex":
            echo = self.servers.enter_context(echo_server())
            return [http.duplex(self.contenders, echo, *common, self.unavailable)]
        names = [contender.name for contender in self.contenders]
        if workload == "futures":
            return [futures.futures(names, *common)]
        return events.events(names, *common)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the servers stop and their files go."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sizes = _sizes(args)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else FULL_REPEATS)
    contenders, unavailable = _load(args.contenders)
    if not any(c.name == clients.BASELINE for c in contenders):
        print(f"the baseline {clients.BASELINE} cannot run: {unavailable}", file=sys.stderr)
        return 1
    machine = describe()
    _emit(render_machine(machine))
    sections: list[Section] = []
    with contextlib.ExitStack() as servers:
        run = _Run(contenders, unavailable, sizes, repeats, servers)
        for workload in (w for w in WORKLOADS if w in args.only):
            start = time.monotonic()
            for section in run.workload(workload):
                sections.append(section)
                _emit(render_section(section, repeats))
            log(f"{workload} took {time.monotonic() - start:.0f} s")
    verdicts = check(sections)
    if verdicts:
        _emit(render_verdicts(verdicts))
    if args.json is not None:
        settings = {
            "repeats": repeats,
            "quick": args.quick,
            "sizes": dataclasses.asdict(sizes),
            "server": run.server.name if run.server is not None else None,
        }
        write_json(args.json, machine, settings, sections, verdicts)
        print(f"\nresults written to {args.json}")
    return 0
