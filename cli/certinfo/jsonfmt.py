"""``--format json`` of certificates: the JSON of smallstep/zcrypto's ``x509.Certificate``."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cli.certinfo.algorithms import (
    OID_RSA_PSS,
    SIGNATURE_ALGORITHMS,
    AlgorithmIdentifier,
    signature_scheme,
)
from cli.certinfo.der import CertParseError, children, parse_one
from cli.certinfo.extensions import (
    OID_STEP_PROVISIONER,
    SCT,
    NameConstraints,
    PolicyInformation,
    parse_extension,
    parse_octet_string,
    parse_sct_list,
)
from cli.certinfo.general_names import GeneralNames, ip_net_string, ip_string, parse_general_names
from cli.certinfo.gofmt import go_rfc3339, int_bytes
from cli.certinfo.govalidator import is_url
from cli.certinfo.keys import DSAKey, PublicKeyInfo, verify_signature
from cli.certinfo.model import Certificate
from cli.certinfo.names import Name, common_name, flat
from provisioners.extension import ProvisionerExtension


def go_json(value: object) -> str:
    """Go's json.Encoder with SetIndent("", "  "): HTML-safe escapes and a trailing newline."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text + "\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_DN_SHORT_NAMES: dict[str, str] = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.14": "searchGuide",
    "2.5.4.15": "businessCategory",
    "2.5.4.16": "postalAddress",
    "2.5.4.17": "postalCode",
    "2.5.4.18": "postOfficeBox",
    "2.5.4.19": "physicalDeliveryOfficeName",
    "2.5.4.20": "telephoneNumber",
    "2.5.4.41": "name",
    "2.5.4.42": "GN",
    "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier",
    "2.5.4.45": "x500UniqueIdentifier",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.72": "role",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionLocality",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionStateOrProvince",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionCountry",
}

# zcrypto's auxName fields, in their JSON order.
_NAME_JSON_FIELDS: tuple[tuple[str, str], ...] = (
    ("common_name", "2.5.4.3"),
    ("serial_number", "2.5.4.5"),
    ("country", "2.5.4.6"),
    ("locality", "2.5.4.7"),
    ("province", "2.5.4.8"),
    ("street_address", "2.5.4.9"),
    ("organization", "2.5.4.10"),
    ("organizational_unit", "2.5.4.11"),
    ("postal_code", "2.5.4.17"),
    ("domain_component", "0.9.2342.19200300.100.1.25"),
    ("email_address", "1.2.840.113549.1.9.1"),
    ("given_name", "2.5.4.42"),
    ("surname", "2.5.4.4"),
    ("jurisdiction_country", "1.3.6.1.4.1.311.60.2.1.3"),
    ("jurisdiction_locality", "1.3.6.1.4.1.311.60.2.1.1"),
    ("jurisdiction_province", "1.3.6.1.4.1.311.60.2.1.2"),
)


def name_json(name: Name) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    attributes = flat(name)
    for key, oid in _NAME_JSON_FIELDS:
        values = [a.value for a in attributes if a.oid == oid]
        if values:
            out[key] = values
    return out


def name_dn(name: Name) -> str:
    """zcrypto's pkix.Name.String(): "CN=a, O=b" in certificate order."""
    return ", ".join(f"{_DN_SHORT_NAMES.get(a.oid, a.oid)}={a.value}" for a in flat(name))


_SIGNATURE_JSON_OIDS = {
    # zcrypto marshals the *last* OID listed for an algorithm: for SHA1-RSA that is the ISO one.
    "SHA1-RSA": "1.3.14.3.2.29",
    "SHA256-RSAPSS": OID_RSA_PSS,
    "SHA384-RSAPSS": OID_RSA_PSS,
    "SHA512-RSAPSS": OID_RSA_PSS,
}


