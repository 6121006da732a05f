"""`step ca provisioner add|update|remove`: edit the provisioners in ca.json.

Like step without remote management, the commands edit the CA's configuration file
(`--ca-config`, default $STEPPATH/config/ca.json) and ask for a reload. Every edit is applied to
a copy, validated as a whole by the loader the CA uses, backed up to `ca.json.bak` and written
atomically (appliance.config_edit); a refused edit leaves ca.json untouched.

The flags and their types are in :mod:`cli.ca.provisioner_flags`, the key files in
:mod:`cli.ca.provisioner_keys` and the changes to an entry in :mod:`cli.ca.provisioner_fields`;
this module holds the commands and their options.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance.config_edit import (
    RELOAD_MESSAGE,
    ConfigEditError,
    EditResult,
    add_provisioner,
    backup_path,
    default_config_path,
    find_provisioner,
    load_raw,
    remove_provisioner,
    update_provisioner,
)
from cli.ca import ui
from cli.ca.provisioner_fields import apply_update, build_provisioner
from cli.ca.provisioner_flags import Flags
from cli.common import CLIError, check_writable

CA_CONFIG_HELP = "The path to the CA configuration file (default: $STEPPATH/config/ca.json)."

# --- commands ---------------------------------------------------------------------------------


def _config_path(ca_config: Path | None) -> Path:
    """--ca-config or the default, once ca.json and its backup are known to be writable."""
    path = ca_config if ca_config is not None else default_config_path()
    target = path.resolve()  # what the edit replaces, as appliance.config_edit does
    check_writable(target, backup_path(target))
    return path


def _done(result: EditResult) -> None:
    for warning in result.warnings:
        ui.note(f"warning: {warning}")
    ui.selected("Backup", str(result.backup))
    ui.note(RELOAD_MESSAGE)


def _run(action: Any) -> EditResult:
    try:
        result: EditResult = action()
    except ConfigEditError as exc:
        raise CLIError(str(exc)) from None
    return result


_DUR = "(Go duration, e.g. 5m, 24h)"

# The options `add` and `update` share (the others differ in their help).
_PasswordFile = Annotated[
    Path | None,
    typer.Option("--password-file", help="JWK: the password that encrypts the private key."),
]
_X509MinDur = Annotated[str | None, typer.Option("--x509-min-dur", help=f"Minimum {_DUR}.")]
_X509MaxDur = Annotated[str | None, typer.Option("--x509-max-dur", help=f"Maximum {_DUR}.")]
_X509DefaultDur = Annotated[str | None, typer.Option("--x509-default-dur", help=f"Default {_DUR}.")]
_DisableRenewal = Annotated[
    bool | None, typer.Option("--disable-renewal/--no-disable-renewal", help="Refuse renewals.")
]
_AllowRenewalAfterExpiry = Annotated[
    bool | None,
    typer.Option(
        "--allow-renewal-after-expiry/--no-allow-renewal-after-expiry",
        help="Renew expired certificates.",
    ),
]
_DisableSmallstepExtensions = Annotated[
    bool | None,
    typer.Option(
        "--disable-smallstep-extensions/--no-disable-smallstep-extensions",
        help="Leave the provisioner extension out of certificates.",
    ),
]
_ClientId = Annotated[str | None, typer.Option("--client-id", help="OIDC: the client ID.")]
_ClientSecret = Annotated[str | None, typer.Option("--client-secret", help="OIDC: the secret.")]
_ConfigurationEndpoint = Annotated[
    str | None, typer.Option("--configuration-endpoint", help="OIDC: the discovery URL.")
]
_ListenAddress = Annotated[
    str | None, typer.Option("--listen-address", help="OIDC: host:port of the loopback redirect.")
]
_TenantId = Annotated[str | None, typer.Option("--tenant-id", help="OIDC: the tenant ID.")]
_AzureTenant = Annotated[str | None, typer.Option("--azure-tenant", help="Azure: tenant ID.")]
_AzureAudience = Annotated[str | None, typer.Option("--azure-audience", help="Azure: audience.")]
_IidRoots = Annotated[
    Path | None,
    typer.Option("--iid-roots", help="AWS: PEM file with the instance identity certificates."),
]
_DisableCustomSans = Annotated[
    bool | None,
    typer.Option(
        "--disable-custom-sans/--no-disable-custom-sans",
        help="Cloud: only the instance's own names.",
    ),
]
_DisableTrustOnFirstUse = Annotated[
    bool | None,
    typer.Option(
        "--disable-trust-on-first-use/--no-disable-trust-on-first-use",
        "--disable-tofu/--no-disable-tofu",
        help="Cloud: allow more than one certificate per instance.",
    ),
]
_ForceCN = Annotated[
    bool | None,
    typer.Option("--force-cn/--no-force-cn", help="ACME: always set the common name."),
]
_RequireEAB = Annotated[
    bool | None,
    typer.Option("--require-eab/--no-require-eab", help="ACME: require external account binding."),
]
_AttestationRoots = Annotated[
    Path | None,
    typer.Option(
        "--attestation-roots", help="ACME device-attest-01: the PEM bundle of roots to trust."
    ),
]
_CaConfig = Annotated[Path | None, typer.Option("--ca-config", help=CA_CONFIG_HELP)]


def _flags(options: dict[str, Any]) -> Flags:
    """The Flags of a command's options, by name (those the command lacks stay unset)."""
    return Flags(**{f.name: options[f.name] for f in fields(Flags) if f.name in options})


