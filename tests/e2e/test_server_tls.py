"""The CA's own TLS certificate: its profile, its protocol floor, renewal without a restart."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.e2e.harness import CA, HOST, OPENSSL, CAFactory

RENEW_WAIT = 40.0  # seconds to wait for a 30 s certificate to be replaced (not a speed test)


def server_certificate(ca: CA, ctx: ssl.SSLContext | None = None) -> x509.Certificate:
    """The leaf the server presents, over a handshake verified against the CA's root."""
    ctx = ctx or ca.ssl_context()
    with socket.create_connection((HOST, ca.port), timeout=30) as sock, ctx.wrap_socket(
        sock, server_hostname=HOST
    ) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_profile(main_ca: CA) -> None:
    before = datetime.now(UTC)
    cert = server_certificate(main_ca)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["Step Online CA"]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life == timedelta(hours=24, minutes=1)
    assert cert.not_valid_before_utc <= before <= cert.not_valid_after_utc
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.issuer == main_ca.intermediate.subject
    cert.verify_directly_issued_by(main_ca.intermediate)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku


def test_chains_to_root_with_openssl(main_ca: CA, tmp_path: Path) -> None:
    """The server sends leaf + intermediate; openssl verifies them against the root alone."""
    proc = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"{HOST}:{main_ca.port}", "-servername", HOST,
         "-CAfile", str(main_ca.root_path), "-verify_return_error", "-showcerts"],
        input="", capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Verify return code: 0 (ok)" in proc.stdout
    assert proc.stdout.count("-----BEGIN CERTIFICATE-----") == 2


def test_untrusted_root_is_refused(main_ca: CA, ca_factory: CAFactory) -> None:
    """Sanity: another CA's root does not verify this server."""
    other = ca_factory("other-root", start=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        server_certificate(main_ca, other.ssl_context())


def _client_ctx(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers exactly `version` (old versions allowed at security level 0)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def test_tls_1_1_refused(main_ca: CA) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.TLSVersion.TLSv1_1
    # The server's alert, not a client-side "no protocols available".
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
        server_certificate(main_ca, _client_ctx(old))


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_accepted(main_ca: CA, version: ssl.TLSVersion) -> None:
    ctx = _client_ctx(version)
    with socket.create_connection((HOST, main_ca.port), timeout=30) as sock, ctx.wrap_socket(
        sock, server_hostname=HOST
    ) as tls:
        assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                 ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


def _health(
    ca: CA, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLSession | None, bool]:
    """GET /health on a new connection, offering `session`; read to the end, so TLS 1.3's
    session tickets (sent after the handshake) arrive. The session, and whether it was
    resumed."""
    with socket.create_connection((HOST, ca.port), timeout=30) as sock, ctx.wrap_socket(
        sock, server_hostname=HOST, session=session
    ) as tls:
        tls.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 "), data[:80]
        return tls.session, bool(tls.session_reused)


@pytest.fixture(scope="module")
def two_workers(ca_factory: CAFactory) -> CA:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["stepstone"] = {"workers": 2}

    return ca_factory("two-workers", edit)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_reconnecting_client_resumes_its_session_on_any_worker(
    two_workers: CA, version: ssl.TLSVersion
) -> None:
    """Both workers share the session-ticket keys (made in the master before the fork), so
    every reconnect is an abbreviated handshake, whichever worker accepts it."""
    ctx = two_workers.ssl_context()
    ctx.minimum_version = ctx.maximum_version = version
    session, reused = _health(two_workers, ctx)
    assert session is not None and not reused
    resumed = [_health(two_workers, ctx, session)[1] for _ in range(8)]
    assert resumed == [True] * 8


def test_openssl_resumes_a_saved_session(main_ca: CA, tmp_path: Path) -> None:
    """The same with openssl s_client (TLS 1.3): -sess_out, then -sess_in on a new process."""
    saved = tmp_path / "session.pem"
    request = f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    base = [OPENSSL, "s_client", "-connect", f"{HOST}:{main_ca.port}", "-servername", HOST,
            "-CAfile", str(main_ca.root_path), "-verify_return_error", "-ign_eof"]
    outputs = []
    for extra in (["-sess_out", str(saved)], ["-sess_in", str(saved)],
                  ["-sess_in", str(saved)], ["-sess_in", str(saved)]):
        proc = subprocess.run([*base, *extra], input=request, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    assert "New, TLSv1.3" in outputs[0]
    assert all("Reused, TLSv1.3" in out for out in outputs[1:]), outputs


def test_renewed_without_restart(ca_factory: CAFactory) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["stepstone"] = {"serverCertDuration": "30s"}

    ca = ca_factory("short-tls", edit)
    pid = ca.pid
    first = server_certificate(ca)
    client = ca.ssl_context()
    session, _ = _health(ca, client)
    assert first.not_valid_after_utc - first.not_valid_before_utc == timedelta(
        seconds=30, minutes=1
    )
    renewed: x509.Certificate | None = None
    deadline = time.monotonic() + RENEW_WAIT
    while time.monotonic() < deadline:
        time.sleep(1)
        cert = server_certificate(ca)
        if cert.serial_number != first.serial_number:
            renewed = cert
            break
    assert renewed is not None, "the server kept its first certificate past 2/3 of its life"
    assert ca.proc is not None and ca.proc.poll() is None
    assert ca.pid == pid
    now = datetime.now(UTC)
    assert renewed.not_valid_before_utc <= now <= renewed.not_valid_after_utc
    assert renewed.not_valid_after_utc >= first.not_valid_after_utc
    assert renewed.subject == first.subject
    renewed.verify_directly_issued_by(ca.intermediate)
    # A session from before the renewal still resumes: the ticket keys did not change.
    assert _health(ca, client, session)[1]
    # The API keeps answering on the same server.
    with ca.http() as http:
        assert http.get("/health").json() == {"status": "ok"}
    assert ca.pid == pid


def test_gunicorn_runs_the_configured_workers(two_workers: CA) -> None:
    """step-ca CONFIG runs a gunicorn master with `stepstone.workers` worker processes (the
    server answers once one is up; the other may still be starting)."""

    def children() -> list[int]:
        found = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == two_workers.pid:
                found.append(int(stat_file.parent.name))
        return found

    deadline = time.monotonic() + 60
    while len(found := children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(found) == 2, found
