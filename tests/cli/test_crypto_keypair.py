"""`step crypto keypair` and `step crypto change-pass` (cli.crypto_keypair), checked with
OpenSSL and jwcrypto as the independent readers and writers of the files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from jwcrypto import jwa, jwe, jwk  # type: ignore[import-untyped]
from jwcrypto.common import base64url_encode  # type: ignore[import-untyped]

from pki.jwe import decrypt_jwk, encrypt_pbes2
from tests.cli.crypto_cli import step_process as _step


def _ok(tmp: Path, *args: str | Path) -> subprocess.CompletedProcess[bytes]:
    proc = _step(tmp, *args)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc


def _fails(tmp: Path, *args: str | Path) -> str:
    """The one stderr line of a failing command."""
    proc = _step(tmp, *args)
    assert proc.returncode != 0
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _openssl_pkey(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["openssl", "pkey", *map(str, args)], capture_output=True, timeout=120, check=False
    )


def _spki(pem: bytes) -> bytes:
    return load_pem_public_key(pem).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def pw(tmp_path: Path) -> Path:
    path = tmp_path / "pw.txt"
    path.write_text("correct horse\n")
    return path


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        ((), "ASN1 OID: prime256v1"),
        (("--kty", "EC", "--curve", "P-384"), "ASN1 OID: secp384r1"),
        (("--kty", "RSA"), "Private-Key: (2048 bit, 2 primes)"),
        (("--kty", "OKP", "--curve", "Ed25519"), "ED25519 Private-Key"),
    ],
)
def test_keypair_is_encrypted_and_read_by_openssl(
    tmp_path: Path, pw: Path, flags: tuple[str, ...], text: str
) -> None:
    proc = _ok(tmp_path, "crypto", "keypair", "k.pub", "k.key", "--password-file", pw, *flags)
    assert proc.stderr.decode().splitlines() == [
        "Your public key has been saved in k.pub.",
        "Your private key has been saved in k.key.",
    ]
    key_file = tmp_path / "k.key"
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pub").stat().st_mode & 0o777 == 0o600
    shown = _openssl_pkey("-in", key_file, "-passin", f"file:{pw}", "-noout", "-text")
    assert shown.returncode == 0, shown.stderr
    assert text in shown.stdout.decode()
    public = _openssl_pkey("-in", key_file, "-passin", f"file:{pw}", "-pubout")
    assert _spki(public.stdout) == _spki((tmp_path / "k.pub").read_bytes())
    assert _openssl_pkey("-in", key_file, "-passin", "pass:wrong", "-noout").returncode != 0


@pytest.mark.parametrize(
    ("flags", "label"),
    [
        ((), b"EC PRIVATE KEY"),
        (("--kty", "RSA"), b"RSA PRIVATE KEY"),
        (("--kty", "OKP"), b"PRIVATE KEY"),
    ],
)
def test_keypair_no_password_insecure_writes_step_plain_forms(
    tmp_path: Path, flags: tuple[str, ...], label: bytes
) -> None:
    _ok(tmp_path, "crypto", "keypair", "k.pub", "k.key", "--no-password", "--insecure", *flags)
    data = (tmp_path / "k.key").read_bytes()
    assert data.startswith(b"-----BEGIN " + label + b"-----\n")
    assert _openssl_pkey("-in", tmp_path / "k.key", "-noout").returncode == 0


def test_keypair_from_jwk(tmp_path: Path, pw: Path) -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-521")
    (tmp_path / "k.json").write_text(key.export_private())
    _ok(
        tmp_path,
        "crypto",
        "keypair",
        "k.pub",
        "k.key",
        "--from-jwk",
        "k.json",
        "--password-file",
        pw,
    )
    private = load_pem_private_key((tmp_path / "k.key").read_bytes(), b"correct horse")
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert (
        private.private_numbers().private_value
        == key.get_op_key("sign").private_numbers().private_value
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--no-password",), "flag '--no-password' requires the '--insecure' flag"),
        (("--kty", "DSA"), "invalid value 'DSA' for flag '--kty'; options are RSA, EC, OKP"),
        (("--kty", "EC", "--size", "256"), "flag '--size' is incompatible with flag '--kty EC'"),
        (
            ("--kty", "EC", "--curve", "P-192"),
            "flag '--kty EC' is incompatible with flag '--curve P-192'; "
            "options are P-256, P-384, P-521",
        ),
        (
            ("--kty", "RSA", "--size", "1024"),
            "flag '--size' requires at least 2048 unless '--insecure' flag is provided",
        ),
        (("--curve", "P-384"), "flag '--curve' requires the '--kty' flag"),
        (
            (),
            "a password is needed to encrypt the private key: use '--password-file', "
            "or '--no-password --insecure' to leave it unencrypted",
        ),
    ],
)
def test_keypair_refuses_bad_flags(tmp_path: Path, flags: tuple[str, ...], message: str) -> None:
    assert _fails(tmp_path, "crypto", "keypair", "k.pub", "k.key", *flags) == message
    assert not (tmp_path / "k.key").exists()


def test_keypair_overwrites_only_with_force(tmp_path: Path, pw: Path) -> None:
    (tmp_path / "k.key").write_text("precious")
    line = _fails(tmp_path, "crypto", "keypair", "k.pub", "k.key", "--password-file", pw)
    assert line == "file k.key already exists: use '--force' to overwrite it"
    assert (tmp_path / "k.key").read_text() == "precious"
    assert not (tmp_path / "k.pub").exists()
    _ok(tmp_path, "crypto", "keypair", "k.pub", "k.key", "--password-file", pw, "--force")
    assert (tmp_path / "k.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")


def test_keypair_empty_password_file_and_equal_paths(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    line = _fails(tmp_path, "crypto", "keypair", "k.pub", "k.key", "--password-file", "empty")
    assert line == "the password in empty is empty"
    line = _fails(tmp_path, "crypto", "keypair", "k", "k", "--no-password", "--insecure")
    assert line == "positional arguments <PUB_FILE> and <PRIV_FILE> cannot be equal"


# --- change-pass ------------------------------------------------------------------------------


@pytest.fixture
def passwords(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "old.txt").write_text("old-pass\n")
    (tmp_path / "new.txt").write_text("new-pass\n")
    return tmp_path / "old.txt", tmp_path / "new.txt"


def _openssl_key(tmp_path: Path, legacy: bool) -> tuple[Path, bytes]:
    """An EC key encrypted by OpenSSL: `pkey -aes256` (PKCS#8) or `ec -aes256` (legacy PEM)."""
    plain = tmp_path / "plain.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            plain,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = tmp_path / "key.pem"
    tool = "ec" if legacy else "pkey"
    subprocess.run(
        ["openssl", tool, "-in", plain, "-aes256", "-passout", "pass:old-pass", "-out", out],
        check=True,
        capture_output=True,
        timeout=120,
    )
    public = _openssl_pkey("-in", plain, "-pubout").stdout
    return out, public


@pytest.mark.parametrize("legacy", [False, True], ids=["pkcs8", "legacy-pem"])
def test_change_pass_openssl_key_in_place(
    tmp_path: Path, passwords: tuple[Path, Path], legacy: bool
) -> None:
    key, public = _openssl_key(tmp_path, legacy)
    assert (b"Proc-Type: 4,ENCRYPTED" in key.read_bytes()) is legacy
    old, new = passwords
    line = _fails(
        tmp_path, "crypto", "change-pass", key, "--password-file", old, "--new-password-file", new
    )
    assert line == f"file {key} already exists: use '--force' to overwrite it"
    proc = _ok(
        tmp_path,
        "crypto",
        "change-pass",
        key,
        "--password-file",
        old,
        "--new-password-file",
        new,
        "--force",
    )
    assert proc.stderr.decode() == f"Your key has been saved in {key}.\n"
    assert key.stat().st_mode & 0o777 == 0o600
    assert _openssl_pkey("-in", key, "-passin", f"file:{old}", "-noout").returncode != 0
    reread = _openssl_pkey("-in", key, "-passin", f"file:{new}", "-pubout")
    assert reread.returncode == 0, reread.stderr
    assert _spki(reread.stdout) == _spki(public)


def test_change_pass_out_and_no_password(tmp_path: Path, passwords: tuple[Path, Path]) -> None:
    key, public = _openssl_key(tmp_path, legacy=False)
    old, _ = passwords
    before = key.read_bytes()
    line = _fails(tmp_path, "crypto", "change-pass", key, "--password-file", old, "--no-password")
    assert line == "flag '--no-password' requires the '--insecure' flag"
    _ok(
        tmp_path,
        "crypto",
        "change-pass",
        key,
        "--password-file",
        old,
        "--no-password",
        "--insecure",
        "--out",
        "clear.pem",
    )
    assert key.read_bytes() == before
    clear = tmp_path / "clear.pem"
    assert clear.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    assert _spki(_openssl_pkey("-in", clear, "-pubout").stdout) == _spki(public)


def test_change_pass_wrong_password_leaves_file(
    tmp_path: Path, passwords: tuple[Path, Path]
) -> None:
    key, _ = _openssl_key(tmp_path, legacy=True)
    _, new = passwords
    before = key.read_bytes()
    line = _fails(
        tmp_path,
        "crypto",
        "change-pass",
        key,
        "--password-file",
        new,
        "--new-password-file",
        new,
        "--force",
    )
    assert line.startswith(f"error decrypting {key}: wrong password")
    assert key.read_bytes() == before
    assert _fails(tmp_path, "crypto", "change-pass", "missing.pem", "--force") == (
        "open missing.pem: no such file or directory"
    )


def test_change_pass_needs_a_private_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "pub.pem").write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    line = _fails(
        tmp_path, "crypto", "change-pass", "pub.pem", "--no-password", "--insecure", "--force"
    )
    assert line == "pub.pem holds no private key"


