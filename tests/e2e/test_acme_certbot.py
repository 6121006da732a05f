"""ACME against the real server with real certbot (Debian package), on loopback only.

The CA's ACME provisioner fetches http-01 challenges from a high port on 127.0.0.1; the test
name resolves to 127.0.0.1 through the provisioner's `stepstone.hosts` map, so no resolver
is asked and no traffic leaves loopback. certbot's standalone server listens on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509

from tests.e2e.harness import CA, HOST, CAFactory, free_port

CERTBOT = shutil.which("certbot")
NAME = "acme.stepstone.test"
pytestmark = pytest.mark.skipif(CERTBOT is None, reason="certbot is not installed")


class Certbot:
    """certbot with its own config/work/logs folders, trusting only the CA's root."""

    def __init__(self, ca: CA, base: Path, port: int) -> None:
        self.ca, self.base, self.port = ca, base, port
        self.server = f"{ca.url}/acme/acme/directory"

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
        cfg["authority"]["provisioners"].append(
            {
                "type": "ACME",
                "name": "acme",
                "challenges": ["http-01"],
                "stepstone": {"httpPort": port, "hosts": {NAME: HOST}},
            }
        )

    return edit


@pytest.fixture(scope="module")
def acme_ca(ca_factory: CAFactory) -> tuple[CA, int]:
    port = free_port()
    return ca_factory("acme", edit=_acme_provisioner(port)), port


def _revoked(ca: CA, serial: int) -> bool:
    con = sqlite3.connect(f"file:{ca.db_path}?mode=ro", uri=True)
    try:
        row = con.execute(
            "SELECT COUNT(*) FROM revoked_x509_certs WHERE serial = ?", (str(serial),)
        ).fetchone()
    finally:
        con.close()
    return bool(row[0])


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


class _WrongAnswer(http.server.BaseHTTPRequestHandler):
    """Answers every challenge with a wrong key authorization, and records the paths."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b"not-the-key-authorization"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def wrong_server(acme_ca: tuple[CA, int]) -> Iterator[list[str]]:
    server = http.server.ThreadingHTTPServer((HOST, acme_ca[1]), _WrongAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _WrongAnswer.seen = []
    try:
        yield _WrongAnswer.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


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
