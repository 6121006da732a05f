"""The printing blocks of the long text forms that certificates and CSRs share.

Subject and public key, hex dumps, critical markers and SANs (with their otherName and TPM
forms) are printed the same way by smallstep/certinfo's CertificateText and
CertificateRequestText; both renderings use these.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cli.certinfo.der import (
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    TAG_UTF8,
    CertParseError,
    Element,
    children,
    decode_oid,
    decode_string,
    expect,
    parse_one,
)
from cli.certinfo.extensions import (
    Extension,
)
from cli.certinfo.general_names import GeneralNames, ip_string
from cli.certinfo.gofmt import int_bytes
from cli.certinfo.keys import DSAKey, PublicKeyInfo
from cli.certinfo.names import Name, flat

KEY_USAGE_NAMES = (
    "Digital Signature",
    "Content Commitment",
    "Key Encipherment",
    "Data Encipherment",
    "Key Agreement",
    "Certificate Sign",
    "CRL Sign",
    "Encipher Only",
    "Decipher Only",
)


def hex_block(data: bytes, per_line: int, indent: int, out: list[str]) -> None:
    """certinfo's colon-separated hex dump; starts each row on a new line."""
    pieces = [f"{b:02x}" for b in data]
    text = ""
    for i, piece in enumerate(pieces):
        if i % per_line == 0:
            text += "\n" + " " * indent
        text += piece
        if i != len(pieces) - 1:
            text += ":"
    out.append(text)


def _format_name(name: Name) -> str:
    values: list[str] = []
    for attribute in flat(name):
        oid, value = attribute.oid, attribute.value
        if oid.startswith("2.5.4.") and oid.count(".") == 3:
            label = {
                "3": "CN",
                "5": "SERIALNUMBER",
                "6": "C",
                "7": "L",
                "8": "ST",
                "9": "STREET",
                "10": "O",
                "11": "OU",
                "17": "POSTALCODE",
            }.get(oid.rsplit(".", 1)[1])
            values.append(f"{label}={value}" if label else f"UnknownOID={oid}")
        elif oid == "1.2.840.113549.1.9.1":
            values.append(f"emailAddress={value}")
        elif oid == "0.9.2342.19200300.100.1.25":
            values.append(f"DC={value}")
        elif oid == "0.9.2342.19200300.100.1.1":
            values.append(f"UID={value}")
        else:
            values.append(f"{oid}={value}")
    return ",".join(values)


def print_name(name: Name, out: list[str]) -> None:
    """printName: values joined by ',' and a newline; nothing at all for an empty name."""
    text = _format_name(name)
    if text:
        out.append(text + "\n")


def _key_printer(label: str, value: int, out: list[str]) -> None:
    out.append(" " * 16 + f"{label}:")
    hex_block(int_bytes(value), 15, 20, out)
    out.append("\n")


def print_subject_information(
    subject: Name, key: PublicKeyInfo, is_csr: bool, out: list[str]
) -> None:
    out.append(" " * 8 + "Subject:")
    if flat(subject):
        out.append(" ")
        print_name(subject, out)
    else:
        out.append("\n")
    out.append(" " * 8 + "Subject Public Key Info:\n" + " " * 12 + "Public Key Algorithm: ")
    pk = key.key
    if isinstance(pk, rsa.RSAPublicKey):
        numbers = pk.public_numbers()
        out.append("RSA\n")
        out.append(" " * 16 + f"Public-Key: ({numbers.n.bit_length()} bit)\n")
        out.append(" " * 16 + "Modulus:")
        hex_block(int_bytes(numbers.n), 15, 20, out)
        out.append("\n" + " " * 16 + f"Exponent: {numbers.e} ({numbers.e:#x})\n")
    elif isinstance(pk, DSAKey):
        out.append("DSA\n")
        for label, value in (("pub", pk.y), ("P", pk.p), ("Q", pk.q), ("G", pk.g)):
            _key_printer(label, value, out)
    elif isinstance(pk, ec.EllipticCurvePublicKey):
        point = pk.public_numbers()
        out.append("ECDSA\n")
        out.append(" " * 16 + f"Public-Key: ({key.curve_bits} bit)\n")
        _key_printer("X", point.x, out)
        _key_printer("Y", point.y, out)
        out.append(" " * 16 + f"Curve: {key.curve}\n")
    elif isinstance(pk, ed25519.Ed25519PublicKey):
        out.append("Ed25519\n")
        out.append(" " * 16 + f"Public-Key: ({len(key.key_bytes)} bit)")
        hex_block(key.key_bytes, 15, 20, out)
        out.append("\n")
    else:
        out.append(key.display_algorithm + "\n")
        if not is_csr:
            out.append(" " * 16 + "Public-Key:\n")
        out.append(" " * 16 + "Raw Bytes:")
        hex_block(key.key_bytes, 15, 20, out)
        out.append("\n")


