"""The baseline: ``awscrt.http`` with plain callbacks and ``threading`` primitives.

No event loop.  ``on_body`` takes each chunk with ``bytes(chunk)``, as a consumer that
keeps it must (awscrt 0.38 already passes ``bytes``, so this copies nothing), and counts
it on the CRT thread; the calling thread blocks on the CRT's futures, a semaphore or an
event.  Flow-control windows are the CRT's automatic ones, each stream's starting at
:data:`STREAM_WINDOW`: crt_async's largest window.  (With HTTP/2's default of 64 KiB, a
download from nginx runs at about 60 % of the speed on the development machine.)

``raw-crt`` is awscrt as it ships: it enters Python from its C threads with a thread state
created and destroyed for every callback.  ``raw-crt-kept`` keeps one thread state on the
connection's CRT thread, as crt_async does (``crt_async._thread_state``): the fastest any
Python consumer of these callbacks can be.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from awscrt import http as crt_http
from awscrt import io as crt_io

from crt_async._thread_state import keep_thread_state

from ..common import MIB, Target
from .base import (
    DUPLEX_IN_FLIGHT,
    Contender,
    Download,
    IdlePlan,
    check_size,
    check_status,
    read_body_sync,
)

TIMEOUT = 60.0  # seconds; no single wait of a benchmark comes near it
STREAM_WINDOW = 8 * MIB  # crt_async's default max_receive_window


def tls_options(target: Target, alpn: list[str]) -> Any:
    """CRT TLS connection options trusting ``target.ca_file`` (SNI: the target's host)."""
    context_options = crt_io.TlsContextOptions()
    context_options.override_default_trust_store_from_path(None, target.ca_file)
    context_options.alpn_list = alpn
    options = crt_io.ClientTlsContext(context_options).new_connection_options()
    options.set_server_name(target.host)
    return options


def window_settings() -> list[crt_http.Http2Setting]:
    """HTTP/2 settings announcing a :data:`STREAM_WINDOW` window for every stream."""
    return [crt_http.Http2Setting(crt_http.Http2SettingID.INITIAL_WINDOW_SIZE, STREAM_WINDOW)]


def request(target: Target, method: str, path: str) -> crt_http.HttpRequest:
    """An HTTP/1-style request; the CRT turns ``host`` into HTTP/2's ``:authority``."""
    return crt_http.HttpRequest(method, path, crt_http.HttpHeaders([("host", target.authority)]))


@contextlib.contextmanager
def _connection(target: Target, *, keep: bool) -> Iterator[Any]:
    """An HTTP/2 connection; with ``keep``, its CRT thread keeps its Python thread state."""
    options = tls_options(target, ["h2"])
    future = crt_http.Http2ClientConnection.new(
        target.host, target.port, tls_connection_options=options, initial_settings=window_settings()
    )
    connection = _result(future, "connecting")
    try:
        if keep:
            _keep_thread_state(connection, target)
        yield connection
    finally:
        _result(connection.close(), "closing")


def _keep_thread_state(connection: Any, target: Target) -> None:
    """One request whose ``on_response`` keeps the thread state of the CRT thread it runs
    on: the thread that runs every callback of this connection."""
    stream = connection.request(
        request(target, "GET", "/"), on_response=lambda **_: keep_thread_state()
    )
    stream.activate()
    _result(stream.completion_future, "GET /")


class _Body:
    """``on_body`` of one stream: copy and count."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0

    def on_body(self, chunk: bytes, **_: object) -> None:
        self.size += len(bytes(chunk))


class _Echo:
    """``on_body`` of a duplex echo stream of ``message_size``-byte messages.

    Counts the bytes that come back and sets ``reached`` once ``expect``'s goal is met.
    Each message sent takes one of ``DUPLEX_IN_FLIGHT`` credits, given back once its
    echo is complete.
    """

    def __init__(self, message_size: int) -> None:
        self._message_size = message_size
        self._lock = threading.Lock()
        self._goal = 0
        self._credits = threading.Semaphore(DUPLEX_IN_FLIGHT)
        self.received = 0
        self.reached = threading.Event()

    def expect(self, goal: int) -> None:
        with self._lock:
            self._goal = goal
            if self.received >= goal:
                self.reached.set()
            else:
                self.reached.clear()

    def on_body(self, chunk: bytes, **_: object) -> None:
        size = len(bytes(chunk))
        with self._lock:
            echoed = self.received // self._message_size
            self.received += size
            echoed = self.received // self._message_size - echoed
            if self.received >= self._goal:
                self.reached.set()
        if echoed:
            self._credits.release(echoed)

    def send(self, stream: Any, message: bytes) -> None:
        """Write ``message`` once a credit is free; return when the CRT has taken it."""
        if not self._credits.acquire(timeout=TIMEOUT):
            raise TimeoutError(f"echo: no credit within {TIMEOUT} s")
        _result(stream.write_data(io.BytesIO(message), False), "a write")

    def wait(self) -> None:
        if not self.reached.wait(TIMEOUT):
            raise TimeoutError(f"echo: {self.received} bytes back, expected {self._goal}")


class RawCRT(Contender):
    """``awscrt.http`` callbacks and threads: the baseline every ratio is against; with
    ``keep_thread_state``, the same with one lasting thread state on the CRT thread."""

    def __init__(self, *, keep_thread_state: bool = False) -> None:
        self._keep = keep_thread_state
        if keep_thread_state:
            self.name = "raw-crt-kept"
            self.description = "awscrt.http callbacks + threading, thread state kept"
        else:
            self.name = "raw-crt"
            self.description = "awscrt.http callbacks + threading (baseline)"

    def download(
        self, target: Target, path: str, size: int, idle: IdlePlan | None = None
    ) -> Download:
        return _download(target, path, size, idle, hand_off=idle is not None, keep=self._keep)

    def small_gets(
        self, target: Target, path: str, size: int, total: int, concurrency: int
    ) -> float:
        with _connection(target, keep=self._keep) as connection:
            _get(connection, target, path)  # as the others' warm-up
            slots = threading.BoundedSemaphore(concurrency)
            finished = threading.Event()
            lock = threading.Lock()
            errors: list[str] = []
            completed = 0

            def on_complete(body: _Body, future: Future[int]) -> None:
                nonlocal completed
                slots.release()
                error = future.exception()
                if error is not None or future.result() != 200 or body.size != size:
                    errors.append(f"{error or future.result()}, {body.size} bytes")
                with lock:
                    completed += 1
                    if completed == total:
                        finished.set()

            start = time.perf_counter()
            for _ in range(total):
                slots.acquire()
                body = _Body()
                stream = connection.request(request(target, "GET", path), on_body=body.on_body)
                stream.completion_future.add_done_callback(
                    lambda future, body=body: on_complete(body, future)
                )
                stream.activate()
            if not finished.wait(TIMEOUT):
                raise TimeoutError(f"{completed} of {total} requests completed")
            elapsed = time.perf_counter() - start
        if errors:
            raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
        return elapsed

    def latencies(self, target: Target, path: str, size: int, count: int) -> list[float]:
        samples = []
        with _connection(target, keep=self._keep) as connection:
            _get(connection, target, path)
            for _ in range(count):
                start = time.perf_counter()
                status, received = _get(connection, target, path)
                samples.append(time.perf_counter() - start)
                check_status(status, path)
                check_size(received, size, path)
        return samples

    def round_trips(self, target: Target, path: str, count: int, size: int) -> float:
        message = b"x" * size
        with (
            _connection(target, keep=self._keep) as connection,
            _echo_stream(connection, target, path, size) as echo,
        ):
            stream, counter = echo
            start = 0.0
            for sent in range(count + 1):  # the first one warms up
                if sent == 1:
                    start = time.perf_counter()
                counter.expect((sent + 1) * size)
                counter.send(stream, message)
                counter.wait()
            return time.perf_counter() - start

    def duplex_stream(self, target: Target, path: str, total: int, size: int) -> float:
        message = b"x" * size
        count = total // size
        with (
            _connection(target, keep=self._keep) as connection,
            _echo_stream(connection, target, path, size) as echo,
        ):
            stream, counter = echo
            counter.expect(size)
            counter.send(stream, message)
            counter.wait()
            start = time.perf_counter()
            counter.expect((count + 1) * size)
            for _ in range(count):
                counter.send(stream, message)
            counter.wait()
            return time.perf_counter() - start


def _result(future: Future[Any], what: str) -> Any:
    """The future's result; a clear error if it takes longer than ``TIMEOUT``."""
    try:
        return future.result(TIMEOUT)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"{what} did not complete within {TIMEOUT} s") from None


