"""`step certificate bundle|key|format|p12` (cli.certificate_convert), read back by openssl."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.cli.certificate_cli import DevPKI, fails, make_pki, ok, openssl, step


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    ok(pki.dir, "certificate", "create", "svc.example", "leaf.crt", "leaf.key", "--ca",
       pki.inter, "--ca-key", pki.inter_key, "--ca-password-file", pki.password,
       "--password-file", pki.password)  # fmt: skip
    return pki


def test_bundle(tmp_path: Path, pki: DevPKI) -> None:
    ok(tmp_path, "certificate", "bundle", pki.dir / "leaf.crt", pki.inter, "chain.crt")
    certs = x509.load_pem_x509_certificates((tmp_path / "chain.crt").read_bytes())
    assert [c.subject.rfc4514_string() for c in certs] == ["CN=svc.example", "CN=Test Intermediate"]
    assert stat.S_IMODE((tmp_path / "chain.crt").stat().st_mode) == 0o600
    proc = openssl(tmp_path, "verify", "-x509_strict", "-CAfile", pki.root, "-untrusted",
                   "chain.crt", "chain.crt")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fails(tmp_path, "already exists: use '--force'", "certificate", "bundle",
          pki.dir / "leaf.crt", pki.inter, "chain.crt")  # fmt: skip
    ok(tmp_path, "certificate", "bundle", pki.dir / "leaf.crt", pki.inter, "chain.crt", "--force")
    fails(tmp_path, "could not parse certificate file", "certificate", "bundle",
          pki.password, pki.inter, "x.crt")  # fmt: skip


def test_key(tmp_path: Path, pki: DevPKI) -> None:
    expected = openssl(tmp_path, "x509", "-in", pki.dir / "leaf.crt", "-noout", "-pubkey").stdout
    assert ok(tmp_path, "certificate", "key", pki.dir / "leaf.crt").stdout == expected
    ok(tmp_path, "certificate", "key", pki.dir / "leaf.crt", "--out", "leaf.pub")
    assert (tmp_path / "leaf.pub").read_text() == expected
    fails(tmp_path, "already exists", "certificate", "key", pki.dir / "leaf.crt", "--out",
          "leaf.pub")  # fmt: skip
    fails(tmp_path, "not a certificate or certificate request", "certificate", "key",
          pki.dir / "leaf.key")  # fmt: skip


def test_format_round_trip(tmp_path: Path, pki: DevPKI) -> None:
    ok(tmp_path, "certificate", "format", pki.dir / "leaf.crt", "--out", "leaf.der")
    der = (tmp_path / "leaf.der").read_bytes()
    pem_cert = x509.load_pem_x509_certificate((pki.dir / "leaf.crt").read_bytes())
    assert der == pem_cert.public_bytes(Encoding.DER)
    assert openssl(tmp_path, "x509", "-inform", "DER", "-in", "leaf.der", "-noout").returncode == 0
    ok(tmp_path, "certificate", "format", "leaf.der", "--out", "leaf.pem")
    assert (tmp_path / "leaf.pem").read_bytes() == (pki.dir / "leaf.crt").read_bytes()
    fails(tmp_path, "already exists", "certificate", "format", "leaf.der", "--out", "leaf.pem")
    ok(tmp_path, "certificate", "format", "leaf.der", "--out", "leaf.pem", "--force")
    # A CSR too, and DER to standard output.
    ok(tmp_path, "certificate", "create", "r", "r.csr", "r.key", "--csr", "--no-password",
       "--insecure")  # fmt: skip
    ok(tmp_path, "certificate", "format", "r.csr", "--out", "r.der")
    proc = openssl(tmp_path, "req", "-inform", "DER", "-in", "r.der", "-verify", "-noout")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "junk").write_bytes(b"\x30\x03\x02\x01\x01")
    fails(tmp_path, "error parsing DER format", "certificate", "format", "junk")


def _p12_info(tmp: Path, path: str, password: str, *extra: str) -> str:
    proc = openssl(tmp, "pkcs12", "-info", "-noout", "-in", path, "-passin", f"pass:{password}",
                   *extra)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stderr + proc.stdout


def test_p12(tmp_path: Path, pki: DevPKI) -> None:
    p12_pass = tmp_path / "p12.txt"
    p12_pass.write_text("p12-secret\n")
    ok(tmp_path, "certificate", "p12", "leaf.p12", pki.dir / "leaf.crt", pki.dir / "leaf.key",
       "--ca", pki.inter, "--ca", pki.root, "--password-file", p12_pass,
       "--key-password-file", pki.password)  # fmt: skip
    assert stat.S_IMODE((tmp_path / "leaf.p12").stat().st_mode) == 0o600
    info = _p12_info(tmp_path, "leaf.p12", "p12-secret")
    assert "AES-256-CBC" in info and info.count("Certificate bag") == 3
    assert "Shrouded Keybag" in info
    bad = openssl(tmp_path, "pkcs12", "-info", "-noout", "-in", "leaf.p12", "-passin", "pass:x")
    assert bad.returncode != 0

    ok(tmp_path, "certificate", "p12", "legacy.p12", pki.dir / "leaf.crt", pki.dir / "leaf.key",
       "--password-file", p12_pass, "--key-password-file", pki.password, "--legacy")  # fmt: skip
    assert "3-KeyTripleDES" in _p12_info(tmp_path, "legacy.p12", "p12-secret", "-legacy")

    ok(tmp_path, "certificate", "p12", "trust.p12", "--ca", pki.root, "--password-file", p12_pass)
    assert _p12_info(tmp_path, "trust.p12", "p12-secret").count("Certificate bag") == 1

    ok(tmp_path, "certificate", "p12", "open.p12", pki.dir / "leaf.crt", pki.dir / "leaf.key",
       "--key-password-file", pki.password, "--no-password", "--insecure")  # fmt: skip
    assert "Key bag" in _p12_info(tmp_path, "open.p12", "")


def test_p12_refusals(tmp_path: Path, pki: DevPKI) -> None:
    leaf, key = pki.dir / "leaf.crt", pki.dir / "leaf.key"
    fails(tmp_path, "requires the '--insecure' flag", "certificate", "p12", "a.p12", leaf, key,
          "--no-password", "--key-password-file", pki.password)  # fmt: skip
    fails(tmp_path, "use '--password-file'", "certificate", "p12", "a.p12", leaf, key,
          "--key-password-file", pki.password)  # fmt: skip
    fails(tmp_path, "is encrypted: use '--key-password-file'", "certificate", "p12", "a.p12",
          leaf, key, "--no-password", "--insecure")  # fmt: skip
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong\n")
    fails(tmp_path, "error decrypting", "certificate", "p12", "a.p12", leaf, key,
          "--key-password-file", wrong, "--no-password", "--insecure")  # fmt: skip
    fails(tmp_path, "does not match the certificate", "certificate", "p12", "a.p12", pki.inter,
          key, "--key-password-file", pki.password, "--no-password", "--insecure")  # fmt: skip
    fails(tmp_path, "flag '--ca' must be provided", "certificate", "p12", "a.p12")
    assert not (tmp_path / "a.p12").exists()
    (tmp_path / "a.p12").write_bytes(b"keep")
    fails(tmp_path, "already exists", "certificate", "p12", "a.p12", "--ca", pki.root,
          "--no-password", "--insecure")  # fmt: skip
    assert (tmp_path / "a.p12").read_bytes() == b"keep"
    assert step(tmp_path, "certificate", "p12", "a.p12", "--ca", pki.root, "--no-password",
                "--insecure", "--force").returncode == 0  # fmt: skip
