"""ACME against the real server with real certbot (Debian package), on loopback only.

The CA's ACME provisioners fetch http-01 challenges from a high port on 127.0.0.1; the test
name resolves to 127.0.0.1 through the provisioner's `stepstone.hosts` map, so no resolver
is asked and no traffic leaves loopback. certbot's standalone server listens on 127.0.0.1.
One CA serves the module: provisioner `acme` (open) and `eab` (requireEAB, its keys made by
`step ca acme eab add` through the admin API, `enableAdmin`).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509

from tests.e2e.harness import CA, HOST, PROVISIONER, CAFactory, free_port, run_step
from tests.http_server import QuietHandler, serving
from tests.tools import required

CERTBOT = required("certbot")
NAME = "acme.stepstone.test"


class Certbot:
    """certbot with its own config/work/logs folders, trusting only the CA's root."""

    def __init__(self, ca: CA, base: Path, port: int, provisioner: str = "acme") -> None:
        self.ca, self.base, self.port = ca, base, port
        self.server = f"{ca.url}/acme/{provisioner}/directory"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(REQUESTS_CA_BUNDLE=str(self.ca.root_path), NO_PROXY="*", HOME=str(self.base))
        folders = [f"--{d}-dir={self.base / d}" for d in ("config", "work", "logs")]
        return subprocess.run(
            [str(CERTBOT), *args, *folders, "--non-interactive"],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )

    def certonly(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "certonly", "--server", self.server, "-d", NAME,
            "--agree-tos", "--register-unsafely-without-email",
            "--http-01-port", str(self.port), "--http-01-address", HOST, *extra,
        )  # fmt: skip

    def live_cert(self) -> Path:
        return self.base / "config" / "live" / NAME / "cert.pem"


def _acme_provisioner(port: int) -> Any:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["enableAdmin"] = True
        for name, eab in (("acme", False), ("eab", True)):
            entry: dict[str, Any] = {"type": "ACME", "name": name, "challenges": ["http-01"]}
            if eab:
                entry["requireEAB"] = True
            entry["stepstone"] = {"httpPort": port, "hosts": {NAME: HOST}}
            cfg["authority"]["provisioners"].append(entry)

    return edit


@pytest.fixture(scope="module")
def acme_ca(ca_factory: CAFactory) -> tuple[CA, int]:
    port = free_port()
    return ca_factory("acme", edit=_acme_provisioner(port)), port


def _count(ca: CA, sql: str, *params: str) -> int:
    con = sqlite3.connect(f"file:{ca.db_path}?mode=ro", uri=True)
    try:
        return int(con.execute(sql, params).fetchone()[0])
    finally:
        con.close()


def _revoked(ca: CA, serial: int) -> bool:
    return bool(_count(ca, "SELECT COUNT(*) FROM revoked_x509_certs WHERE serial = ?", str(serial)))


def _step_eab(ca: CA, *args: str) -> list[str]:
    """`step ca acme eab ARGS` as the super-admin (a certificate got with the JWK provisioner's
    password on the fly); its output lines."""
    done = run_step(
        ["ca", "acme", "eab", *args, "--password-file", ca.provisioner_password_file],
        ca.steppath,
    )
    return done.stdout.splitlines()


