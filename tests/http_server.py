"""A small HTTP server on loopback for tests that play a web server a CA talks to (ACME
http-01 challenges): a quiet handler base and a context manager that serves it."""

from __future__ import annotations

import http.server
import socketserver
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


@contextmanager
def serving(
    handler: Callable[..., socketserver.BaseRequestHandler], host: str = "127.0.0.1", port: int = 0
) -> Iterator[http.server.ThreadingHTTPServer]:
    """`handler` served on host:port (0: any free port) until the block ends."""
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
