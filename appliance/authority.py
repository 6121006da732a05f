"""The authority: verify a request, build the certificate, sign it, record it.

All CA logic lives here; the HTTP layer only parses and renders.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding

from appliance import csr_checks, renew_token
from appliance.assembly import AuthorityParts, assemble
from appliance.config import CAConfig
from appliance.crl import CRLPublisher, crl_url
from appliance.db.audit import AuditEvent
from appliance.db.repository import Revocation, UsedToken
from appliance.metrics import CERTIFICATES_ISSUED, CERTIFICATES_RENEWED, CERTIFICATES_REVOKED
from appliance.profiles import (
    LeafRequest,
    RevocationPointers,
    build_leaf,
    build_renewal,
    subject_name,
)
from appliance.validity import check_window, go_time, limit_window, requested_window
from keystores import SigningKey
from pki.certs import issued_by
from pki.errors import (
    CAError,
    ErrorKind,
    bad_request,
    forbidden,
    unauthorized,
    unauthorized_public,
)
from pki.fingerprint import certificate_fingerprint
from pki.sans import SubjectAltNames
from provisioners.audience import Method, audiences
from provisioners.base import token_hash
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension
from provisioners.registry import parse_token

log = logging.getLogger(__name__)


def pem(cert: x509.Certificate) -> str:
    """A certificate as the PEM string step-ca puts in JSON."""
    return cert.public_bytes(Encoding.PEM).decode()


@dataclass(frozen=True)
class RevokeRequest:
    """A validated /revoke body."""

    serial: int
    reason_code: int
    reason: str
    ott: str | None


@dataclass(frozen=True)
class SignResult:
    """A new certificate and the chain that goes with it (leaf first, no root)."""

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    provisioner: str | None = None
    """The provisioner that authorised it (None for the CA's own TLS certificate)."""


class Authority:
    """One CA: its roots, its intermediate and signer, its provisioners and its database."""

    def __init__(self, parts: AuthorityParts) -> None:
        """An authority from its parts (see appliance.assembly, or `Authority.open`)."""
        config = self.config = parts.config
        self.start_time = int(time.time())
        self.roots = parts.roots
        self.federated_roots = parts.federated_roots
        self.intermediates = parts.intermediates
        self.issuer_signer = parts.issuer_signer
        self.registry = parts.registry
        self.repository = parts.repository
        self.ocsp = parts.ocsp
        self.ssh_keys = parts.ssh_keys
        self._by_fingerprint = {
            certificate_fingerprint(c): c for c in self.roots + self.federated_roots
        }
        self._audiences = {m: audiences(config.dns_names, m) for m in Method}
        self._all_audiences = sorted({a for v in self._audiences.values() for a in v})
        self.crl = CRLPublisher(
            config, self.intermediates[0], self.issuer_signer.get, self.repository
        )
        self._pointers = (
            RevocationPointers(
                crl_url=crl_url(config),
                ocsp_url=f"{config.base_url}/ocsp",
                issuer_url=f"{config.base_url}/1.0/intermediate.crt",
            )
            if config.crl.enabled
            else None
        )

    @classmethod
    def open(
        cls, config: CAConfig, password: bytes | None = None, *, migrate_schema: bool = True
    ) -> Authority:
        """Load certificates, open the key store and the database, build the provisioners."""
        return cls(assemble(config, password, migrate_schema=migrate_schema))

    @property
    def revocation_pointers(self) -> RevocationPointers | None:
        """The CRL/OCSP/issuer URLs every leaf carries (None when the CRL is off)."""
        return self._pointers

    @property
    def signer(self) -> SigningKey:
        """The intermediate's key, opened in this process (KeyStoreError -> 503 at the API)."""
        return self.issuer_signer.get()

    def after_fork(self) -> None:
        """In a new worker process: drop pooled connections inherited from the parent."""
        self.repository.engine.dispose(close=False)

    # --- lookups --------------------------------------------------------------------------

    def root_by_fingerprint(self, sha: str) -> x509.Certificate:
        """A root or federated root by SHA-256 (hex, `-` and case ignored)."""
        sum_ = sha.replace("-", "").lower()  # step-ca's rule: only dashes and case
        cert = self._by_fingerprint.get(sum_)
        if cert is None:
            raise CAError(
                ErrorKind.NOT_FOUND,
                "root not found",
                public=f'root certificate with fingerprint "{sum_}" was not found',
            )
        return cert

    def federation(self) -> list[x509.Certificate]:
        """Own roots and federated roots, each once."""
        seen: dict[str, x509.Certificate] = {}
        for cert in self.roots + self.federated_roots:
            seen.setdefault(certificate_fingerprint(cert), cert)
        return list(seen.values())

    # --- signing --------------------------------------------------------------------------

    def sign(
        self, csr_pem: str, ott: str, not_before: str | None = None, not_after: str | None = None
    ) -> SignResult:
        """POST /sign: authorise the token, check the CSR, issue and record the certificate."""
        now = datetime.now(UTC)
        csr = csr_checks.parse_csr(csr_pem)
        token = parse_token(ott)
        prov = self.registry.for_token(token, self._all_audiences)
        self._check_issued_at(token.claims.get("iat"))
        options = prov.authorize(token, Method.SIGN, self._audiences[Method.SIGN])
        csr_checks.check_fingerprint(csr, options)
        public_key = csr.public_key()  # a new object per call: taken once
        if options.names_from_csr:
            csr_checks.check_key(csr, public_key)
            subject, sans = csr_checks.names_from_csr(csr, options)
            alt_names = SubjectAltNames.split(sans)
        else:
            subject, sans = options.subject, options.sans
            alt_names = SubjectAltNames.split(sans)
            if options.check_csr_names:
                csr_checks.check_common_name(csr, options)
            csr_checks.check_key(csr, public_key)
            if options.check_csr_names:
                csr_checks.check_sans(csr, options, alt_names)
        window = requested_window(not_before, not_after, now, options.claims, self.config.backdate)
        window = limit_window(window, options.not_after_limit, explicit=bool(not_after))
        check_window(window, now, options.claims, self.config.backdate)
        try:  # names X.509 cannot carry (non-ASCII DNS, a CN over 64) are the caller's error
            subject_dn = subject_name(subject, self.config.template)
            alt_names.general_names()
        except ValueError as exc:
            raise CAError(
                ErrorKind.BAD_REQUEST,
                f"names {subject!r} {sans!r}: {exc}",
                public="invalid certificate subject or SANs",
            ) from None
        for rules in (prov.policy, self.config.policy):  # issuance policies, step-ca's order
            if rules is not None:
                rules.check_x509(subject, alt_names)  # PolicyError: 403
        request = LeafRequest(
            subject=subject_dn,
            sans=alt_names,
            public_key=public_key,
            not_before=window.not_before,
            not_after=window.not_after,
            extension=options.extension,
            revocation=self._pointers,
        )
        # The token is burned before the signature (see Repository.issue).
        cert = self.repository.issue(
            UsedToken(options.token_id, options.provisioner_name, options.token_expires),
            options.provisioner_name,
            lambda: self.issuer_signer.sign_with(
                partial(build_leaf, request, self.intermediates[0])
            ),
            AuditEvent(
                "certificate.sign",
                f"{options.provisioner_name}:{options.subject}",
                details={"provisioner": options.provisioner_name, "token_id": options.token_id},
            ),
        )
        CERTIFICATES_ISSUED.labels(options.provisioner_name).inc()
        if log.isEnabledFor(logging.DEBUG):  # the request line carries subject and serial
            log.debug(
                "issued serial=%s subject=%r provisioner=%r not_after=%s",
                cert.serial_number,
                options.subject,
                options.provisioner_name,
                cert.not_valid_after_utc.isoformat(),
            )
        return SignResult(cert, [cert, *self.intermediates], options.provisioner_name)

    # --- renewal, rekey, revocation ------------------------------------------------------

    def _own(self, cert: x509.Certificate) -> None:
        """Refuse certificates this CA did not issue: signed by a current intermediate, or
        recorded in the database (issued under an intermediate since rotated away)."""
        if any(issued_by(cert, issuer) for issuer in self.intermediates):
            return
        stored = self.repository.certificate(cert.serial_number)
        if stored is not None and stored == cert:
            return
        raise unauthorized("certificate was not issued by this authority")

    def _renewal_claims(self, cert: x509.Certificate) -> tuple[Claims, str]:
        ext = ProvisionerExtension.from_certificate(cert)
        if ext is None:
            return self.config.claims, ""
        prov = self.registry.by_name(ext.name)
        if prov is None:
            raise unauthorized(f"provisioner {ext.name!r} of the certificate is not configured")
        return prov.claims, prov.name

    def _reissue(
        self,
        old: x509.Certificate,
        public_key: CertificatePublicKeyTypes,
        token: UsedToken | None,
        kind: str = "certificate.renew",
    ) -> SignResult:
        """step-ca's renew/rekey checks, then the same lifetime from now, a new serial."""
        now = datetime.now(UTC)
        if self.repository.is_revoked(old.serial_number):
            raise unauthorized(f"certificate {old.serial_number} has been revoked")
        claims, prov_name = self._renewal_claims(old)
        if claims.disable_renewal:
            raise unauthorized(f"renew is disabled for provisioner {prov_name!r}")
        if now < old.not_valid_before_utc:
            raise unauthorized("certificate is not yet valid")
        if now > old.not_valid_after_utc and not claims.allow_renewal_after_expiry:
            raise unauthorized_public(f"certificate expired on {go_time(old.not_valid_after_utc)}")
        lifetime = old.not_valid_after_utc - old.not_valid_before_utc
        # Same total lifetime, backdated like issuance; a very short certificate is not
        # backdated, or its renewal would start out expired.
        backdate = self.config.backdate if lifetime > 2 * self.config.backdate else timedelta(0)
        cert = self.repository.issue(  # a renew token is burned before the signature
            token,
            prov_name,
            lambda: self.issuer_signer.sign_with(
                partial(
                    build_renewal,
                    old,
                    public_key,
                    now - backdate,
                    now + lifetime - backdate,
                    self.intermediates[0],
                )
            ),
            AuditEvent(
                kind,
                f"{prov_name}:{old.subject.rfc4514_string()}",
                details={
                    "provisioner": prov_name,
                    "from_serial": str(old.serial_number),
                    "by": "token" if token else "mTLS",
                },
            ),
        )
        CERTIFICATES_RENEWED.labels(prov_name).inc()
        log.debug("renewed serial=%s as serial=%s", old.serial_number, cert.serial_number)
        return SignResult(cert, [cert, *self.intermediates], prov_name)

    def renew(self, peer: x509.Certificate) -> SignResult:
        """POST /renew with a client certificate (the TLS layer verified its chain)."""
        self._own(peer)
        return self._reissue(peer, peer.public_key(), None)

    def renew_with_token(self, raw: str) -> SignResult:
        """POST /renew with `Authorization: Bearer` (x5cInsecure token; expired certs too)."""
        token = parse_token(raw)
        leaf = renew_token.leaf_of(token)
        self._own(leaf)
        claims = renew_token.verify(token, leaf, self._audiences[Method.RENEW])
        used = UsedToken(token_hash(raw), "", datetime.fromtimestamp(float(claims["exp"]), UTC))
        return self._reissue(leaf, leaf.public_key(), used)

    def rekey(self, peer: x509.Certificate, csr_pem: str) -> SignResult:
        """POST /rekey: the client certificate's identity on the CSR's new key."""
        self._own(peer)
        csr = csr_checks.parse_csr(csr_pem)
        csr_checks.check_key(csr)
        return self._reissue(peer, csr.public_key(), None, "certificate.rekey")

    def revoke(self, req: RevokeRequest, peer: x509.Certificate | None) -> str:
        """POST /revoke: passive revocation by one-time token or by the certificate itself.
        Returns the name of the provisioner that authorised it."""
        now = datetime.now(UTC)
        token_row: UsedToken | None = None
        provisioner = actor = ""
        if req.ott:
            token = parse_token(req.ott)
            prov = self.registry.for_token(token, self._all_audiences)
            self._check_issued_at(token.claims.get("iat"))
            options = prov.authorize(token, Method.REVOKE, self._audiences[Method.REVOKE])
            if options.subject != str(req.serial):
                raise forbidden(
                    f'request serial number "{req.serial}" and token subject '
                    f'"{options.subject}" do not match'
                )
            token_row = UsedToken(options.token_id, prov.name, options.token_expires)
            provisioner = prov.name
            actor = f"{prov.name}:{options.subject}"
        elif peer is not None:
            self._own(peer)
            if peer.serial_number != req.serial:
                raise forbidden(
                    f'request serial number "{req.serial}" and certificate serial number '
                    f'"{peer.serial_number}" do not match'
                )
            provisioner = self._renewal_claims(peer)[1]
            actor = f"{provisioner}:{peer.subject.rfc4514_string()}"
        else:
            raise bad_request("missing ott or client certificate")
        self.repository.revoke(
            Revocation(
                serial=req.serial,
                reason_code=req.reason_code,
                reason=req.reason,
                provisioner=provisioner,
                token_id=token_row.id if token_row else "",
                mtls=token_row is None,
                revoked_at=now.replace(microsecond=0),
            ),
            token_row,
            AuditEvent("certificate.revoke", actor, details={"provisioner": provisioner}),
        )
        CERTIFICATES_REVOKED.labels(provisioner).inc()
        log.info(
            "revoked serial=%s reason=%d by %s",
            req.serial,
            req.reason_code,
            "token" if token_row else "mTLS",
        )
        if self.config.crl.enabled and self.config.crl.generate_on_revoke:
            self.crl.generate()
        return provisioner

    def _check_issued_at(self, iat: object) -> None:
        if self.config.disable_issued_at_check or iat is None:
            return
        if not isinstance(iat, (int, float)):
            raise unauthorized("authority.authorizeToken: invalid iat claim")
        if int(iat) < self.start_time:
            raise unauthorized(
                "authority.authorizeToken: token issued before the bootstrap of certificate "
                "authority"
            )

    def issue_server_certificate(
        self, public_key: CertificatePublicKeyTypes, duration: timedelta
    ) -> SignResult:
        """The CA's own TLS certificate: CN commonName, SANs dnsNames, backdated 1 minute."""
        now = datetime.now(UTC)
        request = LeafRequest(
            subject=subject_name(self.config.common_name),
            sans=SubjectAltNames.split(self.config.dns_names),
            public_key=public_key,
            not_before=now - self.config.backdate,
            not_after=now + duration,
        )
        cert = build_leaf(request, self.intermediates[0], self.signer)
        return SignResult(cert, [cert, *self.intermediates])


def require_csr(value: object) -> str:
    """The `csr` field of a request body: present and a string."""
    if value in (None, ""):
        raise bad_request("missing csr")
    if not isinstance(value, str):
        raise CAError(
            ErrorKind.BAD_REQUEST, "csr is not a string", public="error decoding json"
        )
    return value