def test_certbot_issues_renews_and_revokes(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = acme_ca
    bot = Certbot(ca, tmp_path, port)
    done = bot.certonly("--standalone")
    assert done.returncode == 0, done.stderr
    first = x509.load_pem_x509_certificate(bot.live_cert().read_bytes())
    assert first.issuer == ca.intermediate.subject
    sans = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [NAME]
    assert ca.db_rows("x509_certs", "serial = ?", (str(first.serial_number),)) == 1

    renewed = bot.run("renew", "--force-renewal", "--no-random-sleep-on-renew")
    assert renewed.returncode == 0, renewed.stderr
    second = x509.load_pem_x509_certificate(bot.live_cert().read_bytes())
    assert second.serial_number != first.serial_number

    revoke = ["revoke", "--cert-path", str(bot.live_cert()), "--server", bot.server]
    revoked = bot.run(*revoke, "--no-delete-after-revoke")
    assert revoked.returncode == 0, revoked.stderr
    assert _revoked(ca, second.serial_number)
    assert not _revoked(ca, first.serial_number)

    again = bot.run(*revoke, "--no-delete-after-revoke")
    assert again.returncode != 0  # certbot 2.1 then trips over its own error (AttributeError)
    log = (tmp_path / "logs" / "letsencrypt.log").read_text()
    assert "urn:ietf:params:acme:error:alreadyRevoked" in log


class _WrongAnswer(QuietHandler):
    """Answers every challenge with a wrong key authorization, and records the paths."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_body(b"not-the-key-authorization")


@pytest.fixture
def wrong_server(acme_ca: tuple[CA, int]) -> Iterator[list[str]]:
    _WrongAnswer.seen = []
    with serving(_WrongAnswer, HOST, acme_ca[1]):
        yield _WrongAnswer.seen


def test_wrong_key_authorization_gives_no_certificate(
    acme_ca: tuple[CA, int], wrong_server: list[str], tmp_path: Path
) -> None:
    ca, port = acme_ca
    webroot = tmp_path / "webroot"
    webroot.mkdir()
    bot = Certbot(ca, tmp_path, port)
    before = ca.db_rows("x509_certs")
    done = bot.run(
        "certonly", "--server", bot.server, "-d", NAME, "--agree-tos",
        "--register-unsafely-without-email", "--webroot", "-w", str(webroot),
    )  # fmt: skip
    assert done.returncode != 0
    assert "keyAuthorization does not match" in done.stderr + done.stdout
    assert not bot.live_cert().exists()
    assert ca.db_rows("x509_certs") == before
    assert any(p.startswith("/.well-known/acme-challenge/") for p in wrong_server)


def test_certbot_with_external_account_binding(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = acme_ca
    header, row = _step_eab(ca, "add", "eab", "certbot-ref")
    assert header.split()[:2] == ["Key", "ID"]
    key_id, provisioner, hmac_key, reference = row.split()
    assert (provisioner, reference) == ("eab", "certbot-ref")

    refused = Certbot(ca, tmp_path / "noeab", port, "eab").certonly("--standalone")
    assert refused.returncode != 0
    assert "external account binding" in (refused.stderr + refused.stdout).lower()

    bot = Certbot(ca, tmp_path / "bot", port, "eab")
    done = bot.certonly("--standalone", "--eab-kid", key_id, "--eab-hmac-key", hmac_key)
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificate(bot.live_cert().read_bytes())
    assert cert.issuer == ca.intermediate.subject

    listed = _step_eab(ca, "list", "eab", "certbot-ref")
    assert listed[0].split()[:2] == ["Key", "ID"]
    assert listed[1].startswith(key_id)
    bound = (
        "SELECT COUNT(*) FROM acme_eab_keys WHERE id = ? AND account_id IN "
        "(SELECT id FROM acme_accounts WHERE provisioner = 'eab')"
    )
    assert _count(ca, bound, key_id) == 1

    # The key is spent: another account cannot bind it.
    again = Certbot(ca, tmp_path / "again", port, "eab").run(
        "register", "--server", bot.server, "--agree-tos", "--register-unsafely-without-email",
        "--eab-kid", key_id, "--eab-hmac-key", hmac_key,
    )  # fmt: skip
    assert again.returncode != 0
    log = (tmp_path / "again" / "logs" / "letsencrypt.log").read_text()
    assert "already bound" in log

    assert _step_eab(ca, "remove", "eab", key_id) == ["Key was deleted successfully!"]
    assert _step_eab(ca, "list", "eab", "certbot-ref") == [
        "No ACME EAB keys stored for provisioner eab"
    ]


def test_certbot_unregisters(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = acme_ca
    bot = Certbot(ca, tmp_path, port)
    registered = bot.run(
        "register", "--server", bot.server, "--agree-tos", "--register-unsafely-without-email"
    )
    assert registered.returncode == 0, registered.stderr
    before = _count(ca, "SELECT COUNT(*) FROM acme_accounts WHERE status = 'deactivated'")
    done = bot.run("unregister", "--server", bot.server)
    assert done.returncode == 0, done.stderr
    after = _count(ca, "SELECT COUNT(*) FROM acme_accounts WHERE status = 'deactivated'")
    assert after == before + 1


def test_certbot_revokes_by_the_certificate_key(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = acme_ca
    bot = Certbot(ca, tmp_path / "owner", port)
    assert bot.certonly("--standalone").returncode == 0
    cert_path = bot.live_cert()
    key_path = cert_path.with_name("privkey.pem")
    serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number

    # A fresh certbot with no account: the request is signed by the certificate's own key.
    stranger = Certbot(ca, tmp_path / "stranger", port)
    revoke = ["revoke", "--cert-path", str(cert_path), "--key-path", str(key_path),
              "--server", stranger.server, "--no-delete-after-revoke"]  # fmt: skip
    done = stranger.run(*revoke)
    assert done.returncode == 0, done.stderr
    assert _revoked(ca, serial)
    assert not (tmp_path / "stranger" / "config" / "accounts").exists()

    again = stranger.run(*revoke)
    assert again.returncode != 0
    log = (tmp_path / "stranger" / "logs" / "letsencrypt.log").read_text()
    assert "urn:ietf:params:acme:error:alreadyRevoked" in log


def test_step_eab_with_an_admin_certificate_and_its_errors(
    acme_ca: tuple[CA, int], tmp_path: Path
) -> None:
    ca = acme_ca[0]
    crt, key = tmp_path / "admin.crt", tmp_path / "admin.key"
    run_step(
        ["ca", "certificate", "step", crt, key, "--provisioner", PROVISIONER,
         "--password-file", ca.provisioner_password_file],
        ca.steppath,
    )  # fmt: skip
    admin = ["--admin-cert", str(crt), "--admin-key", str(key)]
    added = run_step(["ca", "acme", "eab", "add", "eab", "json-ref", "--json", *admin], ca.steppath)
    body = json.loads(added.stdout)
    assert (body["provisioner"], body["reference"]) == ("eab", "json-ref")
    assert len(base64.urlsafe_b64decode(body["key"] + "=")) == 32

    def fails(*args: str | Path) -> str:
        done = run_step(["ca", "acme", "eab", *args], ca.steppath, check=False)
        assert done.returncode == 1, done.stdout
        lines = done.stderr.strip().splitlines()
        assert "Traceback" not in done.stderr
        return lines[0] if lines[0] != "" else done.stderr

    assert "ACME EAB not enabled for provisioner acme" in fails("list", "acme", *admin)
    assert "must be given together" in fails("list", "eab", "--admin-cert", str(crt))
    assert "not found" in fails("remove", "eab", "no-such-key", *admin)
    assert "already exists" in fails("add", "eab", "json-ref", *admin)

    # A certificate for another subject is no admin.
    other_crt, other_key = tmp_path / "alice.crt", tmp_path / "alice.key"
    run_step(
        ["ca", "certificate", "alice", other_crt, other_key, "--provisioner", PROVISIONER,
         "--password-file", ca.provisioner_password_file],
        ca.steppath,
    )  # fmt: skip
    line = fails("list", "eab", "--admin-cert", other_crt, "--admin-key", other_key)
    assert "unable to load admin" in line
