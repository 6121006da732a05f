"""Renderings of a certificate request: certinfo's text and short forms, zcrypto's JSON."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cli.certinfo.algorithms import algorithm_display_name
from cli.certinfo.der import (
    TAG_BMP,
    TAG_IA5,
    TAG_NUMERIC,
    TAG_OID,
    TAG_PRINTABLE,
    TAG_SEQUENCE,
    TAG_T61,
    TAG_UTF8,
    CertParseError,
    children,
    decode_oid,
    decode_string,
    expect,
)
from cli.certinfo.extensions import (
    Extension,
    parse_basic_constraints,
    parse_key_usage,
    parse_name_constraints,
    parse_octet_string,
    parse_oid_sequence,
)
from cli.certinfo.general_names import ip_string
from cli.certinfo.gofmt import go_printable, go_runes
from cli.certinfo.jsonfmt import b64, key_algorithm_name, name_json, signature_algorithm_json
from cli.certinfo.keys import DSAKey, PublicKeyInfo
from cli.certinfo.model import CertificateRequest
from cli.certinfo.names import common_name
from cli.certinfo.short import short_sans, short_subject_lines
from cli.certinfo.text import (
    KEY_USAGE_NAMES,
    colon_hex_upper,
    hex_block,
    print_critical,
    print_sans,
    print_subject_information,
)
from cli.certinfo.text_extensions import EKU_NAMES

_CSR_EKU_NAMES = {
    **EKU_NAMES,
    "1.3.6.1.4.1.311.10.3.3": "Microsoft Server Gated Crypto",
    "2.16.840.1.113730.4.1": "Netscape Server Gated Crypto",
    "1.3.6.1.4.1.311.2.1.22": "Microsoft Commercial Code Signing",
    "1.3.6.1.4.1.311.61.1.1": "Microsoft Kernel Code Signing",
    "2.23.133.8.1": "EK Certificate",
}


def _print_csr_extension(request: CertificateRequest, extension: Extension, out: list[str]) -> bool:
    """Print a requested extension certinfo knows; False when it belongs under Attributes."""
    oid = extension.oid
    pad = " " * 16
    if oid == "2.5.29.14":
        print_critical("X509v3 Subject Key Identifier", extension.critical, out)
        out.append(pad + colon_hex_upper(parse_octet_string(extension.value)) + "\n")
    elif oid == "2.5.29.17":
        print_sans(extension, request.sans, out)
    elif oid == "2.5.29.15":
        try:
            usage = parse_key_usage(extension.value)
        except CertParseError:
            out.append(" " * 12 + "X509v3 Key Usage: failed to decode\n")
            return True
        print_critical("X509v3 Key Usage", extension.critical, out)
        usages = [n for i, n in enumerate(KEY_USAGE_NAMES) if usage & (1 << i)]
        out.append(pad + (", ".join(usages) if usages else "None") + "\n")
    elif oid == "2.5.29.19":
        try:
            is_ca, max_path = parse_basic_constraints(extension.value)
        except CertParseError:
            out.append(" " * 12 + "X509v3 Basic Constraints: failed to decode\n")
            return True
        print_critical("X509v3 Basic Constraints", extension.critical, out)
        line = pad + ("CA:TRUE" if is_ca else "CA:FALSE")
        if max_path == 0:
            line += ", pathlen:0"
        elif max_path > 0:
            line += f", pathlen:{max_path}"
        out.append(line + "\n")
    elif oid == "2.5.29.30":
        try:
            constraints = parse_name_constraints(extension.value)
        except CertParseError:
            out.append(" " * 12 + "X509v3 Name Constraints: failed to decode\n")
            return True
        excluded = constraints.excluded
        has_excluded = bool(
            excluded.dns
            or excluded.emails
            or excluded.uris
            or excluded.directory_names
            or excluded.registered_ids
            or constraints.excluded_ips
        )
        if has_excluded and extension.critical:
            out.append(
                " " * 12 + "X509v3 Name Constraints: failed to decode: "
                "unexpected excluded name constraints\n"
            )
            return True
        print_critical("X509v3 Name Constraints", extension.critical, out)
        permitted = [n for n in constraints.permitted.dns if n]
        if permitted:
            out.append(pad + "Permitted:\n" + " " * 18 + ", ".join(permitted) + "\n")
    elif oid == "2.5.29.37":
        try:
            usages = parse_oid_sequence(extension.value)
        except CertParseError:
            out.append(" " * 12 + "X509v3 Extended Key Usage: failed to decode\n")
            return True
        labels = [_CSR_EKU_NAMES.get(u, f"UNKNOWN({u})") for u in usages]
        print_critical("X509v3 Extended Key Usage", extension.critical, out)
        if labels:
            out.append(pad + ", ".join(labels) + "\n")
    else:
        return False
    return True


def certificate_request_text(request: CertificateRequest) -> str:
    """certinfo.CertificateRequestText."""
    out: list[str] = ["Certificate Request:\n", " " * 4 + "Data:\n"]
    out.append(" " * 8 + f"Version: {request.version} ({max(request.version - 1, 0):#x})\n")
    print_subject_information(request.subject, request.public_key, True, out)
    if request.version == 0 and request.extensions:
        out.append(" " * 8 + "Requested Extensions:\n")
        unknown: list[Extension] = []
        for extension in request.extensions:
            if not _print_csr_extension(request, extension, out):
                unknown.append(extension)
        if unknown:
            out.append(" " * 8 + "Attributes:\n")
            for extension in unknown:
                print_critical(extension.oid, extension.critical, out)
                text = go_runes(extension.value)
                sanitized = go_printable(text)
                out.append(" " * 16 + sanitized + "\n")
                if sanitized != text:
                    out.append(" " * 16 + ":".join(f"{b:02x}" for b in extension.value) + "\n")
    algorithm = algorithm_display_name(request.signature_algorithm)
    out.append(" " * 4 + f"Signature Algorithm: {algorithm}")
    hex_block(request.signature, 18, 9, out)
    out.append("\n")
    return "".join(out)


def certificate_request_short_text(request: CertificateRequest) -> str:
    """certinfo.CertificateRequestShortText."""
    cn = common_name(request.subject)
    out = [f"X.509v3 Certificate Signing Request ({request.public_key.short_label()})\n"]
    out.extend(short_subject_lines(cn, short_sans(cn, request.sans)))
    return "".join(out)


def _go_default_public_key(key: PublicKeyInfo) -> object:
    """Go's default JSON of the zcrypto public key value in a CertificateRequest."""
    pk = key.key
    if isinstance(pk, rsa.RSAPublicKey):
        numbers = pk.public_numbers()
        return {"N": numbers.n, "E": numbers.e}
    if isinstance(pk, ec.EllipticCurvePublicKey):
        point = pk.public_numbers()
        return {
            "Pub": {"Curve": {}, "X": point.x, "Y": point.y},
            "Raw": {"Bytes": b64(key.key_bytes), "BitLength": len(key.key_bytes) * 8},
        }
    if isinstance(pk, ed25519.Ed25519PublicKey):
        return b64(key.key_bytes)
    if isinstance(pk, DSAKey):
        return {"Parameters": {"P": pk.p, "Q": pk.q, "G": pk.g}, "Y": pk.y}
    return None