def signature_algorithm_json(algorithm: AlgorithmIdentifier) -> dict[str, str]:
    scheme = signature_scheme(algorithm)
    if not scheme.name:
        return {"name": "0", "oid": ""}
    oid = _SIGNATURE_JSON_OIDS.get(scheme.name)
    if oid is None:
        oid = next(o for o, v in SIGNATURE_ALGORITHMS.items() if v[0] == scheme.name)
    return {"name": scheme.name, "oid": oid}


def key_algorithm_name(key: PublicKeyInfo) -> str:
    if key.algorithm:
        return key.algorithm
    return "X25519" if key.algorithm_oid == "1.3.101.110" else "unknown_algorithm"


def _curve_parameters(curve: ec.EllipticCurve) -> dict[str, int]:
    """Domain parameters (p, n, b, gx, gy) of a NIST prime curve, derived at run time."""
    p = {
        "secp224r1": 2**224 - 2**96 + 1,
        "secp256r1": 2**256 - 2**224 + 2**192 + 2**96 - 1,
        "secp384r1": 2**384 - 2**128 - 2**96 + 2**32 - 1,
        "secp521r1": 2**521 - 1,
    }[curve.name]
    generator = ec.derive_private_key(1, curve).public_key().public_numbers()
    gx, gy = generator.x, generator.y
    b = (gy * gy - gx**3 + 3 * gx) % p
    return {"p": p, "n": _CURVE_ORDERS[curve.name], "b": b, "gx": gx, "gy": gy}


_CURVE_ORDERS = {
    "secp224r1": int("ffffffffffffffffffffffffffff16a2e0b8f03e13dd29455c5c2a3d", 16),
    "secp256r1": int("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16),
    "secp384r1": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973",
        16,
    ),
    "secp521r1": int(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        16,
    ),
}


def _subject_key_info_json(key: PublicKeyInfo) -> dict[str, object]:
    out: dict[str, object] = {"key_algorithm": {"name": key_algorithm_name(key)}}
    pk = key.key
    if isinstance(pk, rsa.RSAPublicKey):
        numbers = pk.public_numbers()
        modulus = int_bytes(numbers.n)
        out["rsa_public_key"] = {
            "exponent": numbers.e,
            "modulus": b64(modulus),
            "length": len(modulus) * 8,
        }
    elif isinstance(pk, DSAKey):
        out["dsa_public_key"] = {
            "g": b64(int_bytes(pk.g)),
            "p": b64(int_bytes(pk.p)),
            "q": b64(int_bytes(pk.q)),
            "y": b64(int_bytes(pk.y)),
        }
    elif isinstance(pk, ec.EllipticCurvePublicKey):
        point = pk.public_numbers()
        curve = _curve_parameters(pk.curve)
        out["ecdsa_public_key"] = {
            "b": b64(int_bytes(curve["b"])),
            "curve": key.curve,
            "gx": b64(int_bytes(curve["gx"])),
            "gy": b64(int_bytes(curve["gy"])),
            "length": key.curve_bits,
            "n": b64(int_bytes(curve["n"])),
            "p": b64(int_bytes(curve["p"])),
            "pub": b64(key.key_bytes),
            "x": b64(int_bytes(point.x)),
            "y": b64(int_bytes(point.y)),
        }
    out["fingerprint_sha256"] = hashlib.sha256(key.raw).hexdigest()
    return out


def _general_names_json(names: GeneralNames) -> dict[str, object]:
    out: dict[str, object] = {}
    if names.directory_names:
        out["directory_names"] = [name_json(n) for n in names.directory_names]
    if names.dns:
        out["dns_names"] = list(names.dns)
    if names.edi_party_names:
        out["edi_party_names"] = [
            ({"name_assigner": e.name_assigner} if e.name_assigner else {})
            | {"party_name": e.party_name}
            for e in names.edi_party_names
        ]
    if names.emails:
        out["email_addresses"] = list(names.emails)
    if names.ips:
        out["ip_addresses"] = [ip_string(ip) for ip in names.ips]
    if names.other_names:
        out["other_names"] = [
            {"id": o.type_id} | ({"value": b64(o.value)} if o.value else {})
            for o in names.other_names
        ]
    if names.registered_ids:
        out["registered_ids"] = list(names.registered_ids)
    if names.uris:
        out["uniform_resource_identifiers"] = list(names.uris)
    return out


