"""api.worker.AppThreads: every request handed to the app threads comes back to the loop,
answers and app failures alike, however many finish at once."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from api.worker import AppThreads, FrontWorker


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ["n"] % 7 == 0:
        raise RuntimeError(f"failed {environ['n']}")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(environ["n"]).encode()]


class _Connection:
    """Records what the loop hands back, and in which thread."""

    def __init__(self, done: asyncio.Future[None], outcomes: dict[int, Any], n: int) -> None:
        self.done, self.outcomes, self.n = done, outcomes, n

    def respond(self, outcome: Any) -> None:
        assert threading.current_thread() is threading.main_thread()  # the loop's thread
        self.outcomes[self.n] = outcome
        if len(self.outcomes) == 200 and not self.done.done():
            self.done.set_result(None)


def test_every_request_comes_back_to_the_loop() -> None:
    async def main() -> dict[int, Any]:
        loop = asyncio.get_running_loop()
        threads = AppThreads(loop, _app, 4)
        done: asyncio.Future[None] = loop.create_future()
        outcomes: dict[int, Any] = {}
        for n in range(200):
            threads.submit(_Connection(done, outcomes, n), {"n": n})  # type: ignore[arg-type]
        await asyncio.wait_for(done, 30)
        threads.close()
        return outcomes

    outcomes = asyncio.run(main())
    assert sorted(outcomes) == list(range(200))
    for n, outcome in outcomes.items():
        if n % 7 == 0:
            assert isinstance(outcome, RuntimeError) and str(outcome) == f"failed {n}"
        else:
            assert outcome == ("200 OK", [("Content-Type", "text/plain")], str(n).encode())


def test_a_connection_accepted_as_the_worker_stops_is_still_served() -> None:
    """SIGTERM landing between asyncio's accept and the protocol's creation (a reload): the
    connection must be served, not dropped unanswered (a reset for the client)."""
    loop = asyncio.new_event_loop()
    worker = object.__new__(FrontWorker)  # the parts of a worker that stopping uses
    worker.loop, worker.alive, worker.servers = loop, True, []
    worker.connections, worker.open_transports = set(), set()
    worker.cfg = SimpleNamespace(graceful_timeout=5)

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            worker.open_transports.add(self)

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)
            self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            worker.open_transports.discard(self)

    def factory() -> asyncio.Protocol:
        worker._graceful()  # the signal, handled after the accept, before the protocol
        return Echo()

    listener = socket.create_server(("127.0.0.1", 0))
    master = listener.dup()  # gunicorn's master keeps the listening socket open
    try:
        worker.servers.append(loop.run_until_complete(loop.create_server(factory, sock=listener)))
        with socket.create_connection(listener.getsockname()[:2], timeout=10) as client:
            client.sendall(b"ping")
            loop.run_until_complete(asyncio.sleep(0.2))  # accepted, then the signal
            assert not worker.alive
            loop.run_until_complete(worker._shutdown())
            assert client.recv(4) == b"ping"
    finally:
        master.close()
        loop.close()
