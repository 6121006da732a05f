"""The OCSP responder's own rules: which requests it answers, with what status, and how the
response is signed and bounded in time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from appliance.db.engine import migrate, open_engine
from appliance.db.repository import Repository, Revocation
from appliance.ocsp import RESPONSE_VALIDITY, OCSPResponder
from appliance.profiles import (
    LeafRequest,
    build_intermediate,
    build_leaf,
    build_root,
    subject_name,
)
from pki.sans import SubjectAltNames

NOW = datetime.now(UTC).replace(microsecond=0)


class CA:
    """An intermediate, its key, and a repository of what it issued."""

    def __init__(self, repo: Repository) -> None:
        root_key = ec.generate_private_key(ec.SECP256R1())
        self.key = ec.generate_private_key(ec.SECP384R1())
        root = build_root("Acme", root_key, NOW)
        self.cert = build_intermediate("Acme", self.key.public_key(), root, root_key, NOW)
        self.repo = repo
        self.signatures = 0
        self.responder = OCSPResponder(self.cert, self._signer, repo)

    def _signer(self) -> ec.EllipticCurvePrivateKey:
        self.signatures += 1
        return self.key

    def leaf(self, *, store: bool = True) -> x509.Certificate:
        request = LeafRequest(
            subject=subject_name("foo.test"),
            sans=SubjectAltNames.split(["foo.test"]),
            public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
            not_before=NOW,
            not_after=NOW + timedelta(hours=1),
        )
        cert = build_leaf(request, self.cert, self.key)
        if store:
            self.repo.issue(None, "admin", lambda: cert)
        return cert

    def ask(
        self,
        cert: x509.Certificate,
        algorithm: hashes.HashAlgorithm | None = None,
        nonce: bytes | None = None,
        issuer: x509.Certificate | None = None,
    ) -> ocsp.OCSPResponse:
        builder = ocsp.OCSPRequestBuilder().add_certificate(
            cert, issuer or self.cert, algorithm or hashes.SHA1()
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        der = builder.build().public_bytes(Encoding.DER)
        return ocsp.load_der_ocsp_response(self.responder.respond(der))


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[CA]:
    engine = open_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    migrate(engine)
    yield CA(Repository(engine))
    engine.dispose()


@pytest.mark.parametrize(
    "algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()]
)
def test_every_supported_cert_id_hash_is_answered_in_kind(
    ca: CA, algorithm: hashes.HashAlgorithm
) -> None:
    resp = ca.ask(ca.leaf(), algorithm)
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.hash_algorithm.name == algorithm.name


def test_an_unsupported_cert_id_hash_is_malformed(ca: CA) -> None:
    resp = ca.ask(ca.leaf(), hashes.SHA224())
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert ca.signatures == 0  # refusals are not signed


@pytest.mark.parametrize("junk", [b"", b"\x30\x00", b"not der", b"\x30\x82\xff\xff"])
def test_garbage_is_malformed_never_an_exception(ca: CA, junk: bytes) -> None:
    resp = ocsp.load_der_ocsp_response(ca.responder.respond(junk))
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_another_issuers_certificate_is_unauthorized(ca: CA) -> None:
    other = CA(ca.repo)
    foreign = other.leaf()
    resp = ca.ask(foreign, issuer=other.cert)
    assert resp.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_a_serial_never_issued_is_unknown(ca: CA) -> None:
    resp = ca.ask(ca.leaf(store=False))
    assert resp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (0, x509.ReasonFlags.unspecified),
        (1, x509.ReasonFlags.key_compromise),
        (4, x509.ReasonFlags.superseded),
        (10, x509.ReasonFlags.aa_compromise),
    ],
)
def test_revoked_gives_time_and_reason(ca: CA, code: int, reason: x509.ReasonFlags) -> None:
    cert = ca.leaf()
    revoked_at = NOW - timedelta(minutes=3)
    ca.repo.revoke(Revocation(cert.serial_number, code, "", "admin", "", True, revoked_at), None)
    resp = ca.ask(cert)
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_time_utc == revoked_at
    assert resp.revocation_reason == reason


def test_response_is_signed_by_the_issuer_and_valid_for_an_hour(ca: CA) -> None:
    resp = ca.ask(ca.leaf(), nonce=b"0123456789abcdef")
    ca.key.public_key().verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(hashes.SHA384()))
    assert (
        resp.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key()).digest
    )
    assert resp.certificates == []
    assert resp.next_update_utc is not None
    assert resp.next_update_utc - resp.this_update_utc == RESPONSE_VALIDITY
    assert abs(resp.this_update_utc - datetime.now(UTC)) < timedelta(seconds=30)
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == (
        b"0123456789abcdef"
    )


def test_no_nonce_asked_none_echoed(ca: CA) -> None:
    resp = ca.ask(ca.leaf())
    with pytest.raises(x509.ExtensionNotFound):
        resp.extensions.get_extension_for_class(x509.OCSPNonce)
