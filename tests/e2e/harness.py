"""Drive the real appliance on loopback: `step ca init`, `step-ca` as a subprocess, `step`.

Everything here talks to 127.0.0.1 only. A `CA` owns one STEPPATH made by `step ca init`; its
server is `step-ca CONFIG --password-file FILE` (gunicorn with TLS, 2 workers), started and
polled on /health, and stopped by its PID (SIGTERM, then wait).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

BIN = Path(sys.executable).parent
STEP = BIN / "step"
STEP_CA = BIN / "step-ca"
OPENSSL = "/usr/bin/openssl"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
CA_PASSWORD = "ca-password-for-tests"
PROVISIONER_PASSWORD = "provisioner-password-for-tests"
PROVISIONER = "admin"

DEFAULT_401 = (
    "The request lacked necessary authorization to be completed. "
    "Please see the certificate authority logs for more info."
)
DEFAULT_404 = (
    "The requested resource could not be found. "
    "Please see the certificate authority logs for more info."
)
BAD_REQUEST = "The request could not be completed: "
FORBIDDEN = "The request was forbidden by the certificate authority: "

ConfigEdit = Callable[[dict[str, Any]], None]
#: ca_factory(label, edit=None, start=True) -> CA
CAFactory = Callable[..., "CA"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def clean_env(steppath: Path, home: Path | None = None) -> dict[str, str]:
    """The environment for a `step`/`step-ca` child: our STEPPATH, no inherited STEP_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    env["STEPPATH"] = str(steppath)
    env["HOME"] = str(home or steppath.parent)
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    return env


