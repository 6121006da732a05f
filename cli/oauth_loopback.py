"""The browser side of an OAuth login: a redirect listener on a loopback port, and the browser.

`loopback_login` listens (127.0.0.1 on a random port unless told otherwise), sends the user to
the authorization URL, takes the code on the redirect, checks `state`, exchanges the code and
returns the tokens, as step's `oauth` does.

The URL is always printed on stderr. The browser is opened only when one can be: a callable
given by the caller (tests), the command in `STEP_OIDC_BROWSER_CMD` (`%s` is replaced by the
URL, or the URL is appended), or Python's `webbrowser` when `$BROWSER` is set or a display is
available (never a text-mode browser taking over the terminal). `STEP_OPEN_BROWSER=0` (step's
variable) prints the URL and opens nothing.
"""

from __future__ import annotations

import html
import os
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cli.common import CLIError
from cli.oauth_flow import Client, Token, note

BROWSER_ENV = "STEP_OIDC_BROWSER_CMD"
OPEN_BROWSER_ENV = "STEP_OPEN_BROWSER"
LOGIN_TIMEOUT = 120.0  # step gives up after 2 minutes

Browser = Callable[[str], object]

_PAGE = (
    '<html lang="en-US"><head><title>OAuth Request {title}</title></head><body>'
    "<p style='font-family: sans-serif; font-size: 22px; text-align: center;'>"
    "<strong>{headline}</strong><br />{text}</p></body></html>"
)


def split_listen(value: str | None, flag: str = "--listen") -> tuple[str, int]:
    """(host, port) of a `host:port` listen address; no host means 127.0.0.1."""
    if not value:
        return "127.0.0.1", 0
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""  # an IPv6 address must be in brackets
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CLIError(f"invalid value '{value}' for flag '{flag}'")
    return host or "127.0.0.1", int(port)


class _Callback:
    """What the redirect listener received: the tokens or the reason there are none."""

    def __init__(self, client: Client, path: str, terminal_redirect: str) -> None:
        self.client = client
        self.path = path
        self.terminal_redirect = terminal_redirect
        self.done = threading.Event()
        self.token: Token | None = None
        self.error: str | None = None

    def handle(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """One request to the redirect URI: (status, headers, page)."""
        if query.get("error"):
            return self._fail(f"Failed to authenticate: {query['error']}")
        code, state = query.get("code", ""), query.get("state", "")
        if not code or not state:
            # Not the provider (a browser plugin, a prefetch): say so and keep waiting.
            note("Invalid request received on the redirect URL")
            note("You may have an app or browser plugin that needs to be turned off")
            return 400, {}, "400 bad request"
        if not secrets.compare_digest(state, self.client.state):
            return self._fail("Failed to authenticate: missing or invalid state")
        try:
            self.token = self.client.exchange(code)
        except CLIError as exc:
            return self._fail(str(exc))
        self.done.set()
        if self.terminal_redirect:
            return 302, {"Location": self.terminal_redirect}, ""
        page = _PAGE.format(
            title="Successful",
            headline="Success",
            text="OAuth Request Successful.<br />Look for the token on the command line.",
        )
        return 200, {}, page

    def _fail(self, message: str) -> tuple[int, dict[str, str], str]:
        self.error = message
        self.done.set()
        page = _PAGE.format(title="Unsuccessful", headline="Failure", text=html.escape(message))
        return 400, {}, page


def _serve(callback: _Callback, host: str, port: int) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, headers: dict[str, str], page: str) -> None:
            body = page.encode()
            self.send_response(status)
            for name, value in {"Content-Type": "text/html; charset=utf-8", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self) -> None:
            self._reply(200, {}, "")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != callback.path or callback.done.is_set():
                self._reply(404, {}, "404 page not found")
                return
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self._reply(*callback.handle(query))

    class Server(HTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = Server((host, port), Handler)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CLIError(f"error listening on {host}:{port}: {reason}") from None
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def _command_browser() -> Browser | None:
    command = os.environ.get(BROWSER_ENV)
    if not command:
        return None

    def run(url: str) -> bool:
        argv = shlex.split(command)
        argv = [a.replace("%s", url) for a in argv] if "%s" in command else [*argv, url]
        try:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            return False
        return True

    return run


def _display_available() -> bool:
    """A graphical browser can be shown (or the user named one in $BROWSER)."""
    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_browser(url: str, browser: Browser | None = None) -> None:
    """Open `url` where a browser can be opened, and print it on stderr in any case."""
    if browser is None and os.environ.get(OPEN_BROWSER_ENV) == "0":
        note(url)
        return
    opener = browser or _command_browser()
    if opener is None and _display_available():
        opener = webbrowser.open
    opened = False
    if opener is not None:
        try:
            opened = opener(url) is not False
        except Exception:  # a broken browser must not hide the URL from the user
            opened = False
    if opened:
        note("Your default web browser has been opened to visit:\n")
    else:
        note("Cannot open a web browser on your platform.\n")
        note("Open a local web browser and visit:\n")
    note(f"{url}\n")


def loopback_login(
    client: Client,
    *,
    listen: str | None = None,
    listen_url: str = "",
    terminal_redirect: str = "",
    browser: Browser | None = None,
    timeout: float = LOGIN_TIMEOUT,
    listen_flag: str = "--listen",
) -> Token:
    """The browser login: listen, send the user to the provider, wait for the redirect."""
    host, port = split_listen(listen, listen_flag)
    path = (urlsplit(listen_url).path or "/") if listen_url else "/"
    callback = _Callback(client, path, terminal_redirect)
    server = _serve(callback, host, port)
    try:
        if listen_url:
            client.redirect_uri = listen_url
        else:
            shown = f"[{host}]" if ":" in host else host
            client.redirect_uri = f"http://{shown}:{int(server.server_address[1])}"
        open_browser(client.auth_url(), browser)
        if not callback.done.wait(timeout):
            raise CLIError("oauth command timed out, please try again")
    finally:
        server.shutdown()
        server.server_close()
    if callback.error:
        raise CLIError(callback.error)
    assert callback.token is not None
    return callback.token
