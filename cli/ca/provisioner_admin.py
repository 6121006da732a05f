"""`step ca provisioner add|update|remove`: edit the provisioners in ca.json.

Like step without remote management, the commands edit the CA's configuration file
(`--ca-config`, default $STEPPATH/config/ca.json) and ask for a reload. Every edit is applied to
a copy, validated as a whole by the loader the CA uses, backed up to `ca.json.bak` and written
atomically (appliance.config_edit); a refused edit leaves ca.json untouched.
"""

from __future__ import annotations

import copy
import json
import secrets
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    load_pem_private_key,
    load_pem_public_key,
)
from cryptography.x509.oid import NameOID

from appliance.config_edit import (
    RELOAD_MESSAGE,
    ConfigEditError,
    EditResult,
    add_provisioner,
    backup_path,
    check_listen_address,
    check_url,
    default_config_path,
    find_provisioner,
    load_raw,
    remove_provisioner,
    update_provisioner,
)
from cli.ca import ui
from cli.common import CLIError, check_writable, prompt_password, read_password_file
from provisioners.durations import parse_duration
from provisioners.jose import (
    JOSEError,
    decrypt_jwk,
    encrypt_jwk,
    key_from_jwk,
    private_jwk,
    public_jwk,
    thumbprint,
)
from provisioners.x5c import encode_roots

SUPPORTED_TYPES = {"JWK": "JWK", "X5C": "X5C", "OIDC": "OIDC", "AWS": "AWS", "GCP": "GCP"}
SUPPORTED_TYPES["AZURE"] = "Azure"
STEP_ONLY_TYPES = {"ACME", "SSHPOP", "SCEP", "K8SSA", "NEBULA"}
PASSWORD_PROMPT = (
    "Please enter a password to encrypt the provisioner private key? "
    "[leave empty and we'll generate one]"
)
CA_CONFIG_HELP = "The path to the CA configuration file (default: $STEPPATH/config/ca.json)."


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


def _flag(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def _check_flags(flags: Flags, kind: str) -> None:
    """Refuse flags that belong to another provisioner type."""
    allowed = _TYPE_FLAGS[kind]
    for f in fields(flags):
        if f.name in _SPECIFIC and f.name not in allowed and flags.given(f.name):
            raise CLIError(f"flag '{_flag(f.name)}' is not valid for a {kind} provisioner")


def _kind(value: str) -> str:
    kind = value.strip().upper()
    if kind in STEP_ONLY_TYPES:
        raise CLIError(f"provisioner type '{value}' is not supported by Stepstone")
    if kind not in SUPPORTED_TYPES:
        raise CLIError(f"invalid value '{value}' for flag '--type': options are JWK, X5C, OIDC, "
                       "AWS, GCP and Azure")  # fmt: skip
    return kind


# --- claims -------------------------------------------------------------------------------


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
            raise CLIError(f"invalid value '{value}' for flag '{_flag(attr)}'") from None
        claims[key] = value
    for attr, key in (
        ("disable_renewal", "disableRenewal"),
        ("allow_renewal_after_expiry", "allowRenewalAfterExpiry"),
        ("disable_smallstep_extensions", "disableSmallstepExtensions"),
    ):
        value = getattr(flags, attr)
        if value is not None:
            claims[key] = value
        elif creating:
            claims[key] = False  # step writes the switches explicitly
    if claims:
        prov["claims"] = claims


# --- JWK ----------------------------------------------------------------------------------


def _new_password(password_file: Path | None) -> bytes:
    """The password for a new encrypted key: the file, or a prompt (empty: we generate one)."""
    if password_file is not None:
        password = read_password_file(password_file)
        if not password:
            raise CLIError(f"the password in {password_file} is empty")
        return password
    if not sys.stdin.isatty():
        raise CLIError("a password is needed to encrypt the provisioner key: use '--password-file'")
    entered = prompt_password(PASSWORD_PROMPT)
    if not entered:
        generated = secrets.token_urlsafe(24)
        ui.selected("Password", generated)
        return generated.encode()
    return entered


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CLIError(f"error reading {path}: {exc.strerror}") from None


def _key_of_pem(data: bytes, path: Path) -> Any:
    if b"CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    if b"PUBLIC KEY-----" in data:
        return load_pem_public_key(data)
    if b"PRIVATE KEY-----" in data:
        if b"ENCRYPTED" in data:
            raise CLIError(f"{path} is an encrypted private key: use a public key")
        return load_pem_private_key(data, None).public_key()
    raise CLIError(f"{path} does not contain a key")


def read_public_jwk(path: Path, password_file: Path | None) -> dict[str, Any]:
    """A provisioner's public key from a JWK (plain or encrypted) or PEM file."""
    data = _read(path)
    text = data.decode("utf-8", errors="replace").strip()
    try:
        if text.startswith("-----BEGIN"):
            key = _key_of_pem(data, path)
            jwk: dict[str, Any] = {}
        else:
            jwk = json.loads(text) if text.startswith("{") else {}
            if _is_jwe(jwk) or (not jwk and text.count(".") == 4):
                password = (
                    read_password_file(password_file)
                    if password_file
                    else prompt_password(f"Please enter the password to decrypt {path}")
                )
                jwk = decrypt_jwk(text, password)
            if not isinstance(jwk, dict) or not jwk:
                raise CLIError(f"error reading {path}: not a JWK")
            if jwk.get("kty") == "oct":
                raise CLIError("invalid JWK: a symmetric key cannot be used as a provisioner")
            key = key_from_jwk(jwk)
    except (ValueError, TypeError, KeyError, JOSEError) as exc:
        raise CLIError(f"error reading {path}: {exc}") from None
    if not isinstance(key, _KEY_TYPES):
        raise CLIError(f"error reading {path}: unsupported key type")
    kid, alg, use = jwk.get("kid"), jwk.get("alg"), jwk.get("use")
    return public_jwk(
        key,
        kid=kid if isinstance(kid, str) and kid else None,
        alg=alg if isinstance(alg, str) and alg else None,
        use=use if isinstance(use, str) else "sig",
    )


_KEY_TYPES = (
    ec.EllipticCurvePublicKey,
    ec.EllipticCurvePrivateKey,
    rsa.RSAPublicKey,
    rsa.RSAPrivateKey,
    ed25519.Ed25519PublicKey,
    ed25519.Ed25519PrivateKey,
)


def _is_jwe(obj: Any) -> bool:
    return isinstance(obj, dict) and "ciphertext" in obj and "protected" in obj


def _compact_jwe(obj: dict[str, Any], path: Path) -> str:
    """A flattened JSON JWE (step's `.jwk` files) in the compact form ca.json uses."""
    if "recipients" in obj:
        recipients = obj["recipients"]
        if not isinstance(recipients, list) or len(recipients) != 1:
            raise CLIError(f"error reading {path}: a JWE with one recipient is required")
        obj = {**obj, **recipients[0]}
    if obj.get("unprotected") or obj.get("header") or obj.get("aad"):
        raise CLIError(f"error reading {path}: the JWE cannot be written in compact form")
    parts = [obj.get(k) for k in ("protected", "encrypted_key", "iv", "ciphertext", "tag")]
    if not all(isinstance(p, str) and p for p in parts):
        raise CLIError(f"error reading {path}: invalid JWE")
    return ".".join(str(p) for p in parts)


def read_private_key(path: Path, public: dict[str, Any], password_file: Path | None) -> str:
    """The `encryptedKey` for `--private-key`: a JWE kept as it is, or a plain private JWK
    encrypted with the password (file, or a prompt)."""
    text = _read(path).decode("utf-8", errors="replace").strip()
    if not text.startswith("{"):
        if text.count(".") != 4:
            raise CLIError(f"error reading {path}: not a JWE or a JWK")
        return text
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"error reading {path}: {exc}") from None
    if _is_jwe(obj):
        return _compact_jwe(obj, path)
    if not isinstance(obj, dict) or "d" not in obj:
        raise CLIError("invalid jwk: private-key is a public key")
    try:
        key = key_from_jwk(obj)
    except (ValueError, TypeError, KeyError, JOSEError) as exc:
        raise CLIError(f"error reading {path}: {exc}") from None
    if thumbprint(public_jwk(key)) != thumbprint(public):
        raise CLIError(f"the private key {path} does not match the public key")
    private = dict(obj)
    private.setdefault("kid", public["kid"])
    return encrypt_jwk(private, _new_password(password_file))


