"""Certificate profiles: root, intermediate and leaf, as step-ca builds them.

Every builder takes a `cryptography` private-key object as the issuer's signer, so keys in
files, HSMs and YubiKeys all sign through the same code.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from pki.certs import aki_for
from pki.sans import SubjectAltNames
from provisioners.extension import ProvisionerExtension

CA_VALIDITY = timedelta(days=10 * 365)

_TEMPLATE_ATTRS = [
    ("country", NameOID.COUNTRY_NAME),
    ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("province", NameOID.STATE_OR_PROVINCE_NAME),
    ("streetAddress", NameOID.STREET_ADDRESS),
    ("serialNumber", NameOID.SERIAL_NUMBER),
]


def random_serial() -> int:
    """A random serial in [1, 2^128), as step-ca draws them."""
    return secrets.randbits(128) or 1


def hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.HashAlgorithm | None:
    """The signature hash step uses for an issuer key (None for EdDSA)."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: hashes.SHA256(), 384: hashes.SHA384()}.get(key.curve.key_size, hashes.SHA512())
    return hashes.SHA256()


def subject_name(common_name: str, template: dict[str, Any] | None = None) -> x509.Name:
    """CN plus the `authority.template` defaults (country, organization, ...)."""
    attrs: list[x509.NameAttribute[Any]] = []
    for key, oid in _TEMPLATE_ATTRS:
        value = (template or {}).get(key)
        values = value if isinstance(value, list) else [value] if value else []
        attrs += [x509.NameAttribute(oid, str(v)) for v in values]
    if common_name:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _ca_name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def build_root(name: str, key: CertificateIssuerPrivateKeyTypes, now: datetime) -> x509.Certificate:
    """Self-signed root: `<name> Root CA`, 10 years, path length 1."""
    subject = _ca_name(f"{name} Root CA", name)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(random_serial())
        .not_valid_before(now)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, hash_for(key))  # type: ignore[arg-type]


def build_intermediate(
    name: str,
    public: CertificatePublicKeyTypes,
    issuer: x509.Certificate,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    now: datetime,
) -> x509.Certificate:
    """`<name> Intermediate CA` signed by the root: 10 years, path length 0."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_ca_name(f"{name} Intermediate CA", name))
        .issuer_name(issuer.subject)
        .public_key(public)
        .serial_number(random_serial())
        .not_valid_before(now)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(aki_for(issuer), critical=False)
    )
    return builder.sign(issuer_key, hash_for(issuer_key))  # type: ignore[arg-type]


@dataclass(frozen=True)
class LeafRequest:
    """Everything a leaf needs besides the issuer."""

    subject: x509.Name
    sans: SubjectAltNames
    public_key: CertificatePublicKeyTypes
    not_before: datetime
    not_after: datetime
    extension: ProvisionerExtension | None = None
    revocation: RevocationPointers | None = None
    # Names `sans` cannot hold (an ACME device's permanentIdentifier otherName), after them.
    other_names: tuple[x509.GeneralName, ...] = ()
    # step-ca's attested leaf: clientAuth only, no serverAuth.
    client_auth_only: bool = False


@dataclass(frozen=True)
class RevocationPointers:
    """Where relying parties check a leaf: CRL distribution point, OCSP and issuer URLs."""

    crl_url: str
    ocsp_url: str
    issuer_url: str

    def extensions(self) -> list[x509.ExtensionType]:
        """The CRL distribution point and authority information access of a leaf."""
        return list(self._extensions)

    @cached_property
    def _extensions(self) -> tuple[x509.ExtensionType, ...]:
        """Encoded once: the same pointers go into every leaf of the CA."""
        uri = x509.UniformResourceIdentifier
        return tuple(
            encoded(value)
            for value in (
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([uri(self.crl_url)], None, None, None)]
                ),
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, uri(self.ocsp_url)
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS, uri(self.issuer_url)
                        ),
                    ]
                ),
            )
        )


def build_renewal(
    old: x509.Certificate,
    public_key: CertificatePublicKeyTypes,
    not_before: datetime,
    not_after: datetime,
    issuer: x509.Certificate,
    issuer_key: CertificateIssuerPrivateKeyTypes,
) -> x509.Certificate:
    """A renewed (same key) or rekeyed (new key) copy of `old`: same subject and extensions,
    except the AKI (new issuer) and, for a new key, the SKI."""
    same_key = public_key.public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    ) == old.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext in old.extensions:
        if isinstance(ext.value, x509.AuthorityKeyIdentifier):
            continue
        if isinstance(ext.value, x509.SubjectKeyIdentifier) and not same_key:
            continue
        builder = builder.add_extension(ext.value, ext.critical)
    if not same_key:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
    builder = builder.add_extension(aki_for(issuer), critical=False)
    return builder.sign(issuer_key, hash_for(issuer_key))  # type: ignore[arg-type]


def _leaf_key_usage(key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def encoded(value: x509.ExtensionType) -> x509.UnrecognizedExtension:
    """An extension value DER-encoded once: a builder copies its bytes into each certificate
    instead of converting the Python object every time (the certificate is byte-identical)."""
    return x509.UnrecognizedExtension(value.oid, value.public_bytes())


# The same in every leaf: digitalSignature (+keyEncipherment for RSA keys), and serverAuth +
# clientAuth.
_LEAF_KEY_USAGE = {False: encoded(_leaf_key_usage(False)), True: encoded(_leaf_key_usage(True))}
_LEAF_EXTENDED_KEY_USAGE = encoded(
    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
)
_CLIENT_AUTH_ONLY = encoded(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]))


@lru_cache(maxsize=16)
def _encoded_aki(issuer: x509.Certificate) -> x509.UnrecognizedExtension:
    """The AKI of an issuer's leaves, encoded once per issuer."""
    return encoded(aki_for(issuer))


def build_leaf(
    req: LeafRequest, issuer: x509.Certificate, issuer_key: CertificateIssuerPrivateKeyTypes
) -> x509.Certificate:
    """A TLS leaf: KU digitalSignature (+keyEncipherment for RSA), EKU server+client auth
    (clientAuth only for `client_auth_only`, step-ca's attested leaf)."""
    is_rsa = isinstance(req.public_key, rsa.RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(req.subject)
        .issuer_name(issuer.subject)
        .public_key(req.public_key)
        .serial_number(random_serial())
        .not_valid_before(req.not_before)
        .not_valid_after(req.not_after)
        .add_extension(_LEAF_KEY_USAGE[is_rsa], critical=True)
        .add_extension(
            _CLIENT_AUTH_ONLY if req.client_auth_only else _LEAF_EXTENDED_KEY_USAGE,
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(req.public_key), critical=False)
        .add_extension(_encoded_aki(issuer), critical=False)
    )
    if req.sans or req.other_names:
        # RFC 5280: the SAN extension is critical when the subject is empty.
        critical = len(req.subject) == 0
        names = [*req.sans.general_names(), *req.other_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=critical)
    if req.extension is not None:
        builder = builder.add_extension(req.extension.to_x509_extension(), critical=False)
    if req.revocation is not None:
        for ext in req.revocation.extensions():
            builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hash_for(issuer_key))  # type: ignore[arg-type]
