"""`step crypto jwt sign|verify` (cli.crypto_jwt), checked against PyJWT both ways."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from cli.crypto_jwt import go_duration
from pki.jose import b64url_encode, private_jwk, public_jwk
from tests.cli.crypto_cli import step

PASSWORD = "jwt password"


def _exp(seconds: int = 300) -> str:
    return str(int(time.time()) + seconds)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture
def files(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> dict[str, Path]:
    """An EC key as a sealed JWK (made by `jwk create --from-pem`), public JWK and PEMs."""
    paths = {n: tmp_path / n for n in ("pw", "pub.json", "priv.json", "key.pem", "pub.pem")}
    paths["pw"].write_text(PASSWORD)
    paths["key.pem"].write_bytes(
        ec_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    paths["pub.pem"].write_bytes(
        ec_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code, _, err = step("crypto", "jwk", "create", paths["pub.json"], paths["priv.json"],
                        "--from-pem", paths["key.pem"], "--password-file", paths["pw"])  # fmt: skip
    assert code == 0, err
    return paths


def _sign(*args: str | Path, stdin: bytes = b"") -> str:
    code, out, err = step("crypto", "jwt", "sign", *args, stdin=stdin)
    assert code == 0, err
    return out.decode().strip()


def test_sign_with_an_encrypted_jwk_verifies_with_pyjwt(
    files: dict[str, Path], ec_key: ec.EllipticCurvePrivateKey
) -> None:
    exp = _exp()
    token = _sign("--key", files["priv.json"], "--password-file", files["pw"], "--iss", "joe",
                  "--aud", "bob", "--sub", "hello", "--exp", exp)  # fmt: skip
    header = jwt.get_unverified_header(token)
    kid = json.loads(files["pub.json"].read_text())["kid"]
    assert header == {"alg": "ES256", "kid": kid, "typ": "JWT"}
    claims = jwt.decode(token, ec_key.public_key(), algorithms=["ES256"], audience="bob",
                        issuer="joe")  # fmt: skip
    assert claims["sub"] == "hello" and claims["aud"] == "bob" and claims["exp"] == int(exp)
    assert claims["nbf"] == claims["iat"] and abs(claims["iat"] - time.time()) < 3600
    assert len(claims["jti"]) == 64 and int(claims["jti"], 16) >= 0
    # go-jose writes maps with sorted keys.
    assert list(claims) == sorted(claims)


def test_sign_claims_file_headers_and_several_audiences(
    files: dict[str, Path], ec_key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    claims_file = tmp_path / "claims.json"
    claims_file.write_text('{"admin": true, "sub": "from-file"}')
    token = _sign(claims_file, "--key", files["key.pem"], "--iss", "joe", "--aud", "a",
                  "--aud", "b", "--sub", "flag", "--exp", _exp(), "--jti", "id-1",
                  "--header", "x5u=https://example.com", "--nbf", "1000")  # fmt: skip
    assert jwt.get_unverified_header(token)["x5u"] == "https://example.com"
    claims = jwt.decode(token, ec_key.public_key(), algorithms=["ES256"], audience="b")
    assert claims["aud"] == ["a", "b"] and claims["sub"] == "from-file" and claims["admin"]
    assert claims["jti"] == "id-1" and claims["nbf"] == 1000

    token = _sign("-", "--key", files["key.pem"], "--subtle", stdin=b'{"hello": "world"}')
    assert jwt.decode(token, ec_key.public_key(), algorithms=["ES256"])["hello"] == "world"


@pytest.mark.parametrize("alg", ["RS256", "PS384"])
def test_sign_rsa_and_hmac_from_key_sets(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    jwks = tmp_path / "jwks.json"
    secret = b"0123456789abcdef0123456789abcdef"
    hmac_key = {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64url_encode(secret)}
    keys = [private_jwk(rsa_key, kid="rsa", alg=alg), hmac_key]
    jwks.write_text(json.dumps({"keys": keys}))
    common = ("--iss", "i", "--aud", "a", "--sub", "s", "--exp", _exp())
    token = _sign("--jwks", jwks, "--kid", "rsa", *common)
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert jwt.decode(token, rsa_key.public_key(), algorithms=[alg], audience="a")["sub"] == "s"
    token = _sign("--jwks", jwks, "--kid", "hmac", *common)
    assert jwt.decode(token, secret, algorithms=["HS256"], audience="a")["iss"] == "i"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--iss", "i", "--aud", "a", "--sub", "s"], "flag '--exp' is required unless '--subtle'"),
        (["--aud", "a", "--sub", "s", "--exp", "EXP"], "flag '--iss' is required"),
        (["--iss", "i", "--sub", "s", "--exp", "EXP"], "flag '--aud' is required"),
        (["--iss", "i", "--aud", "a", "--exp", "EXP"], "flag '--sub' is required"),
        (
            ["--iss", "i", "--aud", "a", "--sub", "s", "--exp", "1000"],
            "'--exp' must be in the future",
        ),
        (
            ["--alg", "ES384", "--subtle"],
            "alg 'ES384' is not compatible with kty 'EC' and crv 'P-256'",
        ),
        (["--alg", "RS256"], "alg RS256 does not match the alg on"),
        (["--header", "novalue", "--subtle"], "invalid value 'novalue' for flag '--header'"),
    ],
)
def test_sign_refuses(files: dict[str, Path], flags: list[str], message: str) -> None:
    flags = [_exp() if f == "EXP" else f for f in flags]
    code, out, err = step("crypto", "jwt", "sign", "--key", files["priv.json"],
                          "--password-file", files["pw"], *flags)  # fmt: skip
    assert code == 1 and out == b"" and message in err and len(err.splitlines()) == 1


def test_sign_key_failures(files: dict[str, Path], tmp_path: Path) -> None:
    base = ("crypto", "jwt", "sign", "--subtle")
    assert step(*base)[2] == "either --key or --jwks must be used\n"
    assert (
        step(*base, "--jwks", files["pub.json"])[2] == "flag '--jwks' requires the '--kid' flag\n"
    )
    assert step(*base, "--key", files["pub.pem"])[2] == "cannot use a public key for signing\n"
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    code, _, err = step(*base, "--key", files["priv.json"], "--password-file", wrong)
    assert (code, err) == (1, "failed to decrypt JWE: invalid password\n")
    missing = tmp_path / "missing.json"
    code, _, err = step(*base, "--key", missing)
    assert (code, err) == (1, f"error reading {missing}: no such file or directory\n")
    code, _, err = step(*base, "--key", files["key.pem"], "-", stdin=b"[1]")
    assert (code, err) == (1, "error decoding JSON from STDIN: not a JSON object\n")


def _verify(token: str, *args: str | Path) -> tuple[int, Any, str]:
    code, out, err = step("crypto", "jwt", "verify", *args, stdin=token.encode() + b"\n")
    return code, json.loads(out) if code == 0 else out, err


def test_verify_pyjwt_tokens(
    files: dict[str, Path], ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:  # fmt: skip
    claims = {"iss": "joe", "aud": ["bob", "carol"], "sub": "x", "exp": int(_exp()), "nbf": 1}
    token = jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "k1"})
    for key in (files["pub.json"], files["pub.pem"], files["priv.json"]):
        code, out, err = _verify(token, "--key", key, "--iss", "joe", "--aud", "carol",
                                 "--password-file", files["pw"])  # fmt: skip
        assert code == 0, err
        assert out["payload"] == claims and out["header"]["kid"] == "k1"
        assert out["signature"] == token.rsplit(".", 1)[1]

    # An RSA key in a JWK set, chosen by the token's kid; a PEM RSA key needs --alg.
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(rsa_key, kid="r1", alg="PS256")]}))
    token = jwt.encode(claims, rsa_key, algorithm="PS256", headers={"kid": "r1"})
    assert _verify(token, "--jwks", jwks, "--iss", "joe", "--aud", "bob")[0] == 0
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(
        rsa_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code, _, err = _verify(token, "--key", pem, "--iss", "joe", "--aud", "bob")
    assert (code, err) == (1, "flag '--alg' is required with the given key\n")
    assert _verify(token, "--key", pem, "--alg", "PS256", "--iss", "joe", "--aud", "bob")[0] == 0

    ed = ed25519.Ed25519PrivateKey.generate()
    jwk_file = tmp_path / "ed.json"
    jwk_file.write_text(json.dumps(public_jwk(ed)))
    token = jwt.encode(claims, ed, algorithm="EdDSA")
    assert _verify(token, "--key", jwk_file, "--iss", "joe", "--aud", "bob")[0] == 0


def test_sign_then_verify_round_trip(files: dict[str, Path]) -> None:
    token = _sign("--key", files["priv.json"], "--password-file", files["pw"], "--iss", "joe",
                  "--aud", "bob", "--sub", "s", "--exp", _exp())  # fmt: skip
    code, out, err = _verify(token, "--key", files["pub.json"], "--iss", "joe", "--aud", "bob")
    assert code == 0, err
    assert out["payload"]["sub"] == "s"


def test_verify_failures(files: dict[str, Path], ec_key: ec.EllipticCurvePrivateKey) -> None:
    now = int(time.time())
    good = {"iss": "joe", "aud": "bob", "exp": now + 300}
    key_args = ("--key", files["pub.json"])

    def verify(claims: dict[str, Any], *flags: str, key: Any = ec_key, alg: str = "ES256") -> str:
        token = jwt.encode(claims, key, algorithm=alg)
        code, out, err = _verify(token, *key_args, *flags)
        assert code == 1 and out == b"" and len(err.splitlines()) == 1
        return err.strip()

    assert verify(good, "--iss", "joe", "--aud", "eve") == (
        "validation failed: invalid audience claim (aud)"
    )
    assert verify(good, "--iss", "eve", "--aud", "eve") == (
        "validation failed: invalid issuer claim (iss), invalid audience claim (aud)"
    )
    expired = verify({**good, "exp": now - 3600}, "--iss", "joe", "--aud", "bob")
    assert expired.startswith("validation failed: token is expired by 1h0m")
    assert expired.endswith("s (exp)")
    assert verify({**good, "nbf": now + 3600}, "--iss", "joe", "--aud", "bob") == (
        "validation failed: token not valid yet (nbf)"
    )
    other = ec.generate_private_key(ec.SECP256R1())
    assert verify(good, "--iss", "joe", "--aud", "bob", key=other) == (
        "validation failed: invalid signature"
    )
    assert verify(good, "--iss", "joe", "--aud", "bob", key=b"k" * 32, alg="HS256") == (
        "validation failed: invalid signature"
    )
    assert verify(good, "--iss", "joe", "--aud", "bob", key=None, alg="none") == (
        "validation failed: invalid signature"
    )
    assert verify(good, "--aud", "bob") == (
        "flag '--iss' is required unless the '--subtle' flag is provided"
    )
    assert verify(good, "--iss", "joe", "--aud", "bob", "--no-exp-check") == (
        "flag '--no-exp-check' requires the '--insecure' flag"
    )
    # With --subtle nothing but the signature and times is required.
    token = jwt.encode({"exp": now - 10}, ec_key, algorithm="ES256")
    code, _, err = _verify(token, *key_args, "--subtle", "--insecure", "--no-exp-check")
    assert code == 0, err

    code, _, err = _verify("not.a-token", *key_args, "--iss", "joe", "--aud", "bob")
    assert code == 1 and err.startswith("error parsing token")


def test_go_duration() -> None:
    assert go_duration(0) == "0s"
    assert go_duration(500) == "500ms"
    assert go_duration(1500) == "1.5s"
    assert go_duration(120_000) == "2m0s"
    assert go_duration(3_723_456) == "1h2m3.456s"


def test_sign_with_an_encrypted_pem_key(
    files: dict[str, Path], ec_key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    pem = tmp_path / "enc.pem"
    encryption = BestAvailableEncryption(PASSWORD.encode())
    pem.write_bytes(ec_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption))
    token = _sign("--key", pem, "--password-file", files["pw"], "--subtle")
    header = jwt.get_unverified_header(token)
    assert header["kid"] == json.loads(files["pub.json"].read_text())["kid"]  # the thumbprint
    assert jwt.decode(token, ec_key.public_key(), algorithms=["ES256"]) != {}
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong")
    code, out, err = step("crypto", "jwt", "sign", "--key", pem, "--password-file", wrong,
                          "--subtle")  # fmt: skip
    assert code == 1 and out == b"" and "wrong password" in err and len(err.splitlines()) == 1
