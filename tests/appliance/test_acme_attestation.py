"""device-attest-01's `step` format (appliance.acme.attestation): statements built with
test-made Yubico-like chains, checked against the provisioner's attestationRoots (or Yubico's
roots), the signature over the key authorization, the serial; and the attested leaf."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.acme.attestation import (
    AttestationError,
    attested_common_name,
    fingerprint,
    permanent_identifier_san,
    verify_payload,
    yubico_roots,
)
from appliance.acme.problems import ACMEProblem
from appliance.profiles import LeafRequest, build_leaf
from pki.sans import SubjectAltNames
from provisioners.acme import ACMEProvisioner, authz_challenges
from provisioners.base import ProvisionerConfigError
from provisioners.claims import Claims
from provisioners.schema import ACMESchema, parse_provisioner
from tests.acme_attest import AttestationCA, att_obj, payload

SERIAL = 12345678
KEY_AUTH = "token123.thumbprint456"
BAD = "urn:ietf:params:acme:error:badAttestationStatement"
_DER = Encoding.DER
_NO_SANS = SubjectAltNames()


def acme(**fields: Any) -> ACMEProvisioner:
    schema = parse_provisioner(
        {"type": "ACME", "name": "acme-da", "challenges": ["device-attest-01"], **fields}
    )
    assert isinstance(schema, ACMESchema)
    return ACMEProvisioner(schema, Claims())


def roots(*cas: AttestationCA) -> str:
    return base64.b64encode(b"".join(ca.root_pem() for ca in cas)).decode()


@pytest.fixture(scope="module")
def ca() -> AttestationCA:
    return AttestationCA.make()


@pytest.fixture(scope="module")
def prov(ca: AttestationCA) -> ACMEProvisioner:
    return acme(attestationRoots=roots(ca))


def refused(prov: ACMEProvisioner, body: dict[str, Any], ident: str = str(SERIAL)) -> Any:
    with pytest.raises(AttestationError) as err:
        verify_payload(body, ident, KEY_AUTH, prov)
    return err.value.problem


def good(ca: AttestationCA, key: Any, serial: int | None = SERIAL) -> dict[str, str]:
    return payload(att_obj(key, [ca.attest(key, serial), ca.f9], KEY_AUTH))


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(65537, 2048),
        ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["p256", "rsa", "ed25519"],
)
def test_a_good_statement_vouches_for_the_slot_key(
    ca: AttestationCA, prov: ACMEProvisioner, key: Any
) -> None:
    attested = verify_payload(good(ca, key), str(SERIAL), KEY_AUTH, prov)
    assert attested == {
        "format": "step",
        "fingerprint": fingerprint(key.public_key()),
        "identifier": str(SERIAL),
    }


def test_a_chain_to_another_root_is_refused(ca: AttestationCA) -> None:
    other = acme(attestationRoots=roots(AttestationCA.make("other")))
    problem = refused(other, good(ca, ec.generate_private_key(ec.SECP256R1())))
    assert problem == {
        "type": BAD,
        "detail": "Attestation statement cannot be verified: x5c is not valid: "
        "x509: certificate signed by unknown authority",
        "status": 400,
    }


def test_without_attestation_roots_only_yubicos_roots_are_trusted(ca: AttestationCA) -> None:
    names = [r.subject.rfc4514_string() for r in yubico_roots()]
    assert names == ["CN=Yubico PIV Root CA Serial 263751", "CN=Yubico Attestation Root 1"]
    problem = refused(acme(), good(ca, ec.generate_private_key(ec.SECP256R1())))
    assert problem["detail"].endswith("x509: certificate signed by unknown authority")


def test_the_chain_must_reach_the_root_through_the_f9_certificate(
    ca: AttestationCA, prov: ACMEProvisioner
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    problem = refused(prov, payload(att_obj(key, [ca.attest(key, SERIAL)], KEY_AUTH)))
    assert problem["detail"].endswith("certificate signed by unknown authority")
    expired = payload(att_obj(key, [ca.attest(key, SERIAL, expired=True), ca.f9], KEY_AUTH))
    assert refused(prov, expired)["detail"].endswith(
        "x5c is not valid: x509: certificate has expired or is not yet valid"
    )


def test_another_serial_is_refused_with_a_subproblem(
    ca: AttestationCA, prov: ACMEProvisioner
) -> None:
    problem = refused(prov, good(ca, ec.generate_private_key(ec.SECP256R1())), "87654321")
    assert problem["type"] == BAD
    assert problem["detail"] == (
        "Attestation statement cannot be verified: permanent identifier does not match"
    )
    assert problem["subproblems"] == [
        {
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": 'challenge identifier "87654321" doesn\'t match the attested hardware '
            'identifier "12345678"',
            "identifier": {"type": "permanent-identifier", "value": "87654321"},
        }
    ]
    no_serial = good(ca, ec.generate_private_key(ec.SECP256R1()), serial=None)
    assert refused(prov, no_serial)["subproblems"][0]["detail"].endswith('identifier ""')


def test_a_signature_not_over_this_key_authorization_is_refused(
    ca: AttestationCA, prov: ACMEProvisioner
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    chain = [ca.attest(key, SERIAL), ca.f9]
    other = payload(att_obj(key, chain, "token123.someone-else"))
    detail = "Attestation statement cannot be verified: failed to validate signature"
    assert refused(prov, other)["detail"] == detail
    # signed by another key than the attested one
    stranger = ec.generate_private_key(ec.SECP256R1()).sign(
        KEY_AUTH.encode(), ec.ECDSA(hashes.SHA256())
    )
    assert (
        refused(prov, payload(att_obj(key, chain, KEY_AUTH, signature=stranger)))["detail"]
        == detail
    )
    p384 = ec.generate_private_key(ec.SECP384R1())
    assert refused(prov, good(ca, p384))["detail"].endswith("unsupported elliptic curve secp384r1")


def test_formats_other_than_step_are_refused(ca: AttestationCA, prov: ACMEProvisioner) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    chain = [ca.attest(key, SERIAL), ca.f9]
    packed = payload(att_obj(key, chain, KEY_AUTH, fmt="packed"))
    assert refused(prov, packed)["detail"].endswith(
        'unsupported attestation object format "packed"'
    )
    tpm = payload(att_obj(key, chain, KEY_AUTH, fmt="tpm"))
    assert refused(prov, tpm)["detail"].endswith(
        'unsupported attestation object format "tpm": this CA checks "step"'
    )
    only_apple = acme(attestationRoots=roots(ca), attestationFormats=["apple"])
    assert refused(only_apple, good(ca, key))["detail"].endswith(
        'attestation format "step" is not enabled'
    )
    assert acme(attestationFormats=["STEP"]).attestation_format_enabled("step")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"attObj": "not base64!"}, 'failed base64 decoding attObj "not base64!"'),
        ({}, "attObj must not be empty"),
        ({"attObj": 7}, 'failed base64 decoding attObj "7"'),
        ({"attObj": ""}, "attObj must not be empty"),
        ({"attObj": "e30"}, "attObj must not be empty"),  # "{}"
        ({"attObj": "_w"}, "attObj is not well formed CBOR"),
        (payload(cbor2.dumps([1, 2])), "attObj is not an attestation object"),
        (payload(cbor2.dumps({"fmt": "step", "attStmt": {}})), "x5c not present"),
    ],
)
def test_malformed_payloads(prov: ACMEProvisioner, body: dict[str, Any], detail: str) -> None:
    problem = refused(prov, body)
    assert problem["type"] == BAD
    assert problem["detail"].startswith(f"Attestation statement cannot be verified: {detail}")


def test_malformed_statements(ca: AttestationCA, prov: ACMEProvisioner) -> None:
    def statement(**fields: Any) -> dict[str, str]:
        return payload(cbor2.dumps({"fmt": "step", "attStmt": fields}))

    der = ca.f9.public_bytes(encoding=_DER)
    assert refused(prov, statement(x5c=[]))["type"].endswith("rejectedIdentifier")
    assert refused(prov, statement(x5c=["text"]))["detail"].endswith("x5c is malformed")
    assert refused(prov, statement(x5c=[b"junk"]))["detail"].endswith("x5c is malformed")
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = ca.attest(key, SERIAL).public_bytes(encoding=_DER)
    assert refused(prov, statement(x5c=[leaf, der]))["detail"].endswith("sig not present")
    unwrapped = statement(x5c=[leaf, der], sig=b"\xff\x00")
    assert refused(prov, unwrapped)["detail"].endswith("sig is malformed")
    error = refused(prov, {"error": "no attestation key"})
    assert error["type"].endswith("rejectedIdentifier")
    assert error["detail"].endswith("payload contained error: no attestation key")


def test_the_provisioner_entry() -> None:
    assert acme().challenges == ["device-attest-01"]
    assert acme().attestation_roots is None
    assert acme().attestation_formats == []
    both = [AttestationCA.make("a"), AttestationCA.make("b")]
    assert acme(attestationRoots=roots(*both)).attestation_roots == [c.root for c in both]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"attestationRoots": "%%%"}, "error parsing attestationRoots: not a base64 PEM bundle"),
        ({"attestationRoots": "aGVsbG8="}, "error parsing attestationRoots: no certificates"),
        ({"attestationFormats": ["webauthn"]}, "acme attestation format 'webauthn' is not"),
    ]
    for fields, message in bad:
        with pytest.raises(ProvisionerConfigError, match=message):
            acme(**fields)
    offered = ["http-01", "device-attest-01"]
    assert authz_challenges(offered, "permanent-identifier", "123") == ["device-attest-01"]
    assert authz_challenges(offered, "dns", "a.test") == ["http-01"]
    prov = acme(challenges=["http-01"])
    assert prov.identifier_problem("permanent-identifier", "1") == (
        "'1' needs device-attest-01, which this provisioner does not offer"
    )
    assert acme().identifier_problem("permanent-identifier", "") == (
        "permanent identifier cannot be empty"
    )
    assert acme().identifier_problem("permanent-identifier", "12345678") is None


def _csr(key: Any, cn: str | None) -> x509.CertificateSigningRequest:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    return builder.sign(key, hashes.SHA256())


def test_finalize_takes_only_the_attested_key_and_the_serial_as_common_name() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attested = fingerprint(key.public_key())
    assert attested_common_name(_csr(key, "12345678"), "12345678", attested, "o1") == "12345678"
    assert attested_common_name(_csr(key, None), "12345678", attested, "o1") == ""
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ACMEProblem) as err:
        attested_common_name(_csr(other, "12345678"), "12345678", attested, "o1")
    assert (err.value.kind, err.value.status) == ("unauthorized", 401)
    assert err.value.detail == "order o1 csr does not match the attested key"
    with pytest.raises(ACMEProblem) as err:
        attested_common_name(_csr(key, "host.test"), "12345678", attested, "o1")
    assert err.value.kind == "badCSR"
    assert err.value.detail == (
        "CSR Subject Common Name does not match identifiers exactly: CSR Subject Common Name = "
        "host.test, Order Permanent Identifier = 12345678"
    )


def test_the_attested_leaf(ca: AttestationCA) -> None:
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for subject in (
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "12345678")]),
        x509.Name([]),
    ):
        key = rsa.generate_private_key(65537, 2048)
        request = LeafRequest(
            subject, _NO_SANS, key.public_key(), now, now + dt.timedelta(hours=1),
            other_names=(permanent_identifier_san("12345678"),), client_auth_only=True,
        )  # fmt: skip
        leaf = build_leaf(request, ca.root, issuer_key)
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.critical is (len(subject) == 0)
        # go.step.sm/crypto's encoding: otherName 1.3.6.1.5.5.7.8.3, [0] { SEQ { UTF8 } }
        assert san.value.public_bytes().hex() == (
            "301aa01806082b06010505070803a00c300a0c08" + b"12345678".hex()
        )
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.digital_signature and ku.key_encipherment
        leaf.verify_directly_issued_by(_self_signed(issuer_key))


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """An issuer certificate for `key` named like the AttestationCA root (only the key and
    name matter to verify_directly_issued_by)."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Yubico PIV Root CA (test)")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