def _apply_jwk(prov: dict[str, Any], flags: Flags, creating: bool) -> None:
    if flags.create:
        for attr in ("public_key", "private_key"):
            if flags.given(attr):
                raise CLIError(f"flag '--create' is incompatible with flag '{_flag(attr)}'")
        key = ec.generate_private_key(ec.SECP256R1())
        prov["key"] = public_jwk(key)
        prov["encryptedKey"] = encrypt_jwk(private_jwk(key), _new_password(flags.password_file))
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


# --- X5C ------------------------------------------------------------------------------------


def read_x5c_roots(path: Path) -> str:
    """The `roots` value: the certificates of a PEM (or DER) file, each able to sign."""
    data = _read(path)
    try:
        certs = (
            x509.load_pem_x509_certificates(data)
            if b"-----BEGIN" in data
            else [x509.load_der_x509_certificate(data)]
        )
    except ValueError:
        raise CLIError(f"error loading X5C Root certificates from {path}") from None
    pem = b""
    for cert in certs:
        try:
            signs = cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        except x509.ExtensionNotFound:
            signs = False
        if not signs:
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = str(cns[0].value) if cns else ""
            raise CLIError(
                f"certificate with common name '{cn}' cannot be used as an X5C root "
                "certificate: X5C provisioner root certificates must have the 'Certificate "
                "Sign' key usage extension"
            )
        pem += cert.public_bytes(Encoding.PEM)
    return encode_roots(pem)


# --- OIDC and cloud -------------------------------------------------------------------------


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
                raise CLIError(f"flag '--type=OIDC' requires the '{_flag(attr)}' flag")
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
    for attr, key in (
        ("disable_custom_sans", "disableCustomSANs"),
        ("disable_trust_on_first_use", "disableTrustOnFirstUse"),
    ):
        value = getattr(flags, attr)
        if value is not None:
            prov[key] = value
        elif creating:
            prov[key] = False


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


_APPLY = {
    "JWK": _apply_jwk,
    "X5C": _apply_x5c,
    "OIDC": _apply_oidc,
    "AWS": _apply_aws,
    "GCP": _apply_gcp,
    "AZURE": _apply_azure,
}


def build_provisioner(name: str, kind: str, flags: Flags) -> dict[str, Any]:
    """The ca.json entry `add` writes."""
    kind = _kind(kind)
    _check_flags(flags, kind)
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
    _check_flags(flags, kind)
    _APPLY[kind](prov, flags, False)
    _apply_claims(prov, flags, False)


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
_CaConfig = Annotated[Path | None, typer.Option("--ca-config", help=CA_CONFIG_HELP)]


def _flags(options: dict[str, Any]) -> Flags:
    """The Flags of a command's options, by name (those the command lacks stay unset)."""
    return Flags(**{f.name: options[f.name] for f in fields(Flags) if f.name in options})


def add_command(
    name: str = typer.Argument(..., help="The name of the new provisioner."),
    type_: str = typer.Option(
        ..., "--type", help="The provisioner type: JWK, X5C, OIDC, AWS, GCP or Azure."
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
