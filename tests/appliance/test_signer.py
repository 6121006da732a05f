"""Which store the issuing key is opened from, and whether it counts as hardware."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from appliance.signer import IssuerSigner
from tests.appliance.conftest import TESTDATA


@pytest.mark.parametrize(
    ("kms", "key", "hardware"),
    [
        (None, "/ca/secrets/intermediate_ca_key", False),  # a plain path is a file key
        (None, "secrets/intermediate_ca_key", False),
        (None, "file:/ca/k", False),
        ({"uri": "pkcs11:token=b"}, "pkcs11:id=7331", True),
        (None, "yubikey:slot-id=9c", True),
    ],
)
def test_hardware_detection(
    kms: dict[str, str] | None, key: str, hardware: bool, tmp_path: Path
) -> None:
    cert = x509.load_pem_x509_certificate(
        (TESTDATA / "secrets" / "intermediate_ca.crt").read_bytes()
    )
    assert IssuerSigner(kms, key, cert, b"pw", tmp_path).hardware is hardware
