"""A small OpenID Connect identity provider on 127.0.0.1 for tests.

It serves what step and step-ca use: discovery (`/.well-known/openid-configuration`), the key
set (`/jwks`, with `Cache-Control: max-age`), the authorization endpoint (`/authorize`, which
approves the configured test user at once and redirects back with `code` and `state`) and the
token endpoint (`/token`, authorization code + PKCE S256, client secret checked, returning an
ID token signed RS256 or ES256). Keys can be added and rotated; every request is counted so
tests can assert how often the CA fetched the key set.

For `step oauth` it also serves the out-of-band flow (redirect_uri `urn:ietf:wg:oauth:2.0:oob`:
the code is shown on a page instead of redirected), a user who denies the login (`deny_login`),
and the device authorization grant of RFC 8628 (`idp.device`, tests/oidc_idp_device.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.jose import public_jwk
from tests.http_server import QuietServer
from tests.oidc_idp_device import DEVICE_GRANT, DeviceGrants

HOST = "127.0.0.1"
CLIENT_ID = "stepstone-test-client.apps.example"
CLIENT_SECRET = "test-client-secret"
CODE_LIFETIME = 120.0
OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"


@dataclass
class User:
    """Who the IdP says logged in."""

    sub: str = "248289761001"
    email: str | None = "jane@example.com"
    groups: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.private, kid=self.kid, alg=self.alg)


def new_key(alg: str = "RS256") -> SigningKey:
    """A fresh signing key; kid = RFC 7638 thumbprint."""
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported alg {alg}")
    kid = public_jwk(private)["kid"]
    return SigningKey(kid=kid, alg=alg, private=private)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    user: User
    created: float


class TestIdP:
    """The identity provider; use as a context manager (or start()/stop())."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        user: User | None = None,
        alg: str = "RS256",
        max_age: int | None = 3600,
        id_token_lifetime: int = 600,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.user = user or User()
        self.max_age = max_age
        self.id_token_lifetime = id_token_lifetime
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = [new_key(alg)]
        self._current = self._keys[0]
        self._grants: dict[str, _Grant] = {}
        self.counts: dict[str, int] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.issued_id_tokens: list[str] = []
        self.issuer_override: str | None = None
        self.deny_login = False
        self.device = DeviceGrants(self)
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> TestIdP:
        idp = self

        class Handler(_Handler):
            provider = idp

        self._server = QuietServer((HOST, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> TestIdP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "IdP not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.issuer_override or self.url

    @property
    def configuration_endpoint(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "device_authorization_endpoint": f"{self.url}/device/code",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self._keys}),
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }

    def provisioner(self, name: str = "sso", **extra: Any) -> dict[str, Any]:
        """The ca.json entry of an OIDC provisioner using this IdP."""
        return {
            "type": "OIDC",
            "name": name,
            "clientID": self.client_id,
            "clientSecret": self.client_secret,
            "configurationEndpoint": self.configuration_endpoint,
            **extra,
        }

    # --- keys ----------------------------------------------------------------------------

    @property
    def key(self) -> SigningKey:
        """The key new ID tokens are signed with."""
        return self._current

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [k.jwk for k in self._keys]}

    def rotate(self, alg: str | None = None, *, keep_old: bool = True) -> SigningKey:
        """Publish a new key and sign with it from now on (old keys stay unless told)."""
        key = new_key(alg or self._current.alg)
        with self._lock:
            self._keys = [*self._keys, key] if keep_old else [key]
            self._current = key
        return key

    def count(self, path: str) -> int:
        with self._lock:
            return self.counts.get(path, 0)

    # --- tokens --------------------------------------------------------------------------

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Any claims, signed with `key` (default: the current key), kid in the header."""
        key = key or self._current
        hdr: dict[str, Any] = {"kid": key.kid, "typ": "JWT"}
        hdr.update(headers or {})
        hdr = {k: v for k, v in hdr.items() if v is not None}
        return jwt.encode(claims, key.private, algorithm=key.alg, headers=hdr)

    def claims_for(
        self, user: User | None = None, nonce: str | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """Standard ID token claims for `user`; an override of None drops the claim."""
        user = user or self.user
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.sub,
            "aud": self.client_id,
            "azp": self.client_id,
            "iat": now,
            "exp": now + self.id_token_lifetime,
            "auth_time": now,
            "nonce": nonce if nonce is not None else secrets.token_hex(32),
        }
        if user.email is not None:
            claims["email"] = user.email
            claims["email_verified"] = True
        if user.groups is not None:
            claims["groups"] = list(user.groups)
        claims.update(user.extra)
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def id_token(self, user: User | None = None, nonce: str | None = None, **overrides: Any) -> str:
        return self.sign(self.claims_for(user, nonce, **overrides))

    # --- endpoints (called by the handler) -----------------------------------------------

    def _count(self, path: str) -> None:
        with self._lock:
            self.counts[path] = self.counts.get(path, 0) + 1

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.authorize_requests.append(dict(query))
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id:
            return 400, {}, b"unknown client_id"
        target = urlsplit(redirect_uri)
        oob = redirect_uri == OOB_REDIRECT
        if not oob and (
            target.scheme != "http" or target.hostname not in ("127.0.0.1", "localhost", "::1")
        ):
            return 400, {}, b"redirect_uri must be a loopback http URL"
        state = query.get("state", "")

        def error(code: str) -> tuple[int, dict[str, str], bytes]:
            if oob:
                return 400, {"Content-Type": "text/html"}, f"<p>Error: {code}</p>".encode()
            params = {"error": code, "state": state}
            return 302, {"Location": _add_query(redirect_uri, params)}, b""

        if query.get("response_type") != "code":
            return error("unsupported_response_type")
        if "openid" not in query.get("scope", "").split():
            return error("invalid_scope")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return error("invalid_request")
        if self.deny_login:
            return error("access_denied")
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._grants[code] = _Grant(
                client_id=self.client_id,
                redirect_uri=redirect_uri,
                challenge=query["code_challenge"],
                nonce=query.get("nonce"),
                user=self.user,
                created=time.monotonic(),
            )
        if oob:
            page = f"<html><head><title>Success code={code}</title></head></html>"
            return 200, {"Content-Type": "text/html"}, page.encode()
        params = {"code": code}
        if state:
            params["state"] = state
        return 302, {"Location": _add_query(redirect_uri, params)}, b""

    def token(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        self.token_requests.append(dict(form))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            raw = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = raw.partition(":")
        if client_id != self.client_id or client_secret != self.client_secret:
            return _json(401, {"error": "invalid_client"})
        if form.get("grant_type") == DEVICE_GRANT:
            return self.device.poll(form.get("device_code", ""))
        if form.get("grant_type") != "authorization_code":
            return _json(400, {"error": "unsupported_grant_type"})
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)
        if grant is None or time.monotonic() - grant.created > CODE_LIFETIME:
            return _json(400, {"error": "invalid_grant", "error_description": "unknown code"})
        if form.get("redirect_uri") != grant.redirect_uri:
            return _json(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
        verifier = form.get("code_verifier", "")
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            return _json(400, {"error": "invalid_grant", "error_description": "PKCE verifier"})
        return self._tokens(grant.user, grant.nonce, "openid email")

    def _tokens(
        self, user: User, nonce: str | None, scope: str
    ) -> tuple[int, dict[str, str], bytes]:
        id_token = self.id_token(user, nonce)
        self.issued_id_tokens.append(id_token)
        return _json(
            200,
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": scope,
                "id_token": id_token,
            },
        )

    def device_tokens(self, scope: str) -> tuple[int, dict[str, str], bytes]:
        """Tokens for an approved device (tests/oidc_idp_device.py)."""
        return self._tokens(self.user, None, scope)

    def json_response(self, status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
        return _json(status, body)


def _add_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _json(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


class _Handler(BaseHTTPRequestHandler):
    provider: TestIdP
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if "Cache-Control" not in headers:
            self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        idp = self.provider
        idp._count(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/.well-known/openid-configuration":
            self._send(*_json(200, idp.discovery()))
        elif parts.path == "/jwks":
            cache = f"public, max-age={idp.max_age}" if idp.max_age is not None else "public"
            self._send(*_json(200, idp.jwks(), {"Cache-Control": cache}))
        elif parts.path == "/authorize":
            self._send(*idp.authorize(query))
        elif parts.path == "/device":
            self._send(*idp.device.decide(query))
        else:
            self._send(404, {"Content-Type": "text/plain"}, b"not found")

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        idp = self.provider
        idp._count(parts.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if parts.path == "/token":
            self._send(*idp.token(form, self.headers.get("Authorization")))
        elif parts.path == "/device/code":
            self._send(*idp.device.authorize(form))
        else:
            self._send(404, {"Content-Type": "text/plain"}, b"not found")
