"""The appliance's gunicorn worker: an asyncio front that reads whole requests, threads that sign.

Why a worker of our own (hand-written code needs a reason): gunicorn's gthread worker does the
TLS handshake and reads the request in the same threads that run the application, so a handful
of clients that stall mid-body stop issuance for everyone; the gevent worker runs signing on
its event loop and bounds nothing. Here each worker runs one asyncio loop that does every TLS
handshake and reads every request *completely*, under deadlines and a cap on connections; only
a whole request reaches the small thread pool that runs the falcon app. HTTP/1.1 framing is
h11's and TLS is the standard library's; api/connection.py moves the bytes, builds the WSGI
environ and keeps time. Everything else (master, signals, heartbeat, reload) is gunicorn's.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import collections
import contextlib
import logging
import os
import queue
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.workers.base import Worker

from api.connection import Connection, Limits
from api.inline import InlineRequests, InlineRoutes
from api.wsgi import DateHeader, call_app

log = logging.getLogger(__name__)

_Job = tuple[Connection, dict[str, Any]]


class AppThreads:
    """The threads that run the app, fed whole requests by the loop.

    Leaner than a ThreadPoolExecutor, and measured so: no Future, lock or condition per
    request; a thread hands its answer back on a deque, and the loop is woken once for
    whatever answers are waiting rather than once per answer."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, app: Callable[..., Iterable[bytes]], count: int
    ) -> None:
        self.loop = loop
        self.app = app
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._answers: collections.deque[tuple[Connection, Any]] = collections.deque()
        self._wake_pending = False
        self._threads = [
            threading.Thread(target=self._run, name=f"app_{n}", daemon=True)
            for n in range(max(1, count))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, connection: Connection, environ: dict[str, Any]) -> None:
        """From the loop: run the app on `environ`; `connection.respond` gets the outcome."""
        self._jobs.put((connection, environ))

    def close(self) -> None:
        """Let the threads end once the queued requests are done (they are daemons)."""
        for _ in self._threads:
            self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            connection, environ = job
            outcome: Any
            try:
                outcome = call_app(self.app, environ)
            except BaseException as exc:  # answered as a 500 by the loop
                outcome = exc
            del environ, job
            self._answers.append((connection, outcome))
            # The GIL orders these: the loop clears the flag before it drains, so an answer
            # appended after the drain began either is drained or finds the flag clear.
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    self.loop.call_soon_threadsafe(self._drain)
                except RuntimeError:  # the loop is closed: the worker is exiting
                    return

    def _drain(self) -> None:
        self._wake_pending = False
        answers = self._answers
        while answers:
            connection, outcome = answers.popleft()
            try:
                connection.respond(outcome)
            except Exception:  # one connection's failure must not strand the others
                log.exception("answering a request failed")


class _ServerTLSProtocol(asyncio.sslproto.SSLProtocol):
    """asyncio's server-side TLS, counted from accept (not only once the handshake is done,
    so a graceful stop waits for handshakes in progress), and a failed handshake still sends
    OpenSSL's alert: asyncio drops the connection with the alert (protocol_version,
    bad_certificate...) still in its buffer, so a client would see a bare EOF instead of the
    reason, unlike step-ca. One private hook of asyncio; tests/e2e/test_server_tls.py notices
    if it moves."""

    def __init__(self, worker: FrontWorker, context: ssl.SSLContext) -> None:
        super().__init__(
            worker.loop,
            Connection(worker),
            context,
            None,  # type: ignore[arg-type]  # a server-side connection has no waiter
            server_side=True,
            ssl_handshake_timeout=worker.limits.handshake_timeout,  # type: ignore[arg-type]
            ssl_shutdown_timeout=2.0,
        )
        self._open = worker.open_transports

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._open.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._open.discard(self)
        super().connection_lost(exc)

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            with contextlib.suppress(OSError):
                self._process_outgoing()  # type: ignore[attr-defined]
        super()._on_handshake_complete(handshake_exc)


