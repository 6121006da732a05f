"""Answering http-01 challenges the two ways step does: its own HTTP server (`--standalone`,
the default, on `--http-listen`, default `:80`) or a file under `--webroot DIR` served by a
web server already running. Either way the answer is withdrawn once the CA has looked."""

from __future__ import annotations

import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from cli.common import CLIError, go_strerror

PREFIX = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ChallengeMode(Protocol):
    """Where the key authorizations are published."""

    label: str

    def start(self) -> None: ...
    def serve(self, token: str, key_authorization: str) -> None: ...
    def withdraw(self, token: str) -> None: ...
    def close(self) -> None: ...


def parse_listen(addr: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `[V6]:PORT` as Go's net.Listen takes them."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CLIError(f"invalid value '{addr}' for flag '--http-listen'")
    return host.removeprefix("[").removesuffix("]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    answers: dict[str, str]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        token = path.removeprefix(PREFIX) if path.startswith(PREFIX) else ""
        body = self.server.answers.get(token, "").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/octet-stream" if body else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the CA's requests are nobody's business on the terminal


class Standalone:
    """An HTTP server of our own, bound before the order is made so a busy port costs the
    CA nothing."""

    label = "Standalone"

    def __init__(self, listen: str) -> None:
        self.listen = listen
        self.address = parse_listen(listen)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        host, port = self.address
        server_class = _Server6 if ":" in host else _Server
        try:
            server = server_class((host, port), _Handler)
        except OSError as exc:
            raise CLIError(f"listen tcp {self.listen}: bind: {go_strerror(exc)}") from None
        server.answers = {}
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def serve(self, token: str, key_authorization: str) -> None:
        if self._server is None:
            self.start()
        assert self._server is not None
        self._server.answers[token] = key_authorization

    def withdraw(self, token: str) -> None:
        if self._server is not None:
            self._server.answers.pop(token, None)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class Webroot:
    """A file per token under DIR/.well-known/acme-challenge/, world-readable (0644, the
    directories 0755) because the web server may run as another user, as step writes it."""

    label = "Webroot"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._written: set[Path] = set()

    def start(self) -> None:
        if not self.root.is_dir():
            raise CLIError(f"webroot directory {self.root} does not exist")

    def serve(self, token: str, key_authorization: str) -> None:
        self.start()
        folder = self.root / ".well-known" / "acme-challenge"
        path = folder / checked_token(token)
        try:
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
            path.write_text(key_authorization)
            os.chmod(path, 0o644)
        except OSError as exc:
            raise CLIError(
                f"error writing key authorization file {path}: {go_strerror(exc)}"
            ) from None
        self._written.add(path)

    def withdraw(self, token: str) -> None:
        path = self.root / ".well-known" / "acme-challenge" / checked_token(token)
        path.unlink(missing_ok=True)
        self._written.discard(path)

    def close(self) -> None:
        for path in list(self._written):
            path.unlink(missing_ok=True)
        self._written.clear()


def checked_token(token: str) -> str:
    """A challenge token as RFC 8555 §8.3 spells it (base64url): anything else, from a CA that
    means harm, could name a file outside the webroot."""
    if not _TOKEN.fullmatch(token):
        raise CLIError(f"the CA sent an invalid challenge token {token[:64]!r}")
    return token


def challenge_mode(standalone: bool, webroot: Path | None, http_listen: str) -> ChallengeMode:
    """step's rule: `--standalone` and `--webroot` exclude each other; standalone is the
    default."""
    if standalone and webroot is not None:
        raise CLIError("flags '--standalone' and '--webroot' are mutually exclusive")
    if webroot is not None:
        return Webroot(webroot)
    return Standalone(http_listen)
