"""One HTTP measurement by one contender, in a fresh process.

Every HTTP measurement runs in a process of its own, because a contender leaves
process-wide state behind that would change the next one's figures: crt_async keeps a
Python thread state on each CRT thread it is called from (which makes every later awscrt
callback in the process cheaper, whoever made the request), and peak RSS is the process's.

Usage::

    python -m benchmarks.child CONTENDER WORKLOAD URL CA_FILE WARMUP_PATH ARGS_JSON

``WORKLOAD`` is a :class:`~benchmarks.clients.base.Contender` method (``download``,
``small_gets``, ``latencies``, ``round_trips``, ``duplex_stream``) and ``ARGS_JSON`` its
arguments after the target, as a JSON list (a download's idle plan as an object).  Prints
one JSON object: ``result`` (a download as an object) and ``peak_rss`` (VmHWM at the end,
in bytes), or ``not_applicable``.  :func:`run_in_child` is the parent's side: it encodes
the arguments and decodes the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .clients import IdlePlan, load
from .clients.base import Download
from .common import NotApplicable, Target, peak_rss_bytes, run_module

TIMEOUT = 600.0
WORKLOADS = ("download", "small_gets", "latencies", "round_trips", "duplex_stream")


@dataclass(frozen=True)
class ChildResult:
    """What one child process measured: the workload method's result and the process's
    peak RSS in bytes."""

    result: Any
    peak_rss: int


def run_in_child(contender: str, workload: str, target: Target, *args: object) -> ChildResult:
    """Run ``contender.<workload>(target, *args)`` in a child process.

    Raises:
        NotApplicable: the contender cannot run the workload.
        RuntimeError: the measurement failed (the child's last line of stderr says why).
    """
    encoded = [dataclasses.asdict(arg) if isinstance(arg, IdlePlan) else arg for arg in args]
    try:
        figures, _ = run_module(
            "benchmarks.child",
            contender,
            workload,
            target.url,
            target.ca_file,
            target.warmup_path or "",
            json.dumps(encoded),
            timeout=TIMEOUT,
        )
    except RuntimeError as exc:
        raise RuntimeError(str(exc).splitlines()[-1]) from None  # the child's reason
    if figures.get("not_applicable"):
        raise NotApplicable
    result = figures["result"]
    if workload == "download":
        result = Download(**result)
    return ChildResult(result, figures["peak_rss"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("contender")
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("url")
    parser.add_argument("ca_file")
    parser.add_argument("warmup_path", help="a small body fetched first ('' for none)")
    parser.add_argument("args", type=json.loads, help="the workload's arguments (JSON list)")
    options = parser.parse_args(argv)
    args = [IdlePlan(**arg) if isinstance(arg, dict) else arg for arg in options.args]
    target = Target(options.url, options.ca_file, options.warmup_path or None)
    measure = getattr(load(options.contender), options.workload)
    try:
        result = measure(target, *args)
    except NotApplicable:
        print(json.dumps({"not_applicable": True}))
        return
    if isinstance(result, Download):
        result = dataclasses.asdict(result)
    print(json.dumps({"result": result, "peak_rss": peak_rss_bytes()}))


if __name__ == "__main__":
    main()