class FrontWorker(Worker):  # type: ignore[misc]
    """gunicorn worker: asyncio accepts, handshakes and reads; a pool of `threads` runs the app."""

    limits = Limits()

    loop: asyncio.AbstractEventLoop
    app_threads: AppThreads
    dispatch: Callable[[Connection, dict[str, Any]], None]
    """Where a whole request goes: the app threads, or the loop itself (api/inline.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[Connection] = set()
        self.open_transports: set[asyncio.BaseProtocol] = set()  # TLS, from accept on
        self.date = DateHeader()
        self.servers: list[asyncio.Server] = []
        limits = getattr(self.app, "limits", None)
        if isinstance(limits, Limits):
            self.limits = limits

    def init_process(self) -> None:
        """In the worker process only: gunicorn builds this object in the master too, where
        an event loop would outlive its fork and complain when collected."""
        self.loop = asyncio.new_event_loop()
        super().init_process()  # loads the app (load_wsgi), then run()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.app_threads = AppThreads(self.loop, self.wsgi, self.cfg.threads)
        self.dispatch = self.app_threads.submit
        batches: InlineRequests | None = None
        routes = getattr(self.app, "inline_routes", None)
        if callable(routes) and isinstance(inline := routes(), InlineRoutes) and inline.enabled:
            batches = InlineRequests(
                self.loop, self.wsgi, self.app_threads, inline, self.connections
            )
            self.dispatch = batches.submit
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.app_threads.close()
            if batches is not None:
                batches.close()
            self.loop.close()

    def init_signals(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        self.loop.add_signal_handler(signal.SIGTERM, self._graceful)
        self.loop.add_signal_handler(signal.SIGQUIT, self._quick)
        self.loop.add_signal_handler(signal.SIGINT, self._quick)
        self.loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        self.loop.add_signal_handler(signal.SIGWINCH, lambda: None)

    def _graceful(self) -> None:
        """SIGTERM: stop accepting now; _shutdown lets the open connections finish."""
        self.alive = False
        self._stop_accepting()

    def _stop_accepting(self) -> None:
        """Take no more connections, but leave the servers open until those just accepted
        have their protocols: asyncio accepts in one turn of the loop and makes the
        transport in the next, which then attaches to its server, and a server closed in
        between (Server._attach asserts it is open) drops that connection unanswered, a
        reset for the client during a reload."""
        for server in self.servers:
            for sock in server.sockets:
                self.loop.remove_reader(sock.fileno())

    def _quick(self) -> None:
        self.alive = False
        self.cfg.worker_int(self)
        os._exit(0)

    def _ssl_context(self) -> ssl.SSLContext | None:
        """The context handshakes start on: the app's session context when it has one (made
        in the master, so resumed sessions work across workers; see api/tls.py), else the
        hook's. gunicorn's `ssl_context` hook runs once per connection, through an SNI
        callback that swaps the handshake onto the hook's current context (a renewed
        certificate); the session keys stay the base context's."""
        if not self.cfg.is_ssl:
            return None
        from gunicorn import sock

        session = getattr(self.app, "tls_session_context", None)
        base: ssl.SSLContext = session() if callable(session) else sock.ssl_context(self.cfg)

        def per_connection(obj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
            current = sock.ssl_context(self.cfg)
            if current is not obj.context:
                obj.context = current

        base.sni_callback = per_connection
        return base

    async def _serve(self) -> None:
        context = self._ssl_context()

        def protocol() -> asyncio.BaseProtocol:
            return Connection(self) if context is None else _ServerTLSProtocol(self, context)

        for listener in self.sockets:
            server = await self.loop.create_server(
                protocol, sock=listener.sock, backlog=self.cfg.backlog
            )
            self.servers.append(server)
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("parent changed, shutting down: %s", self)
                break
            await asyncio.sleep(1.0)
        await self._shutdown()

    async def _shutdown(self) -> None:
        """Stop accepting; serve what is in flight, and a request arriving on an idle
        keep-alive connection (with `Connection: close`), until each connection ends by
        itself or by its timer, or graceful_timeout runs out."""
        self._stop_accepting()
        # A connection accepted just before is handed to its protocol by a task of the loop:
        # let those run, or the sets below look empty and it is reset unserved.
        await asyncio.sleep(0.05)
        for server in self.servers:
            server.close()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while (self.connections or self.open_transports) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn._close()
