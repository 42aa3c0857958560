"""Side-by-side benchmarks of crt_async against raw awscrt, awscrt.aio, httpx and aiohttp.

Run ``python -m benchmarks --help`` from the repository root; see ``benchmarks/README.md``.
"""
