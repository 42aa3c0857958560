"""Timeouts while a request body goes out (asyncio and trio, and the sync httpx transport).

The read timeout starts once the whole request has been sent: an upload may take as
long as it makes progress.  A stalled upload fails with ``WriteTimeout``, whether the
CRT reads the body itself (bytes, files) or crt_async writes it piece by piece
(iterables).  The server is tests/fault_server.py: ``fault=window-zero&hold=S`` takes
the first 64 KiB of the body, then nothing for S seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode

import httpx
import pytest

from crt_async import Client, Timeout, TLSConfig, WriteTimeout
from crt_async.httpx import CRTTransport

from .fault_server import UPLOAD, FaultServer, upload_pieces

pytestmark = pytest.mark.anyio

HOLD = 0.6  # the server's pause in reading the body
READ = 0.2  # a read timeout well below it


def held_upload(server: FaultServer, hold: float) -> str:
    return f"{server.url}/upload?{urlencode({'fault': 'window-zero', 'hold': hold})}"


def as_bytes() -> bytes:
    return UPLOAD


BODIES: dict[str, Callable[[], object]] = {"bytes": as_bytes, "iterable": upload_pieces}


def check_upload_answer(content: bytes) -> None:
    answer = json.loads(content)
    assert answer == {"length": len(UPLOAD), "sha256": hashlib.sha256(UPLOAD).hexdigest()}


@pytest.fixture
async def client(fault_server: FaultServer) -> AsyncIterator[Client]:
    async with Client(tls=TLSConfig(ca_file=fault_server.ca_file)) as client:
        yield client


@pytest.mark.parametrize("body", list(BODIES))
async def test_an_upload_slower_than_the_read_timeout_succeeds(
    client: Client, fault_server: FaultServer, body: str
) -> None:
    response = await client.post(
        held_upload(fault_server, HOLD),
        content=BODIES[body](),  # type: ignore[arg-type]
        timeout=Timeout(5, read=READ, write=3),
    )
    assert response.status == 200
    check_upload_answer(response.content)


@pytest.mark.parametrize("body", list(BODIES))
async def test_a_stalled_upload_fails_with_write_timeout(
    client: Client, fault_server: FaultServer, body: str
) -> None:
    write = 0.4
    start = time.monotonic()
    with pytest.raises(WriteTimeout):
        await client.post(
            held_upload(fault_server, 30),
            content=BODIES[body](),  # type: ignore[arg-type]
            timeout=Timeout(5, read=5, write=write),
        )
    # A stall is noticed within one to two write timeouts (progress is checked per period).
    assert time.monotonic() - start < 2 * write + 1.0


def test_sync_httpx_upload_slower_than_the_read_timeout_succeeds(
    fault_server: FaultServer,
) -> None:
    with httpx.Client(transport=CRTTransport(verify=fault_server.ca_file)) as client:
        response = client.post(
            held_upload(fault_server, HOLD),
            content=UPLOAD,
            timeout=httpx.Timeout(5, read=READ, write=3),
        )
    assert response.status_code == 200
    check_upload_answer(response.content)


def test_sync_httpx_stalled_upload_fails_with_write_timeout(fault_server: FaultServer) -> None:
    with (
        httpx.Client(transport=CRTTransport(verify=fault_server.ca_file)) as client,
        pytest.raises(httpx.WriteTimeout),
    ):
        client.post(
            held_upload(fault_server, 30),
            content=UPLOAD,
            timeout=httpx.Timeout(5, read=5, write=0.4),
        )
