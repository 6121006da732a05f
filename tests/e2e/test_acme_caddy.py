"""Caddy (Debian package) gets its certificate from the appliance over ACME, on loopback only.

Caddy is configured with `acme_ca` pointing at the CA's ACME directory and `acme_ca_root` at
its root; it answers http-01 on a free loopback port, which the CA's provisioner is pinned to
(`stepstone.httpPort`, the name mapped to 127.0.0.1 by `stepstone.hosts`). The test then
connects to Caddy's HTTPS port with SNI, trusting only the CA's root. Caddy's admin endpoint,
OCSP stapling and trust-store installation are off; HOME and XDG folders are the test's own.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.e2e.harness import CA, HOST, CAFactory, free_port
from tests.tools import required

CADDY = required("caddy")
NAME = "acme.caddy.test"
WAIT = 180.0  # generous: Caddy retries with backoff, and the machine may be busy


def _caddyfile(ca: CA, storage: Path, http_port: int, https_port: int) -> str:
    return f"""{{
	admin off
	acme_ca {ca.url}/acme/acme/directory
	acme_ca_root {ca.root_path}
	http_port {http_port}
	https_port {https_port}
	storage file_system {storage}
	skip_install_trust
	ocsp_stapling off
	cert_issuer acme {{
		disable_tlsalpn_challenge
	}}
}}

{NAME} {{
	bind {HOST}
	respond "served by caddy"
}}
"""


class Caddy:
    """`caddy run` in its own folder, stopped by PID."""

    def __init__(self, ca: CA, base: Path, http_port: int) -> None:
        self.base, self.http_port, self.https_port = base, http_port, free_port()
        self.config = base / "Caddyfile"
        self.config.write_text(_caddyfile(ca, base / "storage", http_port, self.https_port))
        self.log = base / "caddy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(
            HOME=str(self.base),
            XDG_CONFIG_HOME=str(self.base / "config"),
            XDG_DATA_HOME=str(self.base / "data"),
            XDG_CACHE_HOME=str(self.base / "cache"),
        )
        return env

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(CADDY), "run", "--config", str(self.config), "--adapter", "caddyfile"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=str(self.base),
                start_new_session=True,
            )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def served(self, context: ssl.SSLContext) -> tuple[bytes, bytes] | None:
        """(leaf DER, HTTP response) from Caddy's HTTPS port, or None while it has no
        certificate our root verifies."""
        try:
            with (
                socket.create_connection((HOST, self.https_port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=NAME) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
                body = b""
                while chunk := tls.recv(65536):
                    body += chunk
        except (OSError, ssl.SSLError):
            return None
        return (der or b""), body


def _acme_provisioner(port: int) -> Any:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["provisioners"].append(
            {
                "type": "ACME",
                "name": "acme",
                "challenges": ["http-01"],
                "stepstone": {"httpPort": port, "hosts": {NAME: HOST}},
            }
        )

    return edit


@pytest.fixture
def caddy(ca_factory: CAFactory, tmp_path: Path) -> Iterator[tuple[CA, Caddy]]:
    http_port = free_port()
    ca = ca_factory("caddy", edit=_acme_provisioner(http_port))
    server = Caddy(ca, tmp_path, http_port)
    server.start()
    try:
        yield ca, server
    finally:
        server.stop()


def test_caddy_obtains_and_serves_a_certificate(caddy: tuple[CA, Caddy]) -> None:
    ca, server = caddy
    context = ca.ssl_context()  # trusts only our root
    deadline = time.monotonic() + WAIT
    got = server.served(context)
    while got is None:
        assert server.proc is not None and server.proc.poll() is None, server.log_tail()
        assert time.monotonic() < deadline, f"no certificate from Caddy:\n{server.log_tail()}"
        time.sleep(0.5)
        got = server.served(context)
    der, response = got
    assert response.startswith(b"HTTP/1.1 200") and b"served by caddy" in response

    leaf = x509.load_der_x509_certificate(der)
    assert leaf.issuer == ca.intermediate.subject
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [NAME]
    assert ca.db_rows("x509_certs", "serial = ?", (str(leaf.serial_number),)) == 1
    # Caddy kept what it got in the test's storage, and nothing in the real HOME.
    assert list((server.base / "storage" / "certificates").rglob(f"{NAME}.crt"))
