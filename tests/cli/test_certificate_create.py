"""`step certificate create` (cli.certificate_create), checked with openssl and
pkilint, the way users run them: as a subprocess without a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import stat
import subprocess
import termios
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.cli.certificate_cli import (
    PASSWORD,
    DevPKI,
    cert_at,
    fails,
    make_pki,
    ok,
    openssl,
    pkilint_clean,
    step,
    verify_strict,
)
from tests.e2e.harness import BIN, clean_env
from tests.softhsm import MODULE, SoftHSM, softhsm_session


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    """One EC root and intermediate for the tests that only read them."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize(
    ("kty", "key_type"),
    [("EC", ec.EllipticCurvePrivateKey), ("RSA", rsa.RSAPrivateKey),
     ("OKP", ed25519.Ed25519PrivateKey)],
)  # fmt: skip
def test_profiles_verify_strict_and_lint_clean(tmp_path: Path, kty: str, key_type: type) -> None:
    pki = make_pki(tmp_path, kty)
    proc = ok(tmp_path, "certificate", "create", "svc.internal", "leaf.crt", "leaf.key",
              "--ca", pki.inter, "--ca-key", pki.inter_key, "--ca-password-file", pki.password,
              "--san", "svc.internal", "--san", "10.1.2.3", "--san", "ops@example.com",
              "--san", "https://svc.internal/api", "--kty", kty, "--no-password",
              "--insecure")  # fmt: skip
    assert "Your certificate has been saved in leaf.crt." in proc.stderr
    assert "Your private key has been saved in leaf.key." in proc.stderr
    root_ok = openssl(tmp_path, "verify", "-x509_strict", "-CAfile", pki.root, pki.root)
    assert root_ok.returncode == 0, root_ok.stderr
    verify_strict(tmp_path, pki, pki.inter)
    verify_strict(tmp_path, pki, "leaf.crt")
    for path in (pki.root, pki.inter, tmp_path / "leaf.crt"):
        pkilint_clean(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    root, inter, leaf = cert_at(pki.root), cert_at(pki.inter), cert_at(tmp_path / "leaf.crt")
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert root.not_valid_after_utc - root.not_valid_before_utc == timedelta(days=3650)
    assert inter.not_valid_after_utc - inter.not_valid_before_utc == timedelta(days=3650)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24)
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment == (kty == "RSA")
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["svc.internal"]
    assert sans.get_values_for_type(x509.RFC822Name) == ["ops@example.com"]
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == ["https://svc.internal/api"]
    assert leaf.issuer == inter.subject

    # The CA keys are encrypted PKCS#8 that openssl reads with the password, and only with it.
    text = pki.root_key.read_text()
    assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(pki.root_key.stat().st_mode) == 0o600
    good = openssl(tmp_path, "pkey", "-in", pki.root_key, "-passin", f"pass:{PASSWORD}", "-noout")
    assert good.returncode == 0, good.stderr
    assert openssl(tmp_path, "pkey", "-in", pki.root_key, "-passin", "pass:wrong").returncode != 0
    params = openssl(tmp_path, "asn1parse", "-in", pki.root_key)
    assert "PBES2" in params.stdout and "PBKDF2" in params.stdout and "aes-256-cbc" in params.stdout
    assert ":0927C0" in params.stdout  # 600,000 PBKDF2 rounds


def test_subject_is_the_default_san_and_validity_flags(tmp_path: Path, pki: DevPKI) -> None:
    ok(tmp_path, "certificate", "create", "only.example", "a.crt", "a.key", "--ca", pki.inter,
       "--ca-key", pki.inter_key, "--ca-password-file", pki.password, "--password-file",
       pki.password, "--not-before", "-5m", "--not-after", "2h", "--bundle")  # fmt: skip
    leaf = cert_at(tmp_path / "a.crt")
    assert cert_at(tmp_path / "a.crt", 1) == cert_at(pki.inter)  # --bundle appends the issuer
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["only.example"]
    now = datetime.now(UTC)
    assert timedelta(minutes=4) < now - leaf.not_valid_before_utc < timedelta(minutes=10)
    assert timedelta(minutes=100) < leaf.not_valid_after_utc - now <= timedelta(hours=2)
    key = openssl(tmp_path, "pkey", "-in", "a.key", "-passin", f"pass:{PASSWORD}", "-noout")
    assert key.returncode == 0, key.stderr

    ok(tmp_path, "certificate", "create", "fixed", "b.crt", "b.key", "--ca", pki.inter,
       "--ca-key", pki.inter_key, "--ca-password-file", pki.password, "--no-password",
       "--insecure", "--not-after", "2030-01-02T03:04:05Z")  # fmt: skip
    end = cert_at(tmp_path / "b.crt").not_valid_after_utc
    assert end == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_self_signed_needs_subtle(tmp_path: Path) -> None:
    args = ["certificate", "create", "me.local", "me.crt", "me.key", "--profile", "self-signed",
            "--no-password", "--insecure"]  # fmt: skip
    fails(tmp_path, "requires the '--subtle' flag", *args)
    ok(tmp_path, *args, "--subtle")
    proc = openssl(tmp_path, "verify", "-x509_strict", "-CAfile", "me.crt", "me.crt")
    assert proc.returncode == 0, proc.stderr
    pkilint_clean(tmp_path / "me.crt")