def _ip_subtree_json(ip: bytes, mask: bytes) -> dict[str, str]:
    out = {"cidr": ip_net_string(ip, mask)}
    masked = bytes(a & b for a, b in zip(ip, mask, strict=True))
    top = bytes(a | (~b & 0xFF) for a, b in zip(ip, mask, strict=True))
    ones = bin(int.from_bytes(mask, "big")).count("1")
    width = len(mask) * 8
    if int.from_bytes(mask, "big") != ((1 << width) - 1) ^ ((1 << (width - ones)) - 1):
        return out
    out["begin"] = ip_string(masked)
    out["end"] = ip_string(top)
    out["mask"] = ip_string(mask)
    return out


def _name_constraints_json(critical: bool, nc: NameConstraints) -> dict[str, object]:
    out: dict[str, object] = {"critical": critical}
    for prefix, names, ips in (
        ("permitted", nc.permitted, nc.permitted_ips),
        ("excluded", nc.excluded, nc.excluded_ips),
    ):
        if names.dns:
            out[f"{prefix}_names"] = list(names.dns)
        if names.emails:
            out[f"{prefix}_email_addresses"] = list(names.emails)
        if ips:
            out[f"{prefix}_ip_addresses"] = [_ip_subtree_json(i, m) for i, m in ips]
        if names.directory_names:
            out[f"{prefix}_directory_names"] = [name_json(n) for n in names.directory_names]
        if names.registered_ids:
            out[f"{prefix}_registred_id"] = list(names.registered_ids)
    return out


