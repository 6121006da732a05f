"""Decoders of the X.509 extensions certinfo and zcrypto print (Go crypto/x509 semantics)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cli.certinfo.der import (
    TAG_BIT_STRING,
    TAG_BOOLEAN,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    CertParseError,
    Element,
    children,
    decode_bit_string,
    decode_boolean,
    decode_integer,
    decode_oid,
    expect,
    parse_one,
)
from cli.certinfo.general_names import GeneralNames
from cli.certinfo.names import parse_name


@dataclass(frozen=True)
class Extension:
    oid: str
    critical: bool
    value: bytes


def parse_extension(element: Element) -> Extension:
    parts = children(expect(element, TAG_SEQUENCE, "Extension"))
    if len(parts) not in (2, 3):
        raise CertParseError("x509: malformed extension")
    oid = decode_oid(expect(parts[0], TAG_OID, "extension OID").content)
    critical = False
    if len(parts) == 3:
        critical = decode_boolean(expect(parts[1], TAG_BOOLEAN, "critical flag").content)
    value = expect(parts[-1], TAG_OCTET_STRING, "extension value").content
    return Extension(oid, critical, value)


def parse_key_usage(value: bytes) -> int:
    """Go's KeyUsage bit mask (bit i set when the i-th named usage is asserted)."""
    body, bits = decode_bit_string(expect(parse_one(value), TAG_BIT_STRING, "key usage").content)
    usage = 0
    for index in range(9):
        if index < bits and body[index // 8] & (0x80 >> (index % 8)):
            usage |= 1 << index
    return usage


def parse_basic_constraints(value: bytes) -> tuple[bool, int]:
    """(is CA, max path length or -1 when absent)."""
    parts = children(expect(parse_one(value), TAG_SEQUENCE, "basic constraints"))
    is_ca, max_path = False, -1
    index = 0
    if index < len(parts) and parts[index].is_universal(TAG_BOOLEAN):
        is_ca = decode_boolean(parts[index].content)
        index += 1
    if index < len(parts) and parts[index].is_universal(TAG_INTEGER):
        max_path = decode_integer(parts[index].content)
        index += 1
    return is_ca, max_path


def parse_octet_string(value: bytes) -> bytes:
    return expect(parse_one(value), TAG_OCTET_STRING, "octet string").content


def parse_authority_key_id(value: bytes) -> bytes:
    key_id = b""
    for part in children(expect(parse_one(value), TAG_SEQUENCE, "authority key id")):
        if part.is_context(0):
            key_id = part.content
    return key_id


def parse_oid_sequence(value: bytes) -> list[str]:
    return [
        decode_oid(expect(item, TAG_OID, "OID").content)
        for item in children(expect(parse_one(value), TAG_SEQUENCE, "OID sequence"))
    ]


@dataclass
class PolicyInformation:
    oid: str
    cps: list[str] = field(default_factory=list)
    explicit_texts: list[str] = field(default_factory=list)
    notice_refs: list[tuple[str, list[int]]] = field(default_factory=list)


def parse_policies(value: bytes) -> list[PolicyInformation]:
    out: list[PolicyInformation] = []
    for info in children(expect(parse_one(value), TAG_SEQUENCE, "certificate policies")):
        parts = children(expect(info, TAG_SEQUENCE, "policy information"))
        if not parts:
            raise CertParseError("x509: invalid certificate policies")
        policy = PolicyInformation(decode_oid(expect(parts[0], TAG_OID, "policy").content))
        if len(parts) > 1:
            for qualifier in children(expect(parts[1], TAG_SEQUENCE, "qualifiers")):
                items = children(expect(qualifier, TAG_SEQUENCE, "qualifier"))
                if not items:
                    raise CertParseError("x509: invalid policy qualifier")
                qualifier_id = decode_oid(expect(items[0], TAG_OID, "qualifier id").content)
                if len(items) < 2:
                    continue
                if qualifier_id == "1.3.6.1.5.5.7.2.1":
                    policy.cps.append(items[1].content.decode("latin-1"))
                elif qualifier_id == "1.3.6.1.5.5.7.2.2" and items[1].constructed:
                    for notice in children(items[1]):
                        if notice.is_universal(TAG_SEQUENCE):
                            ref = children(notice)
                            organization = ref[0].content.decode("utf-8", "replace") if ref else ""
                            numbers = (
                                [decode_integer(n.content) for n in children(ref[1])]
                                if len(ref) > 1
                                else []
                            )
                            policy.notice_refs.append((organization, numbers))
                        elif notice.content:
                            policy.explicit_texts.append(notice.content.decode("utf-8", "replace"))
        out.append(policy)
    return out


@dataclass
class AuthorityInfoAccess:
    ocsp: list[str] = field(default_factory=list)
    issuers: list[str] = field(default_factory=list)


def parse_authority_info_access(value: bytes) -> AuthorityInfoAccess:
    aia = AuthorityInfoAccess()
    for description in children(expect(parse_one(value), TAG_SEQUENCE, "AIA")):
        parts = children(expect(description, TAG_SEQUENCE, "access description"))
        if len(parts) != 2:
            raise CertParseError("x509: invalid authority info access")
        method = decode_oid(expect(parts[0], TAG_OID, "access method").content)
        if not parts[1].is_context(6):
            continue
        location = parts[1].content.decode("latin-1")
        if method == "1.3.6.1.5.5.7.48.1":
            aia.ocsp.append(location)
        elif method == "1.3.6.1.5.5.7.48.2":
            aia.issuers.append(location)
    return aia


def parse_crl_distribution_points(value: bytes) -> list[str]:
    uris: list[str] = []
    for point in children(expect(parse_one(value), TAG_SEQUENCE, "CRL distribution points")):
        for part in children(expect(point, TAG_SEQUENCE, "distribution point")):
            if not part.is_context(0):
                continue
            for dp_name in children(part):
                if not dp_name.is_context(0):
                    continue
                for general in children(dp_name):
                    if general.is_context(6):
                        uris.append(general.content.decode("latin-1"))
    return uris


@dataclass
class NameConstraints:
    """Go crypto/x509's view (DNS, email, URI domains, IP ranges) plus zcrypto's extras."""

    permitted: GeneralNames = field(default_factory=GeneralNames)
    excluded: GeneralNames = field(default_factory=GeneralNames)
    # IP ranges as (ip bytes, mask bytes)
    permitted_ips: list[tuple[bytes, bytes]] = field(default_factory=list)
    excluded_ips: list[tuple[bytes, bytes]] = field(default_factory=list)


def parse_name_constraints(value: bytes) -> NameConstraints:
    constraints = NameConstraints()
    for part in children(expect(parse_one(value), TAG_SEQUENCE, "name constraints")):
        if part.is_context(0):
            target, ips = constraints.permitted, constraints.permitted_ips
        elif part.is_context(1):
            target, ips = constraints.excluded, constraints.excluded_ips
        else:
            raise CertParseError("x509: invalid name constraints")
        for subtree in children(part):
            items = children(expect(subtree, TAG_SEQUENCE, "general subtree"))
            if not items or items[0].cls != 2:
                raise CertParseError("x509: invalid name constraints")
            base = items[0]
            if base.tag == 7:
                if len(base.content) not in (8, 32):
                    raise CertParseError(
                        "x509: certificate name constraint contained IP address range of length "
                        f"{len(base.content)}"
                    )
                half = len(base.content) // 2
                ips.append((base.content[:half], base.content[half:]))
                continue
            if base.tag == 1:
                target.emails.append(base.content.decode("latin-1"))
            elif base.tag == 2:
                target.dns.append(base.content.decode("latin-1"))
            elif base.tag == 6:
                target.uris.append(base.content.decode("latin-1"))
            elif base.tag == 4:
                target.directory_names.append(parse_name(parse_one(base.content)))
            elif base.tag == 8:
                target.registered_ids.append(decode_oid(base.content))
    return constraints


OID_STEP_PROVISIONER = "1.3.6.1.4.1.37476.9000.64.1"


@dataclass(frozen=True)
class SCT:
    version: int
    log_id: bytes
    timestamp: int
    extensions: bytes
    hash_algorithm: int
    signature_algorithm: int
    signature: bytes

    def digitally_signed(self) -> bytes:
        return (
            bytes([self.hash_algorithm, self.signature_algorithm])
            + len(self.signature).to_bytes(2, "big")
            + self.signature
        )


def parse_sct_list(data: bytes) -> list[SCT]:
    """RFC 6962 SignedCertificateTimestampList (TLS encoding)."""

    def take(buf: bytes, pos: int, size: int) -> tuple[bytes, int]:
        if pos + size > len(buf):
            raise CertParseError("malformed SCT list")
        return buf[pos : pos + size], pos + size

    def vector(buf: bytes, pos: int) -> tuple[bytes, int]:
        raw_len, pos = take(buf, pos, 2)
        return take(buf, pos, int.from_bytes(raw_len, "big"))

    body, end = vector(data, 0)
    if end != len(data) or not body:
        raise CertParseError("malformed SCT list")
    out: list[SCT] = []
    pos = 0
    while pos < len(body):
        item, pos = vector(body, pos)
        if not item or item[0] != 0:
            raise CertParseError("unknown SCT version")
        log_id, p = take(item, 1, 32)
        stamp, p = take(item, p, 8)
        exts, p = vector(item, p)
        algs, p = take(item, p, 2)
        sig, p = vector(item, p)
        if p != len(item):
            raise CertParseError("trailing data in SCT")
        out.append(SCT(0, log_id, int.from_bytes(stamp, "big"), exts, algs[0], algs[1], sig))
    return out
