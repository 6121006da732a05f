"""api.connection: the limits read from ca.json, and HTTP/1.1 as clients see it (keep-alive,
pipelining, HEAD, 100-continue, errors, deadlines) from a real Connection on a loopback
socket, served by an asyncio loop in a thread with the worker's app threads."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api.connection import Connection, Limits
from api.worker import AppThreads
from api.wsgi import DateHeader
from appliance.config_schema import ServerLimitsSchema


def test_limits_default_when_absent() -> None:
    assert Limits.from_config(None) == Limits()
    assert Limits.from_config(ServerLimitsSchema()) == Limits()
    # null and "" mean the default, as in Go.
    unset = ServerLimitsSchema.model_validate({"requestTimeout": "", "maxConnections": None})
    assert Limits.from_config(unset) == Limits()


def test_limits_from_go_durations() -> None:
    limits = Limits.from_config(
        ServerLimitsSchema.model_validate(
            {"requestTimeout": "1m30s", "handshakeTimeout": "500ms", "keepAliveTimeout": "2s",
             "maxConnections": 7}
        )
    )
    assert (limits.request_timeout, limits.handshake_timeout, limits.keepalive_timeout) == (
        90.0,
        0.5,
        2.0,
    )
    assert limits.max_connections == 7
    assert limits.max_body == Limits().max_body


# --- a Connection on a socket ------------------------------------------------------------


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    path = environ["PATH_INFO"]
    if path == "/evil":
        start_response("200 OK", [("X-Evil", "a\r\nInjected: yes")])
        return [b"no"]
    if path == "/boom":
        raise RuntimeError("a bug outside falcon's handlers")
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    seen = (
        f"{environ['REQUEST_METHOD']} {path}?{environ['QUERY_STRING']} body={body.decode()} "
        f"length={environ.get('CONTENT_LENGTH')} thing={environ.get('HTTP_X_THING')} "
        f"{environ['SERVER_PROTOCOL']}"
    ).encode()
    start_response("201 Created", [("Content-Type", "text/plain"),
                                   ("Content-Length", str(len(seen)))])
    return [seen]


class _Worker:
    """What a Connection uses of api.worker.FrontWorker."""

    alive = True

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: Limits) -> None:
        self.loop = loop
        self.limits = limits
        self.connections: set[Connection] = set()
        self.app_threads = AppThreads(loop, _app, 2)
        self.dispatch = self.app_threads.submit
        self.date = DateHeader()
        self.log = logging.getLogger("test.connection")


LIMITS = Limits(request_timeout=5.0, keepalive_timeout=1.0, max_body=1000)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    worker = _Worker(loop, LIMITS)
    server = loop.run_until_complete(
        loop.create_server(lambda: Connection(worker), "127.0.0.1", 0)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.sockets[0].getsockname()[1]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    server.close()
    worker.app_threads.close()


class _Client:
    """A raw HTTP/1.1 client: what the server writes, as it writes it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[str, dict[str, str], bytes]:
        """One response: status line, headers (lower-case names), body by Content-Length."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
        length = int(headers.get("content-length", "0")) if "HEAD" not in status else 0
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self) -> bool:
        """True once the server has closed the connection (waits for it, up to 10 s)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"closed by the server; had {self.buffer!r}"
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(port: int) -> Iterator[_Client]:
    c = _Client(port)
    yield c
    c.close()


def _get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: ca", *extra, "", ""]).encode()


def test_keep_alive_serves_requests_one_after_another(client: _Client) -> None:
    for n in range(3):
        client.send(_get(f"/a?n={n}", "X-Thing: 1", "X-Thing: 2"))
        status, headers, body = client.response()
        assert status == "HTTP/1.1 201 Created"
        assert body == f"GET /a?n={n} body= length=None thing=1,2 HTTP/1.1".encode()
        assert headers["content-length"] == str(len(body))
        assert headers["date"].endswith(" GMT")
        assert "connection" not in headers


