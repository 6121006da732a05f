"""Signing requests in batches (api/inline.py), on the worker's event loop or on its batch
thread: answered only after their batch's commit, withheld (503) when it fails, and sent to
the app threads when they would block or are not signing routes."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from api.errors import status_message
from api.inline import INLINE_PATHS, InlineRequests, InlineRoutes
from api.worker import AppThreads
from api.wsgi import Response
from appliance.db.issuance import DeferredCommit
from keystores import KeyLocation
from pki.blocking import may_block, run_here_only_fast


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/block":
        may_block("a test fetch")
    status = "400 Bad Request" if path == "/bad" else "201 Created"
    start_response(status, [("Content-Type", "text/plain")])
    return [threading.current_thread().name.encode()]


class _Routes:
    """InlineRoutes' two methods: every path but /other runs in batches, on the loop or not."""

    def __init__(self, events: list[str], on_loop: bool) -> None:
        self.events = events
        self.fail = False
        self.on_loop = on_loop
        self.gate: threading.Event | None = None  # set: a batch waits for it before its commit

    def accepts(self, environ: dict[str, Any]) -> bool:
        return bool(environ["PATH_INFO"] != "/other")

    @contextmanager
    def deferred(self) -> Iterator[DeferredCommit]:
        batch = DeferredCommit(None)
        self.events.append("begin")
        yield batch
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            batch.error = RuntimeError("disk I/O error")
        self.events.append("commit")


class _Connection:
    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events = name, events
        self.outcome: Response | BaseException | None = None
        self.done = threading.Event()

    def respond(self, outcome: Response | BaseException) -> None:
        self.events.append(f"answer {self.name}")
        self.outcome = outcome
        self.done.set()


class _Loop:
    """An event loop on a thread of its own, with InlineRequests made on it."""

    def __init__(self, connections: int, on_loop: bool = True) -> None:
        self.events: list[str] = []
        self.routes = _Routes(self.events, on_loop)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.threads = AppThreads(self.loop, _app, 1)
        self.open: list[object] = [object()] * connections
        made = asyncio.run_coroutine_threadsafe(self._make(), self.loop)
        self.inline = made.result(10)

    async def _make(self) -> InlineRequests:
        return InlineRequests(self.loop, _app, self.threads, self.routes, self.open)  # type: ignore[arg-type]

    @property
    def batch_thread(self) -> str:
        """The name of the thread that runs the batches."""
        return self.thread.name if self.routes.on_loop else "batches"

    def send(self, *paths: str, wait: bool = True) -> list[_Connection]:
        """Submit one request per path in one turn of the loop; wait for every answer."""
        conns = [_Connection(p, self.events) for p in paths]

        def submit_all() -> None:
            for conn, path in zip(conns, paths, strict=True):
                environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "wsgi.input": io.BytesIO()}
                self.inline.submit(conn, environ)  # type: ignore[arg-type]

        self.loop.call_soon_threadsafe(submit_all)
        for conn in conns if wait else ():
            assert conn.done.wait(10), f"{conn.name} was never answered"
        return conns

    def close(self) -> None:
        self.threads.close()
        self.inline.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        run_here_only_fast(None)


@pytest.fixture(params=[True, False], ids=["on the loop", "on the batch thread"])
def two(request: pytest.FixtureRequest) -> Iterator[_Loop]:
    loop = _Loop(connections=2, on_loop=request.param)
    yield loop
    loop.close()


def _status(conn: _Connection) -> str:
    assert isinstance(conn.outcome, tuple), conn.outcome
    return conn.outcome[0]


def _ran_on(conn: _Connection) -> str:
    assert isinstance(conn.outcome, tuple), conn.outcome
    return conn.outcome[2].decode()


def test_ready_requests_share_a_batch_and_are_answered_after_its_commit(two: _Loop) -> None:
    a, b = two.send("/a", "/b")
    assert two.events == ["begin", "commit", "answer /a", "answer /b"]
    assert _status(a) == _status(b) == "201 Created"
    assert _ran_on(a) == _ran_on(b) == two.batch_thread


