"""How the flags of `step ca provisioner add|update` change a ca.json provisioner entry.

One function per provisioner type, plus the claims every type shares; `creating` tells `add`
(which writes step's defaults) from `update` (which changes only what was given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from appliance.config_edit import check_listen_address, check_url
from cli.ca.provisioner_flags import (
    ACME_CHALLENGES,
    ATTESTATION_FORMATS,
    SUPPORTED_TYPES,
    Flags,
    check_flags,
    flag_name,
    parse_kind,
)
from cli.ca.provisioner_keys import (
    new_password,
    read_attestation_roots,
    read_private_key,
    read_public_jwk,
    read_x5c_roots,
)
from cli.common import CLIError
from pki.durations import parse_duration
from pki.jose import private_jwk, public_jwk
from pki.jwe import encrypt_jwk


def _set_switches(
    target: dict[str, Any], flags: Flags, creating: bool, switches: tuple[tuple[str, str], ...]
) -> None:
    """Boolean flags to their keys; `add` writes the ones not given as false, as step does."""
    for attr, key in switches:
        value = getattr(flags, attr)
        if value is not None:
            target[key] = value
        elif creating:
            target[key] = False


def _apply_claims(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    existing = prov.get("claims")
    claims: dict[str, Any] = dict(existing) if isinstance(existing, dict) else {}
    for attr, key in (
        ("x509_min_dur", "minTLSCertDuration"),
        ("x509_max_dur", "maxTLSCertDuration"),
        ("x509_default_dur", "defaultTLSCertDuration"),
    ):
        value = getattr(flags, attr)
        if value is None:
            continue
        if value == "":
            claims.pop(key, None)
            continue
        try:
            parse_duration(value)
        except ValueError:
            raise CLIError(f"invalid value '{value}' for flag '{flag_name(attr)}'") from None
        claims[key] = value
    _set_switches(
        claims,
        flags,
        creating,
        (
            ("disable_renewal", "disableRenewal"),
            ("allow_renewal_after_expiry", "allowRenewalAfterExpiry"),
            ("disable_smallstep_extensions", "disableSmallstepExtensions"),
        ),
    )
    if claims:
        prov["claims"] = claims


def _apply_jwk(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    if flags.create:
        for attr in ("public_key", "private_key"):
            if flags.given(attr):
                raise CLIError(f"flag '--create' is incompatible with flag '{flag_name(attr)}'")
        key = ec.generate_private_key(ec.SECP256R1())
        prov["key"] = public_jwk(key)
        prov["encryptedKey"] = encrypt_jwk(private_jwk(key), new_password(flags.password_file))
        return
    if creating and flags.public_key is None:
        raise CLIError("flag '--public-key' is required unless '--create' is used")
    if flags.public_key is not None:
        prov["key"] = read_public_jwk(flags.public_key, flags.password_file)
    if flags.private_key == "":
        prov.pop("encryptedKey", None)
    elif flags.private_key is not None:
        prov["encryptedKey"] = read_private_key(
            Path(flags.private_key), prov["key"], flags.password_file
        )


def _merge(prov: dict[str, Any], key: str, add: list[str], remove: list[str]) -> None:
    current = prov.get(key)
    values = [v for v in current if isinstance(v, str)] if isinstance(current, list) else []
    values = [v for v in values if v not in remove]
    for v in add:
        if v not in values:
            values.append(v)
    if values:
        prov[key] = values
    else:
        prov.pop(key, None)


def _set(prov: dict[str, Any], key: str, value: str | None) -> None:
    if value is None:
        return
    if value == "":
        prov.pop(key, None)
    else:
        prov[key] = value


def _apply_oidc(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    if creating:
        for attr in ("client_id", "configuration_endpoint"):
            if not flags.given(attr):
                raise CLIError(f"flag '--type=OIDC' requires the '{flag_name(attr)}' flag")
    if flags.configuration_endpoint is not None and not check_url(flags.configuration_endpoint):
        raise CLIError(
            f"invalid value '{flags.configuration_endpoint}' for flag '--configuration-endpoint'"
        )
    if flags.listen_address and not check_listen_address(flags.listen_address):
        raise CLIError(
            f"invalid value '{flags.listen_address}' for flag '--listen-address': must be host:port"
        )
    _set(prov, "clientID", flags.client_id)
    if creating or flags.client_secret is not None:
        prov["clientSecret"] = flags.client_secret or ""
    _set(prov, "configurationEndpoint", flags.configuration_endpoint)
    _set(prov, "tenantID", flags.tenant_id)
    _merge(prov, "admins", flags.admin, flags.remove_admin)
    _merge(prov, "domains", flags.domain, flags.remove_domain)
    _merge(prov, "groups", flags.group, flags.remove_group)
    _set(prov, "listenAddress", flags.listen_address)


def _apply_iid_common(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    _set_switches(
        prov,
        flags,
        creating,
        (
            ("disable_custom_sans", "disableCustomSANs"),
            ("disable_trust_on_first_use", "disableTrustOnFirstUse"),
        ),
    )


def _instance_age(prov: dict[str, Any], flags: Flags) -> None:
    if flags.instance_age:
        try:
            ok = parse_duration(flags.instance_age).total_seconds() >= 0
        except ValueError:
            ok = False
        if not ok:
            raise CLIError(f"invalid value '{flags.instance_age}' for flag '--instance-age'")
    _set(prov, "instanceAge", flags.instance_age)


def _apply_aws(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    _merge(prov, "accounts", flags.aws_account, flags.remove_aws_account)
    _apply_iid_common(prov, flags, creating)
    _instance_age(prov, flags)
    if flags.iid_roots is not None:
        if not flags.iid_roots.is_file():
            raise CLIError(f"open {flags.iid_roots}: no such file")
        prov["iidRoots"] = str(flags.iid_roots.resolve())


def _apply_gcp(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    _merge(prov, "serviceAccounts", flags.gcp_service_account, flags.remove_gcp_service_account)
    _merge(prov, "projectIDs", flags.gcp_project, flags.remove_gcp_project)
    _apply_iid_common(prov, flags, creating)
    _instance_age(prov, flags)


def _apply_azure(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    if creating and not flags.azure_tenant:
        raise CLIError("flag '--type=Azure' requires the '--azure-tenant' flag")
    _set(prov, "tenantID", flags.azure_tenant)
    _merge(prov, "resourceGroups", flags.azure_resource_group, flags.remove_azure_resource_group)
    _merge(prov, "subscriptionIDs", flags.azure_subscription_id, flags.remove_azure_subscription_id)
    _merge(prov, "objectIDs", flags.azure_object_id, flags.remove_azure_object_id)
    _set(prov, "audience", flags.azure_audience)
    _apply_iid_common(prov, flags, creating)


def _apply_x5c(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    if creating and flags.x5c_roots is None:
        raise CLIError("flag '--type=X5C' requires the '--x5c-roots' flag")
    if flags.x5c_roots is not None:
        prov["roots"] = read_x5c_roots(flags.x5c_roots)


def _apply_acme(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    """step's ACME fields: forceCN and requireEAB written only when true (omitempty in
    step-ca), challenges lower-cased and de-duplicated (none: step-ca offers its default)."""
    lists: dict[str, list[str]] = {}
    for attr, allowed in (
        ("challenge", ACME_CHALLENGES), ("remove_challenge", ACME_CHALLENGES),
        ("attestation_format", ATTESTATION_FORMATS),
        ("remove_attestation_format", ATTESTATION_FORMATS),
    ):  # fmt: skip
        lists[attr] = []
        for value in getattr(flags, attr):
            if value.lower() not in allowed:
                options = ", ".join(allowed[:-1]) + f" and {allowed[-1]}"
                raise CLIError(
                    f"invalid value '{value}' for flag '{flag_name(attr)}': options are {options}"
                )
            lists[attr].append(value.lower())
    _merge(prov, "challenges", lists["challenge"], lists["remove_challenge"])
    _merge(
        prov, "attestationFormats", lists["attestation_format"],
        lists["remove_attestation_format"],
    )  # fmt: skip
    if flags.attestation_roots is not None:
        prov["attestationRoots"] = read_attestation_roots(flags.attestation_roots)
    for attr, key in (("force_cn", "forceCN"), ("require_eab", "requireEAB")):
        value = getattr(flags, attr)
        if value:
            prov[key] = True
        elif value is False:
            prov.pop(key, None)


_APPLY = {
    "JWK": _apply_jwk,
    "X5C": _apply_x5c,
    "OIDC": _apply_oidc,
    "ACME": _apply_acme,
    "AWS": _apply_aws,
    "GCP": _apply_gcp,
    "AZURE": _apply_azure,
}


def build_provisioner(name: str, kind: str, flags: Flags) -> dict[str, Any]:
    """The ca.json entry `add` writes."""
    kind = parse_kind(kind)
    check_flags(flags, kind)
    if not name:
        raise CLIError("the provisioner name cannot be empty")
    prov: dict[str, Any] = {"type": SUPPORTED_TYPES[kind], "name": name}
    _APPLY[kind](prov, flags, True)
    _apply_claims(prov, flags, True)
    return prov


def apply_update(prov: dict[str, Any], flags: Flags) -> None:
    """Change an existing ca.json entry as `update` does."""
    kind = str(prov.get("type", "")).upper()
    if kind not in _APPLY:
        raise CLIError(f"provisioner type '{prov.get('type')}' cannot be updated by Stepstone")
    check_flags(flags, kind)
    _APPLY[kind](prov, flags, False)
    _apply_claims(prov, flags, False)
