"""The certificates `step certificate create` and `sign` make, as go.step.sm/crypto's
x509util default templates make them.

- leaf / self-signed: CN = subject, SANs (the subject when none is given), key usage
  digitalSignature (plus keyEncipherment for RSA), EKU serverAuth + clientAuth; 24 hours.
- intermediate-ca: keyCertSign + cRLSign, CA with pathLenConstraint 0; 10 years.
- root-ca: the same, self-signed, pathLenConstraint 1; 10 years.

As Go's x509.CreateCertificate does: a random positive serial, critical key usage and basic
constraints, a subject key identifier (SHA-1 of the public key) and, when issued by another
certificate, the issuer's key identifier as authority key identifier (and, unlike Go, the
certificate's own on a self-signed one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cli.certificate_keys import same_public_key, signature_hash
from cli.common import CLIError, go_strerror
from keystores import SigningKey
from pki.certs import aki_for, parse_certificates
from pki.durations import parse_time_or_duration, resolve_time_duration
from pki.sans import SubjectAltNames

__all__ = [
    "LEAF",
    "PROFILES",
    "Validity",
    "build_certificate",
    "check_issuer",
    "check_issuer_key",
    "csr_general_names",
    "default_lifetime",
    "general_names",
    "parse_validity",
    "read_certificates",
    "read_csr",
    "subject_name",
]

LEAF = "leaf"
INTERMEDIATE = "intermediate-ca"
ROOT = "root-ca"
SELF_SIGNED = "self-signed"
PROFILES = (LEAF, INTERMEDIATE, ROOT, SELF_SIGNED)

_DAY = timedelta(hours=24)
_TEN_YEARS = timedelta(hours=24 * 365 * 10)
_LIFETIMES = {LEAF: _DAY, SELF_SIGNED: _DAY, INTERMEDIATE: _TEN_YEARS, ROOT: _TEN_YEARS}


def default_lifetime(profile: str) -> timedelta:
    return _LIFETIMES[profile]


@dataclass(frozen=True)
class Validity:
    not_before: datetime
    not_after: datetime


def _flag_time(flag: str, value: str | None, now: datetime) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parse_time_or_duration(value, now)
    except ValueError:
        raise CLIError(f"invalid value '{value}' for flag '--{flag}'") from None
    return resolve_time_duration(parsed, now)


def parse_validity(not_before: str | None, not_after: str | None, profile: str) -> Validity:
    """step's `--not-before`/`--not-after`: RFC 3339 times or durations from now; the end
    defaults to the start plus the profile's lifetime."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = _flag_time("not-before", not_before, now)
    end = _flag_time("not-after", not_after, now)
    if start is not None and end is not None and start > end:
        raise CLIError(
            f"flag '--not-before' with value '{not_before}' is incompatible with flag "
            f"'--not-after' with value '{not_after}'"
        )
    start = start or now
    end = end or start + default_lifetime(profile)
    if start > end:
        raise CLIError(
            f"invalid value '{not_after}' for flag '--not-after': certificate is already expired"
        )
    return Validity(start, end)


