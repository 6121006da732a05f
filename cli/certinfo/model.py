"""Parsed certificates and certificate requests, accepted the way Go's crypto/x509 does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cli.certinfo.algorithms import AlgorithmIdentifier, parse_algorithm
from cli.certinfo.der import (
    TAG_BIT_STRING,
    TAG_INTEGER,
    TAG_OID,
    TAG_SEQUENCE,
    TAG_SET,
    CertParseError,
    Element,
    children,
    decode_bit_string,
    decode_integer,
    decode_oid,
    decode_time,
    expect,
    parse_one,
)
from cli.certinfo.extensions import (
    OID_STEP_PROVISIONER,
    AuthorityInfoAccess,
    Extension,
    NameConstraints,
    PolicyInformation,
    parse_authority_info_access,
    parse_authority_key_id,
    parse_basic_constraints,
    parse_crl_distribution_points,
    parse_extension,
    parse_key_usage,
    parse_name_constraints,
    parse_octet_string,
    parse_oid_sequence,
    parse_policies,
)
from cli.certinfo.general_names import GeneralNames, parse_general_names
from cli.certinfo.keys import PublicKeyInfo, parse_public_key
from cli.certinfo.names import Name, parse_name
from provisioners.extension import ProvisionerExtension


@dataclass
class Certificate:
    """A parsed X.509 certificate, with the raw pieces certinfo and zcrypto print."""

    raw: bytes
    tbs_raw: bytes
    tbs_parts: list[Element]
    version: int
    serial: int
    tbs_signature_algorithm: AlgorithmIdentifier
    issuer_raw: bytes
    issuer: Name
    not_before: datetime
    not_after: datetime
    subject_raw: bytes
    subject: Name
    public_key: PublicKeyInfo
    issuer_unique_id: bytes
    subject_unique_id: bytes
    extensions: list[Extension]
    signature_algorithm: AlgorithmIdentifier
    signature: bytes
    # decoded extensions (None/empty when absent)
    key_usage: int = 0
    basic_constraints: tuple[bool, int] | None = None
    sans: GeneralNames = field(default_factory=GeneralNames)
    subject_key_id: bytes = b""
    authority_key_id: bytes = b""
    ext_key_usage: list[str] = field(default_factory=list)
    policies: list[PolicyInformation] = field(default_factory=list)
    aia: AuthorityInfoAccess = field(default_factory=AuthorityInfoAccess)
    crl_distribution_points: list[str] = field(default_factory=list)
    name_constraints: NameConstraints | None = None
    provisioner: ProvisionerExtension | None = None
    provisioner_error: bool = False

    @property
    def is_ca(self) -> bool:
        return self.basic_constraints is not None and self.basic_constraints[0]

    def extension(self, oid: str) -> Extension | None:
        for extension in self.extensions:
            if extension.oid == oid:
                return extension
        return None


def parse_certificate(der: bytes) -> Certificate:
    """Parse DER the way Go's x509.ParseCertificate would accept it."""
    try:
        return _parse_certificate(der)
    except (IndexError, KeyError):
        raise CertParseError("x509: malformed certificate") from None


def _parse_certificate(der: bytes) -> Certificate:
    top = children(expect(parse_one(der), TAG_SEQUENCE, "certificate"))
    if len(top) != 3:
        raise CertParseError("x509: malformed certificate")
    tbs_element, outer_algorithm, signature_element = top
    parts = children(expect(tbs_element, TAG_SEQUENCE, "tbsCertificate"))
    index = 0
    version = 1
    if parts[0].is_context(0) and parts[0].constructed:
        version = decode_integer(expect(parse_one(parts[0].content), TAG_INTEGER, "").content) + 1
        index = 1
    if version not in (1, 2, 3):
        raise CertParseError("x509: invalid version")
    serial = decode_integer(expect(parts[index], TAG_INTEGER, "serial number").content)
    if serial < 0:
        raise CertParseError("x509: negative serial number")
    tbs_algorithm = parse_algorithm(parts[index + 1])
    issuer_element = parts[index + 2]
    issuer = parse_name(issuer_element)
    validity = children(expect(parts[index + 3], TAG_SEQUENCE, "validity"))
    if len(validity) != 2:
        raise CertParseError("x509: malformed validity")
    not_before, not_after = decode_time(validity[0]), decode_time(validity[1])
    subject_element = parts[index + 4]
    subject = parse_name(subject_element)
    public_key = parse_public_key(parts[index + 5])
    issuer_uid = subject_uid = b""
    extensions: list[Extension] = []
    for extra in parts[index + 6 :]:
        if extra.is_context(1):
            issuer_uid = decode_bit_string(extra.content)[0]
        elif extra.is_context(2):
            subject_uid = decode_bit_string(extra.content)[0]
        elif extra.is_context(3) and extra.constructed:
            if version != 3:
                raise CertParseError("x509: extensions in a non-v3 certificate")
            holder = parse_one(extra.content)
            extensions = [parse_extension(item) for item in children(holder)]
        else:
            raise CertParseError("x509: malformed tbsCertificate")
    algorithm = parse_algorithm(outer_algorithm)
    if algorithm != tbs_algorithm:
        raise CertParseError("x509: inner and outer signature algorithm identifiers don't match")
    signature, _ = decode_bit_string(expect(signature_element, TAG_BIT_STRING, "signature").content)
    if len({extension.oid for extension in extensions}) != len(extensions):
        raise CertParseError("x509: certificate contains duplicate extensions")

    cert = Certificate(
        raw=der,
        tbs_raw=tbs_element.raw,
        tbs_parts=parts,
        version=version,
        serial=serial,
        tbs_signature_algorithm=tbs_algorithm,
        issuer_raw=issuer_element.raw,
        issuer=issuer,
        not_before=not_before,
        not_after=not_after,
        subject_raw=subject_element.raw,
        subject=subject,
        public_key=public_key,
        issuer_unique_id=issuer_uid,
        subject_unique_id=subject_uid,
        extensions=extensions,
        signature_algorithm=algorithm,
        signature=signature,
    )
    _decode_extensions(cert)
    return cert


