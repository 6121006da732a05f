"""A small HTTP server on loopback for tests that play a web server a CA talks to (ACME
http-01 challenges, an IdP, cloud metadata, OCSP): a quiet server and handler base, and
context managers that serve them."""

from __future__ import annotations

import http.server
import socketserver
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A handler that logs nothing (pytest's output stays clean) and sends whole bodies."""

    def send_body(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    """A threading server whose clients may hang up: a CA under test that got its answer, or
    gave up on purpose, resets the connection, and socketserver would print a traceback into
    pytest's output. Socket and TLS errors (OSError) pass quietly; a bug in a handler does
    not."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


@contextmanager
def serve(server: socketserver.BaseServer, poll_interval: float = 0.5) -> Iterator[None]:
    """`server` served on a daemon thread until the block ends, then closed."""
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serving(
    handler: Callable[..., socketserver.BaseRequestHandler], host: str = "127.0.0.1", port: int = 0
) -> Iterator[QuietServer]:
    """`handler` served on host:port (0: any free port) until the block ends."""
    server = QuietServer((host, port), handler)
    with serve(server):
        yield server
