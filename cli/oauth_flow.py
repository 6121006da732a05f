"""OAuth 2.0 / OpenID Connect client flows, shared by `step oauth` and the OIDC provisioner flow.

What step's `oauth` command does, without its browser: discover a provider's endpoints (or use
a known provider's), build the authorization URL (code flow with PKCE S256, random `state` and
`nonce`), exchange the code at the token endpoint, and the two ways to log in from a terminal:
the device authorization grant (RFC 8628) and the out-of-band flow (the user pastes the code).
The loopback redirect listener and the browser live in `cli.oauth_loopback`.

Only https endpoints are accepted, or plain http to a loopback host (what tests use).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import typer

from cli.common import CLIError
from cli.go_json import JSONObject, JSONValue, RawNumber, go_indent
from provisioners.jwks import FetchError, check_url, fetch_json, is_loopback_host
from provisioners.oidc import configuration_url

DEFAULT_SCOPE = "openid email"
HTTP_TIMEOUT = 30.0
OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_DEVICE_INTERVAL = 5  # seconds between polls when the provider does not say
MAX_DEVICE_WAIT = 300  # step stops polling after five minutes whatever the provider says
SLOW_DOWN_STEP = 5  # RFC 8628 section 3.5: add five seconds on `slow_down`


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    device_authorization: str = ""


#: step's built-in providers (no discovery for these).
KNOWN_PROVIDERS = {
    "google": Endpoints(
        authorization="https://accounts.google.com/o/oauth2/v2/auth",
        token="https://www.googleapis.com/oauth2/v4/token",
        device_authorization="https://oauth2.googleapis.com/device/code",
    ),
    "github": Endpoints(
        authorization="https://github.com/login/oauth/authorize",
        token="https://github.com/login/oauth/access_token",
        device_authorization="https://github.com/login/device/code",
    ),
}


def _checked(url: str, what: str) -> str:
    try:
        return check_url(url, what)
    except FetchError as exc:
        raise CLIError(str(exc)) from None


def discover(provider: str, *, device: bool = False) -> Endpoints:
    """A known provider's endpoints, or those of the discovery document at `provider` (an
    issuer URL or the document's URL). `device`: the device flow's endpoint is required and
    the authorization endpoint is not."""
    if provider in KNOWN_PROVIDERS:
        return KNOWN_PROVIDERS[provider]
    url = configuration_url(provider)
    try:
        doc = fetch_json(url, what="openid-configuration", timeout=HTTP_TIMEOUT).document
    except FetchError as exc:
        raise CLIError(str(exc)) from None
    if not isinstance(doc, dict):
        raise CLIError(f"error reading {url}: unsupported format")
    required = ("device_authorization_endpoint" if device else "authorization_endpoint",)
    found: dict[str, str] = {}
    for key in ("authorization_endpoint", "token_endpoint", "device_authorization_endpoint"):
        value = doc.get(key)
        if isinstance(value, str) and value:
            found[key] = _checked(value, key)
        elif key in (*required, "token_endpoint"):
            raise CLIError(f"missing or invalid '{key}' in provider metadata")
    return Endpoints(
        authorization=found.get("authorization_endpoint", ""),
        token=found["token_endpoint"],
        device_authorization=found.get("device_authorization_endpoint", ""),
    )


def _alphanumeric(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge): 64 random alphanumerics, as step makes them."""
    verifier = _alphanumeric(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Token:
    """A token endpoint's answer, with the fields step prints (in step's order)."""

    access_token: str = ""
    id_token: str = ""
    refresh_token: str = ""
    expires_in: int = 0
    token_type: str = ""
    scope: str = ""

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> Token:
        def text(key: str) -> str:
            value = body.get(key)
            return value if isinstance(value, str) else ""

        expires = body.get("expires_in")
        if isinstance(expires, str) and expires.isdigit():
            expires = int(expires)
        return cls(
            access_token=text("access_token"),
            id_token=text("id_token"),
            refresh_token=text("refresh_token"),
            expires_in=expires if isinstance(expires, int) and not isinstance(expires, bool) else 0,
            token_type=text("token_type"),
            scope=text("scope"),
        )

    def to_json(self) -> str:
        """step's output: Go's indented JSON of its token struct (empty scope left out)."""
        members: list[tuple[str, JSONValue]] = [
            ("access_token", self.access_token),
            ("id_token", self.id_token),
            ("refresh_token", self.refresh_token),
            ("expires_in", RawNumber(str(self.expires_in))),
            ("token_type", self.token_type),
        ]
        if self.scope:
            members.append(("scope", self.scope))
        return go_indent(JSONObject(members))


def _oauth_error(body: dict[str, Any]) -> str | None:
    """`error. description` of an OAuth error response, or None."""
    error, description = body.get("error"), body.get("error_description")
    if not error and not description:
        return None
    return ". ".join(str(p) for p in (error, description) if p)


def post_form(url: str, form: dict[str, str], what: str) -> tuple[int, dict[str, Any]]:
    """POST a form to an OAuth endpoint asking for JSON: (status, decoded object)."""
    try:
        with httpx.Client(
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,
            trust_env=not is_loopback_host(urlsplit(url).hostname),
        ) as client:
            resp = client.post(url, data=form, headers={"Accept": "application/json"})
        body = resp.json()
    except httpx.HTTPError as exc:
        raise CLIError(f"{what}: {exc}") from None
    except ValueError:
        raise CLIError(f"{what}: HTTP {resp.status_code}, not JSON") from None
    if not isinstance(body, dict):
        raise CLIError(f"{what}: unexpected response")
    return resp.status_code, body


class Client:
    """One authorization request: its secrets (state, nonce, PKCE) and the code exchange."""

    def __init__(
        self,
        endpoints: Endpoints,
        client_id: str,
        client_secret: str,
        *,
        scope: str = DEFAULT_SCOPE,
        prompt: str = "",
        login_hint: str = "",
        auth_params: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.endpoints = endpoints
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.prompt = prompt
        self.login_hint = login_hint
        self.auth_params = list(auth_params)
        self.redirect_uri = ""
        self.state = _alphanumeric(32)
        self.nonce = secrets.token_hex(32)
        self.verifier, self.challenge = pkce_pair()

    def auth_url(self) -> str:
        """The authorization endpoint with step's query (code flow, PKCE S256)."""
        if not self.endpoints.authorization:
            raise CLIError("the provider has no authorization endpoint")
        params = [
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("response_type", "code"),
            ("code_challenge_method", "S256"),
            ("code_challenge", self.challenge),
            ("scope", self.scope),
        ]
        if self.prompt:
            params.append(("prompt", self.prompt))
        params += [("state", self.state), ("nonce", self.nonce)]
        if self.login_hint:
            params.append(("login_hint", self.login_hint))
        params += self.auth_params
        parts = urlsplit(self.endpoints.authorization)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def exchange(self, code: str) -> Token:
        """Trade an authorization code for tokens; CLIError with the provider's error."""
        form = {
            "code": code,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uri": self.redirect_uri,
            "grant_type": "authorization_code",
            "code_verifier": self.verifier,
        }
        what = "Failed exchanging authorization code"
        status, body = post_form(self.endpoints.token, form, what)
        error = _oauth_error(body)
        if error:
            raise CLIError(f"{what}: {error}")
        if not 200 <= status < 300:
            raise CLIError(f"{what}: HTTP {status}")
        return Token.from_response(body)


def parse_auth_params(items: Sequence[str], flag: str = "--auth-param") -> list[tuple[str, str]]:
    """`key=value` items (a bare `key` means an empty value); an empty key is refused."""
    out: list[tuple[str, str]] = []
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise CLIError(f"invalid value '{item}' for flag '{flag}'")
        out.append((key, value))
    return out


def note(message: str, *, nl: bool = True) -> None:
    typer.echo(message, err=True, nl=nl)


# --- the out-of-band flow -------------------------------------------------------------------


def manual_flow(client: Client, read_line: Callable[[], str] | None = None) -> Token:
    """Print the authorization URL, read the code the provider showed the user, exchange it."""
    client.redirect_uri = OOB_REDIRECT
    url = client.auth_url()
    note("Open a local web browser and visit:\n")
    note(f"{url}\n")
    note("Enter verification code: ", nl=False)
    line = (read_line or sys.stdin.readline)()
    code = line.strip()
    if not code:
        raise CLIError("no verification code was entered")
    return client.exchange(code)


# --- the device authorization grant (RFC 8628) ----------------------------------------------


class Clock:
    """Waiting between polls; tests replace `CLOCK` to poll without waiting."""

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> float:
        return time.monotonic()


CLOCK = Clock()


def _positive_int(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def device_flow(client: Client, clock: Clock | None = None) -> Token:
    """Ask for a user code, tell the user where to enter it, poll until they have."""
    clock = clock or CLOCK
    endpoint = client.endpoints.device_authorization
    if not endpoint:
        raise CLIError("the provider has no device authorization endpoint")
    what = "error identifying the device"
    credentials = {"client_id": client.client_id, "client_secret": client.client_secret}
    status, body = post_form(endpoint, {**credentials, "scope": client.scope}, what)
    error = _oauth_error(body)
    if error or not 200 <= status < 300:
        raise CLIError(f"{what}: {error or f'HTTP {status}'}")
    device_code, user_code = body.get("device_code"), body.get("user_code")
    if not isinstance(device_code, str) or not device_code:
        raise CLIError(f"{what}: the response has no 'device_code'")
    complete = body.get("verification_uri_complete")
    # Google says `verification_url`, RFC 8628 `verification_uri`.
    uri = body.get("verification_uri") or body.get("verification_url")
    if isinstance(complete, str) and complete:
        note(f"Visit {complete}:")
    elif isinstance(uri, str) and uri and isinstance(user_code, str):
        note(f"Visit {uri} and enter the code:")
        note(user_code)
    else:
        raise CLIError(f"{what}: the response has no 'verification_uri'")
    interval = _positive_int(body.get("interval"), DEFAULT_DEVICE_INTERVAL)
    wait = min(_positive_int(body.get("expires_in"), MAX_DEVICE_WAIT), MAX_DEVICE_WAIT)
    deadline = clock.now() + wait
    poll = {**credentials, "grant_type": DEVICE_GRANT, "device_code": device_code}
    while True:
        clock.sleep(interval)
        if clock.now() > deadline:
            raise CLIError("device authorization grant expired")
        status, body = post_form(client.endpoints.token, poll, "error polling the token endpoint")
        if 200 <= status < 300 and not body.get("error"):
            return Token.from_response(body)
        code = body.get("error")
        if code == "authorization_pending":
            continue
        if code == "slow_down":
            interval += SLOW_DOWN_STEP
            continue
        if code == "expired_token":
            raise CLIError("device authorization grant expired")
        if code == "access_denied":
            raise CLIError("device authorization was denied")
        raise CLIError(f"device authorization failed: {_oauth_error(body) or f'HTTP {status}'}")
