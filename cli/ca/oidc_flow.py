"""The OIDC token flow: log in at the identity provider in a browser, the ID token is the token.

What `step ca token` / `step ca certificate` do with an OIDC provisioner (step runs
`step oauth --oidc --bare --provider ... --client-id ... --client-secret ... [--listen ...]`):
discover the provider's endpoints, listen on a loopback port, send the browser to the
authorization endpoint (authorization code with PKCE S256, random `state` and `nonce`), take
the code on the redirect, exchange it at the token endpoint and return the `id_token`.

The browser is opened with `webbrowser.open` (which honours `$BROWSER`); tests and headless
setups can instead set `TokenRequest.options["browser"]` to a callable taking the URL, or the
environment variable `STEP_OIDC_BROWSER_CMD` to a command (`%s` is replaced by the URL, or the
URL is appended).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shlex
import subprocess
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

from cli.ca import ui
from cli.ca.flows import TokenRequest
from cli.common import CLIError
from provisioners.jwks import FetchError, check_url, fetch_json
from provisioners.oidc import configuration_url, issuer_subject_uri

BROWSER_ENV = "STEP_OIDC_BROWSER_CMD"
DEFAULT_SCOPE = "openid email"
LOGIN_TIMEOUT = 120.0  # step gives up after 2 minutes
HTTP_TIMEOUT = 30.0

Browser = Callable[[str], object]

_PAGE = (
    "<html><head><title>OAuth Request {title}</title></head><body>"
    "<p style='font-family: sans-serif; font-size: 22px; text-align: center;'>"
    "<strong>{headline}</strong><br />{text}</p></body></html>"
)


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


def discover(configuration_endpoint: str) -> Endpoints:
    """The provider's authorization and token endpoints from its discovery document."""
    url = configuration_url(configuration_endpoint)
    try:
        doc = fetch_json(url, what="openid-configuration", timeout=HTTP_TIMEOUT).document
    except FetchError as exc:
        raise CLIError(str(exc)) from None
    if not isinstance(doc, dict):
        raise CLIError(f"error reading {url}: unsupported format")
    out: dict[str, str] = {}
    for key in ("authorization_endpoint", "token_endpoint"):
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            raise CLIError(f"missing '{key}' in provider metadata")
        try:
            out[key] = check_url(value, key)
        except FetchError as exc:
            raise CLIError(str(exc)) from None
    return Endpoints(out["authorization_endpoint"], out["token_endpoint"])


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge): 64 random alphanumerics, as step makes them."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    verifier = "".join(secrets.choice(alphabet) for _ in range(64))
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _listen_address(value: str | None) -> tuple[str, int, str]:
    """(bind host, port, host for the redirect URL) from `listenAddress` (host:port)."""
    if not value:
        return "127.0.0.1", 0, "127.0.0.1"
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise CLIError(f"invalid value '{value}' for flag '--listen'")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port), host


