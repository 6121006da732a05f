"""appliance.metrics: key store operations timed and their failures counted, through the real
IssuerSigner (the issued/renewed/revoked/replay counters are driven end to end in
tests/e2e/test_metrics.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import REGISTRY

from appliance import metrics
from appliance.authority import Authority
from appliance.profiles import LeafRequest, build_leaf, subject_name
from keystores import KeyStoreError
from pki.sans import SubjectAltNames
from tests.appliance.conftest import now_utc


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counts() -> tuple[float, float]:
    """(sign operations observed, sign operations failed)."""
    return (
        sample("stepstone_keystore_operation_seconds_count", operation="sign"),
        sample("stepstone_keystore_errors_total", operation="sign"),
    )


def _leaf_request() -> LeafRequest:
    now = now_utc()
    return LeafRequest(
        subject=subject_name("m.test"),
        sans=SubjectAltNames.split(["m.test"]),
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        not_before=now,
        not_after=now.replace(year=now.year + 1),
    )


def test_a_signature_is_timed(authority: Authority) -> None:
    timed, failed = counts()
    cert = authority.issuer_signer.sign_with(
        partial(build_leaf, _leaf_request(), authority.intermediates[0])
    )
    cert.verify_directly_issued_by(authority.intermediates[0])
    assert counts() == (timed + 1, failed)


def test_a_key_store_failure_is_counted(authority: Authority, ca_dir: Path) -> None:
    """The key file went away after start-up: this process opens its store on first use."""
    (ca_dir / "secrets" / "intermediate_ca_key").unlink()
    timed, failed = counts()
    with pytest.raises(KeyStoreError):
        authority.issuer_signer.sign_with(
            partial(build_leaf, _leaf_request(), authority.intermediates[0])
        )
    assert counts() == (timed + 1, failed + 1)


def test_other_errors_are_not_key_store_errors() -> None:
    timed, failed = counts()
    with pytest.raises(ValueError), metrics.keystore_operation("sign"):
        raise ValueError("a bad certificate request")
    assert counts() == (timed + 1, failed)


def test_known_series_start_at_zero() -> None:
    metrics.start_at_zero(["zero-prov"])
    for name in (
        "stepstone_certificates_issued_total",
        "stepstone_certificates_renewed_total",
        "stepstone_certificates_revoked_total",
        "stepstone_token_replays_total",
    ):
        assert REGISTRY.get_sample_value(name, {"provisioner": "zero-prov"}) == 0.0
