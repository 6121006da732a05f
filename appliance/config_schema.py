"""ca.json's schema: the JSON type step-ca's Go structs give each field, checked in one pass.

Why a schema: Go's encoding/json refuses a wrong type field by field, and step-ca then stops at
the first problem. Here every field is checked at once and every problem is reported with its
path and what was expected, in one line the CLI can print (`problems`).

The field types and their Go rules (unknown fields accepted and kept, `null` and `""` meaning
the default) are in provisioners.fields; the provisioner entries and `claims` in
provisioners.schema. This module has the rest of the file. Only known fields with a wrong type
or value are refused.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pki.durations import format_duration, parse_duration
from provisioners.claims import Claims, ClaimsError
from provisioners.fields import (
    Bool,
    GoDuration,
    NonEmptyStr,
    NonEmptyStrings,
    Object,
    Paths,
    PositiveDuration,
    PositiveInt,
    RequiredStr,
    Schema,
    Str,
    StrOrStrings,
    bounded,
    duration_or,
    expected,
    invalid,
)
from provisioners.schema import AnyProvisioner, ClaimsSchema, PolicySchema, problems
from provisioners.schema import SchemaError as SchemaError  # check() raises it

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


Address = Annotated[str, BeforeValidator(_address)]
OptionalAddress = Annotated[str | None, BeforeValidator(_optional_address)]
TLSVersion = Annotated[float | None, BeforeValidator(_tls_version)]
CipherSuite = Annotated[str, AfterValidator(_cipher_suite)]


# --- blocks -------------------------------------------------------------------------------


class TLSSchema(Schema):
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


class DBSchema(Schema):
    """`db`: step-ca's badger/bbolt/mysql/postgresql block (a directory or a DSN)."""

    type: Str = None
    dataSource: Str = None
    database: Str = None
    valueDir: Str = None
    badgerFileLoadingMode: Str = None


class LoggerSchema(Schema):
    """`logger`: step-ca refuses a format it does not know."""

    format: Annotated[Str, AfterValidator(_logger_format)] = None
    traceHeader: Str = None


class KMSSchema(Schema):
    """`kms`: where the intermediate key lives (softkms, pkcs11, yubikey, ...)."""

    type: Str = None
    uri: Str = None
    pin: Str = None
    managementKey: Str = None
    credentialsFile: Str = None
    region: Str = None
    profile: Str = None
    storageDirectory: Str = None


class CRLSchema(Schema):
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


class ServerLimitsSchema(Schema):
    """`serverLimits` (beyond step-ca): how long and how much a client may take."""

    handshakeTimeout: PositiveDuration = None
    requestTimeout: PositiveDuration = None
    keepAliveTimeout: PositiveDuration = None
    maxConnections: PositiveInt = None


class MetricsSchema(Schema):
    """`stepstone.metrics` (beyond step-ca): the Prometheus listener, off unless `address`
    is set."""

    address: OptionalAddress = None


class StepstoneSchema(Schema):
    """`stepstone` (beyond step-ca): the appliance's own settings."""

    serverCertDuration: PositiveDuration = None
    workers: PositiveInt = None
    metrics: MetricsSchema | None = None


class TemplateSchema(Schema):
    """`authority.template`: subject defaults (step-ca's ASN1DN; Stepstone allows lists)."""

    country: StrOrStrings = None
    organization: StrOrStrings = None
    organizationalUnit: StrOrStrings = None
    locality: StrOrStrings = None
    province: StrOrStrings = None
    streetAddress: StrOrStrings = None
    serialNumber: StrOrStrings = None
    commonName: StrOrStrings = None


# --- the file -----------------------------------------------------------------------------


class AuthoritySchema(Schema):
    """`authority`: provisioners, global claims and issuance defaults."""

    provisioners: list[AnyProvisioner] | None = None
    claims: ClaimsSchema | None = None
    template: TemplateSchema | None = None
    backdate: Annotated[
        GoDuration,
        AfterValidator(bounded("a duration of at least 0s", lambda d: d >= timedelta(0))),
    ] = None
    disableIssuedAtCheck: Bool = None
    enableAdmin: Bool = None
    authorityId: Str = None
    deploymentType: Str = None
    type: Str = None
    policy: PolicySchema | None = None  # compiled at load (pki.policy)

    @field_validator("claims")
    @classmethod
    def _claims_bounds(cls, value: ClaimsSchema | None) -> ClaimsSchema | None:
        if value is not None:
            try:
                Claims().merged(value)
            except ClaimsError as exc:
                raise invalid(str(exc).removeprefix("claims: ")) from None
        return value

    def effective_claims(self) -> Claims:
        """The built-in claims with `authority.claims` applied (checked by the validator)."""
        return Claims().merged(self.claims)


class SSHKeySchema(Schema):
    """`ssh.keys[]`: an extra (federated) SSH CA public key, as a JWK."""

    type: Str = None
    federated: Bool = None
    key: dict[str, Any]


class BastionSchema(Schema):
    """`ssh.bastion`."""

    hostname: Str = None
    user: Str = None
    port: Str = None
    cmd: Str = None
    flags: Str = None


class SSHSchema(Schema):
    """`ssh`: the SSH CA keys (path or key URI, as `key`), federated keys, bastion."""

    hostKey: Str = None
    userKey: Str = None
    keys: list[SSHKeySchema] | None = None
    addUserPrincipal: Str = None
    addUserCommand: Str = None
    bastion: BastionSchema | None = None


class CASchema(Schema):
    """ca.json."""

    root: Paths
    federatedRoots: list[NonEmptyStr] | None = None
    crt: RequiredStr
    key: RequiredStr
    address: Address
    insecureAddress: Str = None
    dnsNames: NonEmptyStrings = None
    kms: KMSSchema | None = None
    ssh: SSHSchema | None = None
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
