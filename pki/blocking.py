"""Which thread may block: the worker's event loop runs fast requests itself and must not wait.

The appliance's worker (api/worker.py) runs the signing routes on its event-loop thread,
where a blocking call would stall every connection of the worker. Code about to block on the
network (a JWKS fetch, say) calls `may_block` first: on the loop's thread that raises
`WouldBlock`, and the worker runs the request again on one of its app threads, where blocking
is fine. Nothing has been written by then: the calls sit before the request's transaction.
"""

from __future__ import annotations

import threading


class WouldBlock(BaseException):
    """Raised on the event loop's thread by code about to block. A BaseException, so that no
    `except Exception` on the way (falcon's error handlers) turns it into an answer."""


_loop_thread: int | None = None


def run_here_only_fast(thread_id: int | None) -> None:
    """Name the thread (threading.get_ident) that must not block; None: no such thread."""
    global _loop_thread
    _loop_thread = thread_id


def may_block(what: str) -> None:
    """Before a call that can block (`what` says which): raises WouldBlock on the loop's
    thread, returns at once anywhere else."""
    if _loop_thread is not None and threading.get_ident() == _loop_thread:
        raise WouldBlock(what)