def _decode_extensions(cert: Certificate) -> None:
    for extension in cert.extensions:
        oid, value = extension.oid, extension.value
        if oid == "2.5.29.15":
            cert.key_usage = parse_key_usage(value)
        elif oid == "2.5.29.19":
            cert.basic_constraints = parse_basic_constraints(value)
        elif oid == "2.5.29.17":
            cert.sans = parse_general_names(value)
        elif oid == "2.5.29.14":
            cert.subject_key_id = parse_octet_string(value)
        elif oid == "2.5.29.35":
            cert.authority_key_id = parse_authority_key_id(value)
        elif oid == "2.5.29.37":
            cert.ext_key_usage = parse_oid_sequence(value)
        elif oid == "2.5.29.32":
            cert.policies = parse_policies(value)
        elif oid == "1.3.6.1.5.5.7.1.1":
            cert.aia = parse_authority_info_access(value)
        elif oid == "2.5.29.31":
            cert.crl_distribution_points = parse_crl_distribution_points(value)
        elif oid == "2.5.29.30":
            cert.name_constraints = parse_name_constraints(value)
        elif oid == OID_STEP_PROVISIONER:
            try:
                cert.provisioner = ProvisionerExtension.from_der(value)
            except ValueError:
                cert.provisioner_error = True


@dataclass
class CertificateRequest:
    """A parsed PKCS#10 request."""

    raw: bytes
    tbs_raw: bytes
    version: int
    subject_raw: bytes
    subject: Name
    public_key: PublicKeyInfo
    attributes: list[tuple[str, list[Element]]]
    extensions: list[Extension]
    signature_algorithm: AlgorithmIdentifier
    signature: bytes
    sans: GeneralNames = field(default_factory=GeneralNames)


def parse_certificate_request(der: bytes) -> CertificateRequest:
    """Parse DER the way Go's x509.ParseCertificateRequest would accept it."""
    try:
        return _parse_certificate_request(der)
    except (IndexError, KeyError):
        raise CertParseError("x509: malformed certificate request") from None


def _parse_certificate_request(der: bytes) -> CertificateRequest:
    top = children(expect(parse_one(der), TAG_SEQUENCE, "certificate request"))
    if len(top) != 3:
        raise CertParseError("x509: malformed certificate request")
    info = children(expect(top[0], TAG_SEQUENCE, "certificationRequestInfo"))
    if len(info) != 4 or not info[3].is_context(0):
        raise CertParseError("x509: malformed certificate request")
    version = decode_integer(expect(info[0], TAG_INTEGER, "version").content)
    subject = parse_name(info[1])
    public_key = parse_public_key(info[2])
    attributes: list[tuple[str, list[Element]]] = []
    extensions: list[Extension] = []
    for attribute in children(info[3]):
        try:
            parts = children(expect(attribute, TAG_SEQUENCE, "attribute"))
            oid = decode_oid(expect(parts[0], TAG_OID, "attribute type").content)
            values = children(expect(parts[1], TAG_SET, "attribute values"))
        except (CertParseError, IndexError):
            continue  # Go ignores attributes that do not parse
        attributes.append((oid, values))
        if oid == "1.2.840.113549.1.9.14" and values:
            extensions.extend(
                parse_extension(item)
                for item in children(expect(values[0], TAG_SEQUENCE, "extensions"))
            )
    algorithm = parse_algorithm(top[1])
    signature, _ = decode_bit_string(expect(top[2], TAG_BIT_STRING, "signature").content)
    request = CertificateRequest(
        raw=der,
        tbs_raw=top[0].raw,
        version=version,
        subject_raw=info[1].raw,
        subject=subject,
        public_key=public_key,
        attributes=attributes,
        extensions=extensions,
        signature_algorithm=algorithm,
        signature=signature,
    )
    for extension in extensions:
        if extension.oid == "2.5.29.17":
            request.sans = parse_general_names(extension.value)
    return request