def print_critical(name: str, critical: bool, out: list[str], indent: int = 12) -> None:
    out.append(" " * indent + name + (": critical\n" if critical else ":\n"))


def colon_hex_upper(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def print_sans(extension: Extension, names: GeneralNames, out: list[str]) -> None:
    print_critical("X509v3 Subject Alternative Name", extension.critical, out)
    pad = " " * 16
    if names.dns:
        out.append(pad + ", ".join(f"DNS:{n}" for n in names.dns) + "\n")
    if names.emails:
        out.append(pad + ", ".join(f"email:{n}" for n in names.emails) + "\n")
    if names.ips:
        out.append(pad + ", ".join(f"IP Address:{ip_string(n)}" for n in names.ips) + "\n")
    if names.uris:
        out.append(pad + ", ".join(f"URI:{n}" for n in names.uris) + "\n")
    for item in names.raw:
        if item.tag == 0:
            _print_other_name(item, out)
        elif item.tag == 4 and item.constructed:
            _print_tpm_attributes(item, out)


def _print_other_name(item: Element, out: list[str]) -> None:
    try:
        parts = children(item)
        type_id = decode_oid(expect(parts[0], TAG_OID, "").content)
        if len(parts) != 2 or not parts[1].is_context(0):
            return
    except (CertParseError, IndexError):
        return
    inner = parts[1].content
    pad = " " * 16

    def raw_line() -> None:
        out.append(pad + f"OtherName: Type: {type_id}, Value: 0x{inner.hex()}\n")

    try:
        if type_id == "1.3.6.1.5.5.7.8.3":  # permanent identifier
            fields_ = children(expect(parse_one(inner), TAG_SEQUENCE, ""))
            text, assigner = "", ""
            for part in fields_:
                if part.is_universal(TAG_UTF8):
                    text = decode_string(part)
                elif part.is_universal(TAG_OID):
                    assigner = decode_oid(part.content)
            line = pad + f"Permanent Identifier: {text}" if text else ""
            if assigner:
                line += f", Assigner: {assigner}"
            out.append(line + "\n")
        elif type_id == "1.3.6.1.5.5.7.8.4":  # hardware module name
            fields_ = children(expect(parse_one(inner), TAG_SEQUENCE, ""))
            hw_type = decode_oid(expect(fields_[0], TAG_OID, "").content)
            serial = expect(fields_[1], TAG_OCTET_STRING, "").content.decode("utf-8", "replace")
            out.append(pad + f"Hardware Module Name: Type: {hw_type}, Serial Number: {serial}\n")
        elif type_id == "1.3.6.1.4.1.311.20.2.3":  # UPN
            out.append(pad + f"UPN: {decode_string(expect(parse_one(inner), TAG_UTF8, ''))}\n")
        elif type_id == "1.3.6.1.4.1.57264.1.7":  # sigstore
            out.append(pad + f"Sigstore Identity: {decode_string(parse_one(inner))}\n")
        else:
            raw_line()
    except (CertParseError, IndexError):
        raw_line()


_TPM_ATTRIBUTES = {
    "2.23.133.2.1": "TPM Manufacturer",
    "2.23.133.2.2": "TPM Model",
    "2.23.133.2.3": "TPM Version",
}


def _print_tpm_attributes(item: Element, out: list[str]) -> None:
    try:
        for rdn in children(parse_one(item.content)):
            for atv in children(rdn):
                parts = children(atv)
                label = _TPM_ATTRIBUTES.get(decode_oid(parts[0].content))
                if label:
                    out.append(" " * 16 + f"{label}: {decode_string(parts[1])}\n")
    except (CertParseError, IndexError):
        return