class _Login:
    """One authorization-code exchange: the loopback server and what it received."""

    def __init__(
        self, endpoints: Endpoints, client_id: str, client_secret: str, redirect_uri: str
    ) -> None:
        self.endpoints = endpoints
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.state = secrets.token_urlsafe(24)
        self.nonce = secrets.token_hex(32)
        self.verifier, self.challenge = pkce_pair()
        self.done = threading.Event()
        self.id_token: str | None = None
        self.error: str | None = None

    def auth_url(self, scope: str, auth_params: list[str]) -> str:
        params = [
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("response_type", "code"),
            ("code_challenge_method", "S256"),
            ("code_challenge", self.challenge),
            ("scope", scope),
            ("state", self.state),
            ("nonce", self.nonce),
        ]
        for item in auth_params:
            key, _, value = item.partition("=")
            if key:
                params.append((key, value))
        parts = urlsplit(self.endpoints.authorization)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def callback(self, query: dict[str, str]) -> tuple[int, str]:
        """Handle one request to the redirect URI: (status, page)."""
        if query.get("error"):
            return self._fail(f"Failed to authenticate: {query['error']}")
        code, state = query.get("code", ""), query.get("state", "")
        if not code or not state:
            # Not the provider (a browser plugin, a prefetch): keep waiting.
            return 400, "400 bad request"
        if not secrets.compare_digest(state, self.state):
            return self._fail("Failed to authenticate: missing or invalid state")
        try:
            self.id_token = self.exchange(code)
        except CLIError as exc:
            return self._fail(str(exc))
        self.done.set()
        return 200, _PAGE.format(
            title="Successful", headline="Success", text="Look for the token on the command line"
        )

    def _fail(self, message: str) -> tuple[int, str]:
        self.error = message
        self.done.set()
        return 400, _PAGE.format(title="Unsuccessful", headline="Failure", text=message)

    def exchange(self, code: str) -> str:
        form = {
            "code": code,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uri": self.redirect_uri,
            "grant_type": "authorization_code",
            "code_verifier": self.verifier,
        }
        try:
            with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
                resp = client.post(
                    self.endpoints.token, data=form, headers={"Accept": "application/json"}
                )
            body = resp.json()
        except httpx.HTTPError as exc:
            raise CLIError(f"Failed exchanging authorization code: {exc}") from None
        except ValueError:
            raise CLIError(
                f"Failed exchanging authorization code: HTTP {resp.status_code}, not JSON"
            ) from None
        if not isinstance(body, dict):
            raise CLIError("Failed exchanging authorization code: unexpected response")
        if body.get("error") or body.get("error_description"):
            raise CLIError(
                "Failed exchanging authorization code: "
                f"{body.get('error', '')}. {body.get('error_description', '')}"
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise CLIError("the identity provider did not return an id_token")
        return id_token


def _serve(login: _Login, host: str, port: int) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/" or login.done.is_set():
                status, page = 404, "404 page not found"
            else:
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, page = login.callback(query)
            body = page.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

    try:
        server = HTTPServer((host, port), Handler)
    except OSError as exc:
        raise CLIError(f"error listening on {host}:{port}: {exc.strerror}") from None
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def _browser_from_env() -> Browser | None:
    command = os.environ.get(BROWSER_ENV)
    if not command:
        return None

    def run(url: str) -> bool:
        argv = shlex.split(command)
        argv = [a.replace("%s", url) for a in argv] if "%s" in command else [*argv, url]
        try:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except OSError:
            return False
        return True

    return run


def open_browser(url: str, browser: Browser | None) -> None:
    """Open `url` the way step does and say so on stderr (or print it when we cannot)."""
    opener: Browser = browser or _browser_from_env() or webbrowser.open
    try:
        opened = opener(url) is not False
    except Exception:  # a broken browser must not hide the URL from the user
        opened = False
    if opened:
        ui.note("Your default web browser has been opened to visit:\n")
    else:
        ui.note("Cannot open a web browser on your platform.\n")
        ui.note("Open a local web browser and visit:\n")
    ui.note(f"{url}\n")


def oidc_login(
    provisioner: dict[str, Any],
    *,
    browser: Browser | None = None,
    timeout: float = LOGIN_TIMEOUT,
) -> str:
    """Run the browser login against the provisioner's identity provider; the ID token."""
    endpoint = str(provisioner.get("configurationEndpoint") or "")
    client_id = str(provisioner.get("clientID") or "")
    if not endpoint or not client_id:
        raise CLIError(
            f"provisioner {provisioner.get('name')!r} has no configurationEndpoint or clientID"
        )
    endpoints = discover(endpoint)
    host, port, url_host = _listen_address(provisioner.get("listenAddress"))
    scopes = provisioner.get("scopes")
    scope = " ".join(str(s) for s in scopes) if isinstance(scopes, list) and scopes else None
    auth_params = [str(p) for p in provisioner.get("authParams") or []]
    login = _Login(endpoints, client_id, str(provisioner.get("clientSecret") or ""), "")
    server = _serve(login, host, port)
    try:
        bound = int(server.server_address[1])
        shown = f"[{url_host}]" if ":" in url_host else url_host
        login.redirect_uri = f"http://{shown}:{bound}"
        open_browser(login.auth_url(scope or DEFAULT_SCOPE, auth_params), browser)
        if not login.done.wait(timeout):
            raise CLIError("oauth command timed out, please try again")
    finally:
        server.shutdown()
        server.server_close()
    if login.error:
        raise CLIError(login.error)
    assert login.id_token is not None
    return login.id_token


def oidc_flow(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """The OIDC flow of `step ca token`/`step ca certificate`: the ID token is the token."""
    ui.selected(
        "Provisioner",
        f"{provisioner.get('name')} (OIDC) [client: {provisioner.get('clientID')}]",
    )
    browser = req.options.get("browser")
    if browser is not None and not callable(browser):
        raise CLIError("options['browser'] must be callable")
    timeout = float(req.options.get("oidc_timeout") or LOGIN_TIMEOUT)
    return oidc_login(provisioner, browser=browser, timeout=timeout)


def csr_names(claims: dict[str, Any], subject: str, sans: list[str]) -> tuple[str, list[str]]:
    """The CN and SANs step puts in the CSR for an OIDC token (step's CreateSignRequest).

    No `--san` and the subject argument is the token's e-mail: CN = `sub`, SANs = the e-mail
    and `<iss>#<sub>` (what the CA will issue). No `--san` otherwise: CN and SAN = subject.
    With `--san`: CN = subject, SANs = the flags.
    """
    if sans:
        return subject, list(sans)
    email = claims.get("email")
    sub = claims.get("sub")
    if (
        isinstance(email, str)
        and email
        and isinstance(sub, str)
        and sub
        and subject.casefold() == email.casefold()
    ):
        names = [email]
        uri = issuer_subject_uri(str(claims.get("iss") or ""), sub)
        if uri:
            names.append(uri)
        return sub, names
    return subject, [subject]
