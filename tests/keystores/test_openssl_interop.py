"""Files we write are what OpenSSL expects, and OpenSSL-made files load (real /usr/bin/openssl)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from keystores import KeySpec, WrongPasswordError
from keystores.file import FileKeyStore

from .conftest import OPENSSL, PASSWORD


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, check=False)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    FileKeyStore(PASSWORD, tmp_path).create_key("ca_key", KeySpec())
    return tmp_path / "ca_key"


def test_asn1_structure(key_file: Path) -> None:
    result = openssl("asn1parse", "-in", str(key_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    objects = [line.rsplit(":", 1)[-1] for line in lines if "prim: OBJECT" in line]
    assert objects == ["PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc"]
    # asn1parse prints INTEGER contents in hex; the only INTEGER is the iteration count.
    integers = [int(line.rsplit(":", 1)[-1], 16) for line in lines if "prim: INTEGER" in line]
    assert integers == [600_000]
    # The PRF's parameters are an explicit NULL right after hmacWithSHA256.
    prf = next(i for i, line in enumerate(lines) if "hmacWithSHA256" in line)
    assert "prim: NULL" in lines[prf + 1]
    # The salt is the first OCTET STRING: 16 bytes.
    salt = next(line for line in lines if "prim: OCTET STRING" in line)
    assert "l=  16" in salt


def test_openssl_pkey_accepts(key_file: Path, tmp_path: Path) -> None:
    result = openssl(
        "pkey", "-in", str(key_file), "-passin", f"pass:{PASSWORD.decode()}", "-pubout"
    )
    assert result.returncode == 0, result.stderr
    ours = FileKeyStore(PASSWORD, tmp_path).public_key("ca_key")
    pem = ours.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert result.stdout.encode() == pem


def test_openssl_pkey_rejects_wrong_password(key_file: Path) -> None:
    result = openssl("pkey", "-in", str(key_file), "-passin", "pass:wrong", "-noout")
    assert result.returncode != 0


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["-v2", "aes-256-cbc", "-iter", "600000"], id="pbkdf2-600k"),
        pytest.param(["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"], id="pbkdf2-sha512"),
        pytest.param(
            ["-scrypt", "-scrypt_N", "16384", "-scrypt_r", "8", "-scrypt_p", "1"], id="scrypt"
        ),
    ],
)
def test_reads_openssl_pkcs8(tmp_path: Path, options: list[str]) -> None:
    plain = tmp_path / "plain.pem"
    assert (
        openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", str(plain)
        ).returncode
        == 0
    )
    result = openssl(
        "pkcs8",
        "-topk8",
        "-in",
        str(plain),
        "-out",
        str(tmp_path / "enc"),
        "-passout",
        "pass:hunter2",
        *options,
    )
    assert result.returncode == 0, result.stderr
    key = FileKeyStore(b"hunter2", tmp_path).signer("enc")
    expected = FileKeyStore(None, tmp_path).public_key("plain.pem")
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*fmt) == expected.public_bytes(*fmt)
    with pytest.raises(WrongPasswordError, match="enc: wrong password"):
        FileKeyStore(b"hunter3", tmp_path).signer("enc")
