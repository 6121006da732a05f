"""The X509v3 extensions section of a certificate's long text form (certinfo's printer).

One printer per extension certinfo knows (RFC 5280's, CT SCTs, step's provisioner, RA and
managed-endpoint extensions, YubiKey attestation), and certinfo's fallbacks for the others.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from cli.certinfo.der import (
    TAG_INTEGER,
    TAG_OID,
    TAG_SEQUENCE,
    CertParseError,
    children,
    decode_integer,
    decode_oid,
    decode_string,
    expect,
    parse_one,
)
from cli.certinfo.extensions import (
    OID_STEP_PROVISIONER,
    Extension,
    NameConstraints,
    parse_octet_string,
    parse_sct_list,
)
from cli.certinfo.general_names import ip_net_string
from cli.certinfo.gofmt import MONTHS, go_printable, go_runes
from cli.certinfo.model import Certificate
from cli.certinfo.text_blocks import (
    KEY_USAGE_NAMES,
    colon_hex_upper,
    hex_block,
    print_critical,
    print_sans,
)
from provisioners.extension import ProvisionerExtension

#: The extended key usages certinfo names the same way for certificates and CSRs.
EKU_NAMES = {
    "2.5.29.37.0": "Any Usage",
    "1.3.6.1.5.5.7.3.1": "Server Authentication",
    "1.3.6.1.5.5.7.3.2": "Client Authentication",
    "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "E-mail Protection",
    "1.3.6.1.5.5.7.3.5": "IPSec End System",
    "1.3.6.1.5.5.7.3.6": "IPSec Tunnel",
    "1.3.6.1.5.5.7.3.7": "IPSec User",
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
}
_EXT_KEY_USAGE_GO = {
    **EKU_NAMES,
    # Go knows these four but certinfo's certificate printer has no label for them.
    "1.3.6.1.4.1.311.10.3.3": "UNKNOWN",
    "2.16.840.1.113730.4.1": "UNKNOWN",
    "1.3.6.1.4.1.311.2.1.22": "UNKNOWN",
    "1.3.6.1.4.1.311.61.1.1": "UNKNOWN",
}
_OID_EK_CERTIFICATE = "2.23.133.8.1"


def _print_sct_list(extension: Extension, out: list[str]) -> None:
    print_critical("RFC6962 Certificate Transparency SCT", extension.critical, out)
    error = CertParseError(f'certinfo: Error parsing OID "{extension.oid}"')
    try:
        scts = parse_sct_list(parse_octet_string(extension.value))
    except (CertParseError, IndexError):
        raise error from None
    for index, sct in enumerate(scts):
        out.append(" " * 16 + f"SCT [{index}]:\n")
        version = "V1" if sct.version == 0 else f"UnknownVersion({sct.version})"
        out.append(" " * 20 + f"Version: {version} ({sct.version:#x})\n")
        out.append(" " * 20 + f"LogID: {base64.b64encode(sct.log_id).decode()}\n")
        try:
            when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=sct.timestamp)
        except OverflowError:
            raise CertParseError("certinfo: SCT timestamp out of range") from None
        stamp = (
            f"{MONTHS[when.month - 1]} {when.day} {when.hour:02d}:{when.minute:02d}:"
            f"{when.second:02d}.{when.microsecond // 1000:03d} {when.year:04d} UTC"
        )
        out.append(" " * 20 + f"Timestamp: {stamp}\n")
        hash_names = ("None", "MD5", "SHA1", "SHA224", "SHA256", "SHA384", "SHA512")
        sig_names = ("Anonymous", "RSA", "DSA", "ECDSA")
        hash_name = (
            hash_names[sct.hash_algorithm]
            if sct.hash_algorithm < len(hash_names)
            else f"UNKNOWN({sct.hash_algorithm})"
        )
        sig_name = (
            sig_names[sct.signature_algorithm]
            if sct.signature_algorithm < len(sig_names)
            else f"UNKNOWN({sct.signature_algorithm})"
        )
        out.append(" " * 20 + f"Signature Algorithm: {hash_name}-{sig_name}")
        hex_block(sct.signature, 18, 22, out)
        out.append("\n")


def _step_provisioner_text(extension: Extension, out: list[str]) -> None:
    print_critical("X509v3 Step Provisioner", extension.critical, out)
    try:
        value = ProvisionerExtension.from_der(extension.value)
    except ValueError:
        raise CertParseError(f'certinfo: Error parsing OID "{extension.oid}"') from None
    names = (
        "NOOP",
        "JWK",
        "OIDC",
        "GCP",
        "AWS",
        "Azure",
        "ACME",
        "X5C",
        "K8sSA",
        "SSHPOP",
        "SCEP",
        "Nebula",
    )
    type_number = int(value.type)
    type_name = names[type_number] if 0 <= type_number < len(names) else f"{type_number} (unknown)"
    pad = " " * 16
    out.append(pad + f"Type: {type_name}\n")
    out.append(pad + f"Name: {value.name}\n")
    if value.credential_id:
        out.append(pad + f"CredentialID: {value.credential_id}\n")
    pairs = value.key_value_pairs
    for i in range(0, len(pairs), 2):
        out.append(pad + f"{pairs[i]}: {pairs[i + 1] if i + 1 < len(pairs) else '-'}\n")


def print_cert_extension(cert: Certificate, extension: Extension, out: list[str]) -> None:
    oid = extension.oid
    pad = " " * 16
    if oid.startswith("2.5.29.") and oid.count(".") == 3:
        arc = int(oid.rsplit(".", 1)[1])
        if arc == 9:
            print_critical("X509v3 Subject Directory Attributes", extension.critical, out)
            _print_subject_directory_attributes(extension, out)
        elif arc == 14:
            print_critical("X509v3 Subject Key Identifier", extension.critical, out)
            out.append(pad + colon_hex_upper(cert.subject_key_id) + "\n")
        elif arc == 15:
            print_critical("X509v3 Key Usage", extension.critical, out)
            usages = [n for i, n in enumerate(KEY_USAGE_NAMES) if cert.key_usage & (1 << i)]
            out.append(pad + (", ".join(usages) if usages else "None") + "\n")
        elif arc == 17:
            print_sans(extension, cert.sans, out)
        elif arc == 19:
            print_critical("X509v3 Basic Constraints", extension.critical, out)
            is_ca, max_path = cert.basic_constraints or (False, -1)
            line = pad + ("CA:TRUE" if is_ca else "CA:FALSE")
            if max_path == 0:
                line += ", pathlen:0"
            elif max_path > 0:
                line += f", pathlen:{max_path}"
            out.append(line + "\n")
        elif arc == 30:
            print_critical("X509v3 Name Constraints", extension.critical, out)
            _print_cert_name_constraints(cert.name_constraints or NameConstraints(), out)
        elif arc == 31:
            print_critical("X509v3 CRL Distribution Points", extension.critical, out)
            if cert.crl_distribution_points:
                out.append(pad + "Full Name:\n" + " " * 18)
                out.append(", ".join(f"URI:{u}" for u in cert.crl_distribution_points) + "\n")
        elif arc == 32:
            print_critical("X509v3 Certificate Policies", extension.critical, out)
            for policy in cert.policies:
                out.append(pad + f"Policy: {policy.oid}\n")
        elif arc == 35:
            print_critical("X509v3 Authority Key Identifier", extension.critical, out)
            key_id = cert.authority_key_id
            out.append((pad + colon_hex_upper(key_id) if key_id else "") + "\n")
        elif arc == 37:
            print_critical("X509v3 Extended Key Usage", extension.critical, out)
            known = [_EXT_KEY_USAGE_GO[o] for o in cert.ext_key_usage if o in _EXT_KEY_USAGE_GO]
            unknown = [
                "EK Certificate" if o == _OID_EK_CERTIFICATE else o
                for o in cert.ext_key_usage
                if o not in _EXT_KEY_USAGE_GO
            ]
            if known or unknown:
                out.append(pad + ", ".join(known + unknown) + "\n")
        else:
            out.append(f"Unknown extension 2.5.29.{arc}\n")
        return

    simple_labels = {
        "1.3.6.1.4.1.57264.1.1": "Sigstore OIDC Issuer",
        "1.3.6.1.4.1.57264.1.2": "Sigstore GitHub Workflow Trigger",
        "1.3.6.1.4.1.57264.1.3": "Sigstore GitHub Workflow SHA Hash",
        "1.3.6.1.4.1.57264.1.4": "Sigstore GitHub Workflow Name",
        "1.3.6.1.4.1.57264.1.5": "Sigstore GitHub Workflow Repository",
        "1.3.6.1.4.1.57264.1.6": "Sigstore GitHub Workflow Ref",
    }
    if oid == "1.3.6.1.5.5.7.1.1":
        print_critical("Authority Information Access", extension.critical, out)
        if cert.aia.ocsp:
            out.append(pad + "OCSP - " + ",".join(f"URI:{u}" for u in cert.aia.ocsp) + "\n")
        if cert.aia.issuers:
            out.append(
                pad + "CA Issuers - " + ",".join(f"URI:{u}" for u in cert.aia.issuers) + "\n"
            )
    elif oid == "2.16.840.1.113730.1.13":
        try:
            comment = decode_string(parse_one(extension.value))
        except CertParseError:
            raise CertParseError(f'certinfo: Error parsing OID "{oid}"') from None
        print_critical("Netscape Comment", extension.critical, out)
        out.append(pad + comment + "\n")
    elif oid == OID_STEP_PROVISIONER:
        _step_provisioner_text(extension, out)
    elif oid == "1.3.6.1.4.1.37476.9000.64.2":
        _print_step_ra(extension, out)
    elif oid == "1.3.6.1.4.1.37476.9000.64.3":
        _print_step_managed_endpoint(extension, out)
    elif oid == "1.3.6.1.4.1.37476.9000.64.4":
        print_critical("X509v3 Step Managed Device", extension.critical, out)
        try:
            parts = children(expect(parse_one(extension.value), TAG_SEQUENCE, ""))
            device = decode_string(parts[0])
        except (CertParseError, IndexError):
            raise CertParseError(f'certinfo: Error parsing OID "{oid}"') from None
        out.append(pad + f"DeviceID: {device}\n")
    elif oid == "1.3.6.1.4.1.11129.2.4.2":
        _print_sct_list(extension, out)
    elif oid.startswith("1.3.6.1.4.1.41482.3."):
        _print_yubico(extension, out)
    elif oid in simple_labels:
        print_critical(simple_labels[oid], extension.critical, out)
        out.append(pad + extension.value.decode("utf-8", "replace") + "\n")
    else:
        print_critical(oid, extension.critical, out)
        out.append(pad + go_printable(go_runes(extension.value)) + "\n")


def _print_subject_directory_attributes(extension: Extension, out: list[str]) -> None:
    pad = " " * 16
    try:
        attributes = children(expect(parse_one(extension.value), TAG_SEQUENCE, ""))
        parts = children(expect(attributes[0], TAG_SEQUENCE, ""))
        attr_type = decode_oid(expect(parts[0], TAG_OID, "").content)
        attr_value = parts[1]
    except (CertParseError, IndexError):
        out.append(pad + go_printable(go_runes(extension.value)) + "\n")
        return
    if attr_type == "2.23.133.2.16":
        try:
            spec = children(parse_one(attr_value.content))
            family = decode_string(spec[0])
            level = decode_integer(spec[1].content)
            revision = decode_integer(spec[2].content)
            out.append(
                pad + f"TPM Specification: Family: {family}, Level: {level}, Revision: {revision}\n"
            )
            return
        except (CertParseError, IndexError):
            pass
    out.append(pad + f"{attr_type}: 0x{attr_value.content.hex()}\n")


def _print_cert_name_constraints(constraints: NameConstraints, out: list[str]) -> None:
    for label, names, ips in (
        ("Permitted", constraints.permitted, constraints.permitted_ips),
        ("Excluded", constraints.excluded, constraints.excluded_ips),
    ):
        if not (names.dns or names.emails or names.uris or ips):
            continue
        out.append(" " * 16 + f"{label}:\n")
        pad = " " * 18
        if names.dns:
            out.append(pad + "DNS: " + ", ".join(names.dns) + "\n")
        if names.emails:
            out.append(pad + "Email: " + ", ".join(names.emails) + "\n")
        if names.uris:
            out.append(pad + "URI: " + ", ".join(names.uris) + "\n")
        if ips:
            out.append(pad + "IP Range: " + ", ".join(ip_net_string(i, m) for i, m in ips) + "\n")


def _print_step_ra(extension: Extension, out: list[str]) -> None:
    print_critical("X509v3 Step Registration Authority", extension.critical, out)
    try:
        parts = children(expect(parse_one(extension.value), TAG_SEQUENCE, ""))
        kind = decode_string(parts[0])
        certificate_id = ""
        pairs: list[str] = []
        for part in parts[1:]:
            if part.is_universal(TAG_SEQUENCE):
                pairs = [decode_string(p) for p in children(part)]
            else:
                certificate_id = decode_string(part)
    except (CertParseError, IndexError):
        raise CertParseError(f'certinfo: Error parsing OID "{extension.oid}"') from None
    pad = " " * 16
    out.append(pad + f"Type: {kind}\n")
    if certificate_id:
        out.append(pad + f"CertificateID: {certificate_id}\n")
    for i in range(0, len(pairs), 2):
        out.append(pad + f"{pairs[i]}: {pairs[i + 1] if i + 1 < len(pairs) else '-'}\n")


def _print_step_managed_endpoint(extension: Extension, out: list[str]) -> None:
    print_critical("X509v3 Step Managed Endpoint", extension.critical, out)
    try:
        parts = children(expect(parse_one(extension.value), TAG_SEQUENCE, ""))
        kind = decode_integer(expect(parts[0], TAG_INTEGER, "").content)
        endpoint = decode_string(parts[1])
    except (CertParseError, IndexError):
        raise CertParseError(f'certinfo: Error parsing OID "{extension.oid}"') from None
    kinds = ("Unknown", "Device", "Workload", "People", "Agent", "Account")
    label = kinds[kind] if 0 <= kind < len(kinds) else f"{kind} (unknown)"
    out.append(" " * 16 + f"Kind: {label}\n" + " " * 16 + f"EndpointID: {endpoint}\n")


def _print_yubico(extension: Extension, out: list[str]) -> None:
    arc = extension.oid.rsplit(".", 1)[1]
    value = extension.value
    pad = " " * 16
    if arc == "3":
        print_critical("X509v3 YubiKey Firmware Version", extension.critical, out)
        out.append(pad + (".".join(str(b) for b in value) if value else "unknown") + "\n")
    elif arc == "7":
        try:
            serial = decode_integer(expect(parse_one(value), TAG_INTEGER, "").content)
        except CertParseError:
            raise CertParseError(f'certinfo: Error parsing OID "{extension.oid}"') from None
        print_critical("X509v3 YubiKey Serial Number", extension.critical, out)
        out.append(pad + f"{serial}\n")
    elif arc == "8":
        print_critical("X509v3 YubiKey Policy", extension.critical, out)
        if not value:
            out.append(pad + "unknown\n")
        pin = {1: "never", 2: "once per session", 3: "always"}
        touch = {1: "never", 2: "always", 3: "once per session"}
        for index, octet in enumerate(value[:2]):
            table, label = (pin, "PIN policy") if index == 0 else (touch, "Touch policy")
            out.append(pad + f"{label}: {table.get(octet, f'unknown (0x{octet:02x})')}\n")
    elif arc == "9":
        print_critical("X509v3 YubiKey Formfactor", extension.critical, out)
        out.append(pad + _yubico_formfactor(value) + "\n")
    elif arc == "10":
        print_critical("X509v3 YubiKey Certification", extension.critical, out)
        out.append(pad + "FIPS Certified\n")
    elif arc == "11":
        print_critical("X509v3 YubiKey Certification", extension.critical, out)
        out.append(pad + "CSPN Certified\n")
    else:
        print_critical(extension.oid, extension.critical, out)
        out.append(pad + go_printable(go_runes(value)) + "\n")


def _yubico_formfactor(value: bytes) -> str:
    if not value:
        return "unknown"
    # certinfo compares against decimal 81..85 (not 0x81..0x85); kept as it is.
    labels = {
        1: "USB-A Keychain",
        2: "USB-A Nano",
        3: "USB-C Keychain",
        4: "USB-C Nano",
        5: "Lightning or USB-C",
    }
    first = value[0]
    base = first - 80 if first in (81, 82, 83, 84, 85) else first
    if base not in labels:
        return f"unknown (0x{first:02x})"
    return labels[base] + (" (FIPS)" if first > 80 else "")
