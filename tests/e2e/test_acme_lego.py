"""tls-alpn-01 with real lego (Debian package), on loopback only.

The CA is started with `--acme-tls-port PORT` and `--resolver` pointing at the test DNS server,
which resolves the name to 127.0.0.1; lego answers the challenge on 127.0.0.1:PORT. The
certificate is checked with the real `openssl verify` against the CA's root. The negative
case puts a test responder with a wrong digest on that port (lego listening elsewhere).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.acme_dns import DNSServer
from tests.acme_tlsalpn import ChallengeServer, challenge_certificate
from tests.e2e.harness import CA, HOST, OPENSSL, CAFactory, free_port
from tests.tools import required

LEGO = required("lego")
NAME = "lego.stepstone.test"


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DNSServer]:
    with DNSServer() as server:
        server.a[NAME] = HOST
        yield server


@pytest.fixture(scope="module")
def lego_ca(ca_factory: CAFactory, dns_server: DNSServer) -> tuple[CA, int]:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["provisioners"].append({"type": "ACME", "name": "acme"})

    port = free_port()
    ca = ca_factory("acme-lego", edit=edit, start=False)
    ca.start("--acme-tls-port", str(port), "--resolver", f"{HOST}:{dns_server.port}")
    return ca, port


def lego(ca: CA, base: Path, port: int) -> subprocess.CompletedProcess[str]:
    """`lego run` over tls-alpn-01 on HOST:port, trusting only the CA's root."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(LEGO_CA_CERTIFICATES=str(ca.root_path), NO_PROXY="*", HOME=str(base))
    return subprocess.run(
        [
            str(LEGO),
            "--server",
            f"{ca.url}/acme/acme/directory",
            "--accept-tos",
            "--email",
            "admin@stepstone.test",
            "--domains",
            NAME,
            "--path",
            str(base / "lego"),
            "--tls",
            "--tls.port",
            f"{HOST}:{port}",
            "run",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_lego_gets_a_certificate_over_tls_alpn01(
    lego_ca: tuple[CA, int], dns_server: DNSServer, tmp_path: Path
) -> None:
    ca, port = lego_ca
    done = lego(ca, tmp_path, port)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "lego" / "certificates"
    leaf = x509.load_pem_x509_certificate((folder / f"{NAME}.crt").read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [NAME]
    assert ca.db_rows("x509_certs", "serial = ?", (str(leaf.serial_number),)) == 1
    verify = subprocess.run(
        [
            OPENSSL,
            "verify",
            "-CAfile",
            str(ca.root_path),
            "-untrusted",
            str(folder / f"{NAME}.issuer.crt"),
            "-purpose",
            "sslserver",
            "-verify_hostname",
            NAME,
            str(folder / f"{NAME}.crt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip().endswith(": OK")
    assert dns_server.asked(NAME, "A")  # the CA found the name through --resolver


def test_a_wrong_digest_gives_no_certificate(lego_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = lego_ca
    cert, key = challenge_certificate(
        [x509.DNSName(NAME)], "", digest=hashlib.sha256(b"wrong").digest()
    )
    before = ca.db_rows("x509_certs")
    with ChallengeServer(cert, key, port) as responder:
        done = lego(ca, tmp_path, free_port())  # lego listens where the CA does not look
    assert done.returncode != 0
    assert "incorrect certificate for tls-alpn-01 challenge" in done.stderr
    assert (NAME, "acme-tls/1") in responder.seen
    assert not (tmp_path / "lego" / "certificates" / f"{NAME}.crt").exists()
    assert ca.db_rows("x509_certs") == before
