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


_fast_threads: frozenset[int] = frozenset()


def run_here_only_fast(*thread_ids: int | None) -> None:
    """Name the threads (threading.get_ident) that must not block: the worker's event loop
    and its batch thread, if any. None, or no argument: no such thread."""
    global _fast_threads
    _fast_threads = frozenset(ident for ident in thread_ids if ident is not None)


def may_block(what: str) -> None:
    """Before a call that can block (`what` says which): raises WouldBlock on a thread named
    by `run_here_only_fast`, returns at once anywhere else."""
    if threading.get_ident() in _fast_threads:
        raise WouldBlock(what)
