"""The flags of `step ca provisioner add|update` and which provisioner type each belongs to.

Kept as data so that a flag given for the wrong type is refused with step's message before
anything is read, prompted for or written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from cli.common import CLIError

SUPPORTED_TYPES = {"JWK": "JWK", "X5C": "X5C", "OIDC": "OIDC", "ACME": "ACME", "AWS": "AWS"}
SUPPORTED_TYPES.update(GCP="GCP", AZURE="Azure")
STEP_ONLY_TYPES = {"SSHPOP", "SCEP", "K8SSA", "NEBULA"}
#: What step accepts for `--challenge` (this build validates the ones appliance.acme knows).
ACME_CHALLENGES = ("http-01", "dns-01", "tls-alpn-01", "device-attest-01")
#: What step accepts for `--attestation-format` (this build checks "step").
ATTESTATION_FORMATS = ("apple", "step", "tpm", "android-key")


@dataclass
class Flags:
    """The flags of `add`/`update`; None / empty means "not given"."""

    create: bool = False
    public_key: Path | None = None
    private_key: str | None = None  # "" on update removes the encrypted key
    password_file: Path | None = None
    x509_min_dur: str | None = None
    x509_max_dur: str | None = None
    x509_default_dur: str | None = None
    disable_renewal: bool | None = None
    allow_renewal_after_expiry: bool | None = None
    disable_smallstep_extensions: bool | None = None
    x5c_roots: Path | None = None
    client_id: str | None = None
    client_secret: str | None = None
    configuration_endpoint: str | None = None
    listen_address: str | None = None
    tenant_id: str | None = None
    admin: list[str] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    remove_admin: list[str] = field(default_factory=list)
    remove_domain: list[str] = field(default_factory=list)
    remove_group: list[str] = field(default_factory=list)
    aws_account: list[str] = field(default_factory=list)
    remove_aws_account: list[str] = field(default_factory=list)
    gcp_service_account: list[str] = field(default_factory=list)
    remove_gcp_service_account: list[str] = field(default_factory=list)
    gcp_project: list[str] = field(default_factory=list)
    remove_gcp_project: list[str] = field(default_factory=list)
    azure_tenant: str | None = None
    azure_audience: str | None = None
    azure_resource_group: list[str] = field(default_factory=list)
    remove_azure_resource_group: list[str] = field(default_factory=list)
    azure_subscription_id: list[str] = field(default_factory=list)
    remove_azure_subscription_id: list[str] = field(default_factory=list)
    azure_object_id: list[str] = field(default_factory=list)
    remove_azure_object_id: list[str] = field(default_factory=list)
    instance_age: str | None = None
    iid_roots: Path | None = None
    disable_custom_sans: bool | None = None
    disable_trust_on_first_use: bool | None = None
    force_cn: bool | None = None
    require_eab: bool | None = None
    challenge: list[str] = field(default_factory=list)
    remove_challenge: list[str] = field(default_factory=list)
    attestation_format: list[str] = field(default_factory=list)
    remove_attestation_format: list[str] = field(default_factory=list)
    attestation_roots: Path | None = None

    def given(self, name: str) -> bool:
        value = getattr(self, name)
        return value not in (None, False, [])


_OIDC = {
    "client_id", "client_secret", "configuration_endpoint", "listen_address", "tenant_id",
    "admin", "domain", "group", "remove_admin", "remove_domain", "remove_group",
}  # fmt: skip
_IID = {"instance_age", "disable_custom_sans", "disable_trust_on_first_use"}
_TYPE_FLAGS: dict[str, set[str]] = {
    "JWK": {"create", "public_key", "private_key"},
    "X5C": {"x5c_roots"},
    "ACME": {
        "force_cn", "require_eab", "challenge", "remove_challenge", "attestation_format",
        "remove_attestation_format", "attestation_roots",
    },
    "OIDC": _OIDC,
    "AWS": {"aws_account", "remove_aws_account", "iid_roots"} | _IID,
    "GCP": {
        "gcp_service_account", "remove_gcp_service_account", "gcp_project",
        "remove_gcp_project",
    } | _IID,
    "AZURE": {
        "azure_tenant", "azure_audience", "azure_resource_group", "remove_azure_resource_group",
        "azure_subscription_id", "remove_azure_subscription_id", "azure_object_id",
        "remove_azure_object_id", "disable_custom_sans", "disable_trust_on_first_use",
    },
}  # fmt: skip
_SPECIFIC = set().union(*_TYPE_FLAGS.values())


def flag_name(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def check_flags(flags: Flags, kind: str) -> None:
    """Refuse flags that belong to another provisioner type."""
    allowed = _TYPE_FLAGS[kind]
    for f in fields(flags):
        if f.name in _SPECIFIC and f.name not in allowed and flags.given(f.name):
            raise CLIError(f"flag '{flag_name(f.name)}' is not valid for a {kind} provisioner")


def parse_kind(value: str) -> str:
    kind = value.strip().upper()
    if kind in STEP_ONLY_TYPES:
        raise CLIError(f"provisioner type '{value}' is not supported by Stepstone")
    if kind not in SUPPORTED_TYPES:
        raise CLIError(f"invalid value '{value}' for flag '--type': options are JWK, X5C, OIDC, "
                       "ACME, AWS, GCP and Azure")  # fmt: skip
    return kind