def test_csr_mode(tmp_path: Path) -> None:
    ok(tmp_path, "certificate", "create", "req.example", "req.csr", "req.key", "--csr",
       "--kty", "EC", "--curve", "P-384", "--no-password", "--insecure")  # fmt: skip
    proc = openssl(tmp_path, "req", "-in", "req.csr", "-verify", "-noout", "-text")
    assert proc.returncode == 0 and "DNS:req.example" in proc.stdout, proc.stderr
    assert "secp384r1" in proc.stdout or "P-384" in proc.stdout
    fails(tmp_path, "flag '--ca' is incompatible with flag '--csr'", "certificate", "create",
          "x", "x.csr", "x.key", "--csr", "--ca", "req.csr", "--no-password",
          "--insecure")  # fmt: skip


def test_refusals(tmp_path: Path, pki: DevPKI) -> None:
    base: list[str | Path] = ["certificate", "create", "svc", "svc.crt", "svc.key", "--ca",
                              pki.inter, "--ca-key", pki.inter_key, "--ca-password-file",
                              pki.password]  # fmt: skip
    fails(tmp_path, "flag '--no-password' requires the '--insecure' flag", *base, "--no-password")
    fails(tmp_path, "use '--password-file'", *base)  # no terminal to ask the key password on
    assert not (tmp_path / "svc.crt").exists() and not (tmp_path / "svc.key").exists()
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the password\n")
    base_wrong: list[str | Path] = [*base[:-1], wrong, "--no-password", "--insecure"]
    fails(tmp_path, "error decrypting", *base_wrong)
    fails(tmp_path, "is encrypted: use '--ca-password-file'", *base[:-2], "--no-password",
          "--insecure")  # fmt: skip
    fails(tmp_path, "private key does not match issuer public key", "certificate", "create",
          "svc", "svc.crt", "svc.key", "--ca", pki.root, "--ca-key", pki.inter_key,
          "--ca-password-file", pki.password, "--no-password", "--insecure")  # fmt: skip
    fails(tmp_path, "requires the '--ca' flag", "certificate", "create", "svc", "svc.crt",
          "svc.key", "--no-password", "--insecure")  # fmt: skip
    fails(tmp_path, "invalid value 'bogus' for flag '--profile'", *base, "--profile", "bogus")
    fails(tmp_path, "invalid value 'DSA' for flag '--kty'", *base, "--kty", "DSA")
    fails(tmp_path, "too small", *base, "--kty", "RSA", "--size", "1024")
    fails(tmp_path, "is incompatible with flag '--not-after'", *base, "--not-before", "2h",
          "--not-after", "1h")  # fmt: skip

    ok(tmp_path, *base, "--no-password", "--insecure")
    before = (tmp_path / "svc.crt").read_bytes(), (tmp_path / "svc.key").read_bytes()
    fails(tmp_path, "already exists: use '--force'", *base, "--no-password", "--insecure")
    assert ((tmp_path / "svc.crt").read_bytes(), (tmp_path / "svc.key").read_bytes()) == before
    ok(tmp_path, *base, "--no-password", "--insecure", "--force")
    assert (tmp_path / "svc.crt").read_bytes() != before[0]


# --- a CA key in a key store ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