def _csr_attributes_json(request: CertificateRequest) -> list[dict[str, object]] | None:
    """zcrypto's parseRawAttributes: attributes shaped as SET OF SEQUENCE OF ATV only."""
    out: list[dict[str, object]] = []
    for oid, values in request.attributes:
        try:
            groups: list[list[dict[str, str]]] = []
            for value in values:
                group: list[dict[str, str]] = []
                for atv in children(expect(value, TAG_SEQUENCE, "")):
                    parts = children(expect(atv, TAG_SEQUENCE, ""))
                    entry = {"type": decode_oid(expect(parts[0], TAG_OID, "").content)}
                    if (
                        len(parts) > 1
                        and parts[1].cls == 0
                        and parts[1].tag
                        in (
                            TAG_UTF8,
                            TAG_PRINTABLE,
                            TAG_IA5,
                            TAG_T61,
                            TAG_NUMERIC,
                            TAG_BMP,
                        )
                    ):
                        text = decode_string(parts[1])
                        if text:
                            entry["value"] = text
                    group.append(entry)
                groups.append(group)
        except (CertParseError, IndexError):
            continue
        out.append({"Type": [int(arc) for arc in oid.split(".")], "Value": groups})
    return out or None


def certificate_request_json(request: CertificateRequest) -> dict[str, object]:
    """Go's default encoding of zcrypto's CertificateRequest struct."""
    sans = request.sans
    extensions = [
        {"id": e.oid, "critical": e.critical} | ({"value": b64(e.value)} if e.value else {})
        for e in request.extensions
    ]
    return {
        "Raw": b64(request.raw),
        "RawTBSCertificateRequest": b64(request.tbs_raw),
        "RawSubjectPublicKeyInfo": b64(request.public_key.raw),
        "RawSubject": b64(request.subject_raw),
        "Version": request.version,
        "Signature": b64(request.signature),
        "SignatureAlgorithm": signature_algorithm_json(request.signature_algorithm),
        "PublicKeyAlgorithm": {"name": key_algorithm_name(request.public_key)},
        "PublicKey": _go_default_public_key(request.public_key),
        "Subject": name_json(request.subject),
        "Attributes": _csr_attributes_json(request),
        "Extensions": extensions or None,
        "ExtraExtensions": None,
        "DNSNames": list(sans.dns) or None,
        "EmailAddresses": list(sans.emails) or None,
        "IPAddresses": [ip_string(ip) for ip in sans.ips] or None,
    }
