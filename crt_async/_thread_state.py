"""One lasting Python thread state for each CRT thread that calls into Python.

awscrt enters Python from its own (C) threads with ``PyGILState_Ensure`` and
leaves with ``PyGILState_Release``.  On a thread that Python did not start,
that pair creates a thread state on entry and destroys it on exit: once per
callback.  Creating one maps a fresh frame stack and destroying it unmaps the
stack again, which makes the kernel flush the TLB on every CPU the process
runs on.  For small requests that churn costs the CRT thread more CPU than all
the rest of its work together (benchmarks/README.md, "What changed in session 4").

:func:`keep_thread_state` takes one extra ``PyGILState_Ensure`` that is never
released, so the thread's state outlives the callback and later callbacks on
that thread only take the GIL.  On a C thread the kept state is never freed
while Python runs, so it is kept only from HTTP and WebSocket callbacks, which
run on the CRT's event-loop threads (they live as long as the process) or, with
``MockTransport``, on threads Python started (whose state Python frees when
they end anyway); not from a future's done-callback, which any C thread of any
library may run.
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["keep_thread_state"]

_this_thread = threading.local()  # lives in the thread state: gone with it


def keep_thread_state() -> None:
    """Keep the calling thread's Python thread state alive from now on.

    Call it from a CRT callback (with the GIL held); cheap when the state is
    already kept, and harmless on a thread Python started.
    """
    if getattr(_this_thread, "kept", False):
        return
    _this_thread.kept = True
    ctypes.pythonapi.PyGILState_Ensure()