def _key_usage(*, signature: bool, encipherment: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signature,
        content_commitment=False,
        key_encipherment=encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def subject_name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def general_names(names: list[str]) -> list[x509.GeneralName]:
    """`--san` values as step splits them: IP, URI (has a scheme), email (has @), else DNS."""
    try:
        return SubjectAltNames.split(names).general_names()
    except ValueError as exc:
        raise CLIError(f"invalid value for flag '--san': {exc}") from None


def csr_general_names(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    """A CSR's DNS names, emails, IPs and URIs, in step's order; else its common name."""
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        ext = None
    except ValueError as exc:
        raise CLIError(f"error parsing the certificate request: {exc}") from None
    if ext is not None:
        names: list[x509.GeneralName] = []
        for kind in (
            x509.DNSName,
            x509.RFC822Name,
            x509.IPAddress,
            x509.UniformResourceIdentifier,
        ):
            names += [n for n in ext if isinstance(n, kind)]
        if names:
            return names
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return general_names([str(cns[0].value)]) if cns and cns[0].value else []


def _family(key: object) -> str:
    for name, kind in (
        ("EC", ec.EllipticCurvePublicKey),
        ("RSA", rsa.RSAPublicKey),
        ("OKP", ed25519.Ed25519PublicKey),
    ):
        if isinstance(key, kind):
            return name
    return type(key).__name__


def build_certificate(
    *,
    profile: str,
    subject: x509.Name,
    sans: list[x509.GeneralName],
    public_key: CertificateIssuerPublicKeyTypes,
    signer: SigningKey,
    issuer: x509.Certificate | None,
    validity: Validity,
    path_len: int | None = None,
) -> x509.Certificate:
    """A certificate of `profile` for `public_key`, signed by `signer` as `issuer` (None:
    self-signed). `path_len` overrides an intermediate's pathLenConstraint (-1: none)."""
    is_ca = profile in (INTERMEDIATE, ROOT)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
    )
    if is_ca:
        depth = 1 if profile == ROOT else 0
        if path_len is not None:
            depth = path_len
        builder = builder.add_extension(
            _key_usage(signature=False, encipherment=False, ca=True), critical=True
        )
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None if depth < 0 else depth),
            critical=True,
        )
    else:
        rsa_key = isinstance(public_key, rsa.RSAPublicKey)
        builder = builder.add_extension(
            _key_usage(signature=True, encipherment=rsa_key, ca=False), critical=True
        )
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
    )
    # Go omits it on self-signed certificates; RFC 5280 requires it on a self-signed leaf and
    # the CA/B Forum recommends it on roots, so it is always there (= the subject key id).
    aki = (
        aki_for(issuer)
        if issuer is not None
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    )
    builder = builder.add_extension(aki, critical=False)
    if sans:
        # Critical only when the subject is empty (RFC 5280 4.2.1.6).
        builder = builder.add_extension(
            x509.SubjectAlternativeName(sans), critical=len(subject) == 0
        )
    try:
        return builder.sign(signer, signature_hash(signer))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise CLIError(f"error signing the certificate: {exc}") from None


def check_issuer_key(issuer: x509.Certificate, signer: SigningKey) -> None:
    """step's validateIssuerKey: the key must be the issuer certificate's."""
    if not same_public_key(issuer.public_key(), signer.public_key()):
        if _family(issuer.public_key()) != _family(signer.public_key()):
            raise CLIError("private key type does not match issuer public key type")
        raise CLIError("private key does not match issuer public key")


def check_issuer(issuer: x509.Certificate, profile: str, path_len: int) -> None:
    """step's validateIssuer: a CA with keyCertSign, able to sign an intermediate if asked."""
    try:
        bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise CLIError("issuer certificate is not a certificate authority")
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        can_sign = usage.key_cert_sign
    except x509.ExtensionNotFound:
        can_sign = False
    if not can_sign:
        raise CLIError("issuer certificate does not have the keyCertSign usage")
    if profile == INTERMEDIATE and bc.path_length is not None:
        if bc.path_length == 0:
            raise CLIError(
                "issuer certificate cannot sign an intermediate-ca: pathLenConstraint is 0"
            )
        if path_len == -1 or path_len >= bc.path_length:
            raise CLIError(
                "issuer certificate cannot sign an intermediate-ca: pathLenConstraint is "
                f"{bc.path_length}, want at most {bc.path_length - 1}"
            )


def read_certificates(path: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or the one of a DER file (step's ReadCertificate)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"open {path}: {go_strerror(exc)}") from None
    try:
        return parse_certificates(data)
    except ValueError:
        raise CLIError(f"error decoding {path}: not a valid certificate file") from None


def read_csr(path: str) -> x509.CertificateSigningRequest:
    """A CSR from a PEM or DER file, its signature checked as step does."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"open {path}: {go_strerror(exc)}") from None
    try:
        if b"-----BEGIN" in data:
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError:
        raise CLIError(f"error decoding {path}: not a valid certificate request") from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise CLIError("certificate request has invalid signature: verification failure")
    return csr