def _jwcrypto_jwe(payload: str, password: bytes) -> str:
    """A JWE-wrapped JWK made by jwcrypto, compact form, as older step versions wrote it."""
    protected = {"alg": "PBES2-HS256+A128KW", "enc": "A256GCM", "cty": "jwk+json", "p2c": 10000}
    token = jwe.JWE(payload.encode(), protected=json.dumps(protected))
    token.add_recipient(jwk.JWK(kty="oct", k=base64url_encode(password)))
    return str(token.serialize(compact=True))


def _jwcrypto_open(document: str, password: bytes) -> dict[str, str]:
    saved = jwa.default_max_pbkdf2_iterations
    jwa.default_max_pbkdf2_iterations = 1_000_000  # step's files use 600,000 rounds
    try:
        token = jwe.JWE()
        token.deserialize(document, jwk.JWK(kty="oct", k=base64url_encode(password)))
    finally:
        jwa.default_max_pbkdf2_iterations = saved
    result: dict[str, str] = json.loads(token.payload)
    return result


@pytest.mark.parametrize("kty", ["EC", "RSA", "OKP"])
def test_change_pass_jwe_wrapped_jwk_round_trip(
    tmp_path: Path, passwords: tuple[Path, Path], kty: str
) -> None:
    by_kty: dict[str, dict[str, Any]] = {
        "EC": {"crv": "P-256"},
        "RSA": {"size": 2048},
        "OKP": {"crv": "Ed25519"},
    }
    params = by_kty[kty]
    original = jwk.JWK.generate(kty=kty, kid="my-kid", use="sig", **params)
    members = json.loads(original.export_private())
    (tmp_path / "key.jwk").write_text(_jwcrypto_jwe(original.export_private(), b"old-pass"))
    old, new = passwords
    _ok(
        tmp_path,
        "crypto",
        "change-pass",
        "key.jwk",
        "--password-file",
        old,
        "--new-password-file",
        new,
        "--out",
        "new.jwk",
    )
    out = tmp_path / "new.jwk"
    assert out.stat().st_mode & 0o777 == 0o600
    document = json.loads(out.read_text())
    assert list(document) == ["protected", "encrypted_key", "iv", "ciphertext", "tag"]
    assert _jwcrypto_open(out.read_text(), b"new-pass") == members
    assert decrypt_jwk(out.read_text(), b"new-pass") == members  # a second, independent reader
    with pytest.raises(Exception, match="No recipient matched"):
        _jwcrypto_open(out.read_text(), b"old-pass")
    # And back to a plain JWK.
    _ok(
        tmp_path,
        "crypto",
        "change-pass",
        "new.jwk",
        "--password-file",
        new,
        "--no-password",
        "--insecure",
        "--out",
        "plain.jwk",
    )
    assert json.loads((tmp_path / "plain.jwk").read_text()) == members