def test_ca_key_in_pkcs11_token(tmp_path: Path, hsm: SoftHSM) -> None:
    token = hsm.init_token()
    pin = tmp_path / "pin"
    pin.write_text(token.pin + "\n")
    store = f"pkcs11:module-path={MODULE};token={token.label}?pin-source={pin}"
    key_uri = (
        f"pkcs11:module-path={MODULE};token={token.label};id=4000;object=root?pin-source={pin}"
    )
    ok(tmp_path, "kms", "create", key_uri)
    # A root whose key never leaves the token (--key without KEY_FILE), ...
    ok(tmp_path, "certificate", "create", "HSM Root", "root.crt", "--profile", "root-ca",
       "--kms", store, "--key", "pkcs11:id=4000")  # fmt: skip
    assert not (tmp_path / "root.key").exists()
    # ... that signs an intermediate through --ca-kms, and a leaf through a full key URI.
    password = tmp_path / "pw"
    password.write_text(PASSWORD)
    ok(tmp_path, "certificate", "create", "File Intermediate", "inter.crt", "inter.key",
       "--profile", "intermediate-ca", "--ca", "root.crt", "--ca-kms", store,
       "--ca-key", "pkcs11:id=4000", "--password-file", password)  # fmt: skip
    ok(tmp_path, "certificate", "create", "Other Intermediate", "other.crt", "other.key",
       "--profile", "intermediate-ca", "--ca", "root.crt", "--ca-key", key_uri,
       "--no-password", "--insecure")  # fmt: skip
    # `step certificate sign --kms` signs a CSR with the key in the token.
    ok(tmp_path, "certificate", "create", "svc", "svc.csr", "svc.key", "--csr", "--no-password",
       "--insecure")  # fmt: skip
    signed = ok(tmp_path, "certificate", "sign", "svc.csr", "root.crt", "pkcs11:id=4000",
                "--kms", store).stdout  # fmt: skip
    (tmp_path / "svc.crt").write_text(signed)
    for name in ("inter.crt", "other.crt", "svc.crt"):
        proc = openssl(tmp_path, "verify", "-x509_strict", "-CAfile", "root.crt", name)
        assert proc.returncode == 0, proc.stderr
    fails(tmp_path, "error opening the key", "certificate", "create", "x", "x.crt", "x.key",
          "--profile", "intermediate-ca", "--ca", "root.crt", "--ca-kms", store,
          "--ca-key", "pkcs11:id=4999", "--no-password", "--insecure")  # fmt: skip


def test_help_has_examples(tmp_path: Path) -> None:
    for command in ("create", "sign"):
        proc = step(tmp_path, "certificate", command, "--help")
        assert proc.returncode == 0 and "Examples:" in proc.stdout


# --- a terminal -------------------------------------------------------------------------------


def _read_until(fd: int, marker: bytes, seen: bytearray) -> None:
    """Read the terminal until `marker` appears (or the child closes it)."""
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], 120)
        if not ready:
            raise AssertionError(f"no {marker!r} on the terminal: {bytes(seen)!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return
        if not chunk:
            return
        seen += chunk


def _controlling_terminal() -> None:
    """In the child, after setsid: make the pty on stdin its terminal, as a login shell has
    (getpass reads /dev/tty, with echo off)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_password_prompt_on_a_terminal_asks_twice_and_never_echoes(tmp_path: Path) -> None:
    secret = "typed-on-the-terminal"
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / "step"), "certificate", "create", "Tty Root", "root.crt", "root.key",
         "--profile", "root-ca"],
        stdin=secondary, stdout=secondary, stderr=secondary, cwd=tmp_path,
        env=clean_env(tmp_path / "step"), start_new_session=True,
        preexec_fn=_controlling_terminal,
    )  # fmt: skip
    os.close(secondary)
    seen = bytearray()
    try:
        # getpass turns echo off, then writes the " " after the prompt: type after that.
        _read_until(primary, b"Please enter the password to encrypt the private key: ", seen)
        os.write(primary, secret.encode() + b"\n")
        _read_until(primary, b"Repeat for confirmation: ", seen)
        os.write(primary, secret.encode() + b"\n")
        _read_until(primary, b"Your private key has been saved in root.key.", seen)
        assert proc.wait(timeout=120) == 0, bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert secret.encode() not in seen
    key = openssl(tmp_path, "pkey", "-in", "root.key", "-passin", f"pass:{secret}", "-noout")
    assert key.returncode == 0, key.stderr
