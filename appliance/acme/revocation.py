"""ACME revoke-cert (RFC 8555 §7.6): a certificate this CA issued through ACME, revoked on
the word of the account that ordered it or of the certificate's own key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.acme import jws
from appliance.acme.problems import ACMEProblem, malformed, unauthorized
from appliance.db.audit import AuditEvent
from appliance.db.repository import Revocation
from appliance.metrics import CERTIFICATES_REVOKED

if TYPE_CHECKING:
    from appliance.acme.service import ACME, Account

#: RFC 5280's reason codes; 7 is unused.
REASONS = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 9, 10})


def revoke(acme: ACME, request: jws.Request, account_prefix: str) -> None:
    """revoke-cert signed by the account that ordered the certificate, or by the
    certificate's own key (`jwk`)."""
    if request.kid is not None:
        account: Account | None = acme.account_for(request, account_prefix)
    else:
        account = None
        if request.jwk is None:
            raise malformed("revoke-cert needs a kid or a jwk")
        jws.verify(request, jws.load_key(request.jwk))
    payload = request.json_payload()
    try:
        cert = x509.load_der_x509_certificate(jws.b64decode(str(payload.get("certificate"))))
    except ValueError:
        raise malformed("the certificate cannot be parsed") from None
    reason = payload.get("reason", 0)
    if isinstance(reason, bool) or not isinstance(reason, int) or reason not in REASONS:
        raise ACMEProblem("badRevocationReason", f"reason {reason!r} is not allowed")
    serial = cert.serial_number
    stored = acme.authority.repository.certificate(serial)
    ordered_by = acme.store.certificate_account(serial)  # ACME's certificates only, as step-ca
    if stored is None or stored != cert or ordered_by is None:
        raise ACMEProblem("malformed", "certificate not found", 404)
    if account is not None:
        if ordered_by != account.id:
            raise unauthorized("the account did not order this certificate")
    else:
        assert request.jwk is not None
        mine = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        theirs = jws.load_key(request.jwk).get_op_key("verify")
        if theirs.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != mine:
            raise unauthorized("the jwk is not the certificate's key")
    if acme.authority.repository.is_revoked(serial):
        raise ACMEProblem("alreadyRevoked", "certificate is already revoked")
    actor = f"{acme.prov.name}:{account.id if account else 'certificate key'}"
    acme.authority.repository.revoke(
        Revocation(
            serial=serial,
            reason_code=reason,
            reason="",
            provisioner=acme.prov.name,
            token_id="",
            mtls=False,
            revoked_at=datetime.now(UTC).replace(microsecond=0),
        ),
        None,
        AuditEvent("certificate.revoke", actor, details={"provisioner": acme.prov.name}),
    )
    CERTIFICATES_REVOKED.labels(acme.prov.name).inc()
    if acme.authority.config.crl.enabled and acme.authority.config.crl.generate_on_revoke:
        acme.authority.crl.generate()
