"""Signing requests run on the worker's event loop itself, in batches that share one commit.

Why (measured, README "Benchmarks"): handing a request to an app thread and its answer back
costs a queue, a wake-up of the loop and GIL hand-offs between five threads, a sizeable share
of a certificate's CPU. With the CA's key in a file the signing routes do no blocking I/O, so
the loop runs them itself: the requests that became ready together run one after the other;
their issuances share one transaction (Repository.deferred) and their answers leave only after
its commit, so no certificate is handed out before it is stored. If the commit fails, every
success of the batch is answered 503 instead.

Code that would block (a JWKS fetch) raises pki.blocking.WouldBlock on the loop's thread
before anything is written; that request goes to the app threads as every other route does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from api.errors import status_message
from api.wsgi import Response, call_app, json_error
from appliance.db.issuance import DeferredCommit
from pki.blocking import WouldBlock, run_here_only_fast

if TYPE_CHECKING:
    from api.connection import Connection
    from api.worker import AppThreads
    from appliance.authority import Authority

log = logging.getLogger(__name__)

#: How long the first request of a batch waits for others to join it, unless every open
#: connection has one ready already: a commit shared by two requests costs each half its
#: CPU (an fsync and a dozen WAL pages), measured worth the wait (README "Benchmarks").
LINGER_SECONDS = 0.001

#: The routes that may run on the loop: they sign with the CA's key and write one issuance.
INLINE_PATHS = frozenset(
    prefix + path
    for prefix in ("", "/1.0")
    for path in ("/sign", "/renew", "/re-sign", "/rekey")
)


class InlineRoutes:
    """Which requests an authority lets the loop run, and the batch their writes share."""

    def __init__(self, authority: Authority) -> None:
        self._repository = authority.repository
        # Only a key in a file signs on the loop. A YubiKey takes tens of milliseconds per
        # signature, which the loop would wait out; and a PKCS#11 module is a vendor's
        # library that may block, or (SoftHSM2 does) leave entries on OpenSSL's per-thread
        # error queue, which Python's ssl then reports as the failure of the loop's next TLS
        # read (a dropped connection). Such CAs sign on the app threads. So do CAs on
        # PostgreSQL, where each issuance commits alone and its round trips would hold the
        # loop (measured slower there).
        self.enabled = (
            not authority.issuer_signer.hardware
            and authority.repository.engine.dialect.name == "sqlite"
        )

    def accepts(self, environ: dict[str, Any]) -> bool:
        return (
            self.enabled
            and environ["REQUEST_METHOD"] == "POST"
            and environ["PATH_INFO"] in INLINE_PATHS
        )

    def deferred(self) -> AbstractContextManager[DeferredCommit]:
        return self._repository.deferred()


class InlineRequests:
    """Runs accepted requests on the loop in batches; everything else goes to `threads`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: Callable[..., Iterable[bytes]],
        threads: AppThreads,
        routes: InlineRoutes,
        connections: Collection[Connection],
    ) -> None:
        self.loop = loop
        self.app = app
        self.threads = threads
        self.routes = routes
        self.connections = connections
        self._ready: list[tuple[Connection, dict[str, Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        run_here_only_fast(threading.get_ident())

    def submit(self, connection: Connection, environ: dict[str, Any]) -> None:
        """From the loop: run the request, here or on an app thread."""
        if not self.routes.accepts(environ):
            self.threads.submit(connection, environ)
            return
        ready = self._ready
        ready.append((connection, environ))
        if len(ready) >= len(self.connections):  # no other connection can join this batch
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            self.loop.call_soon(self._run_ready)
        elif self._timer is None and len(ready) == 1:
            self._timer = self.loop.call_later(LINGER_SECONDS, self._run_ready)

    def _run_ready(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ready, self._ready = self._ready, []
        if not ready:  # already run, by the other of the timer and a full batch
            return
        answers: list[tuple[Connection, Response | BaseException]] = []
        with self.routes.deferred() as batch:
            for connection, environ in ready:
                try:
                    outcome: Response | BaseException = call_app(self.app, environ)
                except WouldBlock:
                    environ["wsgi.input"].seek(0)
                    self.threads.submit(connection, environ)
                    continue
                except Exception as exc:  # answered as a 500 by the connection
                    outcome = exc
                answers.append((connection, outcome))
        if batch.error is not None:
            log.error(
                "storing a batch of %d requests failed, their certificates are withheld: %s",
                len(answers),
                batch.error,
            )
            answers = [(c, _withheld(outcome)) for c, outcome in answers]
        for connection, outcome in answers:
            try:
                connection.respond(outcome)
            except Exception:  # one connection's failure must not strand the others
                log.exception("answering a request failed")


def _withheld(outcome: Response | BaseException) -> Response | BaseException:
    """A success whose record was not committed becomes a 503 (the client may retry)."""
    if isinstance(outcome, tuple) and outcome[0].startswith("2"):
        return json_error(503, status_message(503))
    return outcome
