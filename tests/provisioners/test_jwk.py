"""The JWK provisioner on its own: what it refuses at load, and each token check in order."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from api.errors import http_error
from pki.errors import CAError, ErrorKind
from pki.jose import public_jwk
from provisioners.audience import Method, audiences
from provisioners.base import ProvisionerConfigError, token_hash
from provisioners.claims import Claims
from provisioners.extension import ProvisionerType
from provisioners.jwk import JWKProvisioner
from provisioners.registry import parse_token
from provisioners.schema import JWKSchema, parse_provisioner

SIGN_AUD = audiences(["ca.test"], Method.SIGN)
_KEY = ec.generate_private_key(ec.SECP256R1())
_KID = "kid-1"
_Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _provisioner(key: _Key = _KEY, claims: Claims | None = None, **extra: Any) -> JWKProvisioner:
    config = {"type": "JWK", "name": "admin", "key": public_jwk(key, kid=_KID), **extra}
    return JWKProvisioner(JWKSchema.model_validate(config), claims or Claims())


def _token(
    key: _Key = _KEY, alg: str = "ES256", headers: dict[str, Any] | None = None, **overrides: Any
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "admin",
        "aud": "https://ca.test/1.0/sign",
        "sub": "foo.test",
        "sans": ["foo.test", "10.0.0.1"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "the-jti",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": _KID, **(headers or {})})


def _refused(prov: JWKProvisioner, raw: str, fragment: str) -> None:
    with pytest.raises(CAError) as err:
        prov.authorize(parse_token(raw), Method.SIGN, SIGN_AUD)
    assert err.value.kind is ErrorKind.UNAUTHORIZED
    assert fragment in err.value.reason, err.value.reason
    # Every refusal shows the client step-ca's default 401 text, never the reason.
    assert fragment not in http_error(err.value)[1]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "", "key": {"kid": "k"}}, "name: cannot be empty"),
        ({"name": "p"}, "key: is required"),
        ({"name": "p", "key": {"kty": "EC"}}, "key.kid: is required"),
        (
            {"name": "p", "key": {"kid": "k", "kty": "EC", "crv": "P-256"}},
            "provisioner 'p': invalid key: ",
        ),
    ],
)
def test_unusable_configs_stop_the_ca(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ProvisionerConfigError) as err:
        entry = parse_provisioner({"type": "JWK", **config})
        assert isinstance(entry, JWKSchema)
        JWKProvisioner(entry, Claims())
    assert str(err.value).startswith(message)


def test_identity_and_encrypted_key() -> None:
    prov = _provisioner(encryptedKey="eyJhbGciOi...")
    assert prov.id == "admin:kid-1" and prov.lookup_keys == ["admin:kid-1"]
    assert prov.encrypted_key == "eyJhbGciOi..."
    assert _provisioner().encrypted_key is None


def test_a_good_token_yields_its_names_and_id() -> None:
    raw = _token()
    options = _provisioner().authorize(parse_token(raw), Method.SIGN, SIGN_AUD)
    assert (options.provisioner_name, options.subject) == ("admin", "foo.test")
    assert options.sans == ("foo.test", "10.0.0.1")
    assert options.token_id == "the-jti"
    exp = jwt.decode(raw, options={"verify_signature": False})["exp"]
    assert options.token_expires == datetime.fromtimestamp(exp, UTC)
    assert options.extension is not None
    assert options.extension.type == int(ProvisionerType.JWK)
    assert (options.extension.name, options.extension.credential_id) == ("admin", _KID)
    assert options.csr_fingerprint is None and options.check_csr_names
    assert not options.names_from_csr


def test_sans_default_to_the_subject() -> None:
    no_sans: tuple[list[str] | None, ...] = (None, [])
    for sans in no_sans:
        options = _provisioner().authorize(parse_token(_token(sans=sans)), Method.SIGN, SIGN_AUD)
        assert options.sans == ("foo.test",)


def test_without_jti_the_token_hash_is_its_single_use_id() -> None:
    for jti in (None, ""):
        raw = _token(jti=jti)
        options = _provisioner().authorize(parse_token(raw), Method.SIGN, SIGN_AUD)
        assert options.token_id == token_hash(raw)


def test_cnf_binds_the_token_to_a_csr() -> None:
    raw = _token(cnf={"x5rt#S256": "abc"})
    options = _provisioner().authorize(parse_token(raw), Method.SIGN, SIGN_AUD)
    assert options.csr_fingerprint == "abc"
    empty = _provisioner().authorize(parse_token(_token(cnf={})), Method.SIGN, SIGN_AUD)
    assert empty.csr_fingerprint is None


def test_disabled_smallstep_extensions_leave_the_extension_out() -> None:
    prov = _provisioner(claims=Claims(disable_smallstep_extensions=True))
    assert prov.authorize(parse_token(_token()), Method.SIGN, SIGN_AUD).extension is None


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    ],
)
def test_the_algorithm_follows_the_key(key: _Key, alg: str) -> None:
    prov = _provisioner(key)
    assert prov.authorize(parse_token(_token(key, alg)), Method.SIGN, SIGN_AUD).subject
    _refused(prov, _token(_KEY, "ES256"), "unexpected algorithm ES256")


def test_an_algorithm_named_in_the_key_is_required() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk_ = public_jwk(key, kid=_KID, alg="PS256")
    prov = JWKProvisioner(
        JWKSchema.model_validate({"type": "JWK", "name": "admin", "key": jwk_}), Claims()
    )
    assert prov.authorize(parse_token(_token(key, "PS256")), Method.SIGN, SIGN_AUD)
    _refused(prov, _token(key, "RS256"), "unexpected algorithm RS256")


@pytest.mark.parametrize(
    ("alg", "reason"),
    [
        ("ES384", "The key's curve 'secp256r1' does not match the expected curve 'secp384r1'"),
        ("RS256", "Expecting a PEM-formatted key."),
        ("XX1", "Algorithm not supported"),
    ],
)
def test_a_key_that_cannot_verify_its_algorithm_refuses_every_token(alg: str, reason: str) -> None:
    # The CA still starts (as it did when PyJWT prepared the key per token); tokens get a 401.
    jwk_ = public_jwk(_KEY, kid=_KID, alg=alg)
    prov = JWKProvisioner(
        JWKSchema.model_validate({"type": "JWK", "name": "admin", "key": jwk_}), Claims()
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": alg, "kid": _KID}).encode())
    raw = header.rstrip(b"=").decode() + "." + _token().split(".", 1)[1]
    _refused(prov, raw, f"jwk.authorizeToken; error validating token: {reason}")


def test_a_token_signed_by_another_key_is_refused() -> None:
    _refused(_provisioner(), _token(ec.generate_private_key(ec.SECP256R1())), "error validating")


def test_time_claims_have_one_minute_of_leeway() -> None:
    now = int(time.time())
    prov = _provisioner()
    assert prov.authorize(parse_token(_token(exp=now - 30)), Method.SIGN, SIGN_AUD)
    assert prov.authorize(parse_token(_token(nbf=now + 30)), Method.SIGN, SIGN_AUD)
    _refused(prov, _token(exp=now - 120), "expired")
    _refused(prov, _token(nbf=now + 120), "not yet valid")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"exp": None}, 'missing the "exp" claim'),
        ({"iss": "someone-else"}, "invalid issuer claim"),
        ({"iss": None}, "invalid issuer claim"),
        ({"aud": "https://other.test/1.0/sign"}, "audience claim"),
        ({"aud": "https://ca.test/1.0/revoke"}, "audience claim"),
        ({"aud": 7}, "audience claim"),
        ({"sub": ""}, "subject cannot be empty"),
        ({"sub": 5}, "Subject must be a string"),
        ({"sans": "foo.test"}, "invalid sans claim"),
        ({"sans": ["foo.test", ""]}, "invalid sans claim"),
        ({"sans": ["foo.test", 1]}, "invalid sans claim"),
        ({"cnf": "abc"}, "invalid cnf claim"),
        ({"cnf": {"x5rt#S256": 1}}, "invalid cnf claim"),
    ],
)
def test_bad_claims_are_refused(overrides: dict[str, Any], fragment: str) -> None:
    _refused(_provisioner(), _token(**overrides), fragment)


def test_audience_is_per_method() -> None:
    raw = _token(aud="https://ca.test/1.0/revoke", sub="1234")
    revoke = audiences(["ca.test"], Method.REVOKE)
    options = _provisioner().authorize(parse_token(raw), Method.REVOKE, revoke)
    assert options.subject == "1234"
    assert _provisioner().authorize(
        parse_token(_token(aud=["x", "https://ca.test:8443/sign"])), Method.SIGN, SIGN_AUD
    )
