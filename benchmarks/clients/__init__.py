"""The contenders, by name.  Each is imported only when asked for, so one whose library is
missing is reported as unavailable instead of breaking the others."""

from __future__ import annotations

from typing import Callable

from .base import Contender, IdlePlan


def _raw_crt(*, keep_thread_state: bool) -> Callable[[], Contender]:
    def create() -> Contender:
        from .raw_crt import RawCRT

        return RawCRT(keep_thread_state=keep_thread_state)

    return create


def _raw_crt_hand_off() -> Contender:
    from .raw_crt import RawCRTHandOff

    return RawCRTHandOff()


def _awscrt_aio() -> Contender:
    from .awscrt_aio import AwscrtAio

    return AwscrtAio()


def _crt_async(backend: str) -> Callable[[], Contender]:
    def create() -> Contender:
        from .crt_async_client import CrtAsync

        if backend == "trio":
            import trio  # noqa: F401  # fail here, as unavailable, when trio is missing

        return CrtAsync(backend)

    return create


def _crt_async_as_it_arrives() -> Contender:
    from .crt_async_client import CrtAsyncAsItArrives

    return CrtAsyncAsItArrives()


def _httpx_crt() -> Contender:
    from .httpx_clients import HttpxCRT

    return HttpxCRT()


def _httpx_h2() -> Contender:
    import h2  # noqa: F401  # httpx's http2=True needs it

    from .httpx_clients import HttpxH2

    return HttpxH2()


def _aiohttp() -> Contender:
    from .aiohttp_client import AioHTTP

    return AioHTTP()


BASELINE = "raw-crt"
FACTORIES: dict[str, Callable[[], Contender]] = {
    BASELINE: _raw_crt(keep_thread_state=False),
    "raw-crt-kept": _raw_crt(keep_thread_state=True),
    "raw-crt-handoff": _raw_crt_hand_off,
    "awscrt-aio": _awscrt_aio,
    "crt-async-asyncio": _crt_async("asyncio"),
    "crt-async-trio": _crt_async("trio"),
    "crt-async-arrival": _crt_async_as_it_arrives,
    "httpx-crt": _httpx_crt,
    "httpx-h2": _httpx_h2,
    "aiohttp": _aiohttp,
}


def load(name: str) -> Contender:
    """Create the contender called ``name``.

    Raises:
        ImportError: its library is not installed (the message says which).
    """
    return FACTORIES[name]()


__all__ = ["BASELINE", "FACTORIES", "Contender", "IdlePlan", "load"]
