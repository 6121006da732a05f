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

import contextlib
import http.client
import ipaddress
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from appliance.acme import dns01, tlsalpn01
from appliance.acme.problems import ACMEProblem
from provisioners.acme import ACMEProvisioner

log = logging.getLogger(__name__)

WORKERS = 4
ATTEMPTS = 3
RETRY_DELAY = 2.0
TIMEOUT = 10.0
MAX_BODY = 1024
MAX_REDIRECTS = 10
USER_AGENT = "Stepstone ACME validation"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_KEY_AUTHORIZATION = re.compile(r"[A-Za-z0-9_.-]{1,200}")

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
    """GET `url` (Host: `host`), following redirects as step-ca does but only to http(s) on
    ports 80, 443 or the first URL's, and never to a link-local, multicast or unspecified
    address: (None, _) when the answer is the key authorization."""
    first_port = urlsplit(url).port
    deadline = time.monotonic() + TIMEOUT
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = fetch(url, host, deadline)
            if status not in _REDIRECTS or not location:
                break
            url = urljoin(url, location)
            refused = redirect_refusal(url, first_port)
            if refused:
                return _problem("connection", refused), False
            host = urlsplit(url).netloc
        else:
            return _problem("connection", f"too many redirects for url {url}"), False
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return _problem("connection", f"error doing http GET for url {url}: {exc}"), True
    if status >= 400:
        return _problem(
            "connection", f"error doing http GET for url {url} with status code {status}",
        ), True  # fmt: skip
    got = body.decode(errors="replace").strip()
    if got == expected:
        return None, False
    # What was fetched is echoed only when it looks like a key authorization: the URL may have
    # led anywhere the CA can reach, and the account holder reads this detail.
    shown = got if _KEY_AUTHORIZATION.fullmatch(got) else f"{len(body)} bytes of something else"
    detail = f"keyAuthorization does not match; expected {expected}, but got {shown}"
    return _problem("incorrectResponse", detail), False


def fetch(url: str, host: str, deadline: float) -> tuple[int, str, bytes]:
    """(status, Location, at most MAX_BODY bytes of body) of one GET, all of it before
    `deadline`: a server that answers a byte at a time is cut off by shutting the socket."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported URL {url}")
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("took too long")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # the content is what is checked, not the peer
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=left,
                                           context=insecure)  # fmt: skip
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=left)
    watchdog: threading.Timer | None = None
    cut = threading.Event()
    try:
        conn.connect()
        # The socket itself: the connection hands it to the response and forgets it.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, (conn.sock, cut))
        watchdog.start()
        path = parts.path or "/"
        conn.request("GET", f"{path}?{parts.query}" if parts.query else path,
                     headers={"Host": host, "User-Agent": USER_AGENT, "Accept": "*/*"})  # fmt: skip
        resp = conn.getresponse()
        body = resp.read(MAX_BODY)
        if cut.is_set():  # what was read is only the part that came before the deadline
            raise TimeoutError(f"no complete answer within {TIMEOUT:g}s")
        return resp.status, resp.getheader("Location") or "", body
    finally:
        if watchdog is not None:
            watchdog.cancel()
        conn.close()


def _cut(sock: socket.socket, cut: threading.Event) -> None:
    """Wake a read blocked past the deadline (close alone would not, on Linux)."""
    cut.set()
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def redirect_refusal(url: str, first_port: int | None) -> str | None:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"redirect to an invalid URL {url}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"redirect to an unsupported URL {url}"
    if port not in (80, 443, first_port):
        return f"redirect to {url}: only ports 80 and 443 are followed"
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        return f"redirect to {url}: that address is not followed"
    return None


def _problem(kind: str, detail: str) -> Problem:
    return ACMEProblem(kind, detail).document()
