"""The ``extensions`` and ``unknown_extensions`` of a certificate's ``--format json``.

zcrypto's JSON of each extension it knows (names, constraints, key usages, policies, SCTs,
step's provisioner extension), kept apart from the certificate's other fields because it is
most of the rendering.
"""

from __future__ import annotations

from collections.abc import Sequence

from cli.certinfo.der import CertParseError
from cli.certinfo.extensions import (
    OID_STEP_PROVISIONER,
    SCT,
    NameConstraints,
    PolicyInformation,
    parse_octet_string,
    parse_sct_list,
)
from cli.certinfo.general_names import GeneralNames, ip_net_string, ip_string, parse_general_names
from cli.certinfo.json_common import b64, name_json
from cli.certinfo.model import Certificate
from provisioners.extension import ProvisionerExtension


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


def extensions_json(cert: Certificate) -> tuple[dict[str, object], list[dict[str, object]]]:
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
                known["signed_certificate_timestamps"] = [sct_json(s) for s in scts]
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


def sct_json(sct: SCT) -> dict[str, object]:
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
