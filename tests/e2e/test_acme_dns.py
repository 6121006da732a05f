"""dns-01 with real certbot (`--manual`, hook scripts) and a wildcard, on loopback only.

The CA is started with `--resolver 127.0.0.1:PORT`, the test's authoritative DNS server
(tests.acme_dns), so its TXT lookups never leave loopback. certbot's auth hook writes the
TXT value into a folder the DNS server reads; the negative case writes a wrong value and
shows that the CA asked for the record and issued nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.acme_dns import DNSServer, cleanup_script, hook_script
from tests.e2e.harness import CA, CAFactory
from tests.e2e.test_acme_certbot import Certbot

WILD = "*.wild.stepstone.test"
BASE = "wild.stepstone.test"
RECORD = "_acme-challenge." + BASE


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DNSServer]:
    with DNSServer(tmp_path_factory.mktemp("dns-records")) as server:
        yield server


@pytest.fixture(scope="module")
def dns_ca(ca_factory: CAFactory, dns_server: DNSServer) -> CA:
    """A CA whose `acme` provisioner offers step-ca's default challenges, pointed at the
    test DNS server."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["provisioners"].append({"type": "ACME", "name": "acme"})

    ca = ca_factory("acme-dns", edit=edit, start=False)
    ca.start("--resolver", f"127.0.0.1:{dns_server.port}")
    return ca


def certonly(bot: Certbot, hook: Path, cleanup: Path) -> tuple[int, str]:
    done = bot.run(
        "certonly", "--server", bot.server, "-d", WILD, "-d", BASE,
        "--agree-tos", "--register-unsafely-without-email",
        "--manual", "--preferred-challenges", "dns",
        "--manual-auth-hook", str(hook), "--manual-cleanup-hook", str(cleanup),
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_certbot_gets_a_wildcard_over_dns01(
    dns_ca: CA, dns_server: DNSServer, tmp_path: Path
) -> None:
    assert dns_server.records_dir is not None
    bot = Certbot(dns_ca, tmp_path, 0)
    hook = hook_script(tmp_path / "auth.sh", dns_server.records_dir)
    cleanup = cleanup_script(tmp_path / "cleanup.sh", dns_server.records_dir)
    code, out = certonly(bot, hook, cleanup)
    assert code == 0, out
    cert = x509.load_pem_x509_certificate(
        (tmp_path / "config/live" / BASE / "cert.pem").read_bytes()
    )
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == [WILD, BASE]
    assert cert.issuer == dns_ca.intermediate.subject
    assert dns_ca.db_rows("x509_certs", "serial = ?", (str(cert.serial_number),)) == 1
    assert dns_server.asked(RECORD, "TXT")
    assert not (dns_server.records_dir / RECORD).exists()  # the cleanup hook ran


def test_a_wrong_txt_value_gives_no_certificate(
    dns_ca: CA, dns_server: DNSServer, tmp_path: Path
) -> None:
    assert dns_server.records_dir is not None
    bot = Certbot(dns_ca, tmp_path, 0)
    hook = hook_script(tmp_path / "auth.sh", dns_server.records_dir, value="not-the-digest")
    cleanup = cleanup_script(tmp_path / "cleanup.sh", dns_server.records_dir)
    dns_server.queries.clear()
    before = dns_ca.db_rows("x509_certs")
    code, out = certonly(bot, hook, cleanup)
    assert code != 0
    assert "keyAuthorization does not match" in out
    assert (
        "urn:ietf:params:acme:error:incorrectResponse"
        in (tmp_path / "logs" / "letsencrypt.log").read_text()
    )
    assert not (tmp_path / "config" / "live").exists()
    assert dns_ca.db_rows("x509_certs") == before
    assert dns_server.asked(RECORD, "TXT")
