"""POST /sign over raw HTTPS: the issued certificate, and every refusal with step-ca's body."""

from __future__ import annotations

import ipaddress
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioners.extension import PROVISIONER_OID, ProvisionerExtension, ProvisionerType
from tests.e2e.harness import (
    BAD_REQUEST,
    CA,
    DEFAULT_401,
    FORBIDDEN,
    OPENSSL,
    csr_pem,
    ec_key,
    error_body,
    load_chain,
    make_csr,
    tamper_signature,
)
from tests.e2e.tokens import TokenMaker

SIGN_KEYS = {"crt", "ca", "certChain", "tlsOptions"}
# Slack for clocks and a slow machine: these are correctness, not speed, checks.
SLACK = timedelta(minutes=2)


def _sign(http: httpx.Client, body: Any, path: str = "/1.0/sign") -> httpx.Response:
    return http.post(path, json=body)


def _issue(
    http: httpx.Client, tokens: TokenMaker, sub: str, sans: list[str], **extra: str
) -> tuple[httpx.Response, str]:
    ott = tokens.token(sub, sans)
    resp = _sign(http, {"csr": csr_pem(make_csr(sub, sans)), "ott": ott, **extra})
    return resp, ott


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


ISSUED_SUB = "svc.example.internal"
ISSUED_SANS = ["svc.example.internal", "alt.example.internal", "127.0.0.1", "10.0.0.5"]


@pytest.fixture(scope="module")
def issued(http: httpx.Client, tokens: TokenMaker) -> dict[str, Any]:
    """One certificate issued through raw HTTPS, checked field by field below."""
    before = datetime.now(UTC)
    resp, _ = _issue(http, tokens, ISSUED_SUB, ISSUED_SANS)
    after = datetime.now(UTC)
    assert resp.status_code == 201, resp.text
    return {"body": resp.json(), "before": before, "after": after}


@pytest.fixture(scope="module")
def leaf(issued: dict[str, Any]) -> x509.Certificate:
    (cert,) = load_chain(issued["body"]["crt"])
    return cert


class TestIssued:
    """The certificate of the `issued` fixture."""

    SUB = ISSUED_SUB

    def test_body_shape(self, issued: dict[str, Any], main_ca: CA) -> None:
        body = issued["body"]
        assert set(body) == SIGN_KEYS
        chain = body["certChain"]
        assert isinstance(chain, list) and len(chain) == 2
        assert body["crt"] == chain[0]
        assert body["ca"] == chain[1]
        assert load_chain(chain[1]) == [main_ca.intermediate]
        assert all(pem.startswith("-----BEGIN CERTIFICATE-----") for pem in chain)
        assert body["tlsOptions"] == {
            "cipherSuites": [
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ],
            "minVersion": 1.2,
            "maxVersion": 1.3,
            "renegotiation": False,
        }

    def test_subject_and_sans(self, leaf: x509.Certificate, main_ca: CA) -> None:
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert [a.value for a in cn] == [self.SUB]
        assert leaf.issuer == main_ca.intermediate.subject
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(
            ["svc.example.internal", "alt.example.internal"]
        )
        assert sorted(map(str, san.get_values_for_type(x509.IPAddress))) == ["10.0.0.5",
                                                                             "127.0.0.1"]

    def test_validity_is_24h_backdated_one_minute(
        self, leaf: x509.Certificate, issued: dict[str, Any]
    ) -> None:
        nb, na = leaf.not_valid_before_utc, leaf.not_valid_after_utc
        assert na - nb == timedelta(hours=24, minutes=1)
        assert issued["before"] - timedelta(minutes=1) - SLACK <= nb
        assert nb <= issued["after"] - timedelta(minutes=1) + SLACK
        assert abs(na - (issued["before"] + timedelta(hours=24))) <= SLACK

    def test_key_usage(self, leaf: x509.Certificate) -> None:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical
        assert ku.value.digital_signature
        assert not ku.value.key_cert_sign and not ku.value.crl_sign
        assert not ku.value.key_encipherment  # an EC key
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        with pytest.raises(x509.ExtensionNotFound):
            leaf.extensions.get_extension_for_class(x509.BasicConstraints)

    def test_key_identifiers(self, leaf: x509.Certificate, main_ca: CA) -> None:
        ski = _ski(leaf)
        expected = x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest
        assert ski == expected
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == _ski(main_ca.intermediate)

    def test_serial_is_large_and_random(self, leaf: x509.Certificate) -> None:
        assert leaf.serial_number > 2**64
        assert leaf.serial_number < 2**128

    def test_provisioner_extension(self, leaf: x509.Certificate, tokens: TokenMaker) -> None:
        ext = leaf.extensions.get_extension_for_oid(PROVISIONER_OID)
        assert not ext.critical
        parsed = ProvisionerExtension.from_certificate(leaf, strict=True)
        assert parsed is not None
        assert parsed.type == ProvisionerType.JWK
        assert parsed.name == tokens.provisioner
        assert parsed.credential_id == tokens.kid

    def test_openssl_verify_strict(
        self, issued: dict[str, Any], main_ca: CA, tmp_path: Path
    ) -> None:
        leaf = tmp_path / "leaf.crt"
        chain = tmp_path / "chain.crt"
        leaf.write_text(issued["body"]["crt"])
        chain.write_text(issued["body"]["ca"])
        proc = subprocess.run(
            [OPENSSL, "verify", "-x509_strict", "-CAfile", str(main_ca.root_path),
             "-untrusted", str(chain), str(leaf)],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"{leaf}: OK"


def test_sign_at_both_prefixes(http: httpx.Client, tokens: TokenMaker) -> None:
    for path in ("/sign", "/1.0/sign"):
        ott = tokens.token("prefix.example")
        resp = _sign(http, {"csr": csr_pem(make_csr("prefix.example", ["prefix.example"])),
                            "ott": ott}, path)
        assert resp.status_code == 201, (path, resp.text)
        assert set(resp.json()) == SIGN_KEYS


def test_not_after_2h(http: httpx.Client, tokens: TokenMaker) -> None:
    before = datetime.now(UTC)
    resp, _ = _issue(http, tokens, "short.example", ["short.example"], notAfter="2h")
    assert resp.status_code == 201, resp.text
    (leaf,) = load_chain(resp.json()["crt"])
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=2, minutes=1)
    assert abs(leaf.not_valid_after_utc - (before + timedelta(hours=2))) <= SLACK