def test_a_lone_request_waits_briefly_for_company_then_runs(two: _Loop) -> None:
    (a,) = two.send("/a")  # two connections are open: the batch lingers, then runs alone
    assert two.events == ["begin", "commit", "answer /a"]
    assert _status(a) == "201 Created"


def test_a_failed_commit_withholds_every_success_of_the_batch(two: _Loop) -> None:
    two.routes.fail = True
    ok, bad = two.send("/a", "/bad")
    assert ok.outcome == (
        "503 Service Unavailable",
        [("Content-Type", "application/json")],
        b'{"status":503,"message":"%s"}\n' % status_message(503).encode(),
    )
    assert _status(bad) == "400 Bad Request", "a refusal stored nothing: it stands"


def test_a_request_that_would_block_moves_to_an_app_thread(two: _Loop) -> None:
    blocked, fast = two.send("/block", "/a")
    assert _status(blocked) == "201 Created"
    assert _ran_on(blocked) == "app_0"
    assert _ran_on(fast) == two.batch_thread


def test_requests_ready_while_the_batch_thread_works_form_the_next_batch() -> None:
    loop = _Loop(connections=3, on_loop=False)
    try:
        loop.routes.gate = threading.Event()
        (first,) = loop.send("/first", wait=False)  # lingers 1 ms, then holds the thread
        deadline = time.monotonic() + 10
        while "begin" not in loop.events and time.monotonic() < deadline:
            time.sleep(0.01)
        second, third = loop.send("/second", "/third", wait=False)

        async def waiting() -> int:
            return len(loop.inline._ready)

        # The loop is free while the batch thread works: it answers, and holds both requests.
        assert asyncio.run_coroutine_threadsafe(waiting(), loop.loop).result(5) == 2
        assert loop.events == ["begin"]
        loop.routes.gate.set()
        for conn in (first, second, third):
            assert conn.done.wait(10)
        assert loop.events == [
            "begin", "commit", "answer /first", "begin", "commit", "answer /second", "answer /third"
        ]
    finally:
        loop.close()


def test_other_routes_run_on_the_app_threads(two: _Loop) -> None:
    (other,) = two.send("/other")
    assert _ran_on(other) == "app_0"
    assert "begin" not in two.events


def test_may_block_returns_at_once_off_the_loop_thread(two: _Loop) -> None:
    may_block("here, on the test's thread")  # returns


def test_the_signing_routes_are_the_inline_ones() -> None:
    assert {"/1.0/sign", "/sign", "/1.0/renew", "/renew", "/1.0/rekey", "/rekey"} <= INLINE_PATHS
    assert "/1.0/revoke" not in INLINE_PATHS and "/ssh/sign" not in INLINE_PATHS


@pytest.mark.parametrize(
    ("key", "database", "inline", "on_loop"),
    [
        ("/ca/secrets/intermediate_ca_key", "sqlite", True, True),
        ("pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca;id=01", "sqlite", True, True),
        ("pkcs11:module-path=/usr/lib/libykcs11.so;id=02", "sqlite", True, False),
        ("yubikey:slot-id=9c", "sqlite", True, False),
        ("/ca/secrets/intermediate_ca_key", "postgresql", False, True),
        ("yubikey:slot-id=9c", "postgresql", False, False),
    ],
)
def test_sqlite_cas_batch_and_a_yubikey_signs_off_the_loop(
    key: str, database: str, inline: bool, on_loop: bool
) -> None:
    authority = SimpleNamespace(
        issuer_signer=SimpleNamespace(location=KeyLocation.split(key)),
        repository=SimpleNamespace(engine=SimpleNamespace(dialect=SimpleNamespace(name=database))),
    )
    routes = InlineRoutes(authority)  # type: ignore[arg-type]
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/1.0/sign"}
    assert routes.enabled is inline
    assert routes.on_loop is on_loop
    assert routes.accepts(environ) is inline
    assert not routes.accepts({**environ, "REQUEST_METHOD": "GET"})
