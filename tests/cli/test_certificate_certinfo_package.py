"""cli.certinfo is a package of single-purpose modules with the old module's public API."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import cli.certinfo

# Every public name the single-module cli/certinfo.py defined.
PUBLIC_API = {
    "AlgorithmIdentifier",
    "Attribute",
    "AuthorityInfoAccess",
    "CertParseError",
    "Certificate",
    "CertificateRequest",
    "EDIPartyName",
    "Element",
    "Extension",
    "GeneralNames",
    "Name",
    "NameConstraints",
    "OID_STEP_PROVISIONER",
    "OtherName",
    "PEMBlock",
    "PolicyInformation",
    "PublicKey",
    "PublicKeyInfo",
    "SCT",
    "SignatureScheme",
    "abbreviated",
    "algorithm_display_name",
    "certificate_json",
    "certificate_request_json",
    "certificate_request_short_text",
    "certificate_request_text",
    "certificate_short_text",
    "certificate_text",
    "certificate_type",
    "certificates_json",
    "children",
    "common_name",
    "decode_bit_string",
    "decode_boolean",
    "decode_integer",
    "decode_oid",
    "decode_string",
    "decode_time",
    "flat",
    "go_json",
    "go_rfc3339",
    "go_runes",
    "go_validity_time",
    "ip_net_string",
    "ip_string",
    "name_dn",
    "name_json",
    "parse_algorithm",
    "parse_authority_info_access",
    "parse_authority_key_id",
    "parse_basic_constraints",
    "parse_certificate",
    "parse_certificate_bundle",
    "parse_certificate_request",
    "parse_certificate_request_data",
    "parse_crl_distribution_points",
    "parse_extension",
    "parse_general_names",
    "parse_key_usage",
    "parse_name",
    "parse_name_constraints",
    "parse_octet_string",
    "parse_oid_sequence",
    "parse_one",
    "parse_policies",
    "parse_public_key",
    "parse_sct_list",
    "pem_blocks",
    "pem_encode",
    "read_element",
    "signature_scheme",
    "verify_signature",
}


def test_public_api_is_unchanged() -> None:
    assert set(cli.certinfo.__all__) == PUBLIC_API
    for name in PUBLIC_API:
        assert getattr(cli.certinfo, name) is not None


def test_every_module_is_documented_and_defines_what_it_exports() -> None:
    modules = [
        importlib.import_module(f"cli.certinfo.{info.name}")
        for info in pkgutil.iter_modules(cli.certinfo.__path__)
    ]
    assert len(modules) >= 10
    for module in modules:
        assert module.__doc__, module.__name__
    for name in PUBLIC_API:
        value = getattr(cli.certinfo, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert value.__module__.startswith("cli.certinfo."), name
