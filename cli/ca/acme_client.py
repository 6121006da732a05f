"""The RFC 8555 protocol as `step ca certificate` speaks it to an ACME directory.

Like step (certificates' `ca.NewACMEClient`), every run makes a fresh ES256 account key and a
new account (terms of service agreed), so nothing is kept between runs. Requests are JWS
signed by jwcrypto; failures become one-line CLIErrors carrying the server's problem detail.
"""

from __future__ import annotations

import base64
import json
import math
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from jwcrypto import jwk, jws  # type: ignore[import-untyped]

from cli.ca.client import USER_AGENT
from cli.common import CLIError

PROBLEM = "urn:ietf:params:acme:error:"
#: How long a challenge or an order may stay in progress before step gives up.
POLL_LIMIT = 90.0
MAX_RETRY_AFTER = 10.0


class ACMEError(CLIError):
    """A request the ACME server refused; `problem` is its RFC 7807 document."""

    def __init__(self, message: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.problem = problem or {}


def describe(problem: dict[str, Any]) -> str:
    """A problem document as one line: its detail (or subproblems' details), else its type."""
    subs = [s for s in problem.get("subproblems") or [] if isinstance(s, dict)]
    details = [str(s.get("detail") or s.get("type") or s) for s in subs]
    if details:
        return "; ".join(details)
    detail = str(problem.get("detail") or "")
    kind = str(problem.get("type") or "").removeprefix(PROBLEM)
    return detail or kind or "unknown error"


def http_client(root: Path | None, *, system_roots: bool) -> httpx.Client:
    """httpx trusting `root` only (the step CA), or the system store plus `root` when the
    directory came from `--acme` (as step merges them)."""
    try:
        if system_roots:
            verify = ssl.create_default_context()
            if root is not None:
                verify.load_verify_locations(cafile=str(root))
        else:
            if root is None:
                raise CLIError("a root certificate is required to trust the CA")
            verify = ssl.create_default_context(cafile=str(root))
    except (OSError, ssl.SSLError) as exc:
        raise CLIError(f"error loading root certificate {root}: {exc}") from None
    return httpx.Client(
        verify=verify, timeout=30.0, headers={"User-Agent": USER_AGENT}, trust_env=False
    )


class ACMEClient:
    """One account at one ACME directory, its key made here."""

    def __init__(self, http: httpx.Client, directory_url: str) -> None:
        self.http = http
        self.directory_url = directory_url
        self.key = jwk.JWK.generate(kty="EC", crv="P-256")
        self.kid: str | None = None
        self._nonce: str | None = None
        resp = self._send("GET", directory_url)
        if resp.status_code >= 400:
            raise ACMEError(
                f"error initializing ACME client with server {directory_url}: "
                f"{describe(_problem(resp))}"
            )
        body = _json(resp, directory_url)
        for name in ("newNonce", "newAccount", "newOrder"):
            if not isinstance(body.get(name), str):
                raise CLIError(f"error reading {directory_url}: not an ACME directory")
        self.directory = body

    # --- transport ------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, url, **kwargs)
        except httpx.ConnectError as exc:
            reason = str(exc) or type(exc).__name__
            if "CERTIFICATE_VERIFY_FAILED" in reason:
                reason = "tls: the server's certificate is not trusted by the root certificate"
            raise CLIError(f"client {method} {url} failed: {reason}") from None
        except httpx.HTTPError as exc:
            raise CLIError(f"client {method} {url} failed: {exc or type(exc).__name__}") from None
        nonce = resp.headers.get("Replay-Nonce")
        if nonce:
            self._nonce = nonce
        return resp

    def _take_nonce(self) -> str:
        """The nonce of the last answer, else a fresh one from `newNonce` (RFC 8555 §7.2)."""
        nonce, self._nonce = self._nonce, None
        if nonce:
            return nonce
        url = str(self.directory["newNonce"])
        resp = self._send("HEAD", url)
        if resp.status_code >= 400 or not self._nonce:
            raise CLIError(f"error getting an ACME nonce from {url}: HTTP {resp.status_code}")
        nonce, self._nonce = self._nonce, None
        return nonce

    def _signed(self, url: str, payload: Any | None) -> str:
        protected: dict[str, Any] = {"alg": "ES256", "nonce": self._take_nonce(), "url": url}
        if self.kid:
            protected["kid"] = self.kid
        else:
            protected["jwk"] = json.loads(self.key.export_public())
        token = jws.JWS(b"" if payload is None else json.dumps(payload).encode())
        token.add_signature(self.key, None, json.dumps(protected))
        return str(token.serialize())

    def post(self, url: str, payload: Any | None, what: str, **headers: str) -> httpx.Response:
        """A signed POST (POST-as-GET when `payload` is None); a `badNonce` is retried once
        with the nonce that came with it (RFC 8555 §6.5)."""
        for attempt in range(2):
            resp = self._send(
                "POST",
                url,
                content=self._signed(url, payload),
                headers={"Content-Type": "application/jose+json", **headers},
            )
            if resp.status_code < 400:
                return resp
            problem = _problem(resp)
            if problem.get("type") == PROBLEM + "badNonce" and attempt == 0:
                continue
            raise ACMEError(f"{what}: {describe(problem)}", problem)
        raise AssertionError("unreachable")

    # --- the protocol ---------------------------------------------------------------------

    def thumbprint(self) -> str:
        return str(self.key.thumbprint())

    def key_authorization(self, token: str) -> str:
        """What an http-01 answer holds (RFC 8555 §8.1)."""
        return f"{token}.{self.thumbprint()}"

    def new_account(self, contact: list[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {"termsOfServiceAgreed": True}
        if contact:
            payload["contact"] = contact
        url = str(self.directory["newAccount"])
        resp = self.post(url, payload, "error creating new ACME account")
        self.kid = resp.headers.get("Location")
        if not self.kid:
            raise CLIError(f"error reading {url}: no account Location")
        return _json(resp, url)

    def new_order(
        self, identifiers: list[dict[str, str]], window: dict[str, str]
    ) -> tuple[str, dict[str, Any]]:
        """(the order's URL, the order)."""
        url = str(self.directory["newOrder"])
        resp = self.post(
            url, {"identifiers": identifiers, **window}, "error creating new ACME order"
        )
        location = resp.headers.get("Location")
        if not location:
            raise CLIError(f"error reading {url}: no order Location")
        return location, _json(resp, url)

    def get(self, url: str, what: str) -> tuple[dict[str, Any], float]:
        """A POST-as-GET of an object: (the object, its Retry-After in seconds or 1)."""
        resp = self.post(url, None, what)
        return _json(resp, url), _retry_after(resp)

    def respond(self, challenge_url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Tell the server the challenge is ready (`{}`, or device-attest-01's payload)."""
        what = f"error validating ACME Challenge at {challenge_url}"
        resp = self.post(challenge_url, payload or {}, what)
        return _json(resp, challenge_url)

    def poll(
        self, url: str, what: str, done: Callable[[dict[str, Any]], bool], tick: Callable[[], None]
    ) -> dict[str, Any]:
        """POST-as-GET `url` until `done(object)`, waiting as the server's Retry-After asks
        (1 to 10 s), for at most POLL_LIMIT seconds; `tick` is called after each wait."""
        deadline = time.monotonic() + POLL_LIMIT
        while True:
            obj, wait = self.get(url, what)
            if done(obj) or time.monotonic() + wait > deadline:
                return obj
            time.sleep(wait)
            tick()

    def finalize(self, url: str, csr_der: bytes) -> dict[str, Any]:
        resp = self.post(url, {"csr": _b64(csr_der)}, "error finalizing order")
        return _json(resp, url)

    def certificate(self, url: str) -> list[x509.Certificate]:
        """The PEM chain at `url`: leaf first, then the intermediates."""
        resp = self.post(
            url, None, "error getting certificate", Accept="application/pem-certificate-chain"
        )
        try:
            return x509.load_pem_x509_certificates(resp.content)
        except ValueError:
            raise CLIError("failed to parse any certificates from response") from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(resp: httpx.Response, url: str) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CLIError(f"error reading {url}: not a JSON object")
    return body


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    text = resp.text.strip().splitlines()
    return {"detail": text[0] if text else f"HTTP {resp.status_code} from {resp.request.url}"}


def _retry_after(resp: httpx.Response) -> float:
    """Retry-After as seconds (only the delay form), clamped to 1..MAX_RETRY_AFTER."""
    try:
        value = float(resp.headers.get("Retry-After", "1"))
    except ValueError:
        value = 1.0
    if not math.isfinite(value):  # "nan" and "inf" parse as floats too
        value = 1.0
    return min(max(value, 1.0), MAX_RETRY_AFTER)
