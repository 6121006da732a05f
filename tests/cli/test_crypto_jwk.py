"""`step crypto jwk` (cli.crypto_jwk): keys checked against jwcrypto, an independent JOSE."""

from __future__ import annotations

import base64
import fcntl
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from jwcrypto import jwa, jwe, jwk  # type: ignore[import-untyped]

from tests.cli.crypto_cli import step

PASSWORD = "correct horse battery staple"


@pytest.fixture
def pw(tmp_path: Path) -> Path:
    path = tmp_path / "pw.txt"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture(autouse=True)
def _jwcrypto_p2c(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """jwcrypto caps PBES2 at 16 384 rounds; step's keys use 600 000."""
    monkeypatch.setattr(jwa, "default_max_pbkdf2_iterations", 1_000_000)
    yield


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_default_is_an_encrypted_p256_key_jwcrypto_opens(tmp_path: Path, pw: Path) -> None:
    pub, priv = tmp_path / "pub.json", tmp_path / "priv.json"
    code, _, err = step("crypto", "jwk", "create", pub, priv, "--password-file", pw)
    assert code == 0, err
    assert f"Your private key has been saved in {priv}." in err
    assert _mode(pub) == 0o600 and _mode(priv) == 0o600
    public = json.loads(pub.read_text())
    assert list(public) == ["use", "kty", "kid", "crv", "alg", "x", "y"]
    assert (public["use"], public["kty"], public["crv"], public["alg"]) == (
        "sig", "EC", "P-256", "ES256",
    )  # fmt: skip
    assert public["kid"] == jwk.JWK(**public).thumbprint()

    sealed = json.loads(priv.read_text())
    assert list(sealed) == ["protected", "encrypted_key", "iv", "ciphertext", "tag"]
    header = json.loads(base64.urlsafe_b64decode(sealed["protected"] + "=="))
    assert header["alg"] == "PBES2-HS256+A128KW" and header["enc"] == "A256GCM"
    assert header["p2c"] == 600_000 and header["cty"] == "jwk+json"
    token = jwe.JWE()
    token.deserialize(priv.read_text(), key=jwk.JWK.from_password(PASSWORD))
    private = jwk.JWK.from_json(token.payload)
    assert private.has_private and private.thumbprint() == public["kid"]
    assert json.loads(private.export_public()) == public  # jwcrypto keeps use, kid and alg


@pytest.mark.parametrize(
    ("flags", "kty", "alg"),
    [
        (["--kty", "RSA"], "RSA", "RS256"),
        (["--kty", "RSA", "--use", "enc"], "RSA", "RSA-OAEP-256"),
        (["--kty", "OKP", "--crv", "Ed25519"], "OKP", "EdDSA"),
        (["--crv", "P-384"], "EC", "ES384"),
        (["--crv", "P-521", "--use", "enc"], "EC", "ECDH-ES"),
        (["--kty", "oct"], "oct", "HS256"),
        (["--kty", "oct", "--use", "enc"], "oct", "A256GCMKW"),
        (["--kty", "EC", "--alg", "ECDH-ES+A128KW", "--use", "enc"], "EC", "ECDH-ES+A128KW"),
    ],
)
def test_create_key_types(tmp_path: Path, flags: list[str], kty: str, alg: str) -> None:
    pub, priv = tmp_path / "pub.json", tmp_path / "priv.json"
    code, _, err = step("crypto", "jwk", "create", pub, priv, "--no-password", "--insecure", *flags)
    assert code == 0, err
    public, private = json.loads(pub.read_text()), json.loads(priv.read_text())
    assert public["kty"] == kty and public["alg"] == alg
    key = jwk.JWK(**private)
    if kty == "oct":
        assert "kid" not in public and public == private  # a secret has no public half
        assert len(base64.urlsafe_b64decode(private["k"] + "==")) == 32
    else:
        assert "d" not in public and key.has_private
        assert public["kid"] == key.thumbprint() == private["kid"]


def test_create_with_kid_and_from_pem(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    pub, priv = tmp_path / "pub.json", tmp_path / "priv.json"
    args = ("crypto", "jwk", "create", pub, priv, "--no-password", "--insecure")
    assert step(*args, "--from-pem", pem)[0] == 0
    public = json.loads(pub.read_text())
    assert public["alg"] == "ES384" and public["kid"] == jwk.JWK(**public).thumbprint()
    assert jwk.JWK(**json.loads(priv.read_text())).get_op_key("sign").private_numbers() == (
        key.private_numbers()
    )
    assert step(*args, "--kid", "my-key", "--force")[0] == 0
    assert json.loads(pub.read_text())["kid"] == "my-key"

    # A public PEM makes only the public JWK.
    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    priv.unlink()
    code, _, err = step(*args, "--from-pem", pem, "--force")
    assert code == 0 and "Only the public JWK was generated." in err
    assert not priv.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--no-password"], "flag '--no-password' requires the '--insecure' flag"),
        (["--kty", "DSA", "--no-password", "--insecure"], "invalid value 'DSA' for flag '--kty'"),
        (["--size", "256", "--no-password", "--insecure"], "flag '--size' is incompatible"),
        (["--kty", "RSA", "--size", "1024", "--no-password"], "requires the '--insecure'"),
        (["--kty", "RSA", "--size", "1024"], "flag '--size' requires at least 2048"),
        (["--kty", "oct", "--crv", "P-256"], "flag '--crv' is incompatible with '--kty oct'"),
        (["--crv", "P-999", "--no-password", "--insecure"], "invalid value 'P-999' for flag"),
        (
            ["--alg", "RS256", "--no-password", "--insecure"],
            "alg 'RS256' is not compatible with kty 'EC' and crv 'P-256'",
        ),
        (
            ["--kty", "OKP", "--use", "enc", "--no-password", "--insecure"],
            "Ed25519 cannot be used for encryption",
        ),
        (["--use", "enc", "--alg", "A128KW", "--no-password", "--insecure"], "not compatible"),
    ],
)
def test_create_refuses_bad_flags(tmp_path: Path, flags: list[str], message: str) -> None:
    pub, priv = tmp_path / "pub.json", tmp_path / "priv.json"
    code, out, err = step("crypto", "jwk", "create", pub, priv, *flags)
    assert code == 1 and out == b""
    assert message in err and len(err.splitlines()) == 1
    assert not pub.exists() and not priv.exists()