def add_command(
    name: str = typer.Argument(..., help="The name of the new provisioner."),
    type_: str = typer.Option(
        ..., "--type", help="The provisioner type: JWK, X5C, OIDC, ACME, AWS, GCP or Azure."
    ),
    create: bool = typer.Option(False, "--create", help="JWK: generate a new key pair."),
    public_key: Path | None = typer.Option(None, "--public-key", help="JWK: the public key."),
    private_key: str | None = typer.Option(
        None, "--private-key", help="JWK: the private key (JWE, or a JWK to encrypt)."
    ),
    password_file: _PasswordFile = None,
    x509_min_dur: _X509MinDur = None,
    x509_max_dur: _X509MaxDur = None,
    x509_default_dur: _X509DefaultDur = None,
    disable_renewal: _DisableRenewal = None,
    allow_renewal_after_expiry: _AllowRenewalAfterExpiry = None,
    disable_smallstep_extensions: _DisableSmallstepExtensions = None,
    x5c_roots: Path | None = typer.Option(None, "--x5c-roots", help="X5C: the root bundle."),
    force_cn: _ForceCN = None,
    require_eab: _RequireEAB = None,
    challenge: list[str] = typer.Option(
        [], "--challenge", help="ACME: a challenge to offer (repeatable; default: all)."
    ),
    attestation_format: list[str] = typer.Option(
        [],
        "--attestation-format",
        help="ACME device-attest-01: a format to accept (apple, "
        "step, tpm, android-key; repeatable; default: all).",
    ),
    attestation_roots: _AttestationRoots = None,
    client_id: _ClientId = None,
    client_secret: _ClientSecret = None,
    configuration_endpoint: _ConfigurationEndpoint = None,
    listen_address: _ListenAddress = None,
    admin: list[str] = typer.Option([], "--admin", help="OIDC: an admin email (repeatable)."),
    domain: list[str] = typer.Option([], "--domain", help="OIDC: an allowed domain."),
    group: list[str] = typer.Option([], "--group", help="OIDC: an allowed group."),
    tenant_id: _TenantId = None,
    aws_account: list[str] = typer.Option([], "--aws-account", help="AWS: an account ID."),
    gcp_service_account: list[str] = typer.Option(
        [], "--gcp-service-account", help="GCP: a service account."
    ),
    gcp_project: list[str] = typer.Option([], "--gcp-project", help="GCP: a project ID."),
    azure_tenant: _AzureTenant = None,
    azure_resource_group: list[str] = typer.Option(
        [], "--azure-resource-group", help="Azure: a resource group."
    ),
    azure_subscription_id: list[str] = typer.Option(
        [], "--azure-subscription-id", help="Azure: a subscription ID."
    ),
    azure_object_id: list[str] = typer.Option([], "--azure-object-id", help="Azure: object ID."),
    azure_audience: _AzureAudience = None,
    instance_age: str | None = typer.Option(
        None, "--instance-age", help="AWS/GCP: maximum instance age."
    ),
    iid_roots: _IidRoots = None,
    disable_custom_sans: _DisableCustomSans = None,
    disable_trust_on_first_use: _DisableTrustOnFirstUse = None,
    ca_config: _CaConfig = None,
) -> None:
    """Add a provisioner to the CA configuration (ca.json).

    The edited configuration is validated as a whole before it is written; the previous one
    is kept as ca.json.bak. The CA picks the change up on SIGHUP or at restart.

    Examples:

      $ step ca provisioner add cicd --type JWK --create --password-file pw.txt

      $ step ca provisioner add jane@doe.com --type JWK --public-key jwk.pub \\
          --private-key jwk.priv

      $ step ca provisioner add x5c --type X5C --x5c-roots x5c_ca.crt

      $ step ca provisioner add acme --type ACME --challenge http-01 --force-cn

      $ step ca provisioner add acme-da --type ACME --challenge device-attest-01 \\
          --attestation-format step --attestation-roots yubico-roots.pem

      $ step ca provisioner add Google --type OIDC --client-id ID --client-secret SECRET \\
          --configuration-endpoint https://accounts.google.com/.well-known/openid-configuration

      $ step ca provisioner add Amazon --type AWS --aws-account 123456789 \\
          --disable-custom-sans --disable-trust-on-first-use
    """
    flags = _flags(locals())  # first: the options, and nothing else yet
    if private_key == "":
        raise CLIError("flag '--private-key' cannot be empty")
    path = _config_path(ca_config)
    prov = build_provisioner(name, type_, flags)
    _done(_run(lambda: add_provisioner(path, prov)))


