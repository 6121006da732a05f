"""One HTTP/1.1 client connection of the appliance's worker (api/worker.py): read a whole
request under deadlines with h11, hand it to the pool that runs the app, write the answer,
keep the connection alive or drop it. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import h11

from api.mtls import PEER_CERTIFICATE
from pki.durations import parse_duration

if TYPE_CHECKING:
    from api.worker import FrontWorker
    from appliance.config_schema import ServerLimitsSchema

_INTERNAL = (
    "The certificate authority encountered an Internal Server Error. "
    "Please see the certificate authority logs for more info."
)
_Headers = list[tuple[bytes, bytes]]
_Response = tuple[int, _Headers, bytes]


@dataclass(frozen=True)
class Limits:
    """How long and how much a client may take. Stalled clients are dropped at these bounds."""

    handshake_timeout: float = 5.0
    """Seconds from accept to a finished TLS handshake."""
    request_timeout: float = 10.0
    """Seconds from a request's first byte (or the connection's start) to its last byte."""
    keepalive_timeout: float = 5.0
    """Seconds an idle keep-alive connection is kept between requests."""
    max_connections: int = 1000
    """Open connections per worker; more are closed at once."""
    max_body: int = (1 << 20) + (64 << 10)
    """Bytes of request body; the JSON resources refuse more than 1 MiB themselves."""
    max_header_bytes: int = 32 << 10
    """Bytes of request line and headers."""

    @classmethod
    def from_config(cls, block: ServerLimitsSchema | None) -> Limits:
        """ca.json `serverLimits` (beyond step-ca, checked by the schema): Go durations and a
        connection count, e.g. `{"requestTimeout": "10s", "handshakeTimeout": "5s",
        "keepAliveTimeout": "5s", "maxConnections": 1000}`; absent fields default."""
        if block is None:
            return cls()
        seconds = {
            "handshake_timeout": block.handshakeTimeout,
            "request_timeout": block.requestTimeout,
            "keepalive_timeout": block.keepAliveTimeout,
        }
        values: dict[str, Any] = {
            attr: parse_duration(value).total_seconds() for attr, value in seconds.items() if value
        }
        if block.maxConnections is not None:
            values["max_connections"] = block.maxConnections
        return cls(**values)


def _json_error(status: int, message: str) -> _Response:
    body = b'{"status":%d,"message":"%s"}\n' % (status, message.encode())
    return status, [(b"content-type", b"application/json")], body


def call_app(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> _Response:
    """Run the WSGI app on a complete request (in a pool thread); the whole response body."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda _data: None  # the legacy write() callable; falcon never uses it

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return (
        int(status.split(" ", 1)[0]),
        [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        body,
    )


class DateHeader:
    """The Date header, formatted once a second rather than once a response."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True).encode()
        return self._value


class Connection(asyncio.Protocol):
    """One client connection: read a whole request under a deadline, run it, answer, repeat."""

    def __init__(self, worker: FrontWorker) -> None:
        self.worker = worker
        self.limits = worker.limits
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes
        )
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.busy = False
        self.idle = False
        self.peer_der: bytes | None = None
        self.address_environ: dict[str, str] = {}

    # --- connection life ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.worker.connections) >= self.limits.max_connections:
            transport.abort()
            return
        self.worker.connections.add(self)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            try:
                self.peer_der = ssl_object.getpeercert(binary_form=True) or None
            except (ValueError, ssl.SSLError):
                self.peer_der = None
        # The environ keys that stay the same for every request on this connection.
        server = transport.get_extra_info("sockname")
        peer = transport.get_extra_info("peername")
        server = server if isinstance(server, tuple) else ("", 0)
        peer = peer if isinstance(peer, tuple) else ("", 0)
        self.address_environ = {
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]),
            "REMOTE_ADDR": str(peer[0]),
            "REMOTE_PORT": str(peer[1]),
        }
        self._arm(self.limits.request_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.worker.connections.discard(self)
        self.transport = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.timer = self.worker.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        """Idle too long: close politely. Too slow mid-request: drop without a TLS goodbye."""
        self.timer = None
        if self.transport is None or self.busy:
            return
        if self.idle:  # a quiet keep-alive connection: a polite TLS goodbye
            self._close()
        else:  # a client stalled mid-request gets no more of our time
            self.transport.abort()

    # --- reading ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.idle:  # the first byte of the next request starts its deadline
            self.idle = False
            self._arm(self.limits.request_timeout)
        self.h11.receive_data(data)
        if not self.busy:
            self._read_events()

    def eof_received(self) -> bool | None:
        self.h11.receive_data(b"")
        if not self.busy:
            self._read_events()
        return None

    def _read_events(self) -> None:
        """Consume what h11 can parse; dispatch when a request is complete."""
        while self.transport is not None:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(exc.error_status_hint, "The request could not be completed.")
                return
            if event is h11.NEED_DATA:
                if self.h11.they_are_waiting_for_100_continue:
                    self._write(
                        self.h11.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
                return
            if event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                if self._announced_length(event) > self.limits.max_body:
                    self._refuse(413, "The request body is too large.")
                    return
                self.request = event
                self.body.clear()
            elif isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > self.limits.max_body:
                    self._refuse(413, "The request body is too large.")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    @staticmethod
    def _announced_length(request: h11.Request) -> int:
        for name, value in request.headers:
            if name == b"content-length":
                return int(value)  # h11 has already checked it is a number
        return 0

    # --- running ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """A whole request: stop reading, hand it to a pool thread, answer when it is done."""
        assert self.request is not None and self.transport is not None
        self._disarm()
        self.busy = True
        self.transport.pause_reading()
        environ = self._environ(self.request, bytes(self.body))
        future = self.worker.pool.submit(call_app, self.worker.wsgi, environ)
        future.add_done_callback(lambda f: self.worker.loop.call_soon_threadsafe(self._respond, f))

    def _respond(self, future: Future[_Response]) -> None:
        self.busy = False
        if self.transport is None:  # the client went away meanwhile
            return
        try:
            response = future.result()
        except Exception:  # falcon renders app errors itself; this is a bug in the bridge
            self.worker.log.exception("the application failed outside its error handlers")
            response = _json_error(500, _INTERNAL)
        self._send(*response)
        if self.transport is None:
            return
        if self.h11.our_state is h11.MUST_CLOSE or not self.worker.alive:
            self._close()
            return
        try:
            self.h11.start_next_cycle()
        except h11.LocalProtocolError:  # the client has not finished its side: close
            self._close()
            return
        self.request = None
        self.body.clear()
        pipelined = bool(self.h11.trailing_data[0])
        self.idle = not pipelined
        self._arm(self.limits.request_timeout if pipelined else self.limits.keepalive_timeout)
        self.transport.resume_reading()
        self._read_events()  # a pipelined request may already be buffered

    def _send(self, status: int, headers: _Headers, body: bytes) -> None:
        headers = [*headers, (b"date", self.worker.date.get())]
        if not self.worker.alive:  # shutting down: this is the connection's last answer
            headers.append((b"connection", b"close"))
        head_only = self.request is not None and self.request.method == b"HEAD"
        try:
            out = self.h11.send(h11.Response(status_code=status, headers=headers))
            if body and not head_only:
                out += self.h11.send(h11.Data(data=body))
            out += self.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self.worker.log.exception("could not frame the response")
            self._close()
            return
        self._write(out)

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request we will not run (malformed, too large), then close. Written
        without h11, whose state machine refuses to speak after a broken request."""
        if self.request is None or self.h11.our_state is h11.SEND_RESPONSE:
            reason = {413: b"Payload Too Large", 431: b"Request Header Fields Too Large"}
            code, headers, body = _json_error(status, message)
            lines = [b"HTTP/1.1 %d %s" % (code, reason.get(code, b"Bad Request"))]
            lines += [k + b": " + v for k, v in headers]
            lines += [b"content-length: %d" % len(body), b"connection: close"]
            lines.append(b"date: " + self.worker.date.get())
            self._write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self._close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def _close(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
            self.worker.connections.discard(self)

    # --- the WSGI environ ---------------------------------------------------------------

    def _environ(self, request: h11.Request, body: bytes) -> dict[str, Any]:
        target = request.target
        path, _, query = target.partition(b"?")
        environ: dict[str, Any] = {
            **self.address_environ,
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "RAW_URI": target.decode("latin-1"),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            PEER_CERTIFICATE: self.peer_der,
        }
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
        for name, value in request.headers:
            if b"_" in name:  # Header_Name could pose as header-name: drop, as gunicorn does
                continue
            text = value.decode("latin-1")
            if name == b"content-type":
                environ["CONTENT_TYPE"] = text
                continue
            if name == b"content-length":  # what was read, whatever was announced
                environ["CONTENT_LENGTH"] = str(len(body))
                continue
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ
