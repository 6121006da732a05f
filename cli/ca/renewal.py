"""Renewing a certificate: the request (mTLS or bearer token), the schedule, and the daemon."""

from __future__ import annotations

import base64
import logging
import os
import random
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cli.ca.certfiles import CertPair, load_pair
from cli.ca.client import CAClient
from cli.ca.tokens import audience
from cli.common import CLIError
from pki.jose import default_alg, public_jwk

log = logging.getLogger("step.renew")


def renew_token(pair: CertPair, ca_url: str, path: str = "/renew") -> str:
    """The `x5cInsecure` bearer token: signed by the certificate's own key, 5 minutes."""
    now = int(datetime.now(UTC).timestamp())
    cns = pair.leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in pair.chain]
    claims = {
        "iss": "step-ca-client/1.0",
        "sub": str(cns[0].value) if cns else "",
        "aud": audience(ca_url, path),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    key: Any = pair.key
    headers = {"x5cInsecure": x5c, "kid": public_jwk(key)["kid"], "typ": "JWT"}
    return jwt.encode(claims, key, algorithm=default_alg(key), headers=headers)


def parse_chain(resp: dict[str, Any]) -> list[x509.Certificate]:
    """The certificate chain of a sign/renew/rekey answer."""
    pems = resp.get("certChain") or [resp.get("crt"), resp.get("ca")]
    try:
        return [x509.load_pem_x509_certificate(str(p).encode()) for p in pems if p]
    except ValueError:
        raise CLIError("error parsing the certificate sent by the CA") from None


def expired(cert: x509.Certificate, now: datetime | None = None) -> bool:
    return (now or datetime.now(UTC)) >= cert.not_valid_after_utc


def request_renewal(
    ca_url: str,
    root: Path,
    crt: Path,
    key: Path,
    pair: CertPair,
    *,
    mtls: bool,
    key_password: bytes | None = None,
) -> list[x509.Certificate]:
    """Ask the CA for a renewed certificate: mTLS while valid, the bearer token otherwise."""
    if mtls and not expired(pair.leaf):
        with CAClient(ca_url, root, client_cert=(crt, key), key_password=key_password) as client:
            return parse_chain(client.renew())
    with CAClient(ca_url, root) as client:
        return parse_chain(client.renew(bearer=renew_token(pair, ca_url)))


def next_renewal(
    cert: x509.Certificate,
    now: datetime,
    expires_in: timedelta | None = None,
    renew_period: timedelta | None = None,
    rng: Callable[[float, float], float] = random.uniform,
) -> timedelta:
    """How long to wait before renewing, as step's daemon computes it.

    By default: at about 2/3 of the lifetime, minus up to 1/20 of it as jitter.
    """
    remaining = cert.not_valid_after_utc - now
    if renew_period is not None:
        return timedelta(0) if remaining <= renew_period else renew_period
    period = cert.not_valid_after_utc - cert.not_valid_before_utc
    threshold = expires_in if expires_in is not None else period / 3
    d = remaining - threshold
    if d <= timedelta(0):
        return timedelta(0)
    jitter = period / 20
    if d < jitter:
        return timedelta(seconds=rng(0, d.total_seconds()))
    return d - timedelta(seconds=rng(0, jitter.total_seconds()))


@dataclass
class AfterRenewal:
    """What to do once new files are on disk: signal a process, run a command."""

    pid: int | None = None
    pid_file: Path | None = None
    signum: int = signal.SIGHUP
    exec_cmd: str | None = None

    def run(self) -> None:
        pid = self.pid
        if pid is None and self.pid_file is not None:
            try:
                pid = int(self.pid_file.read_text().strip())
            except (OSError, ValueError) as exc:
                log.error("cannot read pid file %s: %s", self.pid_file, exc)
        if pid:
            try:
                os.kill(pid, self.signum)
            except OSError as exc:
                log.error("cannot signal process %d: %s", pid, exc)
        if self.exec_cmd:
            argv = shlex.split(self.exec_cmd)
            try:
                result = subprocess.run(argv, check=False)
            except OSError as exc:
                log.error("cannot run %r: %s", self.exec_cmd, exc)
            else:
                if result.returncode != 0:
                    log.error("%r exited with status %d", self.exec_cmd, result.returncode)


class Daemon:
    """Keeps a certificate renewed: schedule, retry on failure, SIGHUP renews now, SIGTERM stops."""

    def __init__(
        self,
        renew_once: Callable[[CertPair], None],
        load: Callable[[], CertPair],
        *,
        expires_in: timedelta | None,
        renew_period: timedelta | None,
        retry_interval: timedelta,
        after: AfterRenewal,
    ) -> None:
        self.renew_once = renew_once
        self.load = load
        self.expires_in = expires_in
        self.renew_period = renew_period
        self.retry_interval = retry_interval
        self.after = after
        self._wake = threading.Event()
        self._force = False
        self._stop = False

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._force = True
        self._wake.set()

    def _on_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stop = True
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(seconds, 0.0))
        self._wake.clear()

    def run(self) -> None:
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        due: tuple[int, datetime] | None = None  # (serial, when to renew it)
        retrying = False  # a failed renewal is retried every retry interval until it works
        while not self._stop:
            try:
                pair = self.load()
            except CLIError as exc:
                log.error("error loading the certificate: %s", exc)
                self._sleep(self.retry_interval.total_seconds())
                continue
            now = datetime.now(UTC)
            if due is None or due[0] != pair.leaf.serial_number:
                wait = next_renewal(pair.leaf, now, self.expires_in, self.renew_period)
                due = (pair.leaf.serial_number, now + wait)
                log.info(
                    "certificate %s: next renewal at %s",
                    pair.leaf.serial_number,
                    due[1].isoformat(timespec="seconds"),
                )
            if not self._force and not retrying and now < due[1]:
                self._sleep((due[1] - now).total_seconds())
                continue
            self._force = False
            try:
                self.renew_once(pair)
            except CLIError as exc:
                retrying = True
                log.error("error renewing certificate: %s", str(exc).splitlines()[0])
                self._sleep(self.retry_interval.total_seconds())
                continue
            retrying = False
            log.info("certificate renewed")
            self.after.run()
        log.info("renewal daemon stopped")


def load_for(crt: Path, key: Path, password: bytes | None) -> Callable[[], CertPair]:
    return lambda: load_pair(crt, key, password)
