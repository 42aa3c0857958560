"""httpx on the CRT: CRTTransport under httpx.AsyncClient (asyncio, trio) and httpx.Client.

Run it with ``python examples/httpx_client.py [--backend asyncio|trio|both]``; it
starts the local HTTP/2 server itself.
"""

from __future__ import annotations

import hashlib

import httpx
from example_support import RunningServer, example_arguments, run_on_loops

from crt_async.httpx import CRTTransport


async def async_demo(server: RunningServer, transport: CRTTransport) -> None:
    async with httpx.AsyncClient(transport=transport, base_url=server.https_url) as client:
        response = await client.get("/")
        print(f"AsyncClient: {response.status_code} {response.http_version} {response.text!r}")
        digest = hashlib.sha256()
        async with client.stream("GET", "/bytes/10000000") as streamed:
            async for chunk in streamed.aiter_bytes():
                digest.update(chunk)
        print(f"AsyncClient: streamed 10 MB, sha256 {digest.hexdigest()[:16]}...")
        try:
            await client.get("/stall", timeout=httpx.Timeout(5.0, read=0.5))
        except httpx.ReadTimeout as error:
            print(f"AsyncClient: httpx.ReadTimeout as expected ({error})")


def sync_demo(server: RunningServer) -> None:
    transport = CRTTransport(verify=server.ca_file)
    with httpx.Client(transport=transport, base_url=server.https_url) as client:
        response = client.post("/upload", content=b"x" * 1_000_000)
        print(f"Client (sync): {response.status_code} {response.http_version} {response.json()}")


async def demo(server: RunningServer) -> None:
    # A transport (like a connection pool) belongs to one event loop: one per run.
    await async_demo(server, CRTTransport(verify=server.ca_file))


def main() -> None:
    args = example_arguments("httpx on the CRT, sync and async.").parse_args()
    run_on_loops(args.backend, demo, after=sync_demo)


if __name__ == "__main__":
    main()