class RawCRTHandOff(Contender):
    """Raw callbacks whose ``on_body`` hands every chunk to the downloading thread.

    Download only: what moving a body from the CRT's thread to another one costs in
    CPython, with no event loop involved.
    """

    name = "raw-crt-handoff"
    description = "awscrt.http callbacks, chunks handed to the reading thread"

    def download(
        self, target: Target, path: str, size: int, idle: IdlePlan | None = None
    ) -> Download:
        return _download(target, path, size, idle, hand_off=True, keep=False)


def _download(
    target: Target, path: str, size: int, idle: IdlePlan | None, *, hand_off: bool, keep: bool
) -> Download:
    """Time one GET of ``path``: counted in ``on_body``, or handed off to this thread
    (through a ``queue.SimpleQueue``), which idles as planned."""
    with _connection(target, keep=keep) as connection:
        if target.warmup_path is not None:
            _get(connection, target, target.warmup_path)  # as the others' warm-up
        start = time.perf_counter()
        if hand_off:
            status, received, growth = _get_handed_off(connection, target, path, idle)
        else:
            status, received = _get(connection, target, path)
            growth = None
        elapsed = time.perf_counter() - start
    check_status(status, path)
    check_size(received, size, path)
    return Download(elapsed, received, growth)


def _get(connection: Any, target: Target, path: str) -> tuple[int, int]:
    """GET ``path``, blocking until it completes; return (status, body length)."""
    body = _Body()
    stream = connection.request(request(target, "GET", path), on_body=body.on_body)
    stream.activate()
    status: int = _result(stream.completion_future, f"GET {path}")
    return status, body.size


def _get_handed_off(
    connection: Any, target: Target, path: str, idle: IdlePlan | None
) -> tuple[int, int, int | None]:
    """GET ``path``, handing the body to this thread, which idles as planned."""
    chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    stream = connection.request(
        request(target, "GET", path), on_body=lambda chunk, **_: chunks.put(bytes(chunk))
    )
    stream.completion_future.add_done_callback(lambda _: chunks.put(None))
    stream.activate()
    received, growth = read_body_sync(iter(chunks.get, None), idle)
    status: int = _result(stream.completion_future, f"GET {path}")
    return status, received, growth


@contextlib.contextmanager
def _echo_stream(
    connection: Any, target: Target, path: str, message_size: int
) -> Iterator[tuple[Any, _Echo]]:
    """A POST to the echo endpoint with an open body; ended when the block ends."""
    counter = _Echo(message_size)
    stream = connection.request(
        request(target, "POST", path), on_body=counter.on_body, manual_write=True
    )
    stream.activate()
    try:
        yield stream, counter
    finally:
        _result(stream.write_data(None, True), "END_STREAM")
        _result(stream.completion_future, "the echo stream")
