"""Fetch and cache a JSON Web Key Set (OIDC, GCP and Azure identity tokens).

step-ca keeps an identity provider's keys in memory, honours the `Cache-Control: max-age` of
the JWKS response (12 h when there is none) and reloads them lazily once they expire. Keys
rotate, so a token signed with a key id we do not know yet triggers one early reload as well;
that reload is rate limited, or a stream of tokens with made-up key ids would turn the CA into
a request amplifier against the identity provider.

Outbound requests go through httpx with timeouts, a size cap, no redirects and TLS verified
against the system trust store (as Go's default client does, so `SSL_CERT_FILE` works);
`HTTPS_PROXY`/`NO_PROXY` apply except to loopback targets.
Plain `http://` is accepted only for loopback hosts (127.0.0.1, ::1, localhost), which is what
tests use; anything else must be `https://`.

A fresh httpx client is made per fetch: fetches are rare, and a pooled connection made before
gunicorn forks its workers must not be shared between processes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from pki.blocking import may_block
from pki.jose import JOSEError, PublicKey, default_alg, key_from_jwk

log = logging.getLogger(__name__)

#: step-ca's cache lifetime when the JWKS response carries no max-age.
DEFAULT_MAX_AGE = 12 * 3600.0
#: Floor on the cache lifetime (a `max-age=0` must not mean "fetch on every token").
MIN_MAX_AGE = 60.0
#: Ceiling on the cache lifetime, however long the server says keys are good for.
MAX_MAX_AGE = 7 * 24 * 3600.0
#: At most one early reload (unknown `kid`, or retry after a failure) per this many seconds.
REFRESH_INTERVAL = 60.0
#: Seconds for connecting, reading, writing and getting a pooled connection.
TIMEOUT = 10.0
#: Largest document accepted (discovery or JWKS).
MAX_BYTES = 1 << 20

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE_RE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)

# JWS algorithms a key of each type may verify (never `none`, never HMAC).
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class FetchError(RuntimeError):
    """A remote document could not be fetched or is not what was expected."""


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str = "URL") -> str:
    """`url` if it is https, or http to a loopback host; FetchError otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise FetchError(f"{what} {url!r} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if not host or scheme not in ("https", "http"):
        raise FetchError(f"{what} {url!r} must be an https:// URL")
    if scheme == "http" and not is_loopback_host(host):
        raise FetchError(
            f"{what} {url!r} must use https:// (plain http is allowed for loopback hosts only)"
        )
    return url


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@dataclass(frozen=True)
class Fetched:
    """A JSON document and the cache lifetime its response allows (None: not said)."""

    document: Any
    max_age: float | None


def fetch_json(
    url: str,
    *,
    what: str = "document",
    timeout: float = TIMEOUT,
    verify: ssl.SSLContext | bool | None = None,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """GET `url` (checked with :func:`check_url`) and decode its JSON body.

    Raises FetchError for a refused URL, a network error, a non-2xx status, a body over
    MAX_BYTES or a body that is not JSON.
    """
    check_url(url, what)
    may_block(f"fetching {what} {url}")  # not on the worker's event loop: see pki/blocking.py
    try:
        with (
            httpx.Client(
                timeout=timeout,
                verify=_tls_context() if verify is None else verify,
                follow_redirects=False,
                # Proxies from the environment, as Go's client; never for loopback targets.
                trust_env=not is_loopback_host(urlsplit(url).hostname),
            ) as client,
            client.stream(
                "GET", url, headers=dict(headers or {"Accept": "application/json"})
            ) as resp,
        ):
            if not 200 <= resp.status_code < 300:
                raise FetchError(f"error retrieving {what} {url}: HTTP {resp.status_code}")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise FetchError(f"error retrieving {what} {url}: response is too large")
            cache_control = resp.headers.get("cache-control", "")
    except httpx.HTTPError as exc:
        raise FetchError(f"failed to connect to {url}: {exc}") from None
    try:
        document = json.loads(bytes(body))
    except ValueError:
        raise FetchError(f"error reading {what} {url}: not JSON") from None
    return Fetched(document, parse_max_age(cache_control))


def parse_max_age(cache_control: str) -> float | None:
    """Seconds from `Cache-Control: max-age=N`; 0 for no-cache/no-store; None when absent."""
    match = _MAX_AGE_RE.search(cache_control)
    if match:
        return float(match.group(1))
    if _NO_CACHE_RE.search(cache_control):
        return 0.0
    return None


@dataclass(frozen=True)
class JWK:
    """One usable verification key of a key set."""

    kid: str | None
    key: PublicKey
    algorithms: tuple[str, ...]

    def allows(self, alg: object) -> bool:
        return isinstance(alg, str) and alg in self.algorithms


def _algorithms(jwk: Mapping[str, Any], key: PublicKey) -> tuple[str, ...]:
    declared = jwk.get("alg")
    kty = jwk.get("kty")
    if kty == "RSA":
        allowed: tuple[str, ...] = _RSA_ALGS
    elif kty == "EC":
        allowed = (_EC_ALGS[str(jwk.get("crv"))],)
    else:
        allowed = (default_alg(key),)  # OKP: EdDSA
    if isinstance(declared, str) and declared:
        return (declared,) if declared in allowed else ()
    return allowed


def parse_jwks(document: object) -> list[JWK]:
    """The signature keys of a JWKS document; keys we cannot use are skipped, not fatal."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise FetchError('a JWKS must be a JSON object with a "keys" array')
    out: list[JWK] = []
    for item in document["keys"]:
        if not isinstance(item, dict):
            continue
        if item.get("use") not in (None, "", "sig"):
            continue
        try:
            key = key_from_jwk({k: v for k, v in item.items() if k not in ("d", "p", "q")})
        except (JOSEError, KeyError, ValueError, TypeError):
            log.debug("skipping unusable JWK %r", item.get("kid"))
            continue
        if not isinstance(key, PublicKey):  # a private member slipped through: refuse it
            continue
        algs = _algorithms(item, key)
        if not algs:
            continue
        kid = item.get("kid")
        out.append(JWK(kid=kid if isinstance(kid, str) else None, key=key, algorithms=algs))
    return out


class JWKSCache:
    """The keys at one JWKS URL, reloaded on expiry and (rate limited) on an unknown kid.

    Thread safe. `clock` is a monotonic seconds source (injectable for tests); `fetch` does
    the HTTP (injectable too; it must raise FetchError on failure).
    """

    def __init__(
        self,
        url: str,
        *,
        default_max_age: float = DEFAULT_MAX_AGE,
        min_max_age: float = MIN_MAX_AGE,
        max_max_age: float = MAX_MAX_AGE,
        refresh_interval: float = REFRESH_INTERVAL,
        timeout: float = TIMEOUT,
        verify: ssl.SSLContext | bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str], Fetched] | None = None,
    ) -> None:
        self.url = check_url(url, "jwks_uri")
        self._default_max_age = default_max_age
        self._min_max_age = min_max_age
        self._max_max_age = max_max_age
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._fetch = fetch or (
            lambda u: fetch_json(u, what="JWKS", timeout=timeout, verify=verify)
        )
        self._lock = threading.Lock()
        self._keys: list[JWK] = []
        self._loaded = False
        self._expires_at = 0.0
        self._retry_after = float("-inf")  # after a failed fetch, no fetch before this
        self._last_kid_refresh: float | None = None
        self.fetches = 0  # successful and failed attempts, for logs and tests

    # --- public ------------------------------------------------------------------------

    def load(self) -> None:
        """Fetch now (at start-up); raises FetchError if the set cannot be had."""
        with self._lock:
            self._reload()

    def get(self, kid: str | None) -> list[JWK]:
        """Keys for `kid` (all keys when the token names none), reloading when due.

        Expired keys are reloaded; an unknown kid reloads them early, at most once per
        refresh interval; after a failed fetch nothing is fetched for one interval and the
        keys we had keep working.
        """
        if not self._lock.acquire(blocking=False):  # another thread is fetching
            may_block(f"waiting for JWKS {self.url}")
            self._lock.acquire()
        try:
            return self._get(kid)
        finally:
            self._lock.release()

    def _get(self, kid: str | None) -> list[JWK]:
        now = self._clock()
        reloaded = False
        if (not self._loaded or now >= self._expires_at) and now >= self._retry_after:
            reloaded = self._try_reload("cache expired")
        found = self._match(kid)
        if found or kid is None or reloaded or now < self._retry_after:
            return found
        if self._last_kid_refresh is not None and (
            now - self._last_kid_refresh < self._refresh_interval
        ):
            return found
        self._try_reload(f"unknown kid {kid!r}")
        self._last_kid_refresh = now  # after: a reload refused on the loop leaves no trace
        return self._match(kid)

    @property
    def keys(self) -> list[JWK]:
        """The keys currently cached (no fetch)."""
        with self._lock:
            return list(self._keys)

    # --- internals (lock held) -----------------------------------------------------------

    def _match(self, kid: str | None) -> list[JWK]:
        if kid is None:
            return list(self._keys)
        return [k for k in self._keys if k.kid == kid]

    def _try_reload(self, why: str) -> bool:
        try:
            self._reload()
        except FetchError as exc:
            # Keep serving the keys we have; try again after one refresh interval.
            log.warning("reloading JWKS %s (%s) failed: %s", self.url, why, exc)
            return False
        log.info("reloaded JWKS %s (%s): %d keys", self.url, why, len(self._keys))
        return True

    def _reload(self) -> None:
        # Before anything changes: on the worker's event loop this raises, and the request
        # runs again on an app thread, which must find the cache as it was (pki/blocking.py).
        may_block(f"reloading JWKS {self.url}")
        self.fetches += 1
        try:
            fetched = self._fetch(self.url)
            keys = parse_jwks(fetched.document)
        except FetchError:
            self._retry_after = self._clock() + self._refresh_interval
            raise
        age = self._default_max_age if fetched.max_age is None else fetched.max_age
        age = min(max(age, self._min_max_age), self._max_max_age)
        self._keys = keys
        self._loaded = True
        self._expires_at = self._clock() + age
        self._retry_after = float("-inf")
