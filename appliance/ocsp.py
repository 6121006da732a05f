"""An RFC 6960 OCSP responder for the certificates this CA issued (beyond step-ca).

Answers good / revoked (time and reason) / unknown, signed by the intermediate, echoing the
request's nonce. A request about another issuer gets `unauthorized`, garbage `malformedRequest`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from appliance.crl import REASONS
from appliance.db.repository import Repository
from appliance.profiles import hash_for
from keystores import SigningKey
from pki.der import read_tlv

# How long a response may be cached by relying parties.
RESPONSE_VALIDITY = timedelta(hours=1)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _issuer_hashes(
    issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    name = hashes.Hash(algorithm)
    name.update(issuer.subject.public_bytes())
    spki = issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    # The key hash covers the BIT STRING contents of subjectPublicKey, not the whole SPKI.
    key_bits = _subject_public_key_bits(spki)
    key = hashes.Hash(algorithm)
    key.update(key_bits)
    return name.finalize(), key.finalize()


def _subject_public_key_bits(spki: bytes) -> bytes:
    """The contents of subjectPublicKey (what an OCSP CertID's key hash covers)."""
    _, info, _ = read_tlv(spki)  # SubjectPublicKeyInfo SEQUENCE
    _, _, after_alg = read_tlv(info)  # AlgorithmIdentifier
    _, bits, _ = read_tlv(info, after_alg)  # BIT STRING
    return bits[1:]  # skip the unused-bits byte


class OCSPResponder:
    """Builds signed OCSP responses from the revocation table."""

    def __init__(
        self,
        issuer: x509.Certificate,
        signer: Callable[[], SigningKey],
        repository: Repository,
        delegate: x509.Certificate | None = None,
    ) -> None:
        """`signer` signs responses: the intermediate's key, or the key of `delegate`, an
        OCSP signing certificate the intermediate issued (then sent along in responses)."""
        self.issuer = issuer
        self.signer = signer
        self.repository = repository
        self.delegate = delegate
        # The issuer's CertID hashes, per hash algorithm, computed once.
        self._issuer_ids = {name: _issuer_hashes(issuer, cls()) for name, cls in _HASHES.items()}

    def respond(self, request_der: bytes) -> bytes:
        """The DER OCSP response to a DER OCSP request (never raises on bad input)."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
        except (ValueError, TypeError, UnsupportedAlgorithm):  # an unknown hash OID too
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        hash_cls = _HASHES.get(algorithm.name)
        if hash_cls is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        name_hash, key_hash = self._issuer_ids[algorithm.name]
        if (request.issuer_name_hash, request.issuer_key_hash) != (name_hash, key_hash):
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        serial = request.serial_number
        now = datetime.now(UTC).replace(microsecond=0)
        revoked = self.repository.revocation(serial)
        revocation_time = None
        reason = None
        if revoked is not None:
            status = ocsp.OCSPCertStatus.REVOKED
            revocation_time = revoked.revoked_at
            reason = REASONS.get(revoked.reason_code) or x509.ReasonFlags.unspecified
        elif self.repository.is_issued(serial):
            status = ocsp.OCSPCertStatus.GOOD
        else:
            status = ocsp.OCSPCertStatus.UNKNOWN
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=serial,
            algorithm=hash_cls(),
            cert_status=status,
            this_update=now,
            next_update=now + RESPONSE_VALIDITY,
            revocation_time=revocation_time,
            revocation_reason=reason,
        )
        responder = self.delegate or self.issuer
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        if self.delegate is not None:
            builder = builder.certificates([self.delegate])
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce)
            builder = builder.add_extension(nonce.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        key = self.signer()
        response = builder.sign(key, hash_for(key))
        return response.public_bytes(Encoding.DER)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)
