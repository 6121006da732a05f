"""JOSE: base64url, JWK conversion, RFC 7638 thumbprints and step's PBES2 encrypted keys."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from pki.jose import (
    JOSEError,
    b64url_decode,
    b64url_encode,
    default_alg,
    key_from_jwk,
    private_jwk,
    public_jwk,
    thumbprint,
)
from pki.jwe import decrypt_jwk, decrypt_pbes2, encrypt_jwk, encrypt_pbes2
from tests.fixtures import STEP_CA_TESTDATA

TESTDATA = STEP_CA_TESTDATA
FAST = 1000  # the minimum p2c: keeps round-trip tests quick
PASSWORDS = {
    "max": b"pass",
    "mike": b"pass",
    "step-cli": b"pass",
    "maxey": b"pass",
    "mariano": b"password",
}


def _provisioners() -> list[dict[str, Any]]:
    path = TESTDATA / "ca.json"
    provs: list[dict[str, Any]] = json.loads(path.read_text())["authority"]["provisioners"]
    return provs


def _split(token: str) -> list[str]:
    return token.split(".")


def _header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(b64url_decode(_split(token)[0]))
    return header


def _with_header(token: str, **changes: Any) -> str:
    """Re-encode the protected header (which also changes the GCM AAD)."""
    header = _header(token)
    for key, value in changes.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    parts = _split(token)
    parts[0] = b64url_encode(json.dumps(header).encode())
    return ".".join(parts)


def _flip(segment: str, index: int = 0) -> str:
    raw = bytearray(b64url_decode(segment))
    raw[index] ^= 0x01
    return b64url_encode(bytes(raw))


# ------------------------------------------------------------------------------------------
# base64url


def test_b64url_round_trip_without_padding() -> None:
    for n in range(0, 40):
        data = os.urandom(n)
        encoded = b64url_encode(data)
        assert "=" not in encoded and "+" not in encoded and "/" not in encoded
        assert b64url_decode(encoded) == data


def test_b64url_decode_accepts_padding_and_bytes() -> None:
    assert b64url_decode("YQ") == b"a"
    assert b64url_decode("YQ==") == b"a"
    assert b64url_decode(b"YWI") == b"ab"
    assert b64url_decode("_-8") == b"\xff\xef"
    assert b64url_decode("") == b""


@pytest.mark.parametrize(
    "garbage",
    ["a", "abcde", "ab$c", "+/8", "YQ=", "YQ===", "Y=Q", "YWI=x", "é", "YQ\n", " YQ"],
)
def test_b64url_decode_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(garbage)


def test_b64url_decode_rejects_non_ascii_bytes() -> None:
    with pytest.raises(ValueError):
        b64url_decode(b"\xff\xfe")


# ------------------------------------------------------------------------------------------
# JWK


def test_rfc7638_example_thumbprint() -> None:
    # RFC 7638 section 3.1.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
        "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-"
        "65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrd"
        "kt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_step_fixture_kids_are_thumbprints() -> None:
    for prov in _provisioners():
        assert thumbprint(prov["key"]) == prov["key"]["kid"]


def test_thumbprint_ignores_optional_members_and_rejects_incomplete() -> None:
    key = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    bare = {k: key[k] for k in ("kty", "crv", "x", "y")}
    assert thumbprint(key) == thumbprint(bare) == key["kid"]
    with pytest.raises(JOSEError):
        thumbprint({"kty": "EC", "crv": "P-256", "x": key["x"]})
    with pytest.raises(JOSEError):
        thumbprint({"kty": "XYZ"})


@pytest.mark.parametrize(
    ("curve", "crv", "alg", "size"),
    [
        (ec.SECP256R1(), "P-256", "ES256", 32),
        (ec.SECP384R1(), "P-384", "ES384", 48),
        (ec.SECP521R1(), "P-521", "ES512", 66),
    ],
)
def test_ec_jwk(curve: ec.EllipticCurve, crv: str, alg: str, size: int) -> None:
    priv = ec.generate_private_key(curve)
    pub = public_jwk(priv.public_key())
    assert list(pub) == ["use", "kty", "kid", "crv", "alg", "x", "y"]
    assert pub["use"] == "sig" and pub["kty"] == "EC" and pub["crv"] == crv
    assert pub["alg"] == alg == default_alg(priv)
    assert len(b64url_decode(pub["x"])) == size == len(b64url_decode(pub["y"]))
    assert pub["kid"] == thumbprint(pub)
    assert public_jwk(priv) == pub  # a private key is reduced to its public half

    full = private_jwk(priv)
    assert list(full) == [*pub, "d"]
    assert len(b64url_decode(full["d"])) == size
    loaded = key_from_jwk(full)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.private_numbers() == priv.private_numbers()
    loaded_pub = key_from_jwk(pub)
    assert isinstance(loaded_pub, ec.EllipticCurvePublicKey)
    assert loaded_pub.public_numbers() == priv.public_key().public_numbers()


def test_rsa_jwk() -> None:
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = public_jwk(priv)
    assert list(pub) == ["use", "kty", "kid", "alg", "n", "e"]
    assert pub["e"] == "AQAB" and pub["alg"] == "RS256" == default_alg(priv)
    assert len(b64url_decode(pub["n"])) == 256
    full = private_jwk(priv)
    assert list(full) == [*pub, "d", "p", "q", "dp", "dq", "qi"]
    loaded = key_from_jwk(full)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == priv.private_numbers()
    # Only n, e, d: the primes are recovered.
    minimal = {k: full[k] for k in ("kty", "n", "e", "d")}
    recovered = key_from_jwk(minimal)
    assert isinstance(recovered, rsa.RSAPrivateKey)
    assert recovered.private_numbers().d == priv.private_numbers().d
    assert isinstance(key_from_jwk(pub), rsa.RSAPublicKey)


def test_ed25519_jwk() -> None:
    priv = ed25519.Ed25519PrivateKey.generate()
    pub = public_jwk(priv)
    assert list(pub) == ["use", "kty", "kid", "crv", "alg", "x"]
    assert pub["kty"] == "OKP" and pub["crv"] == "Ed25519" and pub["alg"] == "EdDSA"
    full = private_jwk(priv)
    loaded = key_from_jwk(full)
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    assert loaded.private_bytes_raw() == priv.private_bytes_raw()
    assert isinstance(key_from_jwk(pub), ed25519.Ed25519PublicKey)


def test_public_jwk_overrides() -> None:
    priv = ec.generate_private_key(ec.SECP256R1())
    jwk = public_jwk(priv, kid="my-kid", alg="ES256", use="")
    assert list(jwk) == ["kty", "kid", "crv", "alg", "x", "y"] and jwk["kid"] == "my-kid"
    assert "kid" not in public_jwk(priv, kid="") and "alg" not in public_jwk(priv, alg="")


def test_unsupported_keys_are_refused() -> None:
    with pytest.raises(JOSEError):
        public_jwk(ec.generate_private_key(ec.SECP256K1()))
    with pytest.raises(JOSEError):
        default_alg("not a key")  # type: ignore[arg-type]


def test_key_from_jwk_rejects_mismatched_private_part() -> None:
    a = private_jwk(ec.generate_private_key(ec.SECP256R1()))
    b = private_jwk(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(JOSEError, match="does not match"):
        key_from_jwk({**a, "d": b["d"]})
    c = private_jwk(ed25519.Ed25519PrivateKey.generate())
    d = private_jwk(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(JOSEError, match="does not match"):
        key_from_jwk({**c, "d": d["d"]})


@pytest.mark.parametrize(
    "jwk",
    [
        {},
        {"kty": "oct", "k": "AAAA"},
        {"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},  # wrong length
        {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43},  # not on the curve
        {"kty": "EC", "crv": "P-256", "x": "!!", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": 5, "y": "AA"},
        {"kty": "RSA", "n": "", "e": "AQAB"},
        {"kty": "RSA", "n": "AQAB"},
        {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
    ],
)
def test_key_from_jwk_rejects_bad_input(jwk: dict[str, Any]) -> None:
    with pytest.raises(JOSEError):
        key_from_jwk(jwk)


def test_key_from_jwk_rejects_non_mapping() -> None:
    with pytest.raises(JOSEError):
        key_from_jwk(["kty", "EC"])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# PBES2: step-ca's own fixtures


def test_decrypts_every_step_ca_fixture_key() -> None:
    for prov in _provisioners():
        jwk = decrypt_jwk(prov["encryptedKey"], PASSWORDS[prov["name"]])
        assert {k: v for k, v in jwk.items() if k != "d"} == prov["key"]
        key = key_from_jwk(jwk)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert public_jwk(key) == prov["key"]
        assert private_jwk(key) == jwk  # same members, same order as step writes them


def test_fixture_header_is_the_older_format() -> None:
    header = _header(_provisioners()[0]["encryptedKey"])
    assert header["alg"] == "PBES2-HS256+A128KW"
    assert header["enc"] == "A128GCM" and header["p2c"] == 100000 and "cty" not in header


def test_fixture_wrong_password() -> None:
    mariano = next(p for p in _provisioners() if p["name"] == "mariano")
    with pytest.raises(JOSEError, match="wrong password"):
        decrypt_pbes2(mariano["encryptedKey"], b"pass")


def test_decrypts_flattened_json_fixture() -> None:
    path = TESTDATA / "secrets" / "step_cli_key_priv.jwk"
    jwk = decrypt_jwk(path.read_text(), "pass")
    public = json.loads((TESTDATA / "secrets" / "step_cli_key_pub.jwk").read_text())
    assert {k: v for k, v in jwk.items() if k != "d"} == public
    mariano = json.loads((TESTDATA / "secrets" / "ott_mariano_pub.jwk").read_text())
    assert (
        public_jwk(
            key_from_jwk(
                decrypt_jwk(
                    (TESTDATA / "secrets" / "ott_mariano_priv.jwk").read_bytes(), b"password"
                )
            )
        )
        == mariano
    )


# ------------------------------------------------------------------------------------------
# PBES2: round trips


def test_encrypt_defaults_match_current_step() -> None:
    token = encrypt_pbes2(b"secret", b"pw")
    header_segment = _split(token)[0]
    header = json.loads(b64url_decode(header_segment))
    assert list(header) == ["alg", "cty", "enc", "p2c", "p2s"]
    assert header["alg"] == "PBES2-HS256+A128KW" and header["cty"] == "jwk+json"
    assert header["enc"] == "A256GCM" and header["p2c"] == 600_000
    assert len(b64url_decode(header["p2s"])) == 16
    parts = _split(token)
    assert len(parts) == 5
    assert len(b64url_decode(parts[1])) == 40  # wrapped 32-byte CEK
    assert len(b64url_decode(parts[2])) == 12
    assert len(b64url_decode(parts[4])) == 16
    assert decrypt_pbes2(token, b"pw") == b"secret"


@pytest.mark.parametrize("enc", ["A128GCM", "A192GCM", "A256GCM"])
def test_round_trip_each_enc(enc: str) -> None:
    payload = os.urandom(100)
    token = encrypt_pbes2(payload, "pässword", p2c=FAST, enc=enc, cty=None)
    header = _header(token)
    assert header["enc"] == enc and "cty" not in header
    assert decrypt_pbes2(token, "pässword".encode()) == payload
    assert decrypt_pbes2(token.encode(), "pässword") == payload


def test_each_encryption_is_fresh() -> None:
    a = encrypt_pbes2(b"x", b"pw", p2c=FAST)
    b = encrypt_pbes2(b"x", b"pw", p2c=FAST)
    assert _header(a)["p2s"] != _header(b)["p2s"]
    assert _split(a)[2] != _split(b)[2]


def test_encrypt_jwk_round_trip() -> None:
    jwk = private_jwk(ec.generate_private_key(ec.SECP256R1()))
    token = encrypt_jwk(jwk, b"pw", p2c=FAST)
    assert _header(token)["cty"] == "jwk+json"
    assert decrypt_jwk(token, b"pw") == jwk


def test_decrypt_jwk_rejects_non_json_payload() -> None:
    with pytest.raises(JOSEError, match="not a JSON"):
        decrypt_jwk(encrypt_pbes2(b"\xffnot json", b"pw", p2c=FAST), b"pw")
    with pytest.raises(JOSEError, match="not a JSON object"):
        decrypt_jwk(encrypt_pbes2(b"[1]", b"pw", p2c=FAST), b"pw")


def test_encrypt_rejects_bad_parameters() -> None:
    with pytest.raises(JOSEError):
        encrypt_pbes2(b"x", b"pw", enc="A128CBC-HS256")
    with pytest.raises(JOSEError):
        encrypt_pbes2(b"x", b"pw", p2c=999)
    with pytest.raises(JOSEError):
        encrypt_pbes2(b"x", b"pw", p2c=True)


def _manual_pbes2(
    alg: str,
    hash_alg: hashes.HashAlgorithm,
    kek_len: int,
    enc: str,
    cek_len: int,
    plaintext: bytes,
    password: bytes,
) -> str:
    """An independent PBES2 encoder (RFC 7518 4.8) for the algorithms encrypt does not make."""
    p2s = os.urandom(16)
    header = {"alg": alg, "enc": enc, "p2c": FAST, "p2s": b64url_encode(p2s)}
    protected = b64url_encode(json.dumps(header).encode())
    kek = PBKDF2HMAC(hash_alg, kek_len, alg.encode() + b"\0" + p2s, FAST).derive(password)
    cek = os.urandom(cek_len)
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
    return ".".join(
        [
            protected,
            b64url_encode(aes_key_wrap(kek, cek)),
            b64url_encode(iv),
            b64url_encode(sealed[:-16]),
            b64url_encode(sealed[-16:]),
        ]
    )


@pytest.mark.parametrize(
    ("alg", "hash_alg", "kek_len"),
    [
        ("PBES2-HS256+A128KW", hashes.SHA256(), 16),
        ("PBES2-HS384+A192KW", hashes.SHA384(), 24),
        ("PBES2-HS512+A256KW", hashes.SHA512(), 32),
    ],
)
def test_decrypts_every_pbes2_variant(
    alg: str, hash_alg: hashes.HashAlgorithm, kek_len: int
) -> None:
    token = _manual_pbes2(alg, hash_alg, kek_len, "A192GCM", 24, b"payload", b"pw")
    assert decrypt_pbes2(token, b"pw") == b"payload"
    with pytest.raises(JOSEError, match="wrong password"):
        decrypt_pbes2(token, b"pW")


def test_json_serialisations() -> None:
    token = encrypt_pbes2(b"payload", b"pw", p2c=FAST)
    protected, ek, iv, ct, tag = _split(token)
    flattened = {
        "protected": protected,
        "encrypted_key": ek,
        "iv": iv,
        "ciphertext": ct,
        "tag": tag,
    }
    assert decrypt_pbes2(json.dumps(flattened), b"pw") == b"payload"
    general = {
        "protected": protected,
        "recipients": [{"encrypted_key": ek}],
        "iv": iv,
        "ciphertext": ct,
        "tag": tag,
    }
    assert decrypt_pbes2("\n" + json.dumps(general, indent=2) + "\n", b"pw") == b"payload"
    # A JSON `aad` member becomes part of the authenticated data, so adding one breaks the tag.
    with pytest.raises(JOSEError, match="authentication failed"):
        decrypt_pbes2(json.dumps({**flattened, "aad": b64url_encode(b"extra")}), b"pw")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: {**o, "recipients": []},
        lambda o: {**o, "recipients": [{"encrypted_key": o["encrypted_key"]}] * 2},
        lambda o: {**o, "recipients": ["x"]},
        lambda o: {k: v for k, v in o.items() if k != "encrypted_key"},
        lambda o: {k: v for k, v in o.items() if k != "tag"},
        lambda o: {**o, "protected": 5},
        lambda o: {**o, "unprotected": {"alg": "dir"}},  # duplicate of a protected member
        lambda o: {**o, "unprotected": []},
        lambda o: {**o, "aad": 5},
        lambda o: {**o, "iv": None},
    ],
)
def test_json_serialisation_malformed(mutate: Any) -> None:
    token = encrypt_pbes2(b"payload", b"pw", p2c=FAST)
    protected, ek, iv, ct, tag = _split(token)
    obj = {"protected": protected, "encrypted_key": ek, "iv": iv, "ciphertext": ct, "tag": tag}
    with pytest.raises(JOSEError):
        decrypt_pbes2(json.dumps(mutate(obj)), b"pw")


def test_json_serialisation_not_an_object() -> None:
    for text in ("{", "{}", '{"a": 1', "[1, 2]"):
        with pytest.raises(JOSEError):
            decrypt_pbes2(text, b"pw")


# ------------------------------------------------------------------------------------------
# PBES2: failure paths


@pytest.fixture(scope="module")
def token() -> str:
    return encrypt_pbes2(b'{"kty":"EC"}', b"correct horse", p2c=FAST, enc="A128GCM")


def test_wrong_password(token: str) -> None:
    with pytest.raises(JOSEError, match="wrong password"):
        decrypt_pbes2(token, b"battery staple")
    with pytest.raises(JOSEError, match="wrong password"):
        decrypt_pbes2(token, b"")


@pytest.mark.parametrize("index", [3, 4])
def test_tampered_ciphertext_or_tag(token: str, index: int) -> None:
    parts = _split(token)
    parts[index] = _flip(parts[index])
    with pytest.raises(JOSEError, match="authentication failed"):
        decrypt_pbes2(".".join(parts), b"correct horse")


def test_tampered_iv_and_wrapped_key(token: str) -> None:
    parts = _split(token)
    with pytest.raises(JOSEError, match="authentication failed"):
        decrypt_pbes2(".".join([*parts[:2], _flip(parts[2]), *parts[3:]]), b"correct horse")
    with pytest.raises(JOSEError):
        decrypt_pbes2(".".join([parts[0], _flip(parts[1], 5), *parts[2:]]), b"correct horse")


def test_tampered_protected_header_breaks_the_aad(token: str) -> None:
    # Same parameters, different bytes: key unwrap still works, GCM catches the change.
    with pytest.raises(JOSEError, match="authentication failed"):
        decrypt_pbes2(_with_header(token, cty="jwk+json"), b"correct horse")
    # A different salt or count derives a different key-encryption key.
    with pytest.raises(JOSEError, match="wrong password"):
        decrypt_pbes2(_with_header(token, p2c=FAST + 1), b"correct horse")


def test_p2c_too_high_is_refused_before_deriving(token: str) -> None:
    # With 10**12 iterations this would run for days if the cap were checked afterwards.
    with pytest.raises(JOSEError, match="exceeds the maximum"):
        decrypt_pbes2(_with_header(token, p2c=10**12), b"correct horse")
    with pytest.raises(JOSEError, match="exceeds the maximum"):
        decrypt_pbes2(token, b"correct horse", max_p2c=FAST - 1)
    assert decrypt_pbes2(token, b"correct horse", max_p2c=FAST) == b'{"kty":"EC"}'


@pytest.mark.parametrize("p2c", [0, -5, 999, 1.5e5, "100000", True, None])
def test_p2c_too_low_or_not_an_integer(token: str, p2c: Any) -> None:
    bad = _with_header(token, p2c=p2c)  # None removes the member
    with pytest.raises(JOSEError, match="p2c"):
        decrypt_pbes2(bad, b"correct horse")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alg": "dir"}, "key management"),
        ({"alg": "RSA-OAEP"}, "key management"),
        ({"alg": None}, "key management"),
        ({"enc": "A128CBC-HS256"}, "content encryption"),
        ({"enc": None}, "content encryption"),
        ({"zip": "DEF"}, "compressed"),
        ({"crit": ["exp"]}, "critical"),
        ({"p2s": None}, "p2s"),
        ({"p2s": "!!!"}, "p2s"),
        ({"p2s": b64url_encode(b"short")}, "p2s"),
        ({"p2s": 12}, "p2s"),
    ],
)
def test_bad_header_parameters(token: str, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(JOSEError, match=message):
        decrypt_pbes2(_with_header(token, **changes), b"correct horse")


def _replace_part(token: str, index: int, value: str) -> str:
    parts = _split(token)
    parts[index] = value
    return ".".join(parts)


@pytest.mark.parametrize(
    "make",
    [
        lambda t: "",
        lambda t: "not a token",
        lambda t: t + ".extra",
        lambda t: ".".join(_split(t)[:4]),
        lambda t: _replace_part(t, 0, "%%%"),
        lambda t: _replace_part(t, 0, b64url_encode(b"not json")),
        lambda t: _replace_part(t, 0, b64url_encode(b"[1,2]")),
        lambda t: _replace_part(t, 0, b64url_encode(b"\xff\xfe")),
        lambda t: _replace_part(t, 0, b64url_encode(b"[" * 100000)),
        lambda t: _replace_part(t, 0, ""),
        lambda t: _replace_part(t, 1, ""),
        lambda t: _replace_part(t, 1, b64url_encode(os.urandom(40))),  # wrong length for A128
        lambda t: _replace_part(t, 2, b64url_encode(os.urandom(16))),  # 16-byte IV
        lambda t: _replace_part(t, 2, "@@"),
        lambda t: _replace_part(t, 3, "a"),
        lambda t: _replace_part(t, 4, b64url_encode(os.urandom(12))),  # truncated tag
        lambda t: _replace_part(t, 4, ""),
    ],
)
def test_malformed_tokens(token: str, make: Any) -> None:
    with pytest.raises(JOSEError):
        decrypt_pbes2(make(token), b"correct horse")


def test_non_text_input() -> None:
    with pytest.raises(JOSEError):
        decrypt_pbes2(b"\xff\xfe\xfd", b"pw")
    with pytest.raises(JOSEError):
        decrypt_pbes2(12345, b"pw")  # type: ignore[arg-type]


def test_random_corruption_only_ever_raises_joseerror(token: str) -> None:
    """Whatever happens to the bytes of a token, the caller sees JOSEError, nothing else."""
    rng = random.Random(7638)
    alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.={}"[]:, '
    for _ in range(400):
        chars = list(token)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.5:
                chars[pos] = rng.choice(alphabet)
            elif op < 0.8:
                del chars[pos]
            else:
                chars.insert(pos, rng.choice(alphabet))
        mutated = "".join(chars)
        try:
            result = decrypt_pbes2(mutated, b"correct horse")
        except JOSEError:
            continue
        # A mutation that survives must have touched only padding-insensitive bits.
        assert result == b'{"kty":"EC"}'
