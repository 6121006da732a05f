"""One HTTP/1.1 client connection of the appliance's worker (api/worker.py): read a whole
request under deadlines with h11, hand it to the threads that run the app, write the answer,
keep the connection alive or drop it. Nothing here blocks the event loop.

Per request, only what must be is done (measured): h11 parses each request (a fresh parser
per request, fed what the last one left over, so pipelined bytes carry over), api/wsgi.py
frames the answer, and one timer per connection is re-armed lazily rather than a timer made
and cancelled per request.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import h11

from api.mtls import PEER_CERTIFICATE
from api.wsgi import INTERNAL, Headers, Response, frame_response, json_error
from pki.durations import parse_duration

if TYPE_CHECKING:
    from api.worker import FrontWorker
    from appliance.config_schema import ServerLimitsSchema

_PAUSE_AT = 64 << 10
"""Bytes a client may send ahead (pipelining) while its request runs before we stop reading."""


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


def _keep_alive(request: h11.Request) -> bool:
    """h11's rule: HTTP/1.1 without `Connection: close` (HTTP/1.0 is always closed)."""
    if request.http_version != b"1.1":
        return False
    for name, value in request.headers:
        if name == b"connection" and b"close" in [v.strip() for v in value.lower().split(b",")]:
            return False
    return True


class Connection(asyncio.Protocol):
    """One client connection: read a whole request under a deadline, run it, answer, repeat."""

    def __init__(self, worker: FrontWorker) -> None:
        self.worker = worker
        self.limits = worker.limits
        self.parser = self._parser()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline: float | None = None
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.buffered = 0
        self.busy = False
        self.paused = False
        self.idle = False
        self.base_environ: dict[str, Any] = {}

    def _parser(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)

    # --- connection life ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.worker.connections) >= self.limits.max_connections:
            transport.abort()
            return
        self.worker.connections.add(self)
        peer_der: bytes | None = None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            try:
                peer_der = ssl_object.getpeercert(binary_form=True) or None
            except (ValueError, ssl.SSLError):
                peer_der = None
        # The environ keys that stay the same for every request on this connection.
        server = transport.get_extra_info("sockname")
        peer = transport.get_extra_info("peername")
        server = server if isinstance(server, tuple) else ("", 0)
        peer = peer if isinstance(peer, tuple) else ("", 0)
        self.base_environ = {
            "SCRIPT_NAME": "",
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]),
            "REMOTE_ADDR": str(peer[0]),
            "REMOTE_PORT": str(peer[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            PEER_CERTIFICATE: peer_der,
        }
        self._arm(self.limits.request_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.worker.connections.discard(self)
        self.transport = None

    def _arm(self, seconds: float) -> None:
        """Set the connection's one deadline. The timer is only moved when it must fire
        sooner; a later deadline is picked up when the timer fires (no timer per request)."""
        loop = self.worker.loop
        deadline = loop.time() + seconds
        if self.timer is None or self.timer.when() > deadline:
            self._cancel_timer()
            self.timer = loop.call_at(deadline, self._expired)
        self.deadline = deadline

    def _disarm(self) -> None:
        self.deadline = None

    def _cancel_timer(self) -> None:
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        """Idle too long: close politely. Too slow mid-request: drop without a TLS goodbye."""
        self.timer = None
        if self.transport is None or self.busy or self.deadline is None:
            return
        if self.worker.loop.time() < self.deadline:  # moved later meanwhile
            self.timer = self.worker.loop.call_at(self.deadline, self._expired)
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
        self.parser.receive_data(data)
        if not self.busy:
            self._read_events()
        else:  # pipelined ahead of the answer: kept for later, within bounds
            self.buffered += len(data)
            if self.buffered > _PAUSE_AT and self.transport is not None and not self.paused:
                self.paused = True
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.parser.receive_data(b"")
        if not self.busy:
            self._read_events()
        return None

    def _read_events(self) -> None:
        """Consume what h11 can parse; dispatch when a request is complete."""
        parser = self.parser
        while self.transport is not None:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(exc.error_status_hint, "The request could not be completed.")
                return
            if event is h11.NEED_DATA:
                if parser.they_are_waiting_for_100_continue:
                    self._write(
                        parser.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
                return
            if isinstance(event, h11.Request):
                if self._announced_length(event) > self.limits.max_body:
                    self._refuse(413, "The request body is too large.")
                    return
                self.request = event
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
            else:  # PAUSED cannot come before EndOfMessage with a parser per request
                return

    @staticmethod
    def _announced_length(request: h11.Request) -> int:
        for name, value in request.headers:
            if name == b"content-length":
                return int(value)  # h11 has already checked it is a number
        return 0

    # --- running ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """A whole request: hand it to the app's threads, answer when it is done. Bytes that
        arrive meanwhile wait in the parser (reading pauses if they pile up)."""
        assert self.request is not None and self.transport is not None
        self._disarm()
        self.busy = True
        self.buffered = 0
        self.worker.dispatch(self, self._environ(self.request, bytes(self.body)))

    def respond(self, outcome: Response | BaseException) -> None:
        """In the loop, once the app is done: answer, then serve the next request."""
        self.busy = False
        if self.transport is None:  # the client went away meanwhile
            return
        if isinstance(outcome, BaseException):  # falcon renders app errors itself
            self.worker.log.error(
                "the application failed outside its error handlers", exc_info=outcome
            )
            outcome = json_error(500, INTERNAL)
        assert self.request is not None
        close = not (self.worker.alive and _keep_alive(self.request))
        if not self._send(*outcome, close=close) or close:
            self._close()
            return
        # The next request gets a parser of its own, fed what this one left over.
        leftover, ended = self.parser.trailing_data
        self.parser = parser = self._parser()
        if leftover:
            parser.receive_data(leftover)
        if ended:
            parser.receive_data(b"")
        self.request = None
        self.body.clear()
        self.idle = not leftover
        self._arm(self.limits.keepalive_timeout if self.idle else self.limits.request_timeout)
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self._read_events()  # a pipelined request may already be buffered

    def _send(self, status: str, headers: Headers, body: bytes, *, close: bool) -> bool:
        """Write the app's answer; False when it could not be framed (then a 500 is sent)."""
        assert self.request is not None
        head = self.request.method == b"HEAD"
        date = self.worker.date.get()
        try:
            out = frame_response(status, headers, body, head=head, close=close, date=date)
        except (ValueError, UnicodeEncodeError) as exc:
            self.worker.log.error("could not frame the response: %s", exc)
            status, headers, body = json_error(500, INTERNAL)
            self._write(frame_response(status, headers, body, head=head, close=True, date=date))
            return False
        self._write(out)
        return True

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request we will not run (malformed, too large), then close."""
        status_line, headers, body = json_error(status, message)
        date = self.worker.date.get()
        self._write(frame_response(status_line, headers, body, head=False, close=True, date=date))
        self._close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def _close(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
            self.worker.connections.discard(self)

    # --- the WSGI environ ---------------------------------------------------------------

    def _environ(self, request: h11.Request, body: bytes) -> dict[str, Any]:
        target = request.target
        path, _, query = target.partition(b"?")
        environ = self.base_environ.copy()
        environ["REQUEST_METHOD"] = request.method.decode("ascii")
        environ["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["RAW_URI"] = target.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + request.http_version.decode("ascii")
        environ["wsgi.input"] = io.BytesIO(body)
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
