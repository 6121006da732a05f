"""Challenge validation off the request path: a bounded thread pool per worker process.

- http-01 (RFC 8555 §8.3): GET http://NAME:PORT/.well-known/acme-challenge/TOKEN must answer
  TOKEN.THUMBPRINT (appliance.acme.validation.http01).
- dns-01 (RFC 8555 §8.4): appliance.acme.dns01.
- tls-alpn-01 (RFC 8737): appliance.acme.tlsalpn01.

Each attempt has a timeout; a failure that may pass later (nothing listening yet, no record
yet) is retried a few times, spaced out, before the challenge is declared invalid; a wrong
answer is final. Failures are RFC 8555 problem objects (`connection`, `dns`, `tls`,
`incorrectResponse`).

Where the CA looks: `Settings`, from step-ca's flags `--resolver`, `--acme-http-port` and
`--acme-tls-port`. `step-ca` calls `configure` in gunicorn's master before it forks the
workers (gunicorn forks, never execs, them; a USR2 re-exec repeats the command line), so each
worker inherits them with this module. A provisioner's `stepstone` test block wins over them:
`httpPort` over `--acme-http-port`, `hosts` (name → address) over any resolver.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from appliance.acme import dns01, tlsalpn01
from appliance.acme.problems import ACMEProblem
from provisioners.acme import ACMEProvisioner

log = logging.getLogger(__name__)

WORKERS = 4
ATTEMPTS = 3
RETRY_DELAY = 2.0
TIMEOUT = 10.0
MAX_BODY = 1024

Problem = dict[str, Any]
#: One attempt: (None, _) on success, else (the problem, whether to try again).
Attempt = Callable[[], tuple[Problem | None, bool]]

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


@dataclass(frozen=True)
class Settings:
    """step-ca's validation flags: the resolver (None: the system's), the ports, and
    `--acme-strict-fqdn` (names looked up as absolute, never through the search list)."""

    resolver: tuple[str, int] | None = None
    http_port: int = 80
    tls_port: int = 443
    strict_fqdn: bool = False


_settings = Settings()


def configure(settings: Settings) -> None:
    """Set the flags for this process and the workers it will fork."""
    global _settings
    _settings = settings


def settings() -> Settings:
    return _settings


def submit(job: Callable[[], None]) -> None:
    """Run `job` on this process's pool (made after a fork, never inherited)."""
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(WORKERS, thread_name_prefix="acme-validate"))
        pool = _pool[1]
    pool.submit(_logged, job)


def _logged(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception:  # a worker thread has nobody else to report to
        log.exception("ACME validation failed unexpectedly")


def with_retries(attempt: Attempt) -> Problem | None:
    """Up to ATTEMPTS attempts, RETRY_DELAY apart, while the failure is worth retrying."""
    problem: Problem | None = None
    for n in range(ATTEMPTS):
        if n:
            time.sleep(RETRY_DELAY)
        problem, again = attempt()
        if problem is None or not again:
            return problem
    return problem


def validate(
    challenge: str, kind: str, value: str, token: str, key_authorization: str,
    prov: ACMEProvisioner,
) -> Problem | None:  # fmt: skip
    """None when the challenge of identifier (`kind`, `value`) passes, else its problem."""
    conf = settings()
    if challenge == "dns-01":
        return with_retries(lambda: dns01.check(value, key_authorization, conf.resolver, TIMEOUT))
    if challenge not in ("http-01", "tls-alpn-01"):
        return ACMEProblem("serverInternal", f"{challenge} is not supported", 500).document()

    def attempt() -> tuple[Problem | None, bool]:
        try:
            address = address_for(kind, value, prov.hosts, conf.resolver, conf.strict_fqdn)
        except dns01.LookupFailed as exc:
            return _problem("dns", f"no address for {value}: {exc}"), True
        if challenge == "tls-alpn-01":
            return tlsalpn01.check(kind, value, address, conf.tls_port, key_authorization, TIMEOUT)
        port = prov.pinned_http_port or conf.http_port
        url = f"http://{_url_host(address)}:{port}/.well-known/acme-challenge/{token}"
        return http01(url, value, key_authorization)

    return with_retries(attempt)


def address_for(
    kind: str, value: str, hosts: dict[str, str], resolver: dns01.Nameserver,
    strict_fqdn: bool = False,
) -> str:  # fmt: skip
    """Where to connect for a name: the test block's address, else the `--resolver`'s first
    address, else the name itself (the system resolves it as it connects; with
    `strict_fqdn` as an absolute name, so no search domain is tried)."""
    pinned = hosts.get(value.lower())
    if pinned:
        return pinned
    if kind == "ip":
        return value
    if resolver is None:
        return f"{value}." if strict_fqdn and not value.endswith(".") else value
    return dns01.addresses(value, resolver, TIMEOUT)[0]


def _url_host(address: str) -> str:
    try:
        if ipaddress.ip_address(address).version == 6:
            return f"[{address}]"
    except ValueError:
        pass
    return address


def http01(url: str, host: str, expected: str) -> tuple[Problem | None, bool]:
    """One GET of `url` (Host: `host`): (None, _) when it answers the key authorization."""
    try:
        # Redirects are followed as step-ca's Go client follows them (at most 10); the body is
        # read up to MAX_BODY bytes only, however much the other side sends.
        with (
            httpx.Client(
                timeout=TIMEOUT, trust_env=False, follow_redirects=True, max_redirects=10
            ) as c,
            c.stream("GET", url, headers={"Host": host}) as resp,
        ):
            status = resp.status_code
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) >= MAX_BODY:
                    break
    except httpx.HTTPError as exc:
        return _problem("connection", f"error doing http GET for url {url}: {exc}"), True
    if status >= 400:
        return _problem(
            "connection", f"error doing http GET for url {url} with status code {status}",
        ), True  # fmt: skip
    got = body[:MAX_BODY].decode(errors="replace").strip()
    if got == expected:
        return None, False
    return _problem("incorrectResponse", f"keyAuthorization does not match; expected "
                    f"{expected}, but got {got}"), False  # fmt: skip


def _problem(kind: str, detail: str) -> Problem:
    return ACMEProblem(kind, detail).document()
