"""Provisioner collection: config validation, token lookup and step-ca's paging."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from api.errors import http_error
from pki.errors import CAError, ErrorKind
from pki.jose import public_jwk
from provisioners.audience import Method, audiences, matches
from provisioners.base import ProvisionerConfigError
from provisioners.claims import Claims, ClaimsError
from provisioners.registry import ProvisionerRegistry, parse_token
from provisioners.schema import ClaimsSchema, ProvisionerSchema, parse_provisioner


def _jwk_config(name: str) -> dict[str, Any]:
    return {"type": "JWK", "name": name, "key": public_jwk(ec.generate_private_key(ec.SECP256R1()))}


def _registry(*configs: dict[str, Any]) -> ProvisionerRegistry:
    return ProvisionerRegistry([parse_provisioner(c) for c in configs], Claims())


def _jwks(n: int) -> ProvisionerRegistry:
    return _registry(*(_jwk_config(f"p{i}") for i in range(n)))


def test_paging_follows_config_order_and_cursor() -> None:
    reg = _jwks(5)
    first, cursor = reg.page("", "2")
    assert [p["name"] for p in first] == ["p0", "p1"]
    assert cursor
    second, cursor2 = reg.page(cursor, "2")
    assert [p["name"] for p in second] == ["p2", "p3"]
    last, cursor3 = reg.page(cursor2, "2")
    assert [p["name"] for p in last] == ["p4"] and cursor3 == ""


@pytest.mark.parametrize(("limit", "count"), [(None, 20), ("0", 20), ("-3", 20), ("500", 100)])
def test_limit_defaults_and_cap(limit: str | None, count: int) -> None:
    items, _ = _jwks(120).page("", limit)
    assert len(items) == count


def test_non_integer_limit_is_400() -> None:
    with pytest.raises(CAError) as err:
        _jwks(1).page("", "abc")
    assert err.value.kind is ErrorKind.BAD_REQUEST
    assert http_error(err.value) == (
        400, "The request could not be completed: limit 'abc' is not an integer."
    )


def test_json_keeps_step_field_order() -> None:
    cfg = _jwk_config("a")
    cfg["encryptedKey"] = "x.y.z"
    cfg["type"] = "jwk"
    cfg["future"] = {"b": 1, "a": [None, ""]}
    cfg["claims"] = {"maxTLSCertDuration": "", "disableRenewal": None}
    item = _registry(cfg).page("", None)[0][0]
    assert list(item) == ["type", "name", "key", "encryptedKey", "claims", "future"]
    assert item["type"] == "JWK"
    # The entry as ca.json has it: key order, unknown fields, "" and null kept.
    assert item["key"] == cfg["key"] and list(item["key"]) == list(cfg["key"])
    assert item["claims"] == cfg["claims"] and item["future"] == cfg["future"]


def test_duplicate_names_and_unknown_types() -> None:
    with pytest.raises(ProvisionerConfigError, match="'a' is not unique"):
        _registry(_jwk_config("a"), _jwk_config("a"))
    reg = _registry({"type": "Nebula", "name": "n"}, _jwk_config("a"))
    assert [p.name for p in reg] == ["a"]
    with pytest.raises(ProvisionerConfigError, match=r"^key: is required$"):
        _registry({"type": "JWK", "name": "x"})


def test_an_entry_must_have_its_types_schema() -> None:
    """A hand-built entry of a type this build implements, not checked against its type's
    schema, is refused rather than half-read."""
    with pytest.raises(ProvisionerConfigError, match="not checked against the JWK schema"):
        ProvisionerRegistry([ProvisionerSchema(type="JWK", name="x")], Claims())


def test_claims_out_of_bounds_stop_the_ca() -> None:
    cfg = _jwk_config("a")
    cfg["claims"] = {"minTLSCertDuration": "48h"}
    with pytest.raises(ProvisionerConfigError, match="provisioner 'a': claims: minTLS"):
        _registry(cfg)


def test_encrypted_key_lookup() -> None:
    cfg = _jwk_config("a")
    cfg["encryptedKey"] = "jwe"
    reg = _registry(cfg, _jwk_config("b"))
    assert reg.encrypted_key(cfg["key"]["kid"]) == "jwe"
    assert reg.encrypted_key("unknown") is None


def test_unparseable_token_is_401() -> None:
    with pytest.raises(CAError) as err:
        parse_token("garbage")
    assert err.value.kind is ErrorKind.UNAUTHORIZED
    assert err.value.reason == "authority.Authorize; error parsing token: Not enough segments"


def _unsigned(header: str, claims: str) -> str:
    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(claims)}.{b64('sig')}"


@pytest.mark.parametrize(
    ("header", "claims", "refused"),
    [
        ('{"alg":"ES256"}', '{"sub":"a\\\\ud800"}', False),  # an escaped backslash, no surrogate
        ('{"alg":"ES256"}', '{"sub":"\\ud83d\\ude00"}', False),  # a valid pair
        ('{"alg":"ES256"}', '{"sub":"\\ud800"}', True),
        ('{"alg":"ES256"}', '{"sans":["a","\\udfff"]}', True),
        ('{"alg":"ES256","kid":"\\ud800"}', "{}", True),
        ('{"alg":"ES256"}', '{"\\uDC00":1}', True),
    ],
)
def test_lone_surrogates_are_refused(header: str, claims: str, refused: bool) -> None:
    raw = _unsigned(header, claims)
    if not refused:
        assert parse_token(raw).claims["sub"] in ("a\\ud800", "\U0001f600")
        return
    with pytest.raises(CAError) as err:
        parse_token(raw)
    assert err.value.reason == "authority.Authorize; error parsing token: invalid UTF-8"


def test_the_token_keeps_what_its_signature_covers() -> None:
    raw = _unsigned('{"alg":"ES256","kid":"k"}', '{"sub":"a","exp":1}')
    token = parse_token(raw)
    assert token.raw == raw and token.header == {"alg": "ES256", "kid": "k"}
    assert token.signing_input == raw.rpartition(".")[0].encode() and token.signature == b"sig"


def test_audiences_and_port_insensitive_match() -> None:
    sign = audiences(["ca.test", "::1"], Method.SIGN)
    assert "https://ca.test/1.0/sign" in sign and "https://[::1]/sign" in sign
    assert matches("https://ca.test:9000/1.0/sign", sign)
    assert matches(["x", "https://[::1]:443/1.0/sign"], sign)
    assert not matches("https://ca.test/1.0/renew", sign)
    assert not matches("http://ca.test/1.0/sign", sign)
    assert not matches(42, sign)
    assert "step-certificate-authority" not in audiences(["ca.test"], Method.RENEW)
    # Short audiences go through a cache, long ones do not: both strip the port alike.
    long_port = "https://ca.test:" + "0" * 300 + "/1.0/sign"
    assert matches(long_port, sign) and matches([long_port, long_port], sign)
    assert not matches(long_port.replace("sign", "renew"), sign)


def _claims(**fields: Any) -> ClaimsSchema:
    return ClaimsSchema.model_validate(fields)


def test_claims_merge_and_validation() -> None:
    c = Claims().merged(_claims(maxTLSCertDuration="48h", defaultTLSCertDuration="1h"))
    assert c.max_tls.total_seconds() == 48 * 3600 and c.default_tls.total_seconds() == 3600
    # step-ca's quirk: a default alone below the global minimum drags the minimum along.
    assert Claims().merged(_claims(defaultTLSCertDuration="1m")).min_tls.total_seconds() == 60
    assert Claims().merged(_claims(defaultTLSCertDuration="48h")).max_tls.total_seconds() == (
        48 * 3600
    )
    # ... but not when the bound is given too, even as null: then the bounds must hold.
    with pytest.raises(ClaimsError):
        Claims().merged(_claims(defaultTLSCertDuration="1m", minTLSCertDuration=None))
    with pytest.raises(ClaimsError):
        Claims().merged(_claims(minTLSCertDuration="2h", maxTLSCertDuration="1h"))
    with pytest.raises(ClaimsError, match="minTLSCertDuration must be greater than 0"):
        Claims().merged(_claims(minTLSCertDuration="0s", defaultTLSCertDuration="0s"))
    flags = Claims().merged(_claims(disableRenewal=True, disableSmallstepExtensions=None))
    assert flags.disable_renewal and not flags.disable_smallstep_extensions
    assert Claims().merged(None) == Claims() == Claims().merged(_claims())
