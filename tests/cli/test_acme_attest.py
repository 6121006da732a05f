"""The client half of device-attest-01 (cli.ca.acme_attest): the attestation object step
builds is the one the CA's `step` format accepts, for each key type a YubiKey slot holds;
the attestation URI is shown without a PIN."""

from __future__ import annotations

import base64
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.acme.attestation import fingerprint, verify_payload
from cli.ca.acme_attest import _shown, attestation_object
from cli.common import CLIError
from provisioners.acme import ACMEProvisioner
from provisioners.claims import Claims
from provisioners.schema import ACMESchema, parse_provisioner
from tests.acme_attest import AttestationCA, payload

KEY_AUTH = "tok.thumb"


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (ec.generate_private_key(ec.SECP256R1()), -7),
        (rsa.generate_private_key(65537, 2048), -257),
        (ed25519.Ed25519PrivateKey.generate(), -8),
    ],
    ids=["p256", "rsa", "ed25519"],
)
def test_the_attestation_object_is_what_the_ca_accepts(key: Any, alg: int) -> None:
    ca = AttestationCA.make()
    chain = [ca.attest(key, 424242), ca.f9]
    obj = attestation_object(key, [c.public_bytes(Encoding.DER) for c in chain], KEY_AUTH)
    decoded = cbor2.loads(obj)
    assert decoded["fmt"] == "step"
    assert decoded["attStmt"]["alg"] == alg
    assert decoded["attStmt"]["x5c"] == [c.public_bytes(Encoding.DER) for c in chain]
    assert isinstance(cbor2.loads(decoded["attStmt"]["sig"]), bytes)  # CBOR-wrapped signature
    schema = parse_provisioner(
        {
            "type": "ACME",
            "name": "da",
            "attestationRoots": base64.b64encode(ca.root_pem()).decode(),
        }
    )
    assert isinstance(schema, ACMESchema)
    prov = ACMEProvisioner(schema, Claims())
    attested = verify_payload(payload(obj), "424242", KEY_AUTH, prov)
    assert attested["fingerprint"] == fingerprint(key.public_key())


def test_a_p384_key_is_refused_as_step_refuses_it() -> None:
    with pytest.raises(CLIError, match="unsupported elliptic curve secp384r1"):
        attestation_object(ec.generate_private_key(ec.SECP384R1()), [], KEY_AUTH)


def test_the_uri_is_shown_without_its_pin() -> None:
    assert _shown("yubikey:slot-id=9a?pin-value=123456") == "yubikey:slot-id=9a"
    assert _shown("yubikey:slot-id=9a;pin-value=1?pin-source=/p&pin-value=2") == (
        "yubikey:slot-id=9a?pin-source=/p"
    )
    assert _shown("yubikey:serial=1;slot-id=9a") == "yubikey:serial=1;slot-id=9a"