# zcrypto's auxExtendedKeyUsage fields (JSON order) with their OIDs.
_EKU_JSON_FIELDS: tuple[tuple[str, str], ...] = (
    ("eap_over_ppp", "1.3.6.1.5.5.7.3.13"),
    ("ocsp_signing", "1.3.6.1.5.5.7.3.9"),
    ("apple_software_update_signing", "1.2.840.113635.100.4.1.2"),
    ("apple_crypto_test_env", "1.2.840.113635.100.4.5.3"),
    ("microsoft_embedded_nt_crypto", "1.3.6.1.4.1.311.10.3.8"),
    ("microsoft_drm_individualization", "1.3.6.1.4.1.311.10.5.2"),
    ("microsoft_key_recovery_21", "1.3.6.1.4.1.311.21.6"),
    ("apple_crypto_production_env", "1.2.840.113635.100.4.5.1"),
    ("apple_crypto_tier1_qos", "1.2.840.113635.100.4.6.2"),
    ("client_auth", "1.3.6.1.5.5.7.3.2"),
    ("code_signing", "1.3.6.1.5.5.7.3.3"),
    ("apple_crypto_development_env", "1.2.840.113635.100.4.5.4"),
    ("apple_crypto_tier0_qos", "1.2.840.113635.100.4.6.1"),
    ("apple_crypto_tier2_qos", "1.2.840.113635.100.4.6.3"),
    ("microsoft_mobile_device_software", "1.3.6.1.4.1.311.10.3.14"),
    ("microsoft_nt5_crypto", "1.3.6.1.4.1.311.10.3.6"),
    ("apple_code_signing_third_party", "1.2.840.113635.100.4.1.3"),
    ("microsoft_timestamp_signing", "1.3.6.1.4.1.311.10.3.2"),
    ("microsoft_root_list_signer", "1.3.6.1.4.1.311.10.3.9"),
    ("microsoft_system_health", "1.3.6.1.4.1.311.47.1.1"),
    ("time_stamping", "1.3.6.1.5.5.7.3.8"),
    ("apple_code_signing_development", "1.2.840.113635.100.4.1.1"),
    ("apple_crypto_qos", "1.2.840.113635.100.4.6"),
    ("microsoft_document_signing", "1.3.6.1.4.1.311.10.3.12"),
    ("microsoft_encrypted_file_system", "1.3.6.1.4.1.311.10.3.4"),
    ("microsoft_whql_crypto", "1.3.6.1.4.1.311.10.3.5"),
    ("netscape_server_gated_crypto", "2.16.840.1.113730.4.1"),
    ("apple_crypto_tier3_qos", "1.2.840.113635.100.4.6.4"),
    ("microsoft_smart_display", "1.3.6.1.4.1.311.10.3.15"),
    ("microsoft_efs_recovery", "1.3.6.1.4.1.311.10.3.4.1"),
    ("microsoft_kernel_mode_code_signing", "1.3.6.1.4.1.311.61.1.1"),
    ("server_auth", "1.3.6.1.5.5.7.3.1"),
    ("ipsec_end_system", "1.3.6.1.5.5.7.3.5"),
    ("ipsec_user", "1.3.6.1.5.5.7.3.7"),
    ("microsoft_qualified_subordinate", "1.3.6.1.4.1.311.10.3.10"),
    ("apple_resource_signing", "1.2.840.113635.100.4.1.4"),
    ("microsoft_oem_whql_crypto", "1.3.6.1.4.1.311.10.3.7"),
    ("microsoft_smartcard_logon", "1.3.6.1.4.1.311.20.2.2"),
    ("email_protection", "1.3.6.1.5.5.7.3.4"),
    ("microsoft_server_gated_crypto", "1.3.6.1.4.1.311.10.3.3"),
    ("microsoft_ca_exchange", "1.3.6.1.4.1.311.21.5"),
    ("dvcs", "1.3.6.1.5.5.7.3.10"),
    ("apple_ichat_signing", "1.2.840.113635.100.4.2"),
    ("apple_ichat_encryption", "1.2.840.113635.100.4.3"),
    ("apple_code_signing", "1.2.840.113635.100.4.1"),
    ("apple_crypto_env", "1.2.840.113635.100.4.5"),
    ("microsoft_system_health_loophole", "1.3.6.1.4.1.311.47.1.3"),
    ("any", "2.5.29.37.0"),
    ("apple_crypto_maintenance_env", "1.2.840.113635.100.4.5.2"),
    ("ipsec_tunnel", "1.3.6.1.5.5.7.3.6"),
    ("microsoft_lifetime_signing", "1.3.6.1.4.1.311.10.3.13"),
    ("microsoft_csp_signature", "1.3.6.1.4.1.311.10.3.16"),
    ("microsoft_sgc_serialized", "1.3.6.1.4.1.311.10.3.3.1"),
    ("sbgp_cert_aa_service_auth", "1.3.6.1.5.5.7.3.11"),
    ("eap_over_lan", "1.3.6.1.5.5.7.3.14"),
    ("microsoft_license_server", "1.3.6.1.4.1.311.10.5.4"),
    ("microsoft_enrollment_agent", "1.3.6.1.4.1.311.20.2.1"),
    ("apple_system_identity", "1.2.840.113635.100.4.4"),
    ("microsoft_key_recovery_3", "1.3.6.1.4.1.311.10.3.11"),
    ("microsoft_cert_trust_list_signing", "1.3.6.1.4.1.311.10.3.1"),
    ("microsoft_drm", "1.3.6.1.4.1.311.10.5.1"),
    ("microsoft_licenses", "1.3.6.1.4.1.311.10.5.3"),
)
_EKU_JSON_OIDS = {oid for _, oid in _EKU_JSON_FIELDS}


def _extended_key_usage_json(usages: Sequence[str]) -> dict[str, object]:
    present = set(usages)
    out: dict[str, object] = {name: True for name, oid in _EKU_JSON_FIELDS if oid in present}
    unknown = [u for u in usages if u not in _EKU_JSON_OIDS]
    if unknown:
        out["unknown"] = unknown
    return out