def test_pipelined_requests_are_answered_in_order(client: _Client) -> None:
    client.send(
        _get("/one")
        + b"POST /two HTTP/1.1\r\nHost: ca\r\nContent-Length: 3\r\n\r\nabc"
        + _get("/three", "Connection: close")
    )
    answers = [client.response() for _ in range(3)]
    assert [body.split(b" ")[1] for _, _, body in answers] == [b"/one?", b"/two?", b"/three?"]
    assert answers[1][2].startswith(b"POST /two? body=abc length=3 ")
    assert answers[2][1]["connection"] == "close"
    assert client.closed()


@pytest.mark.parametrize("request_bytes", [
    _get("/a", "Connection: close"),
    _get("/a", "Connection: keep-alive, Close"),
    b"GET /a HTTP/1.0\r\n\r\n",
])
def test_a_client_that_asks_to_close_gets_one_answer(client: _Client, request_bytes: bytes) -> None:
    client.send(request_bytes)
    status, headers, _ = client.response()
    assert status == "HTTP/1.1 201 Created"
    assert headers["connection"] == "close"
    assert client.closed()


def test_head_sends_the_headers_of_get_and_no_body(client: _Client) -> None:
    client.send(b"HEAD /a HTTP/1.1\r\nHost: ca\r\n\r\n" + _get("/after"))
    head_status, head_headers, _ = client.response()
    assert head_status == "HTTP/1.1 201 Created"
    assert int(head_headers["content-length"]) > 0  # GET's length
    _, _, body = client.response()  # the next answer starts right after HEAD's headers
    assert body.startswith(b"GET /after?")


def test_a_chunked_body_reaches_the_app_whole(client: _Client) -> None:
    client.send(b"POST /c HTTP/1.1\r\nHost: ca\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert client.response()[2].startswith(b"POST /c? body=abcde length=5 ")


def test_expect_100_continue_gets_an_interim_answer(client: _Client) -> None:
    client.send(b"POST /e HTTP/1.1\r\nHost: ca\r\nExpect: 100-continue\r\n"
                b"Content-Length: 2\r\n\r\n")
    assert client.response()[0] == "HTTP/1.1 100 "
    client.send(b"hi")
    assert client.response()[2].startswith(b"POST /e? body=hi length=2 ")


def test_underscored_headers_are_dropped(client: _Client) -> None:
    client.send(_get("/u", "X_Thing: posing"))
    assert b"thing=None" in client.response()[2]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"POST /a HTTP/1.1\r\nHost: ca\r\nContent-Length: 5000\r\n\r\n", 413),
    ],
)
def test_requests_we_will_not_run_get_a_json_error_and_a_close(
    client: _Client, request_bytes: bytes, status: int
) -> None:
    client.send(request_bytes)
    line, headers, body = client.response()
    assert line.startswith(f"HTTP/1.1 {status} ")
    assert body.startswith(b'{"status":%d,' % status)
    assert headers["connection"] == "close"
    assert client.closed()


@pytest.mark.parametrize("path", ["/evil", "/boom"])
def test_an_app_bug_is_a_500_never_a_broken_frame(client: _Client, path: str) -> None:
    client.send(_get(path))
    line, headers, body = client.response()
    assert line == "HTTP/1.1 500 Internal Server Error"
    assert "injected" not in headers
    assert body.startswith(b'{"status":500,')


def test_no_content_has_no_length_and_keeps_the_connection(client: _Client) -> None:
    client.send(_get("/empty") + _get("/next"))
    status, headers, _ = client.response()
    assert status == "HTTP/1.1 204 No Content" and "content-length" not in headers
    assert client.response()[2].startswith(b"GET /next?")


def test_a_busy_connection_outlives_its_first_keep_alive_deadline(client: _Client) -> None:
    """The keep-alive deadline (1 s) set after the first answer gives way to the request
    deadline (5 s) once the next request starts, though its body comes after 1.5 s."""
    client.send(_get("/first"))
    client.response()
    client.send(b"POST /second HTTP/1.1\r\nHost: ca\r\nContent-Length: 2\r\n\r\n")
    time.sleep(1.5)
    client.send(b"ok")
    assert client.response()[2].startswith(b"POST /second? body=ok ")


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(client: _Client) -> None:
    client.send(_get("/a"))
    client.response()
    assert client.closed()  # within LIMITS.keepalive_timeout; recv waits up to 10 s
