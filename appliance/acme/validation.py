"""Challenge validation off the request path: a bounded thread pool per worker process.

http-01 (RFC 8555 §8.3): GET http://NAME:PORT/.well-known/acme-challenge/TOKEN must answer
TOKEN.THUMBPRINT. Each attempt has a timeout; a few attempts, spaced out, before the
challenge is declared invalid (the client may still be starting its server).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from appliance.acme.problems import PREFIX

log = logging.getLogger(__name__)

WORKERS = 4
ATTEMPTS = 3
RETRY_DELAY = 2.0
TIMEOUT = 10.0
MAX_BODY = 1024

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


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


def http01_url(kind: str, value: str, token: str, port: int, hosts: dict[str, str]) -> str:
    """Where the key authorization is fetched; `hosts` pins names to addresses (tests)."""
    address = hosts.get(value.lower(), value)
    host = address
    try:
        if ipaddress.ip_address(address).version == 6:
            host = f"[{address}]"
    except ValueError:
        pass
    return f"http://{host}:{port}/.well-known/acme-challenge/{token}"


def http01(url: str, host: str, expected: str) -> dict[str, Any] | None:
    """None when the key authorization is served at `url`, else the problem (an RFC 8555
    error object) of the last attempt."""
    problem: dict[str, Any] = {}
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_DELAY)
        try:
            with httpx.Client(timeout=TIMEOUT, trust_env=False, follow_redirects=False) as c:
                resp = c.get(url, headers={"Host": host})
        except httpx.HTTPError as exc:
            problem = _problem("connection", f"error doing http GET for url {url}: {exc}")
            continue
        if resp.status_code >= 400:
            problem = _problem(
                "connection", f"error doing http GET for url {url} with status code "
                f"{resp.status_code}",
            )  # fmt: skip
            continue
        got = resp.content[:MAX_BODY].decode(errors="replace").strip()
        if got == expected:
            return None
        return _problem("incorrectResponse", f"keyAuthorization does not match; expected "
                        f"{expected}, but got {got}")  # fmt: skip
    return problem


def _problem(kind: str, detail: str) -> dict[str, Any]:
    return {"type": PREFIX + kind, "detail": detail, "status": 400}