def run_step(
    args: Sequence[str | Path],
    steppath: Path,
    *,
    stdin: str | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `.venv/bin/step ARGS` with its own STEPPATH; stdin closed unless given."""
    proc = subprocess.run(
        [str(STEP), *map(str, args)],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=clean_env(steppath),
        cwd=str(cwd) if cwd else None,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"step {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cert_fingerprint(cert: x509.Certificate) -> str:
    return sha256_hex(cert.public_bytes(Encoding.DER))


@dataclass
class CA:
    """One CA made by `step ca init` in its own STEPPATH, and (maybe) its running server."""

    base: Path
    port: int
    name: str = "Test"
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_handles: list[Any] = field(default_factory=list)

    # --- layout ---------------------------------------------------------------------------

    @property
    def steppath(self) -> Path:
        return self.base / "step"

    @property
    def password_file(self) -> Path:
        return self.base / "pw"

    @property
    def provisioner_password_file(self) -> Path:
        return self.base / "ppw"

    @property
    def ca_json(self) -> Path:
        return self.steppath / "config" / "ca.json"

    @property
    def defaults_json(self) -> Path:
        return self.steppath / "config" / "defaults.json"

    @property
    def root_path(self) -> Path:
        return self.steppath / "certs" / "root_ca.crt"

    @property
    def intermediate_path(self) -> Path:
        return self.steppath / "certs" / "intermediate_ca.crt"

    @property
    def db_path(self) -> Path:
        return self.steppath / "db" / "stepstone.db"

    @property
    def log_path(self) -> Path:
        return self.base / f"server-{self.starts}.log"

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.root_path.read_bytes())

    @property
    def intermediate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.intermediate_path.read_bytes())

    @property
    def fingerprint(self) -> str:
        return cert_fingerprint(self.root)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not running"
        return self.proc.pid

    # --- creating -------------------------------------------------------------------------

    @classmethod
    def init(cls, base: Path, name: str = "Test") -> CA:
        """`step ca init` with every flag given and stdin closed: it must not prompt."""
        base.mkdir(parents=True, exist_ok=True)
        ca = cls(base=base, port=free_port(), name=name)
        ca.password_file.write_text(CA_PASSWORD + "\n")
        ca.provisioner_password_file.write_text(PROVISIONER_PASSWORD + "\n")
        run_step(["ca", "init", *ca.init_flags()], ca.steppath)
        return ca

    def init_flags(self) -> list[str | Path]:
        """The flags of `step ca init` for this CA (name, names, address, password files)."""
        return [
            "--name", self.name,
            "--dns", f"{HOST},localhost",
            "--address", f"{HOST}:{self.port}",
            "--provisioner", PROVISIONER,
            "--password-file", self.password_file,
            "--provisioner-password-file", self.provisioner_password_file,
        ]  # fmt: skip

    def config(self) -> dict[str, Any]:
        return dict(json.loads(self.ca_json.read_text()))

    def edit_config(self, mutate: Callable[[dict[str, Any]], None]) -> None:
        """Change ca.json (takes effect at the next start)."""
        cfg = self.config()
        mutate(cfg)
        self.ca_json.write_text(json.dumps(cfg, indent="\t"))

    # --- the server -----------------------------------------------------------------------

    def start(self, *args: str) -> None:
        """Start `step-ca` (with extra flags `args`) and wait (up to 30 s) until /health
        answers over verified TLS."""
        assert self.proc is None, "already running"
        self.starts += 1
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log_handles.append(log)
        self.proc = subprocess.Popen(
            [str(STEP_CA), str(self.ca_json), "--password-file", str(self.password_file), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(self.steppath),
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise AssertionError(f"step-ca exited {code} at start:\n{self.log_tail()}")
            try:
                with self.http(timeout=2.0) as client:
                    resp = client.get("/health")
                if resp.status_code == 200 and resp.json() == {"status": "ok"}:
                    return
            except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                last = exc
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"step-ca did not come up in {START_TIMEOUT}s ({last!r}):\n"
                             f"{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the server's PID and wait for it (SIGKILL only if it will not go)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT)
        for handle in self._log_handles:
            handle.close()
        self._log_handles.clear()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- clients --------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """Trust exactly this CA's root."""
        return ssl.create_default_context(cafile=str(self.root_path))

    def http(self, timeout: float = 30.0) -> httpx.Client:
        """httpx with verify= the root, base URL https://127.0.0.1:PORT."""
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=timeout)

    def raw(self, method: str, path: str, body: bytes | None = None) -> RawResponse:
        """One request on its own TLS connection (Connection: close), read to EOF."""
        return raw_request(self.ssl_context(), self.port, method, path, body)

    # --- the database ---------------------------------------------------------------------

    def db_rows(self, table: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
        """COUNT(*) of a table of STEPPATH/db/stepstone.db (read-only)."""
        assert table in ("x509_certs", "used_tokens")
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")
            return int(con.execute(sql, params).fetchone()[0])
        finally:
            con.close()


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(
    ctx: ssl.SSLContext, port: int, method: str, path: str, body: bytes | None = None
) -> RawResponse:
    """HTTP/1.1 by hand over TLS, so what is on the wire (e.g. a HEAD body) is visible."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    data = ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")
    with socket.create_connection((HOST, port), timeout=30) as sock, ctx.wrap_socket(
        sock, server_hostname=HOST
    ) as tls:
        tls.sendall(data)
        chunks = []
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    header_blob, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no end of headers in {raw[:200]!r}"
    lines = header_blob.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, rest)


# --- keys and CSRs ---------------------------------------------------------------------------


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(
    subject: str | None,
    sans: Sequence[str] = (),
    key: PrivateKey | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR with CN `subject` and SANs split like step splits them (IP, else DNS)."""
    import ipaddress

    key = key or ec_key()
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject)] if subject else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(Encoding.PEM).decode()


def tamper_signature(csr: x509.CertificateSigningRequest) -> str:
    """The CSR re-PEMed with one bit of its signature flipped: parses, does not verify."""
    der = bytearray(csr.public_bytes(Encoding.DER))
    der[-1] ^= 0x01
    b64 = base64.encodebytes(bytes(der)).decode().replace("\n", "")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines) + (
        "\n-----END CERTIFICATE REQUEST-----\n"
    )


def load_chain(pem: str | bytes) -> list[x509.Certificate]:
    data = pem.encode() if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificates(data)


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "message": message}