def test_create_never_overwrites_without_force(tmp_path: Path, pw: Path) -> None:
    pub, priv = tmp_path / "pub.json", tmp_path / "priv.json"
    priv.write_text("precious")
    code, _, err = step("crypto", "jwk", "create", pub, priv, "--password-file", pw)
    assert code == 1 and err == f"file {priv} already exists: use '--force' to overwrite it\n"
    assert priv.read_text() == "precious" and not pub.exists()
    assert step("crypto", "jwk", "create", pub, priv, "--password-file", pw, "--force")[0] == 0
    assert "ciphertext" in json.loads(priv.read_text())
    code, _, err = step("crypto", "jwk", "create", pub, pub, "--no-password", "--insecure")
    assert code == 1 and "cannot be equal" in err


def test_create_without_a_password_source_fails(tmp_path: Path) -> None:
    code, _, err = step("crypto", "jwk", "create", tmp_path / "a", tmp_path / "b")
    assert code == 1 and "no terminal to prompt on" in err
    empty = tmp_path / "empty"
    empty.write_text("\n")
    code, _, err = step("crypto", "jwk", "create", tmp_path / "a", tmp_path / "b",
                        "--password-file", empty)  # fmt: skip
    assert code == 1 and err == "the password cannot be empty\n"


def test_public_and_thumbprint_of_an_encrypted_key(tmp_path: Path, pw: Path) -> None:
    pub, priv = tmp_path / "pub.json", tmp_path / "priv.json"
    assert step("crypto", "jwk", "create", pub, priv, "--kty", "RSA", "--password-file", pw)[0] == 0
    code, out, err = step("crypto", "jwk", "public", "--password-file", pw, stdin=priv.read_bytes())
    assert code == 0, err
    assert json.loads(out) == json.loads(pub.read_text())
    expected = jwk.JWK(**json.loads(pub.read_text())).thumbprint()
    for data in (pub.read_bytes(), priv.read_bytes()):
        code, out, _ = step("crypto", "jwk", "thumbprint", "--password-file", pw, stdin=data)
        assert code == 0 and out.decode() == expected + "\n"

    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope")
    code, out, err = step(
        "crypto", "jwk", "public", "--password-file", wrong, stdin=priv.read_bytes()
    )
    assert (code, out, err) == (1, b"", "failed to decrypt JWE: invalid password\n")
    code, _, err = step("crypto", "jwk", "thumbprint", stdin=b"not a key")
    assert (code, err) == (1, "error reading JWK: unsupported format\n")


@pytest.mark.parametrize("kty", ["EC", "RSA", "OKP", "oct"])
def test_thumbprint_matches_jwcrypto(kty: str) -> None:
    key = jwk.JWK.generate(kty=kty, **({"crv": "Ed25519"} if kty == "OKP" else {}))
    texts = (
        [key.export_symmetric()] if kty == "oct" else [key.export_public(), key.export_private()]
    )
    for text in texts:
        code, out, _ = step("crypto", "jwk", "thumbprint", stdin=text)
        assert code == 0 and out.decode().strip() == key.thumbprint()


def test_keyset_add_list_find_remove(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    kids = []
    for kty in ("EC", "RSA"):
        key = jwk.JWK.generate(kty=kty, kid=f"{kty}-key")
        assert step("crypto", "jwk", "keyset", "add", jwks, stdin=key.export_public())[0] == 0
        kids.append(f"{kty}-key")
    assert _mode(jwks) == 0o600
    assert [k["kid"] for k in json.loads(jwks.read_text())["keys"]] == kids
    assert jwk.JWKSet.from_json(jwks.read_text()).get_key("RSA-key") is not None
    code, out, _ = step("crypto", "jwk", "keyset", "list", jwks)
    assert code == 0 and out.decode() == "EC-key\nRSA-key\n"
    code, out, _ = step("crypto", "jwk", "keyset", "find", jwks, "--kid", "RSA-key")
    assert code == 0 and json.loads(out)["kty"] == "RSA"
    assert step("crypto", "jwk", "keyset", "find", jwks, "--kid", "nope")[1] == b""
    assert step("crypto", "jwk", "keyset", "remove", jwks, "--kid", "EC-key")[0] == 0
    assert step("crypto", "jwk", "keyset", "list", jwks)[1] == b"RSA-key\n"


def test_keyset_failures(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text("not json")
    code, _, err = step("crypto", "jwk", "keyset", "list", jwks)
    assert (code, err) == (1, f"error reading {jwks}: unsupported format\n")
    jwks.write_text('{"keys": []}')
    with jwks.open() as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = step("crypto", "jwk", "keyset", "list", jwks)
    assert (code, err) == (1, f"error reading {jwks}: file is locked\n")
    code, _, err = step("crypto", "jwk", "keyset", "add", jwks, stdin=b"{}")
    assert (code, err) == (1, "error reading JWK: unsupported format\n")
    assert json.loads(jwks.read_text()) == {"keys": []}
