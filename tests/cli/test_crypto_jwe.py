"""`step crypto jwe encrypt|decrypt` (cli.crypto_jwe), round-tripped with jwcrypto both ways."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from jwcrypto import jwa, jwe, jwk  # type: ignore[import-untyped]

from tests.cli.crypto_cli import step

PASSWORD = "jwe password"
MESSAGE = b"attack at dawn\n\x00\xff binary too"


@pytest.fixture(autouse=True)
def _jwcrypto_p2c(monkeypatch: pytest.MonkeyPatch) -> None:
    """jwcrypto caps PBES2 at 16 384 rounds; go-jose and step use 100 000 and more."""
    monkeypatch.setattr(jwa, "default_max_pbkdf2_iterations", 1_000_000)


# (key-management alg, a jwcrypto key for it)
FAMILIES = {
    "ECDH-ES": lambda: jwk.JWK.generate(kty="EC", crv="P-256", use="enc"),
    "ECDH-ES+A128KW": lambda: jwk.JWK.generate(kty="EC", crv="P-384", use="enc"),
    "ECDH-ES+A256KW": lambda: jwk.JWK.generate(kty="EC", crv="P-521", use="enc"),
    "RSA-OAEP": lambda: jwk.JWK.generate(kty="RSA", size=2048, use="enc"),
    "RSA-OAEP-256": lambda: jwk.JWK.generate(kty="RSA", size=2048, use="enc"),
    "A128KW": lambda: jwk.JWK.generate(kty="oct", size=128, use="enc"),
    "A256GCMKW": lambda: jwk.JWK.generate(kty="oct", size=256, use="enc"),
    "dir": lambda: jwk.JWK.generate(kty="oct", size=256, use="enc"),
}


def _write_keys(tmp_path: Path, key: jwk.JWK, alg: str) -> tuple[Path, Path]:
    public, private = tmp_path / "pub.json", tmp_path / "priv.json"
    members = json.loads(key.export(private_key=True))
    members["alg"] = alg
    private.write_text(json.dumps(members))
    if key["kty"] == "oct":
        public.write_text(private.read_text())
    else:
        members = json.loads(key.export_public())
        public.write_text(json.dumps({**members, "alg": alg}))
    return public, private


def _header(serialized: bytes) -> dict[str, object]:
    obj = json.loads(serialized)
    header: dict[str, object] = json.loads(base64.urlsafe_b64decode(obj["protected"] + "=="))
    return header


@pytest.mark.parametrize("alg", list(FAMILIES))
def test_encrypt_opens_with_jwcrypto(tmp_path: Path, alg: str) -> None:
    key = FAMILIES[alg]()
    public, _ = _write_keys(tmp_path, key, alg)
    code, out, err = step("crypto", "jwe", "encrypt", "--key", public, stdin=MESSAGE)
    assert code == 0, err
    obj = json.loads(out)
    assert set(obj) <= {"protected", "encrypted_key", "iv", "ciphertext", "tag"}
    assert _header(out)["alg"] == alg and _header(out)["enc"] == "A256GCM"
    token = jwe.JWE()
    token.deserialize(out.decode(), key=key)
    assert token.payload == MESSAGE


@pytest.mark.parametrize("alg", list(FAMILIES))
@pytest.mark.parametrize("enc", ["A128GCM", "A256CBC-HS512"])
def test_jwcrypto_tokens_decrypt(tmp_path: Path, alg: str, enc: str) -> None:
    key = FAMILIES[alg]()
    if alg == "dir":  # the key is the content key: its size is the enc's
        key = jwk.JWK.generate(kty="oct", size=128 if enc == "A128GCM" else 512, use="enc")
    _, private = _write_keys(tmp_path, key, alg)
    token = jwe.JWE(MESSAGE, protected={"alg": alg, "enc": enc})
    token.add_recipient(key)
    for serialized in (token.serialize(compact=True), token.serialize()):
        code, out, err = step("crypto", "jwe", "decrypt", "--key", private, stdin=serialized)
        assert (code, out) == (0, MESSAGE), err


@pytest.mark.parametrize("alg", ["PBES2-HS256+A128KW", "PBES2-HS512+A256KW"])
def test_pbes2_both_ways(tmp_path: Path, alg: str) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    code, out, err = step("crypto", "jwe", "encrypt", "--alg", alg, "--enc", "A128CBC-HS256",
                          "--password-file", pw, "--cty", "text/plain", stdin=MESSAGE)  # fmt: skip
    assert code == 0, err
    header = _header(out)
    assert header["p2c"] == 100_000 and header["cty"] == "text/plain"
    token = jwe.JWE()
    token.deserialize(out.decode(), key=jwk.JWK.from_password(PASSWORD))
    assert token.payload == MESSAGE
    assert step("crypto", "jwe", "decrypt", "--password-file", pw, stdin=out)[1] == MESSAGE

    theirs = jwe.JWE(MESSAGE, protected={"alg": alg, "enc": "A256GCM", "p2c": 2000})
    theirs.add_recipient(jwk.JWK.from_password(PASSWORD))
    code, out, err = step("crypto", "jwe", "decrypt", "--password-file", pw,
                          stdin=theirs.serialize(compact=True))  # fmt: skip
    assert (code, out) == (0, MESSAGE), err

    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    code, out, err = step("crypto", "jwe", "decrypt", "--password-file", wrong,
                          stdin=theirs.serialize(compact=True))  # fmt: skip
    assert code == 1 and out == b""
    assert err == "error decrypting data: go-jose/go-jose: error in cryptographic primitive\n"


def test_jwk_create_keys_work_with_jwe(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    pub, priv = tmp_path / "pub.json", tmp_path / "priv.json"
    code, _, err = step("crypto", "jwk", "create", pub, priv, "--kty", "RSA", "--use", "enc",
                        "--password-file", pw)  # fmt: skip
    assert code == 0, err
    code, out, err = step("crypto", "jwe", "encrypt", "--key", pub, stdin=MESSAGE)
    assert code == 0 and _header(out)["alg"] == "RSA-OAEP-256", err
    code, plain, err = step("crypto", "jwe", "decrypt", "--key", priv, "--password-file", pw,
                            stdin=out)  # fmt: skip
    assert (code, plain) == (0, MESSAGE), err


def test_jwks_and_kid(tmp_path: Path) -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-256", use="enc", kid="enc-1")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [json.loads(key.export(private_key=True))]}))
    code, out, err = step("crypto", "jwe", "encrypt", "--jwks", jwks, "--kid", "enc-1",
                          stdin=MESSAGE)  # fmt: skip
    assert code == 0, err
    assert _header(out)["kid"] == "enc-1"
    code, plain, err = step("crypto", "jwe", "decrypt", "--jwks", jwks, "--kid", "enc-1", stdin=out)
    assert (code, plain) == (0, MESSAGE), err
    code, _, err = step("crypto", "jwe", "encrypt", "--jwks", jwks, "--kid", "nope")
    assert (code, err) == (1, f"cannot find key with kid nope on {jwks}\n")


def test_failures(tmp_path: Path) -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-256", use="sig")
    sig_pub, sig_priv = _write_keys(tmp_path, key, "ES256")
    enc_key = FAMILIES["ECDH-ES"]()
    other = tmp_path / "other.json"
    other.write_text(enc_key.export(private_key=True))
    encrypt = ("crypto", "jwe", "encrypt")

    def fails(*args: str | Path, stdin: bytes = MESSAGE) -> str:
        code, out, err = step(*args, stdin=stdin)
        assert code == 1 and out == b"" and len(err.splitlines()) == 1
        return err.strip()

    assert "expecting 'enc' (encryption)" in fails(*encrypt, "--key", sig_pub)
    assert fails(*encrypt) == "either --key or --jwks must be used"
    assert (
        fails(*encrypt, "--key", other, "--enc", "A1GCM")
        == "invalid value 'A1GCM' for flag '--enc'"
    )
    assert (
        fails(*encrypt, "--alg", "ROT13", "--key", other)
        == "invalid value 'ROT13' for flag '--alg'"
    )
    assert "mutually exclusive" in fails(*encrypt, "--alg", "PBES2-HS256+A128KW", "--key", other)
    wrong_alg = fails(*encrypt, "--key", other, "--alg", "A128KW", "--subtle")
    assert wrong_alg == "alg 'A128KW' is not compatible with kty 'EC'"

    _, sealed, _ = step(*encrypt, "--key", other, stdin=MESSAGE)
    public = tmp_path / "public.json"
    public.write_text(enc_key.export_public())
    decrypt = ("crypto", "jwe", "decrypt")
    assert (
        fails(*decrypt, "--key", public, stdin=sealed) == "cannot use a public key for decryption"
    )
    stranger = tmp_path / "stranger.json"
    stranger.write_text(FAMILIES["ECDH-ES"]().export(private_key=True))
    assert fails(*decrypt, "--key", stranger, stdin=sealed).startswith("error decrypting data")
    password_jwe = _pbes2_token()
    assert "cannot be used with JWE algorithm" in fails(
        *decrypt, "--key", other, stdin=password_jwe
    )
    assert fails(*decrypt, "--key", other, stdin=b"garbage").startswith("error parsing data")
    assert fails(*decrypt, "--key", sig_priv, stdin=sealed).startswith("invalid jwk use")


def test_empty_plaintext(tmp_path: Path) -> None:
    key = FAMILIES["ECDH-ES"]()
    public, private = _write_keys(tmp_path, key, "ECDH-ES")
    code, out, err = step("crypto", "jwe", "encrypt", "--key", public, stdin=b"")
    assert code == 0 and json.loads(out)["ciphertext"] == "", err
    assert step("crypto", "jwe", "decrypt", "--key", private, stdin=out)[:2] == (0, b"")


def _pbes2_token() -> bytes:
    token = jwe.JWE(MESSAGE, protected={"alg": "PBES2-HS256+A128KW", "enc": "A128GCM"})
    token.add_recipient(jwk.JWK.from_password(PASSWORD))
    return str(token.serialize(compact=True)).encode()
