"""An ACME certificate is renewable through `/1.0/renew` over mTLS, as step-ca allows.

certbot (Debian package) gets the certificate over http-01 on loopback (the CA's provisioner
pinned to a free port and the name mapped to 127.0.0.1); then our `step ca renew` renews it
with the certificate and certbot's key, unless the ACME provisioner's claims disable renewal.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from provisioners.extension import ProvisionerExtension, ProvisionerType
from tests.e2e.harness import CA, HOST, CAFactory, free_port, load_chain, run_step
from tests.tools import required

CERTBOT = required("certbot")
NAME = "renew.acme.test"


def _provisioners(port: int) -> Any:
    def edit(cfg: dict[str, Any]) -> None:
        own = {"httpPort": port, "hosts": {NAME: HOST}}
        cfg["authority"]["provisioners"] += [
            {"type": "ACME", "name": "acme", "challenges": ["http-01"], "stepstone": own},
            {
                "type": "ACME",
                "name": "frozen",
                "challenges": ["http-01"],
                "claims": {"disableRenewal": True},
                "stepstone": own,
            },
        ]

    return edit


@pytest.fixture(scope="module")
def acme_ca(ca_factory: CAFactory) -> tuple[CA, int]:
    port = free_port()
    return ca_factory("acme-renew", edit=_provisioners(port)), port


def _certbot(ca: CA, base: Path, port: int, provisioner: str) -> tuple[Path, Path]:
    """certonly --standalone from `provisioner`; the certificate and key files."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(REQUESTS_CA_BUNDLE=str(ca.root_path), NO_PROXY="*", HOME=str(base))
    args = [
        "certonly", "--standalone", "--non-interactive",
        "--server", f"{ca.url}/acme/{provisioner}/directory", "-d", NAME,
        "--agree-tos", "--register-unsafely-without-email",
        "--http-01-port", str(port), "--http-01-address", HOST,
        *(f"--{d}-dir={base / d}" for d in ("config", "work", "logs")),
    ]  # fmt: skip
    done = subprocess.run(
        [str(CERTBOT), *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    live = base / "config" / "live" / NAME
    return live / "cert.pem", live / "privkey.pem"


def _renew(ca: CA, base: Path, cert: Path, key: Path) -> subprocess.CompletedProcess[str]:
    out = base / "renewed.crt"
    args: list[str | Path] = ["ca", "renew", cert, key, "--out", out, "--force"]
    return run_step([*args, "--ca-url", ca.url, "--root", ca.root_path], base / "step", check=False)


def _leaf(path: Path) -> x509.Certificate:
    cert: x509.Certificate = load_chain(path.read_bytes())[0]
    return cert


def test_an_acme_certificate_renews_over_mtls(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = acme_ca
    cert, key = _certbot(ca, tmp_path, port, "acme")
    renewed = _renew(ca, tmp_path, cert, key)
    assert renewed.returncode == 0, renewed.stderr

    old, new = _leaf(cert), _leaf(tmp_path / "renewed.crt")
    assert new.serial_number != old.serial_number
    assert new.issuer == ca.intermediate.subject
    assert new.public_key() == old.public_key()
    sans = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [NAME]
    ext = ProvisionerExtension.from_certificate(new)
    assert ext is not None
    assert (ext.type, ext.name) == (int(ProvisionerType.ACME), "acme")
    assert ca.db_rows("x509_certs", "serial = ?", (str(new.serial_number),)) == 1


def test_renewal_honours_disable_renewal_of_the_acme_provisioner(
    acme_ca: tuple[CA, int], tmp_path: Path
) -> None:
    ca, port = acme_ca
    cert, key = _certbot(ca, tmp_path, port, "frozen")
    before = ca.db_rows("x509_certs")
    refused = _renew(ca, tmp_path, cert, key)
    assert refused.returncode != 0
    assert refused.stderr.startswith("The request lacked necessary authorization"), refused.stderr
    assert "Traceback" not in refused.stderr
    assert "renew is disabled for provisioner 'frozen'" in ca.log_tail(200)
    assert not (tmp_path / "renewed.crt").exists()
    assert ca.db_rows("x509_certs") == before
