"""The CRL: every unexpired revocation, signed by the intermediate, with a growing number."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.config import CAConfig
from appliance.db.repository import Repository, StoredCRL
from appliance.profiles import hash_for
from keystores import SigningKey
from pki.certs import aki_for

REASONS: dict[int, x509.ReasonFlags | None] = {
    0: None,  # unspecified: no reason code entry extension, as RFC 5280 recommends
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}
# Revocations stay listed until their certificate has been expired this long (as step-ca).
EXPIRED_GRACE = timedelta(hours=1)


def crl_url(config: CAConfig) -> str:
    """Where the CRL is published (`crl.idpURL`, else this CA's /1.0/crl)."""
    return config.crl.idp_url or f"{config.base_url}/1.0/crl"


class CRLPublisher:
    """Builds, stores and serves the CRL; regenerates it before it goes stale."""

    def __init__(
        self,
        config: CAConfig,
        issuer: x509.Certificate,
        signer: Callable[[], SigningKey],
        repository: Repository,
    ) -> None:
        self.config = config
        self.issuer = issuer
        self.signer = signer
        self.repository = repository

    def _refresh_after(self, crl: StoredCRL) -> datetime:
        period = self.config.crl.renew_period or self.config.crl.cache_duration * 2 / 3
        return crl.this_update + period

    def current(self) -> StoredCRL:
        """The stored CRL, regenerated first if missing or due."""
        crl = self.repository.current_crl()
        if crl is None or datetime.now(UTC) >= self._refresh_after(crl):
            crl = self.generate()
        return crl

    def generate(self) -> StoredCRL:
        """Sign a new CRL with the next number and store it."""
        return self.repository.replace_crl(self._build)

    def _build(self, number: int) -> StoredCRL:
        now = datetime.now(UTC).replace(microsecond=0)
        next_update = now + self.config.crl.cache_duration
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuer.subject)
            .last_update(now)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(aki_for(self.issuer), critical=False)
            .add_extension(
                x509.IssuingDistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(crl_url(self.config))],
                    relative_name=None,
                    only_contains_user_certs=False,
                    only_contains_ca_certs=False,
                    only_some_reasons=None,
                    indirect_crl=False,
                    only_contains_attribute_certs=False,
                ),
                critical=True,
            )
        )
        for entry in self.repository.revoked_since(now - EXPIRED_GRACE):
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(entry.revoked_at)
            )
            reason = REASONS.get(entry.reason_code)
            if reason is not None:
                revoked = revoked.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        key = self.signer()
        crl = builder.sign(key, hash_for(key))  # type: ignore[arg-type]
        return StoredCRL(number, crl.public_bytes(Encoding.DER), now, next_update)
