"""aiobotocore on the CRT: S3 calls through crt_async, against a local moto S3 server.

Run it with ``python examples/aiobotocore_s3.py [--backend asyncio|trio|both]``
(``pip install crt_async[aiobotocore] moto[server,s3]``); it starts moto's S3
server on 127.0.0.1 itself, so it works offline.  asyncio runs ``CRTSession``;
trio runs ``CRTAnyioSession`` (aiobotocore's anyio mode).
"""

from __future__ import annotations

import hashlib
import logging

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from example_support import example_arguments
from moto.server import ThreadedMotoServer

from crt_async.aiobotocore import CRTAnyioSession, CRTSession

MIB = 1024 * 1024


async def demo(endpoint_url: str, session_cls: type[CRTSession]) -> None:
    config = AioConfig(http_session_cls=session_cls)  # the one line that puts it on the CRT
    session = get_session()
    async with session.create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",  # moto accepts any keys
        aws_secret_access_key="testing",
        config=config,
    ) as s3:
        bucket = f"demo-{session_cls.__name__.lower()}"
        await s3.create_bucket(Bucket=bucket)
        data = bytes(range(256)) * (8 * MIB // 256)
        await s3.put_object(Bucket=bucket, Key="reports/2026 Q1 ünïcode.bin", Body=data)
        print(f"{session_cls.__name__}: put 8 MiB")

        response = await s3.get_object(Bucket=bucket, Key="reports/2026 Q1 ünïcode.bin")
        digest = hashlib.sha256()
        async with response["Body"] as body:
            while piece := await body.read(MIB):  # streamed: at most 1 MiB at a time
                digest.update(piece)
        assert digest.digest() == hashlib.sha256(data).digest()
        print(f"{session_cls.__name__}: streamed it back, sha256 {digest.hexdigest()[:16]}...")

        for index in range(5):
            await s3.put_object(Bucket=bucket, Key=f"logs/{index}", Body=b"line\n")
        keys = []
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        print(f"{session_cls.__name__}: {len(keys)} keys: {keys}")


def main() -> None:
    args = example_arguments(__doc__ or "").parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        for backend in ["asyncio", "trio"] if args.backend == "both" else [args.backend]:
            print(f"--- {backend} ---")
            session_cls = CRTSession if backend == "asyncio" else CRTAnyioSession
            anyio.run(demo, f"http://{host}:{port}", session_cls, backend=backend)
    finally:
        server.stop()
    print("OK")


if __name__ == "__main__":
    main()
