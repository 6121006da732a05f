"""A tls-alpn-01 responder for tests on 127.0.0.1: a TLS server offering ALPN `acme-tls/1`
with a self-signed challenge certificate (RFC 8737) that a test can make wrong on purpose (the
digest, the extension's criticality, the names). It records the SNI and ALPN of each handshake,
so a test can show the CA really connected.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

HOST = "127.0.0.1"
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def challenge_certificate(
    sans: list[x509.GeneralName],
    key_authorization: str,
    *,
    digest: bytes | None = None,
    critical: bool = True,
    extension: bool = True,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The self-signed certificate a tls-alpn-01 client serves (or a faulty one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    value = digest if digest is not None else hashlib.sha256(key_authorization.encode()).digest()
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme tls-alpn-01 challenge")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if extension:
        der = b"\x04" + bytes([len(value)]) + value
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER, der), critical=critical
        )
    return builder.sign(key, hashes.SHA256()), key


class ChallengeServer:
    """`with ChallengeServer(cert, key, port) as srv:`; `srv.seen` lists (sni, alpn)."""

    def __init__(
        self,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        port: int = 0,
        alpn: list[str] | None = None,
    ) -> None:
        self.seen: list[tuple[str | None, str | None]] = []
        self._sni: str | None = None
        self._stop = threading.Event()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            crt, pkey = Path(tmp) / "crt.pem", Path(tmp) / "key.pem"
            crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            pkey.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            self.ctx.load_cert_chain(crt, pkey)
        self.ctx.set_alpn_protocols(["acme-tls/1"] if alpn is None else alpn)
        self.ctx.sni_callback = self._on_sni
        self.sock = socket.create_server((HOST, port))
        self.sock.settimeout(0.2)  # to notice stop()
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _on_sni(self, _tls: object, name: str | None, _ctx: ssl.SSLContext) -> None:
        self._sni = name  # one handshake at a time: _serve is sequential

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                self._sni = None
                try:
                    with self.ctx.wrap_socket(conn, server_side=True) as tls:
                        self.seen.append((self._sni, tls.selected_alpn_protocol()))
                except (OSError, ssl.SSLError):
                    self.seen.append((self._sni, None))

    def __enter__(self) -> ChallengeServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.sock.close()