def _key_usage_json(usage: int) -> dict[str, object]:
    keys = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "certificate_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    out: dict[str, object] = {key: True for i, key in enumerate(keys) if usage & (1 << i)}
    out["value"] = usage
    return out


def _policies_json(policies: Sequence[PolicyInformation]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for policy in policies:
        entry: dict[str, object] = {"id": policy.oid}
        if policy.cps:
            entry["cps"] = list(policy.cps)
        notices: list[dict[str, object]] = []
        for index, text in enumerate(policy.explicit_texts):
            notice: dict[str, object] = {"explicit_text": text} if text else {}
            if policy.notice_refs and index < len(policy.notice_refs):
                organization, numbers = policy.notice_refs[index]
                ref: dict[str, object] = {"organization": organization} if organization else {}
                if numbers:
                    ref["notice_numbers"] = numbers
                notice["notice_reference"] = [ref]
            notices.append(notice)
        if notices:
            entry["user_notice"] = notices
        out.append(entry)
    return out


def _step_provisioner_json(value: ProvisionerExtension) -> dict[str, str]:
    type_number = int(value.type)
    names = {1: "JWK", 2: "OIDC", 3: "GCP", 4: "AWS", 5: "Azure", 6: "ACME", 7: "X5C", 8: "K8sSA"}
    out: dict[str, str] = {
        "type": names.get(type_number, f"Unknown ({type_number:#x})"),
        "name": value.name,
    }
    if value.credential_id:
        out["credentialID"] = value.credential_id
    pairs = value.key_value_pairs
    for i in range(0, len(pairs), 2):
        key = pairs[i]
        if key and "A" <= key[0] <= "Z":
            key = key[0].lower() + key[1:]
        out[key] = pairs[i + 1] if i + 1 < len(pairs) else "-"
    return dict(sorted(out.items()))


def _extensions_json(cert: Certificate) -> tuple[dict[str, object], list[dict[str, object]]]:
    """zcrypto's jsonifyExtensions: known extensions by field, the rest as unknown."""
    known: dict[str, object] = {}
    unknown: list[dict[str, object]] = []
    for extension in cert.extensions:
        oid = extension.oid
        if oid == "2.5.29.15":
            if cert.key_usage:
                known["key_usage"] = _key_usage_json(cert.key_usage)
        elif oid == "2.5.29.19":
            is_ca, max_path = cert.basic_constraints or (False, -1)
            constraints: dict[str, object] = {"is_ca": is_ca}
            if max_path >= 0:
                constraints["max_path_len"] = max_path
            known["basic_constraints"] = constraints
        elif oid == "2.5.29.17":
            sans = parse_general_names(extension.value, strict=True)
            known["subject_alt_name"] = _general_names_json(sans)
        elif oid == "2.5.29.18":
            ian = parse_general_names(extension.value, strict=True)
            known["issuer_alt_name"] = _general_names_json(ian)
        elif oid == "2.5.29.30":
            known["name_constraints"] = _name_constraints_json(
                extension.critical, cert.name_constraints or NameConstraints()
            )
        elif oid == "2.5.29.31":
            if cert.crl_distribution_points:
                known["crl_distribution_points"] = list(cert.crl_distribution_points)
        elif oid == "2.5.29.35":
            if cert.authority_key_id:
                known["authority_key_id"] = cert.authority_key_id.hex()
        elif oid == "2.5.29.14":
            if cert.subject_key_id:
                known["subject_key_id"] = cert.subject_key_id.hex()
        elif oid == "2.5.29.37":
            known["extended_key_usage"] = _extended_key_usage_json(cert.ext_key_usage)
        elif oid == "2.5.29.32":
            known["certificate_policies"] = _policies_json(cert.policies)
        elif oid == "1.3.6.1.5.5.7.1.1":
            aia: dict[str, object] = {}
            if cert.aia.ocsp:
                aia["ocsp_urls"] = list(cert.aia.ocsp)
            if cert.aia.issuers:
                aia["issuer_urls"] = list(cert.aia.issuers)
            known["authority_info_access"] = aia
        elif oid == "1.3.6.1.4.1.11129.2.4.2":
            scts = parse_sct_list(parse_octet_string(extension.value))
            if scts:
                known["signed_certificate_timestamps"] = [_sct_json(s) for s in scts]
        elif oid == "1.3.6.1.4.1.11129.2.4.3":
            known["ct_poison"] = True
        elif oid == OID_STEP_PROVISIONER:
            if cert.provisioner is None:
                raise CertParseError("asn1: malformed step provisioner extension")
            known["step_provisioner"] = _step_provisioner_json(cert.provisioner)
        else:
            entry: dict[str, object] = {"id": oid, "critical": extension.critical}
            if extension.value:
                entry["value"] = b64(extension.value)
            unknown.append(entry)
    order = (
        "key_usage",
        "basic_constraints",
        "subject_alt_name",
        "issuer_alt_name",
        "name_constraints",
        "crl_distribution_points",
        "authority_key_id",
        "subject_key_id",
        "extended_key_usage",
        "certificate_policies",
        "authority_info_access",
        "ct_poison",
        "signed_certificate_timestamps",
        "step_provisioner",
    )
    return {key: known[key] for key in order if key in known}, unknown


def _sct_json(sct: SCT) -> dict[str, object]:
    out: dict[str, object] = {"version": sct.version, "log_id": b64(sct.log_id)}
    seconds = sct.timestamp // 1000
    if seconds > 253402300799:
        seconds = 0
    if seconds:
        out["timestamp"] = seconds
    if sct.extensions:
        out["extensions"] = b64(sct.extensions)
    out["signature"] = b64(sct.digitally_signed())
    return out


def _tbs_without_ct(cert: Certificate) -> bytes:
    """The TBSCertificate re-encoded without the CT poison and SCT list extensions."""
    drop = {"1.3.6.1.4.1.11129.2.4.2", "1.3.6.1.4.1.11129.2.4.3"}
    if not any(e.oid in drop for e in cert.extensions):
        return cert.tbs_raw
    pieces: list[bytes] = []
    for part in cert.tbs_parts:
        if part.is_context(3) and part.constructed:
            kept = [
                item.raw
                for item in children(parse_one(part.content))
                if parse_extension(item).oid not in drop
            ]
            if kept:
                pieces.append(_tlv(0xA3, _tlv(0x30, b"".join(kept))))
        else:
            pieces.append(part.raw)
    return _tlv(0x30, b"".join(pieces))


def _tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + body


_CABF_EV = {"2.23.140.1.1", "2.23.140.1.3", "2.23.140.1.31"}
_CABF_OV = {"2.23.140.1.2.2", "2.23.140.1.2.3"}
_CABF_DV = {"2.23.140.1.2.1"}


def _validation_level(cert: Certificate, self_signed: bool) -> str:
    if cert.extension("2.5.29.32") is None or self_signed:
        return "unknown"
    level = 0
    for policy in cert.policies:
        if policy.oid in _CABF_EV:
            return "EV"
        if policy.oid in _CABF_OV:
            level = max(level, 2)
        elif policy.oid in _CABF_DV:
            level = max(level, 1)
    if level == 0:
        subject = flat(cert.subject)
        organization = [a.value for a in subject if a.oid == "2.5.4.10"]
        units = [a.value for a in subject if a.oid == "2.5.4.11"]
        cn = common_name(cert.subject)
        if (organization and organization[0] == cn) or (
            units and "Domain Control Validated" in units[0]
        ):
            if not any(a.oid in ("2.5.4.7", "2.5.4.8", "2.5.4.17") for a in subject):
                level = 1
        elif (
            organization
            and organization[0] == "Persona Not Validated"
            and "StartCom" in common_name(cert.issuer)
        ):
            level = 1
    return {0: "unknown", 1: "DV", 2: "OV", 3: "EV"}[level]


def _json_names(cert: Certificate) -> list[str]:
    names: list[str] = []
    cn = common_name(cert.subject)

    def valid_name(name: str) -> bool:
        if name.startswith(("?.", "*.")):
            return valid_name(name[2:])
        return is_url(name)

    if valid_name(cn):
        names.append(cn)
    for dns in cert.sans.dns:
        if valid_name(dns) or "." not in dns:
            names.append(dns)
    names.extend(uri for uri in cert.sans.uris if is_url(uri))
    names.extend(ip_string(ip) for ip in cert.sans.ips if is_url(ip_string(ip)))
    return list(dict.fromkeys(names))


def _validity_seconds(start: datetime, end: datetime) -> int:
    """int(time.Sub().Seconds()) with Go's Duration saturation at +-2^63 ns."""
    delta = end - start
    nanoseconds = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    nanoseconds = max(-(2**63), min(2**63 - 1, nanoseconds))
    return int(nanoseconds / 10**9) if abs(nanoseconds) < 2**52 else nanoseconds // 10**9


def _clamped(when: datetime) -> str:
    return go_rfc3339(min(when, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)))


