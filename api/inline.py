"""Signing requests run in batches that share one commit, on the event loop or one thread.

Why (measured, README "Benchmarks"): handing each request to an app thread and its answer back
costs a queue, a wake-up of the loop and GIL hand-offs between five threads, a sizeable share
of a certificate's CPU. So the signing requests that became ready together run one after the
other as a batch: their issuances share one transaction (Repository.deferred) and their
answers leave only after its commit, so no certificate is handed out before it is stored. If
the commit fails, every success of the batch is answered 503 instead.

Where a batch runs: with the CA's key in a file or a PKCS#11 token the signing routes wait on
nothing slow (a file key signs in microseconds, SoftHSM2 in about 0.25 ms), so the loop runs
the batch itself. A YubiKey takes tens of milliseconds per signature, which the loop must not
wait out: its batches run on one thread of their own, one at a time, and the requests that
become ready meanwhile form the next batch.

Code that would block (a JWKS fetch) raises pki.blocking.WouldBlock on either thread before
anything is written; that request goes to the app threads as every other route does.
"""

from __future__ import annotations

import asyncio
import logging
import queue
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

#: The routes that run in batches: they sign with the CA's key and write one issuance.
INLINE_PATHS = frozenset(
    prefix + path
    for prefix in ("", "/1.0")
    for path in ("/sign", "/renew", "/re-sign", "/rekey")
)


class InlineRoutes:
    """Which requests an authority lets run in batches, where, and the batch they share."""

    def __init__(self, authority: Authority) -> None:
        self._repository = authority.repository
        # Batches need SQLite. On PostgreSQL each issuance commits alone (writers there do
        # not exclude each other), so a batch would only queue its requests behind one
        # another's round trips: those CAs sign on the app threads (measured slower batched).
        self.enabled = authority.repository.engine.dialect.name == "sqlite"
        # A key in a file or a PKCS#11 token signs on the loop (measured: for SoftHSM2, 8-15%
        # less CPU per certificate and a lower p99 than on the app threads). A YubiKey's batches
        # run on a thread of their own (InlineRequests). An HSM on the network holds the loop
        # for its round trip, as the batch's commit does for its fsync; its signatures are
        # one at a time per process anyway (one PKCS#11 session per token).
        self.on_loop = not authority.issuer_signer.location.slow_signer

    def accepts(self, environ: dict[str, Any]) -> bool:
        return (
            self.enabled
            and environ["REQUEST_METHOD"] == "POST"
            and environ["PATH_INFO"] in INLINE_PATHS
        )

    def deferred(self) -> AbstractContextManager[DeferredCommit]:
        return self._repository.deferred()


_Ready = list[tuple["Connection", dict[str, Any]]]
_Answers = list[tuple["Connection", "Response | BaseException"]]


class InlineRequests:
    """Runs accepted requests in batches (on the loop, or on the batch thread when
    `routes.on_loop` is false); everything else goes to `threads`."""

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
        self._ready: _Ready = []
        self._timer: asyncio.TimerHandle | None = None
        self._batch_thread: _BatchThread | None = None
        self._running = False  # a batch is on the batch thread
        fast = [threading.get_ident()]
        if not routes.on_loop:
            self._batch_thread = _BatchThread(self._run_batch, self._batch_done, loop)
            fast.append(self._batch_thread.ident)
        run_here_only_fast(*fast)

    def submit(self, connection: Connection, environ: dict[str, Any]) -> None:
        """From the loop: run the request, in a batch or on an app thread."""
        if not self.routes.accepts(environ):
            self.threads.submit(connection, environ)
            return
        ready = self._ready
        ready.append((connection, environ))
        if self._running:  # the batch under way takes these along when it ends
            return
        if len(ready) >= len(self.connections):  # no other connection can join this batch
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            self.loop.call_soon(self._run_ready)
        elif self._timer is None and len(ready) == 1:
            self._timer = self.loop.call_later(LINGER_SECONDS, self._run_ready)

    def close(self) -> None:
        """Let the batch thread end once its batch is done (it is a daemon)."""
        if self._batch_thread is not None:
            self._batch_thread.close()

    def _run_ready(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running:
            return
        ready, self._ready = self._ready, []
        if not ready:  # already run, by the other of the timer and a full batch
            return
        if self._batch_thread is None:
            _answer(self._run_batch(ready))
        else:
            self._running = True
            self._batch_thread.put(ready)

    def _batch_done(self, answers: _Answers) -> None:
        """On the loop: the batch thread's answers; the requests that waited go next."""
        self._running = False
        _answer(answers)
        if self._ready:
            self._run_ready()

    def _run_batch(self, ready: _Ready) -> _Answers:
        """Run a batch in one deferred commit (on the loop or the batch thread)."""
        answers: _Answers = []
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
        return answers


class _BatchThread:
    """One thread that runs batches, one at a time, and hands their answers to the loop."""

    def __init__(
        self,
        run: Callable[[_Ready], _Answers],
        done: Callable[[_Answers], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._run, self._done, self._loop = run, done, loop
        self._batches: queue.SimpleQueue[_Ready | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="batches", daemon=True)
        self._thread.start()
        assert self._thread.ident is not None
        self.ident: int = self._thread.ident

    def put(self, ready: _Ready) -> None:
        self._batches.put(ready)

    def close(self) -> None:
        self._batches.put(None)

    def _serve(self) -> None:
        while (ready := self._batches.get()) is not None:
            answers: _Answers
            try:
                answers = self._run(ready)
            except BaseException as exc:  # answered as a 500 each by the loop
                answers = [(connection, exc) for connection, _ in ready]
            del ready
            try:
                self._loop.call_soon_threadsafe(self._done, answers)
            except RuntimeError:  # the loop is closed: the worker is exiting
                return


def _answer(answers: _Answers) -> None:
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
