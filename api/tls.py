"""The CA's own TLS: a short-lived server certificate it issues itself, renewed in place.

The certificate and its key live in one file in a private runtime directory (the key encrypted
with a random password that only this process tree holds). Every gunicorn worker keeps one
SSL context and swaps in a new one when that file changes; whichever worker first sees the
certificate past 2/3 of its life re-issues it under a file lock. Clients never see a restart.

Every handshake starts on one *session* context, built in gunicorn's master before it forks
(at start and on each reload) and switched to the current certificate's context by an SNI
callback. OpenSSL keys session tickets by the context a handshake starts on, so every worker
of a generation shares the ticket keys: a client that reconnects resumes its TLS session
(an abbreviated handshake, no signature or key exchange on our side) whichever worker takes
it. The ticket keys live until the next reload or restart.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import random
import secrets
import shutil
import ssl
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
)

from appliance.authority import Authority, pem
from keystores import write_atomic

log = logging.getLogger(__name__)

# Go cipher-suite names (ca.json `tls.cipherSuites`) to OpenSSL's, for TLS 1.2.
GO_TO_OPENSSL = {
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
}
_VERSIONS = {
    1.0: ssl.TLSVersion.TLSv1,
    1.1: ssl.TLSVersion.TLSv1_1,
    1.2: ssl.TLSVersion.TLSv1_2,
    1.3: ssl.TLSVersion.TLSv1_3,
}


def _remove_dir(path: Path, owner: int) -> None:
    """Remove the runtime directory, from the process that made it (not from workers)."""
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


class ServerTLS:
    """Issues, stores, renews and serves the CA's TLS certificate."""

    def __init__(self, authority: Authority, runtime_dir: Path | None = None) -> None:
        self.authority = authority
        self.duration = authority.config.server_cert_duration
        self.dir = runtime_dir or Path(tempfile.mkdtemp(prefix="stepstone-tls-"))
        self.dir.chmod(0o700)
        if runtime_dir is None:
            owner = os.getpid()
            atexit.register(_remove_dir, self.dir, owner)
        self.path = self.dir / "server.pem"
        self._password = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._session: ssl.SSLContext | None = None
        self._loaded_stat: tuple[int, int] | None = None
        self._renew_at: datetime | None = None

    # --- issuing --------------------------------------------------------------------------

    def issue(self) -> x509.Certificate:
        """Issue a new certificate and key and replace the file atomically."""
        key = ec.generate_private_key(ec.SECP256R1())
        result = self.authority.issue_server_certificate(key.public_key(), self.duration)
        key_pem = key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(self._password)
        )
        chain = "".join(pem(c) for c in result.chain).encode()
        write_atomic(self.path, chain + key_pem, mode=0o600)
        log.info(
            "issued the CA's TLS certificate serial=%s valid until %s",
            result.certificate.serial_number,
            result.certificate.not_valid_after_utc.isoformat(),
        )
        return result.certificate

    def renewal_time(self, cert: x509.Certificate) -> datetime:
        """2/3 of the lifetime, minus up to 1/20 of it as jitter (as step-ca).

        The lifetime counts from issuance, not from the backdated notBefore, so that short
        certificates are not re-issued at once.
        """
        end = cert.not_valid_after_utc
        start = min(cert.not_valid_before_utc + self.authority.config.backdate, end)
        life = end - start
        jitter = timedelta(seconds=random.uniform(0, life.total_seconds() / 20))
        return start + life * 2 / 3 - jitter

    def _current_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.path.read_bytes())[0]

    def _stamp(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_ino, st.st_mtime_ns

    def _renew_if_due(self, now: datetime) -> None:
        """Re-issue once the loaded certificate is due, unless another worker already did."""
        if self._renew_at is None or now < self._renew_at:
            return
        with open(self.dir / "renew.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self._stamp() == self._loaded_stat:
                    self.issue()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # --- serving --------------------------------------------------------------------------

    def _build(self) -> ssl.SSLContext:
        # The schema has checked the block and CAConfig filled in the defaults: known
        # versions, cipher suites step-ca knows (those without an OpenSSL TLS 1.2 name here,
        # TLS 1.3's and the CBC ones, are left to OpenSSL's defaults).
        tls = self.authority.config.tls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = max(_VERSIONS[float(tls["minVersion"])], ssl.TLSVersion.TLSv1_2)
        ctx.maximum_version = _VERSIONS[float(tls["maxVersion"])]
        suites = [GO_TO_OPENSSL[s] for s in tls["cipherSuites"] if s in GO_TO_OPENSSL]
        if suites:
            ctx.set_ciphers(":".join(suites))
        ctx.load_cert_chain(str(self.path), password=self._password)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        # Client certificates may chain to any configured root through any intermediate we
        # have used (the current ones are in the pool; older ones come with the client).
        ctx.load_verify_locations(
            cadata="".join(pem(c) for c in self.authority.roots + self.authority.intermediates)
        )
        ctx.options |= ssl.OP_NO_RENEGOTIATION
        return ctx

    def context(self) -> ssl.SSLContext:
        """The SSL context for a new connection: cached, renewed and reloaded when needed."""
        with self._lock:
            now = datetime.now(UTC)
            try:
                self._renew_if_due(now)
            except Exception:  # keep serving the old certificate; try again next connection
                log.exception("renewing the CA's TLS certificate failed")
            stamp = self._stamp()
            if self._context is None or stamp != self._loaded_stat:
                try:
                    ctx = self._build()
                    cert = self._current_certificate()
                except (ssl.SSLError, OSError, ValueError):
                    if self._context is None:
                        raise
                    log.exception("loading the renewed TLS certificate failed; keeping the old one")
                else:
                    self._context, self._loaded_stat = ctx, stamp
                    self._renew_at = self.renewal_time(cert)
            assert self._context is not None
            return self._context

    def prepare_session(self) -> None:
        """In the master, before workers fork: the session context (and the current one)
        from the certificate file as it is. Never renews: issuing is for workers (an HSM
        session must not be opened in the master)."""
        with self._lock:
            ctx = self._build()
            cert = self._current_certificate()
            self._session = self._context = ctx
            self._loaded_stat = self._stamp()
            self._renew_at = self.renewal_time(cert)

    def session_context(self) -> ssl.SSLContext:
        """The context handshakes start on (see the module's docstring); the current one
        when the master prepared none."""
        return self._session or self.context()

    def gunicorn_hook(self, _conf: object, _factory: object) -> ssl.SSLContext:
        """gunicorn's `ssl_context` server hook (called per accepted connection)."""
        return self.context()