def certificate_json(cert: Certificate) -> dict[str, object]:
    """The object zcrypto's Certificate.MarshalJSON produces, keys in Go's order."""
    extensions, unknown = _extensions_json(cert)
    self_signed = cert.subject_raw == cert.issuer_raw and verify_signature(
        cert.public_key.key,
        cert.tbs_signature_algorithm,
        cert.tbs_raw,
        cert.signature,
        go_std=False,
    )
    signature_algorithm = signature_algorithm_json(cert.tbs_signature_algorithm)
    out: dict[str, object] = {
        "version": cert.version,
        "serial_number": str(cert.serial),
        "signature_algorithm": signature_algorithm,
        "issuer": name_json(cert.issuer),
    }
    issuer_dn = name_dn(cert.issuer)
    if issuer_dn:
        out["issuer_dn"] = issuer_dn
    out["validity"] = {
        "start": _clamped(cert.not_before),
        "end": _clamped(cert.not_after),
        "length": _validity_seconds(cert.not_before, cert.not_after),
    }
    out["subject"] = name_json(cert.subject)
    subject_dn = name_dn(cert.subject)
    if subject_dn:
        out["subject_dn"] = subject_dn
    out["subject_key_info"] = _subject_key_info_json(cert.public_key)
    out["extensions"] = extensions
    if unknown:
        out["unknown_extensions"] = unknown
    out["signature"] = {
        "signature_algorithm": signature_algorithm,
        "value": b64(cert.signature),
        "valid": False,
        "self_signed": self_signed,
    }
    out["fingerprint_md5"] = hashlib.md5(cert.raw, usedforsecurity=False).hexdigest()
    out["fingerprint_sha1"] = hashlib.sha1(cert.raw, usedforsecurity=False).hexdigest()
    out["fingerprint_sha256"] = hashlib.sha256(cert.raw).hexdigest()
    out["tbs_noct_fingerprint"] = hashlib.sha256(_tbs_without_ct(cert)).hexdigest()
    out["spki_subject_fingerprint"] = hashlib.sha256(
        cert.public_key.raw + cert.subject_raw
    ).hexdigest()
    out["tbs_fingerprint"] = hashlib.sha256(cert.tbs_raw).hexdigest()
    out["validation_level"] = _validation_level(cert, self_signed)
    names = _json_names(cert)
    if names:
        out["names"] = names
    out["redacted"] = any(name.startswith("?") for name in names)
    return out


def certificates_json(certs: Sequence[Certificate]) -> str:
    """step's JSON output: one object for one certificate, else an array."""
    if len(certs) == 1:
        return go_json(certificate_json(certs[0]))
    return go_json([certificate_json(cert) for cert in certs])
