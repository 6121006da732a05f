"""ca.json's schema: the JSON type step-ca's Go structs give each field, checked in one pass.

Why a schema: Go's encoding/json refuses a wrong type field by field, and step-ca then stops at
the first problem. Here every field is checked at once and every problem is reported with its
path and what was expected, in one line the CLI can print (`problems`).

Field names are ca.json's own (camelCase), so a path in a message is the path in the file.
As in Go:
- unknown fields are accepted (and kept in the file: the appliance keeps the raw object);
- a JSON `null` leaves a field at its default (Go's decoder skips a null for a non-pointer
  field), so `"tls": {"minVersion": null}` means TLS 1.2, exactly like an absent minVersion;
- `""` for a duration or a string also means the default, as the zero value does in Go.
Only known fields with a wrong type or value are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Self, overload

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pki.durations import format_duration, parse_duration
from provisioners.claims import Claims, ClaimsError

# step-ca's `cipherSuites` map (authority/config/tls_options.go): the names it accepts.
STEP_CA_CIPHER_SUITES = frozenset(
    {
        "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    }
)
# step-ca's tlsVersions; 0 (like null) means the default.
TLS_VERSIONS = (1.0, 1.1, 1.2, 1.3)
DEFAULT_MIN_TLS, DEFAULT_MAX_TLS = 1.2, 1.3
DEFAULT_CRL_CACHE = timedelta(hours=24)
LOGGER_FORMATS = ("text", "json", "common")
# Provisioner types step-ca knows (provisioner.List's UnmarshalJSON), as step spells them.
# Types this build does not implement are skipped by the registry with a warning; any other
# type is refused, so that a typo does not silently drop a provisioner.
PROVISIONER_TYPES = (
    "JWK", "OIDC", "X5C", "ACME", "SSHPOP", "SCEP", "K8sSA", "Nebula", "AWS", "GCP", "Azure",
)  # fmt: skip
# Fields whose value never appears in a message: a misplaced secret must not reach a log.
SECRET_FIELDS = frozenset(
    {"password", "pin", "managementKey", "encryptedKey", "clientSecret", "challenge"}
)

# Error types of our own: EXPECTED messages get ", got <value>" appended, INVALID are whole.
_EXPECTED = "stepstone_expected"
_INVALID = "stepstone_invalid"
# What pydantic's own type errors expected, in words.
_PYDANTIC_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "float_type": "a number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "list_type": "a list",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
}
_TAG = "@"  # provisioner union tags; never shown in a path


class SchemaError(ValueError):
    """ca.json does not match the schema; `problems` lists each one as `path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def expected(what: str) -> PydanticCustomError:
    """An error reading `<path>: expected <what>, got <value>`."""
    return PydanticCustomError(_EXPECTED, "expected {what}", {"what": what})


def invalid(message: str) -> PydanticCustomError:
    """An error reading `<path>: <message>`."""
    return PydanticCustomError(_INVALID, "{message}", {"message": message})


# --- field types --------------------------------------------------------------------------


@overload
def duration_or(value: str | None, default: timedelta) -> timedelta: ...
@overload
def duration_or(value: str | None, default: None) -> timedelta | None: ...
def duration_or(value: str | None, default: timedelta | None) -> timedelta | None:
    """A duration field the schema checked, or `default` when unset."""
    return parse_duration(value) if value else default


def _required_string(value: Any) -> Any:
    if value is None or value == "":
        raise invalid("cannot be empty")
    return value  # the type check (a string) follows


def _go_duration(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parse_duration(value)
        except ValueError:
            pass
        else:
            return value
    raise expected('a duration such as "24h" or "5m30s"')


def _bounded(what: str, holds: Callable[[timedelta], bool]) -> Callable[[str | None], str | None]:
    """An AfterValidator for a GoDuration: `holds` must be true of a set value."""

    def validate(value: str | None) -> str | None:
        if value is not None and not holds(parse_duration(value)):
            raise expected(what)
        return value

    return validate


def _paths(value: Any) -> Any:
    """step-ca's multiString: one path or a list of them, none empty."""
    if isinstance(value, str):
        value = [value]
    if value is None or value == []:
        raise invalid("cannot be empty")
    if not isinstance(value, list):
        raise expected("a path or a list of paths")
    return value


def _non_empty_list(value: list[str] | None) -> list[str] | None:
    if value == []:
        raise invalid("cannot be empty")
    return value


def _non_empty_item(value: str) -> str:
    if not value:
        raise invalid("cannot be empty")
    return value


def _one_or_many(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if value is None or isinstance(value, list):
        return value
    raise expected("a string or a list of strings")


def split_address(value: str) -> tuple[str, int] | None:
    """`host:port` (host may be empty or a bracketed IPv6 address) as (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        return None
    return host.strip("[]") or "0.0.0.0", int(port)


def _address(value: Any) -> Any:
    if value is None or value == "":
        raise invalid("cannot be empty")
    if not isinstance(value, str) or split_address(value) is None:
        raise expected("host:port such as 127.0.0.1:9000 or :443")
    return value


def _optional_address(value: Any) -> Any:
    return None if value is None else _address(value)


def _tls_version(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise expected("a TLS version such as 1.2 or 1.3")
    if value == 0:  # Go's zero value: step-ca puts its default in
        return None
    if float(value) not in TLS_VERSIONS:
        raise expected("a TLS version such as 1.2 or 1.3")
    return value


def _cipher_suite(value: str) -> str:
    if value not in STEP_CA_CIPHER_SUITES:
        raise expected("a cipher suite name such as TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
    return value


def _logger_format(value: str | None) -> str | None:
    if value and value.lower() not in LOGGER_FORMATS:
        raise expected("one of " + ", ".join(LOGGER_FORMATS))
    return value


def _positive_int(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise expected("a whole number of at least 1")
    return value


Str = str | None
Bool = bool | None
Strings = list[str] | None
Object = dict[str, Any] | None
RequiredStr = Annotated[str, BeforeValidator(_required_string)]
GoDuration = Annotated[str | None, BeforeValidator(_go_duration)]
PositiveDuration = Annotated[
    GoDuration, AfterValidator(_bounded("a duration greater than 0", lambda d: d > timedelta(0)))
]
Paths = Annotated[list[Annotated[str, AfterValidator(_non_empty_item)]], BeforeValidator(_paths)]
NonEmptyStrings = Annotated[Strings, AfterValidator(_non_empty_list)]
StrOrStrings = Annotated[Strings, BeforeValidator(_one_or_many)]
Address = Annotated[str, BeforeValidator(_address)]
OptionalAddress = Annotated[str | None, BeforeValidator(_optional_address)]
TLSVersion = Annotated[float | None, BeforeValidator(_tls_version)]
CipherSuite = Annotated[str, AfterValidator(_cipher_suite)]
PositiveInt = Annotated[int | None, AfterValidator(_positive_int)]


class _Schema(BaseModel):
    # strict: no coercion ("yes" is not true, 5 is not "5"), as Go's decoder;
    # extra="allow": step-ca ignores fields it does not know, and so do we.
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


# --- blocks -------------------------------------------------------------------------------


class TLSSchema(_Schema):
    """`tls`: the CA's own TLS server, and the `tlsOptions` sent with each certificate."""

    cipherSuites: list[CipherSuite] | None = None
    minVersion: TLSVersion = None
    maxVersion: TLSVersion = None
    renegotiation: Bool = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        low = self.minVersion or DEFAULT_MIN_TLS
        high = self.maxVersion or DEFAULT_MAX_TLS
        if low > high:
            raise invalid(f"minVersion {low:.1f} cannot exceed maxVersion {high:.1f}")
        return self


class DBSchema(_Schema):
    """`db`: step-ca's badger/bbolt/mysql/postgresql block (a directory or a DSN)."""

    type: Str = None
    dataSource: Str = None
    database: Str = None
    valueDir: Str = None
    badgerFileLoadingMode: Str = None


class LoggerSchema(_Schema):
    """`logger`: step-ca refuses a format it does not know."""

    format: Annotated[Str, AfterValidator(_logger_format)] = None
    traceHeader: Str = None


class KMSSchema(_Schema):
    """`kms`: where the intermediate key lives (softkms, pkcs11, yubikey, ...)."""

    type: Str = None
    uri: Str = None
    pin: Str = None
    managementKey: Str = None
    credentialsFile: Str = None
    region: Str = None
    profile: Str = None
    storageDirectory: Str = None


class CRLSchema(_Schema):
    """`crl`: step-ca's CRL block, plus Stepstone's delegated OCSP signer."""

    enabled: Bool = None
    generateOnRevoke: Bool = None
    cacheDuration: PositiveDuration = None
    renewPeriod: GoDuration = None
    idpURL: Str = None
    ocspCrt: Str = None
    ocspKey: Str = None

    @field_validator("renewPeriod")
    @classmethod
    def _within_cache(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or "cacheDuration" not in info.data:
            return value
        cache = duration_or(info.data["cacheDuration"], DEFAULT_CRL_CACHE)
        if not timedelta(0) < parse_duration(value) <= cache:
            raise expected(
                "a duration greater than 0 and at most crl.cacheDuration "
                f"({format_duration(cache)})"
            )
        return value

    @model_validator(mode="after")
    def _ocsp_pair(self) -> Self:
        if bool(self.ocspCrt) != bool(self.ocspKey):
            raise invalid("ocspCrt and ocspKey go together: set both or neither")
        return self


class ServerLimitsSchema(_Schema):
    """`serverLimits` (beyond step-ca): how long and how much a client may take."""

    handshakeTimeout: PositiveDuration = None
    requestTimeout: PositiveDuration = None
    keepAliveTimeout: PositiveDuration = None
    maxConnections: PositiveInt = None


class MetricsSchema(_Schema):
    """`stepstone.metrics` (beyond step-ca): the Prometheus listener, off unless `address` is set."""

    address: OptionalAddress = None


class StepstoneSchema(_Schema):
    """`stepstone` (beyond step-ca): the appliance's own settings."""

    serverCertDuration: PositiveDuration = None
    workers: PositiveInt = None
    metrics: MetricsSchema | None = None


class TemplateSchema(_Schema):
    """`authority.template`: subject defaults (step-ca's ASN1DN; Stepstone allows lists)."""

    country: StrOrStrings = None
    organization: StrOrStrings = None
    organizationalUnit: StrOrStrings = None
    locality: StrOrStrings = None
    province: StrOrStrings = None
    streetAddress: StrOrStrings = None
    serialNumber: StrOrStrings = None
    commonName: StrOrStrings = None


class ClaimsSchema(_Schema):
    """`claims`, global or per provisioner: the types here, the bounds in Claims.merged."""

    minTLSCertDuration: GoDuration = None
    maxTLSCertDuration: GoDuration = None
    defaultTLSCertDuration: GoDuration = None
    disableRenewal: Bool = None
    allowRenewalAfterExpiry: Bool = None
    disableSmallstepExtensions: Bool = None
    enableSSHCA: Bool = None
    minUserSSHCertDuration: GoDuration = None
    maxUserSSHCertDuration: GoDuration = None
    defaultUserSSHCertDuration: GoDuration = None
    minHostSSHCertDuration: GoDuration = None
    maxHostSSHCertDuration: GoDuration = None
    defaultHostSSHCertDuration: GoDuration = None

    def as_json(self) -> dict[str, Any]:
        """The set fields, for Claims.merged."""
        return self.model_dump(exclude_none=True)


# --- provisioners -------------------------------------------------------------------------


class ProvisionerSchema(_Schema):
    """What every provisioner has; as is, the step-ca types this build skips."""

    type: str
    name: RequiredStr
    claims: ClaimsSchema | None = None
    options: Object = None


class JWKKeySchema(_Schema):
    """A JWK provisioner's public key: the registry finds it by `kid`."""

    kid: RequiredStr
    kty: Str = None
    alg: Str = None
    use: Str = None
    crv: Str = None


class JWKSchema(ProvisionerSchema):
    key: JWKKeySchema
    encryptedKey: Str = None


class OIDCSchema(ProvisionerSchema):
    clientID: Str = None
    clientSecret: Str = None
    configurationEndpoint: Str = None
    tenantID: Str = None
    listenAddress: Str = None
    admins: Strings = None
    domains: Strings = None
    groups: Strings = None
    scopes: Strings = None
    authParams: Strings = None


class _CloudSchema(ProvisionerSchema):
    disableCustomSANs: Bool = None
    disableTrustOnFirstUse: Bool = None


class AWSSchema(_CloudSchema):
    accounts: Strings = None
    instanceAge: GoDuration = None
    iidRoots: Str = None
    imdsVersions: Strings = None


class GCPSchema(_CloudSchema):
    serviceAccounts: Strings = None
    projectIDs: Strings = None
    organizationID: Str = None
    instanceAge: GoDuration = None
    disableSSHCAUser: Bool = None
    disableSSHCAHost: Bool = None


class AzureSchema(_CloudSchema):
    tenantID: Str = None
    resourceGroups: Strings = None
    subscriptionIDs: Strings = None
    objectIDs: Strings = None
    audience: Str = None


class X5COwnSchema(_Schema):
    rootsFile: Str = None


class X5CSchema(ProvisionerSchema):
    roots: Str = None  # base64 of a PEM bundle ([]byte in Go)
    stepstone: X5COwnSchema | None = None


_TYPED: dict[str, type[ProvisionerSchema]] = {
    "jwk": JWKSchema,
    "oidc": OIDCSchema,
    "aws": AWSSchema,
    "gcp": GCPSchema,
    "azure": AzureSchema,
    "x5c": X5CSchema,
}
_KNOWN = {t.lower() for t in PROVISIONER_TYPES}


def _provisioner_tag(value: Any) -> str | None:
    """The union member for one provisioner by its `type` (case-insensitive, as step-ca);
    None or a non-tag for a missing or unknown type, which `problems` words."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    kind = str(value["type"]).lower()
    if kind in _TYPED:
        return _TAG + kind
    return _TAG + "other" if kind in _KNOWN else "unknown"  # not a tag: union_tag_invalid


AnyProvisioner = Annotated[
    Annotated[JWKSchema, Tag(_TAG + "jwk")]
    | Annotated[OIDCSchema, Tag(_TAG + "oidc")]
    | Annotated[AWSSchema, Tag(_TAG + "aws")]
    | Annotated[GCPSchema, Tag(_TAG + "gcp")]
    | Annotated[AzureSchema, Tag(_TAG + "azure")]
    | Annotated[X5CSchema, Tag(_TAG + "x5c")]
    | Annotated[ProvisionerSchema, Tag(_TAG + "other")],
    Discriminator(_provisioner_tag),
]


# --- the file -----------------------------------------------------------------------------


class AuthoritySchema(_Schema):
    """`authority`: provisioners, global claims and issuance defaults."""

    provisioners: list[AnyProvisioner] | None = None
    claims: ClaimsSchema | None = None
    template: TemplateSchema | None = None
    backdate: Annotated[
        GoDuration,
        AfterValidator(_bounded("a duration of at least 0s", lambda d: d >= timedelta(0))),
    ] = None
    disableIssuedAtCheck: Bool = None
    enableAdmin: Bool = None
    authorityId: Str = None
    deploymentType: Str = None
    type: Str = None
    policy: Object = None

    @field_validator("claims")
    @classmethod
    def _claims_bounds(cls, value: ClaimsSchema | None) -> ClaimsSchema | None:
        if value is not None:
            try:
                Claims().merged(value.as_json())
            except ClaimsError as exc:
                raise invalid(str(exc).removeprefix("claims: ")) from None
        return value

    def effective_claims(self) -> Claims:
        """The built-in claims with `authority.claims` applied (checked by the validator)."""
        return Claims().merged(self.claims.as_json() if self.claims else None)


class CASchema(_Schema):
    """ca.json."""

    root: Paths
    federatedRoots: list[Annotated[str, AfterValidator(_non_empty_item)]] | None = None
    crt: RequiredStr
    key: RequiredStr
    address: Address
    insecureAddress: Str = None
    dnsNames: NonEmptyStrings = None
    kms: KMSSchema | None = None
    ssh: Object = None
    logger: LoggerSchema | None = None
    db: DBSchema | None = None
    authority: AuthoritySchema | None = None
    tls: TLSSchema | None = None
    password: Str = None
    templates: Object = None
    commonName: Str = None
    crl: CRLSchema | None = None
    metricsAddress: OptionalAddress = None
    serverLimits: ServerLimitsSchema | None = None
    stepstone: StepstoneSchema | None = None


def check(raw: Any) -> CASchema:
    """The parsed ca.json as a CASchema; SchemaError lists every problem."""
    try:
        return CASchema.model_validate(raw)
    except ValidationError as exc:
        raise SchemaError(problems(exc)) from None


# --- messages -----------------------------------------------------------------------------


def problems(exc: ValidationError) -> list[str]:
    """Each error as `path: what was expected, got what`, in the schema's field order."""
    out: list[str] = []
    for error in exc.errors(include_url=False):
        loc = [part for part in error["loc"] if not str(part).startswith(_TAG)]
        kind, value = error["type"], error["input"]
        if kind == "union_tag_not_found" and isinstance(value, dict):
            loc.append("type")
            message = (
                "is required"
                if value.get("type") is None
                else _got("one of " + ", ".join(PROVISIONER_TYPES), value["type"], "type")
            )
        elif kind == "union_tag_not_found":
            message = _got("a JSON object", value, "")
        elif kind == "union_tag_invalid":
            loc.append("type")
            message = _got("one of " + ", ".join(PROVISIONER_TYPES), value.get("type"), "type")
        else:
            message = _message(error, _field(loc))
        path = _path(loc)
        out.append(f"{path}: {message}" if path else message)
    return out


def _message(error: Any, field: str) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == _INVALID:
        return str(error["msg"])
    if kind == _EXPECTED:
        return _got(str(error["msg"]).removeprefix("expected "), error["input"], field)
    if kind in _PYDANTIC_EXPECTED:
        return _got(_PYDANTIC_EXPECTED[kind], error["input"], field)
    text = str(error["msg"])
    return _got(text[:1].lower() + text[1:], error["input"], field, prefix="")


def _got(what: str, value: Any, field: str, prefix: str = "expected ") -> str:
    return f"{prefix}{what}, got {_shown(value, field)}"


def _shown(value: Any, field: str) -> str:
    """The offending value as JSON (escaped: one line); only its kind for secrets and
    containers."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if field in SECRET_FIELDS and isinstance(value, str):
        return "a string"
    if field in SECRET_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:76] + '..."'


def _field(loc: list[int | str]) -> str:
    names = [part for part in loc if isinstance(part, str)]
    return names[-1] if names else ""


def _path(loc: list[int | str]) -> str:
    """`authority.provisioners[0].name`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out