def test_rsa_2048_and_ed25519_csrs_are_signed(http: httpx.Client, tokens: TokenMaker) -> None:
    for key in (rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate()):
        ott = tokens.token("keys.example")
        resp = _sign(http, {"csr": csr_pem(make_csr("keys.example", ["keys.example"], key)),
                            "ott": ott})
        assert resp.status_code == 201, resp.text
        (leaf,) = load_chain(resp.json()["crt"])
        spki = PublicFormat.SubjectPublicKeyInfo
        assert leaf.public_key().public_bytes(Encoding.DER, spki) == key.public_key().public_bytes(
            Encoding.DER, spki
        )
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_encipherment == isinstance(key, rsa.RSAPrivateKey)


# --- 400 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"a string"', b"42", b"null", b""],
    ids=["garbage", "array", "string", "number", "null", "empty"],
)
def test_body_not_a_json_object(http: httpx.Client, raw: bytes) -> None:
    resp = http.post("/1.0/sign", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json() == error_body(400, BAD_REQUEST + "error decoding json.")


def test_missing_csr(http: httpx.Client, tokens: TokenMaker) -> None:
    resp = _sign(http, {"ott": tokens.token("x.example")})
    assert resp.status_code == 400
    assert resp.json() == error_body(400, BAD_REQUEST + "missing csr.")


def test_invalid_csr_signature(http: httpx.Client, tokens: TokenMaker) -> None:
    bad = tamper_signature(make_csr("x.example", ["x.example"]))
    assert x509.load_pem_x509_csr(bad.encode()).is_signature_valid is False
    resp = _sign(http, {"csr": bad, "ott": tokens.token("x.example")})
    assert resp.status_code == 400
    assert resp.json() == error_body(400, BAD_REQUEST + "invalid csr.")


def test_missing_ott(http: httpx.Client) -> None:
    resp = _sign(http, {"csr": csr_pem(make_csr("x.example", ["x.example"]))})
    assert resp.status_code == 400
    assert resp.json() == error_body(400, BAD_REQUEST + "missing ott.")


# --- 401 ------------------------------------------------------------------------------------


def _bad_tokens(tokens: TokenMaker) -> dict[str, str]:
    now = int(time.time())
    other = ec.generate_private_key(ec.SECP256R1())
    return {
        "other-audience": tokens.token("x.example", aud="https://ca.example.com/1.0/sign"),
        "revoke-audience": tokens.token("x.example", aud=f"{tokens.ca_url}/1.0/revoke"),
        "expired": tokens.token("x.example", iat=now, nbf=now - 420, exp=now - 120),
        "not-yet-valid": tokens.token("x.example", iat=now, nbf=now + 300, exp=now + 600),
        "other-key": tokens.token("x.example", key=other),
        "other-issuer": tokens.token("x.example", iss="someone-else"),
        "unknown-kid": tokens.token("x.example", kid="not-the-kid"),
        "garbage": "garbage",
        "not-a-jwt": "not.a.jwt",
    }


@pytest.mark.parametrize(
    "case",
    ["other-audience", "revoke-audience", "expired", "not-yet-valid", "other-key",
     "other-issuer", "unknown-kid", "garbage", "not-a-jwt"],
)
def test_unauthorized_tokens(http: httpx.Client, tokens: TokenMaker, case: str) -> None:
    ott = _bad_tokens(tokens)[case]
    resp = _sign(http, {"csr": csr_pem(make_csr("x.example", ["x.example"])), "ott": ott})
    assert resp.status_code == 401, resp.text
    assert resp.json() == error_body(401, DEFAULT_401)


def test_replayed_token(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("replay.example")
    body = {"csr": csr_pem(make_csr("replay.example", ["replay.example"])), "ott": ott}
    first = _sign(http, body)
    assert first.status_code == 201, first.text
    second = _sign(http, body)
    assert second.status_code == 401
    assert second.json() == error_body(401, DEFAULT_401)
    # Not even with a fresh CSR.
    third = _sign(http, {**body, "csr": csr_pem(make_csr("replay.example", ["replay.example"]))})
    assert third.status_code == 401
    assert third.json() == error_body(401, DEFAULT_401)


# --- 403 ------------------------------------------------------------------------------------


def test_sans_differ_from_token(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("a.example", ["a.example"])
    csr = make_csr("a.example", ["b.example"])
    resp = _sign(http, {"csr": csr_pem(csr), "ott": ott})
    assert resp.status_code == 403
    assert resp.json() == error_body(
        403,
        FORBIDDEN + "certificate request does not contain the valid DNS names - "
        "got [b.example], want [a.example].",
    )


def test_ip_sans_differ_from_token(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("ip.example", ["ip.example", "10.1.1.1"])
    csr = make_csr("ip.example", ["ip.example", "10.2.2.2"])
    resp = _sign(http, {"csr": csr_pem(csr), "ott": ott})
    assert resp.status_code == 403
    assert resp.json() == error_body(
        403,
        FORBIDDEN + "certificate request does not contain the valid IP addresses - "
        "got [10.2.2.2], want [10.1.1.1].",
    )


def test_rsa_1024_refused(http: httpx.Client, tokens: TokenMaker) -> None:
    key = rsa.generate_private_key(65537, 1024)
    ott = tokens.token("rsa.example")
    resp = _sign(http, {"csr": csr_pem(make_csr("rsa.example", ["rsa.example"], key)),
                        "ott": ott})
    assert resp.status_code == 403
    assert resp.json() == error_body(
        403, FORBIDDEN + "certificate request RSA key must be at least 2048 bits (256 bytes)."
    )


def test_duration_over_maximum(http: httpx.Client, tokens: TokenMaker) -> None:
    resp, _ = _issue(http, tokens, "long.example", ["long.example"], notAfter="2000h")
    assert resp.status_code == 403
    assert resp.json() == error_body(
        403,
        FORBIDDEN + "requested duration of 2000h1m0s is more than the authorized maximum "
        "certificate duration of 24h1m0s.",
    )


def test_csr_without_sans_gets_token_sans(http: httpx.Client, tokens: TokenMaker) -> None:
    """CSR names are only checked; the certificate takes the token's sub and sans."""
    ott = tokens.token("nosans.example", ["nosans.example", "192.0.2.7"])
    resp = _sign(http, {"csr": csr_pem(make_csr("nosans.example", [])), "ott": ott})
    assert resp.status_code == 201, resp.text
    (leaf,) = load_chain(resp.json()["crt"])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["nosans.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.7")]


def test_csr_key_is_the_certificate_key(http: httpx.Client, tokens: TokenMaker) -> None:
    key = ec_key()
    ott = tokens.token("key.example")
    resp = _sign(http, {"csr": csr_pem(make_csr("key.example", ["key.example"], key)),
                        "ott": ott})
    assert resp.status_code == 201, resp.text
    (leaf,) = load_chain(resp.json()["crt"])
    assert leaf.public_key() == key.public_key()
