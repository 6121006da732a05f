"""`step ca certificate` / `step ca sign` with an ACME provisioner, against the real server on
loopback: an RFC 8555 order answered over http-01 by step's own standalone server
(`--http-listen 127.0.0.1:PORT`) or by a file under `--webroot` served by another server.

The CA's ACME provisioner maps the test names to 127.0.0.1 and fetches challenges from PORT
(its `stepstone` test block), so nothing leaves loopback.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from tests.e2e.harness import CA, HOST, OPENSSL, CAFactory, csr_pem, free_port, make_csr, run_step
from tests.http_server import QuietHandler, serving

NAMES = ("app.test", "www.app.test", "csr.app.test")


def _acme_provisioner(port: int) -> Any:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["provisioners"].append(
            {
                "type": "ACME",
                "name": "acme",
                "challenges": ["http-01"],
                "stepstone": {"httpPort": port, "hosts": {n: HOST for n in NAMES}},
            }
        )

    return edit


@pytest.fixture(scope="module")
def acme_ca(ca_factory: CAFactory) -> tuple[CA, int]:
    port = free_port()
    return ca_factory("step-acme", edit=_acme_provisioner(port)), port


def _step(ca: CA, cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_step(list(args), ca.steppath, cwd=cwd, check=False)


def _check_issued(ca: CA, crt: Path, key: Path, names: list[str]) -> x509.Certificate:
    """The files as step writes them: leaf + intermediate (0600), the key (0600) matching
    the leaf, and a chain real openssl verifies against the root."""
    assert stat.S_IMODE(crt.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates(crt.read_bytes())
    assert len(chain) == 2
    leaf, intermediate = chain
    assert intermediate == ca.intermediate
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
    private = load_pem_private_key(key.read_bytes(), None)
    spki = Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    assert private.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)
    proc = subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(ca.root_path), "-untrusted", str(crt), str(crt)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return leaf


def _failure_line(done: subprocess.CompletedProcess[str]) -> str:
    """A failure: exit 1, no traceback; the error is the last line on stderr."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_standalone_mode_gets_a_certificate(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = acme_ca
    done = _step(
        ca, tmp_path, "ca", "certificate", "app.test", "app.crt", "app.key",
        "--provisioner", "acme", "--http-listen", f"{HOST}:{port}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "✔ Provisioner: acme (ACME)"
    assert lines[1].startswith("Using Standalone Mode HTTP challenge to validate app.test .")
    assert lines[1].endswith(" done!")
    assert lines[2].startswith("Waiting for Order to be 'ready' for finalization .")
    assert lines[3].startswith("Finalizing Order .") and lines[3].endswith(" done!")
    assert lines[4:] == ["✔ Certificate: app.crt", "✔ Private Key: app.key"]
    assert done.stdout == ""
    _check_issued(ca, tmp_path / "app.crt", tmp_path / "app.key", ["app.test"])
    with socket.socket() as s:  # the standalone server is gone (its closed connections may
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # linger in TIME_WAIT)
        s.bind((HOST, port))
        s.listen()


class _Static(http.server.SimpleHTTPRequestHandler, QuietHandler):
    """A web server already running, serving the webroot; it records what it was asked."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        super().do_GET()


class _Wrong(QuietHandler):
    def do_GET(self) -> None:
        self.send_body(b"not-the-key-authorization")


@pytest.fixture
def serve(acme_ca: tuple[CA, int]) -> Iterator[Any]:
    """Start a handler on the CA's challenge port; stopped at the end of the test."""
    with ExitStack() as servers:
        yield lambda handler: servers.enter_context(serving(handler, HOST, acme_ca[1]))


def test_webroot_mode_with_sans(acme_ca: tuple[CA, int], serve: Any, tmp_path: Path) -> None:
    ca, _ = acme_ca
    webroot = tmp_path / "www"
    webroot.mkdir()
    _Static.seen = []
    serve(functools.partial(_Static, directory=str(webroot)))
    done = _step(
        ca, tmp_path, "ca", "certificate", "app.test", "web.crt", "web.key",
        "--provisioner", "acme", "--webroot", webroot, "--san", "www.app.test",
        "--contact", "ops@app.test",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[1].startswith("Using Webroot Mode HTTP challenge to validate www.app.test .")
    assert lines[2].startswith("Using Webroot Mode HTTP challenge to validate app.test .")
    leaf = _check_issued(
        ca, tmp_path / "web.crt", tmp_path / "web.key", ["www.app.test", "app.test"]
    )
    assert leaf.subject.rfc4514_string() == "CN=app.test"
    assert len([p for p in _Static.seen if p.startswith("/.well-known/acme-challenge/")]) >= 2
    assert os.listdir(webroot / ".well-known" / "acme-challenge") == []  # cleaned up


def test_a_wrong_answer_fails_with_the_cas_problem(
    acme_ca: tuple[CA, int], serve: Any, tmp_path: Path
) -> None:
    ca, _ = acme_ca
    webroot = tmp_path / "www"
    webroot.mkdir()
    serve(_Wrong)
    done = _step(
        ca, tmp_path, "ca", "certificate", "app.test", "bad.crt", "bad.key",
        "--provisioner", "acme", "--webroot", webroot,
    )  # fmt: skip
    line = _failure_line(done)
    assert line.startswith("Unable to validate challenge: keyAuthorization does not match")
    assert "but got not-the-key-authorization" in line
    assert "Error!" in done.stderr.splitlines()[-2]
    assert not (tmp_path / "bad.crt").exists() and not (tmp_path / "bad.key").exists()
    assert os.listdir(webroot / ".well-known" / "acme-challenge") == []


def test_a_busy_port_fails_before_ordering(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = acme_ca
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind((HOST, port))
        busy.listen()
        done = _step(
            ca, tmp_path, "ca", "certificate", "app.test", "x.crt", "x.key",
            "--provisioner", "acme", "--http-listen", f"{HOST}:{port}",
        )  # fmt: skip
    assert _failure_line(done) == f"listen tcp {HOST}:{port}: bind: address already in use"
    assert not (tmp_path / "x.crt").exists()


def test_flag_and_token_errors(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, _ = acme_ca
    token = _step(ca, tmp_path, "ca", "token", "app.test", "--provisioner", "acme")
    assert _failure_line(token) == "step ACME provisioners do not support token auth flows"
    both = _step(
        ca, tmp_path, "ca", "certificate", "app.test", "y.crt", "y.key",
        "--provisioner", "acme", "--standalone", "--webroot", tmp_path,
    )  # fmt: skip
    assert _failure_line(both) == "flags '--standalone' and '--webroot' are mutually exclusive"
    email = _step(
        ca, tmp_path, "ca", "certificate", "app.test", "y.crt", "y.key",
        "--provisioner", "acme", "--san", "me@app.test",
    )  # fmt: skip
    assert _failure_line(email) == "Email Address and URI SANs are not supported for ACME flow"


def test_sign_an_existing_csr_by_acme(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    ca, port = acme_ca
    (tmp_path / "req.csr").write_text(csr_pem(make_csr("csr.app.test", ["csr.app.test"])))
    done = _step(
        ca, tmp_path, "ca", "sign", "req.csr", "req.crt",
        "--provisioner", "acme", "--http-listen", f"{HOST}:{port}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "✔ Certificate: req.crt"
    chain = x509.load_pem_x509_certificates((tmp_path / "req.crt").read_bytes())
    assert chain[1] == ca.intermediate
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["csr.app.test"]


def test_acme_directory_url_with_an_rsa_key(acme_ca: tuple[CA, int], tmp_path: Path) -> None:
    """`--acme URL` names the directory itself: no provisioner listing, the root from the
    step defaults added to the system's trust."""
    ca, port = acme_ca
    done = _step(
        ca, tmp_path, "ca", "certificate", "app.test", "rsa.crt", "rsa.key",
        "--acme", f"{ca.url}/acme/acme/directory", "--http-listen", f"{HOST}:{port}",
        "--kty", "RSA", "--size", "2048",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not done.stderr.startswith("✔ Provisioner")
    leaf = _check_issued(ca, tmp_path / "rsa.crt", tmp_path / "rsa.key", ["app.test"])
    assert leaf.public_key().key_size == 2048  # type: ignore[union-attr]