def test_change_pass_jwe_wrong_password(tmp_path: Path, passwords: tuple[Path, Path]) -> None:
    original = jwk.JWK.generate(kty="EC", crv="P-256")
    (tmp_path / "key.jwk").write_text(_jwcrypto_jwe(original.export_private(), b"old-pass"))
    _, new = passwords
    line = _fails(
        tmp_path,
        "crypto",
        "change-pass",
        "key.jwk",
        "--password-file",
        new,
        "--new-password-file",
        new,
        "--force",
    )
    assert line == "error decrypting key.jwk: wrong password"


def test_change_pass_keys_of_every_type_read_back(
    tmp_path: Path, passwords: tuple[Path, Path]
) -> None:
    old, new = passwords
    keys: list[rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey] = [
        rsa.generate_private_key(65537, 2048),
        ed25519.Ed25519PrivateKey.generate(),
    ]
    for index, key in enumerate(keys):
        path = tmp_path / f"k{index}.pem"
        path.write_bytes(
            key.private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"old-pass")
            )
        )
        _ok(
            tmp_path,
            "crypto",
            "change-pass",
            path,
            "--password-file",
            old,
            "--new-password-file",
            new,
            "--force",
        )
        reread = load_pem_private_key(path.read_bytes(), b"new-pass")
        assert _spki(
            reread.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        ) == (key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def test_change_pass_refuses_a_jwe_too_costly_to_open(tmp_path: Path) -> None:
    """A PBES2 count above 1,000,000 is refused before any key derivation is attempted."""
    original = jwk.JWK.generate(kty="EC", crv="P-256")
    (tmp_path / "key.jwk").write_text(
        encrypt_pbes2(original.export_private().encode(), b"pw", p2c=2_000_000)
    )
    (tmp_path / "pw").write_text("pw")
    args = ("crypto", "change-pass", "key.jwk", "--password-file", "pw", "--force")
    line = _fails(tmp_path, *args, "--no-password", "--insecure")
    assert line == "error decrypting key.jwk: PBES2 count 2000000 is above 1000000"
