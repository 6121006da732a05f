"""`step certificate install|uninstall` (cli.certificate_trust) into a trust store tree under
--sysroot, with Debian's update-ca-certificates when it is there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509

from tests.cli.certificate_cli import DevPKI, fails, make_pki, ok, openssl


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    ok(pki.dir, "certificate", "create", "svc.example", "leaf.crt", "leaf.key", "--ca",
       pki.inter, "--ca-key", pki.inter_key, "--ca-password-file", pki.password,
       "--no-password", "--insecure")  # fmt: skip
    return pki


def test_install_then_uninstall(tmp_path: Path, pki: DevPKI) -> None:
    root = tmp_path / "sysroot"
    proc = ok(tmp_path, "certificate", "install", pki.root, "--sysroot", root)
    assert proc.stdout.startswith(f"Certificate {pki.root} has been installed.\n")
    assert "X.509v3 Root CA Certificate" in proc.stdout
    serial = x509.load_pem_x509_certificate(pki.root.read_bytes()).serial_number
    installed = root / "usr/local/share/ca-certificates" / f"Test_Root_{serial}.crt"
    assert installed.read_bytes() == pki.root.read_bytes()
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    assert pki.root.read_text() in bundle.read_text()
    proc = openssl(tmp_path, "verify", "-x509_strict", "-CAfile", bundle, "-untrusted", pki.inter,
                   pki.dir / "leaf.crt")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    if shutil.which("update-ca-certificates"):
        # update-ca-certificates also made the hashed links openssl's -CApath looks up.
        proc = openssl(tmp_path, "verify", "-CApath", root / "etc/ssl/certs", "-untrusted",
                       pki.inter, pki.dir / "leaf.crt")  # fmt: skip
        assert proc.returncode == 0, proc.stderr

    ok(tmp_path, "certificate", "uninstall", pki.root, "--sysroot", root)
    assert not installed.exists()
    assert pki.root.read_text() not in bundle.read_text()


def test_prefix_names_the_file(tmp_path: Path, pki: DevPKI) -> None:
    root = tmp_path / "sysroot"
    ok(tmp_path, "certificate", "install", pki.root, "--sysroot", root, "--prefix", "dev ca ")
    names = [p.name for p in (root / "usr/local/share/ca-certificates").iterdir()]
    assert len(names) == 1 and names[0].startswith("dev_ca_") and names[0].endswith(".crt")


def test_refusals(tmp_path: Path, pki: DevPKI) -> None:
    root = tmp_path / "sysroot"
    fails(tmp_path, "is not a root CA", "certificate", "install", pki.inter, "--sysroot", root)
    fails(tmp_path, "is not a root CA", "certificate", "install", pki.dir / "leaf.crt",
          "--sysroot", root)  # fmt: skip
    fails(tmp_path, "open", "certificate", "install", tmp_path / "missing.crt", "--sysroot", root)
    assert not (root / "usr/local/share/ca-certificates").exists()