def update_command(
    name: str = typer.Argument(..., help="The name of the provisioner to change."),
    create: bool = typer.Option(False, "--create", help="JWK: replace the key pair."),
    public_key: Path | None = typer.Option(None, "--public-key", help="JWK: new public key."),
    private_key: str | None = typer.Option(
        None, "--private-key", help="JWK: new private key ('' removes the stored one)."
    ),
    password_file: _PasswordFile = None,
    x509_min_dur: _X509MinDur = None,
    x509_max_dur: _X509MaxDur = None,
    x509_default_dur: _X509DefaultDur = None,
    disable_renewal: _DisableRenewal = None,
    allow_renewal_after_expiry: _AllowRenewalAfterExpiry = None,
    disable_smallstep_extensions: _DisableSmallstepExtensions = None,
    x5c_roots: Path | None = typer.Option(None, "--x5c-roots", help="X5C: new root bundle."),
    force_cn: _ForceCN = None,
    require_eab: _RequireEAB = None,
    challenge: list[str] = typer.Option([], "--challenge", help="ACME: offer a challenge."),
    remove_challenge: list[str] = typer.Option(
        [], "--remove-challenge", help="ACME: stop offering a challenge."
    ),
    attestation_format: list[str] = typer.Option(
        [], "--attestation-format", help="ACME: accept an attestation format."
    ),
    remove_attestation_format: list[str] = typer.Option(
        [], "--remove-attestation-format", help="ACME: stop accepting an attestation format."
    ),
    attestation_roots: _AttestationRoots = None,
    client_id: _ClientId = None,
    client_secret: _ClientSecret = None,
    configuration_endpoint: _ConfigurationEndpoint = None,
    listen_address: _ListenAddress = None,
    admin: list[str] = typer.Option([], "--admin", help="OIDC: add an admin."),
    remove_admin: list[str] = typer.Option([], "--remove-admin", help="OIDC: drop an admin."),
    domain: list[str] = typer.Option([], "--domain", help="OIDC: add a domain."),
    remove_domain: list[str] = typer.Option([], "--remove-domain", help="OIDC: drop a domain."),
    group: list[str] = typer.Option([], "--group", help="OIDC: add a group."),
    remove_group: list[str] = typer.Option([], "--remove-group", help="OIDC: drop a group."),
    tenant_id: _TenantId = None,
    aws_account: list[str] = typer.Option([], "--aws-account", help="AWS: add an account."),
    remove_aws_account: list[str] = typer.Option(
        [], "--remove-aws-account", help="AWS: drop an account."
    ),
    gcp_service_account: list[str] = typer.Option(
        [], "--gcp-service-account", help="GCP: add a service account."
    ),
    remove_gcp_service_account: list[str] = typer.Option(
        [], "--remove-gcp-service-account", help="GCP: drop a service account."
    ),
    gcp_project: list[str] = typer.Option([], "--gcp-project", help="GCP: add a project."),
    remove_gcp_project: list[str] = typer.Option(
        [], "--remove-gcp-project", help="GCP: drop a project."
    ),
    azure_tenant: _AzureTenant = None,
    azure_resource_group: list[str] = typer.Option(
        [], "--azure-resource-group", help="Azure: add a resource group."
    ),
    remove_azure_resource_group: list[str] = typer.Option(
        [], "--remove-azure-resource-group", help="Azure: drop a resource group."
    ),
    azure_subscription_id: list[str] = typer.Option(
        [], "--azure-subscription-id", help="Azure: add a subscription ID."
    ),
    remove_azure_subscription_id: list[str] = typer.Option(
        [], "--remove-azure-subscription-id", help="Azure: drop a subscription ID."
    ),
    azure_object_id: list[str] = typer.Option([], "--azure-object-id", help="Azure: add one."),
    remove_azure_object_id: list[str] = typer.Option(
        [], "--remove-azure-object-id", help="Azure: drop an object ID."
    ),
    azure_audience: _AzureAudience = None,
    instance_age: str | None = typer.Option(
        None, "--instance-age", help="AWS/GCP: maximum instance age ('' removes it)."
    ),
    iid_roots: _IidRoots = None,
    disable_custom_sans: _DisableCustomSans = None,
    disable_trust_on_first_use: _DisableTrustOnFirstUse = None,
    ca_config: _CaConfig = None,
) -> None:
    """Change a provisioner in the CA configuration (ca.json).

    Only the flags given change anything; list flags (--admin, --aws-account, ...) add values
    and their --remove-* twins drop them; switches are turned off with their --no-* form.

    Examples:

      $ step ca provisioner update cicd --x509-max-dur 48h --x509-default-dur 48h

      $ step ca provisioner update cicd --create --password-file pw.txt

      $ step ca provisioner update x5c --x5c-roots new_roots.crt

      $ step ca provisioner update Google --admin ops@example.com --remove-domain old.com

      $ step ca provisioner update cicd --no-disable-renewal

      $ step ca provisioner update acme --challenge dns-01 --remove-challenge http-01
    """
    flags = _flags(locals())  # first: the options, and nothing else yet
    path = _config_path(ca_config)
    # Files are read and passwords asked for before the locked edit, on a copy of the entry;
    # the edit then swaps it in if nobody changed the entry meanwhile.
    try:
        _, raw = load_raw(path)
        current = find_provisioner(raw, name)
    except ConfigEditError as exc:
        raise CLIError(str(exc)) from None
    updated = copy.deepcopy(current)
    apply_update(updated, flags)

    def mutate(prov: dict[str, Any]) -> None:
        if prov != current:
            raise ConfigEditError(f"provisioner {name!r} was changed meanwhile; nothing written")
        prov.clear()
        prov.update(updated)

    _done(_run(lambda: update_provisioner(path, name, mutate)))


def remove_command(
    name: str = typer.Argument(..., help="The name of the provisioner to remove."),
    ca_config: _CaConfig = None,
) -> None:
    """Remove a provisioner from the CA configuration (ca.json).

    Certificates it issued stay valid; they can no longer be renewed through it.

    Examples:

      $ step ca provisioner remove cicd

      $ step ca provisioner remove x5c --ca-config /etc/step-ca/config/ca.json
    """
    path = _config_path(ca_config)
    _done(_run(lambda: remove_provisioner(path, name)))
