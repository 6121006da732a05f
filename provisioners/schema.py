"""The provisioner entries of ca.json (`authority.provisioners[]`, `claims`) as typed objects,
and the one-line wording of any schema problem.

Each provisioner class takes its schema object (`JWKProvisioner(JWKSchema, claims)`), so the
types are checked once, here, with every problem reported at once and by its path, instead of
field by field inside each provisioner. An entry keeps the JSON object it was read from:
`/provisioners` shows that object as step wrote it, unknown fields and key order included.
"""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any, Self

from pydantic import (
    Discriminator,
    ModelWrapValidatorHandler,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from pki.policy import IssuancePolicy, Names, PolicyConfigError, ssh_policy, x509_policy
from provisioners.base import ProvisionerConfigError
from provisioners.fields import (
    EXPECTED,
    INVALID,
    Bool,
    GoDuration,
    Object,
    PositiveInt,
    RequiredStr,
    Schema,
    Str,
    Strings,
    invalid,
)

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


class ClaimsSchema(Schema):
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


class PolicyNamesSchema(Schema):
    """An `allow` or `deny` block of a `policy` (X.509: cn, dns, ip, email, uri; SSH user:
    email, principal; SSH host: dns, ip, principal)."""

    cn: Strings = None
    dns: Strings = None
    ip: Strings = None
    email: Strings = None
    uri: Strings = None
    principal: Strings = None

    def names(self, ssh: bool) -> Names:
        """The lists step-ca reads for the block (X.509: no principal; SSH: no cn, uri)."""
        if ssh:
            return Names(dns=self.dns or (), ip=self.ip or (), email=self.email or (),
                         principal=self.principal or ())  # fmt: skip
        return Names(self.cn or (), self.dns or (), self.ip or (), self.email or (),
                     self.uri or ())  # fmt: skip


class X509PolicySchema(Schema):
    allow: PolicyNamesSchema | None = None
    deny: PolicyNamesSchema | None = None
    allowWildcardNames: Bool = None


class SSHCertPolicySchema(Schema):
    allow: PolicyNamesSchema | None = None
    deny: PolicyNamesSchema | None = None


class SSHPolicySchema(Schema):
    user: SSHCertPolicySchema | None = None
    host: SSHCertPolicySchema | None = None


def _names(block: X509PolicySchema | SSHCertPolicySchema | None) -> tuple[Names, Names]:
    if block is None:
        return Names(), Names()
    ssh = isinstance(block, SSHCertPolicySchema)
    return (
        block.allow.names(ssh) if block.allow else Names(),
        block.deny.names(ssh) if block.deny else Names(),
    )


class PolicySchema(Schema):
    """`authority.policy` or a provisioner's `policy`: step-ca's certificate issuance policy,
    compiled when ca.json is read (a bad constraint stops the load, as in step-ca)."""

    x509: X509PolicySchema | None = None
    ssh: SSHPolicySchema | None = None
    _compiled: IssuancePolicy | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> Self:
        ssh = self.ssh or SSHPolicySchema()
        try:
            engine = IssuancePolicy(
                x509_policy(*_names(self.x509), bool(self.x509 and self.x509.allowWildcardNames)),
                ssh_policy(*_names(ssh.user)),
                ssh_policy(*_names(ssh.host)),
            )
        except PolicyConfigError as exc:
            raise invalid(str(exc)) from None
        self._compiled = engine if engine else None
        return self

    @property
    def engine(self) -> IssuancePolicy | None:
        """The compiled rules; None when they name nothing (nothing to check)."""
        return self._compiled


class ProvisionerSchema(Schema):
    """What every provisioner has; as is, the step-ca types this build skips."""

    type: str
    name: RequiredStr
    claims: ClaimsSchema | None = None
    options: Object = None
    policy: PolicySchema | None = None
    _json: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_json(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        entry = handler(data)
        if isinstance(data, dict):  # a copy: a later edit of ca.json's object does not show
            entry._json = copy.deepcopy(data)
        return entry

    def json_object(self) -> dict[str, Any]:
        """The entry as ca.json has it (unknown fields and key order included): what
        `/provisioners` echoes, as step-ca marshals its provisioner back."""
        return copy.deepcopy(self._json)


class JWKKeySchema(Schema):
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
    iidRootsPEM: Str = None  # Stepstone: the certificates inline
    imdsVersions: Strings = None


class GCPSchema(_CloudSchema):
    serviceAccounts: Strings = None
    projectIDs: Strings = None
    organizationID: Str = None
    instanceAge: GoDuration = None
    disableSSHCAUser: Bool = None
    disableSSHCAHost: Bool = None
    certsURL: Str = None  # Stepstone: where Google's keys are
    issuer: Str = None  # Stepstone: the `iss` of Google's tokens


class AzureSchema(_CloudSchema):
    tenantID: Str = None
    resourceGroups: Strings = None
    subscriptionIDs: Strings = None
    objectIDs: Strings = None
    audience: Str = None
    # Stepstone: where Microsoft's keys are (see provisioners.azure).
    oidcDiscoveryURL: Str = None
    jwksURL: Str = None
    issuer: Str = None


class ACMEOwnSchema(Schema):
    """Stepstone's own ACME settings: where http-01 is fetched (step-ca's `--acme-http-port`)
    and, for tests on loopback, fixed addresses for names (no resolver is asked for them)."""

    httpPort: PositiveInt = None
    hosts: dict[str, str] | None = None


class ACMESchema(ProvisionerSchema):
    forceCN: Bool = None
    requireEAB: Bool = None
    challenges: Strings = None
    attestationFormats: Strings = None
    termsOfService: Str = None
    website: Str = None
    caaIdentities: Strings = None
    stepstone: ACMEOwnSchema | None = None


class X5COwnSchema(Schema):
    rootsFile: Str = None


class X5CSchema(ProvisionerSchema):
    roots: Str = None  # base64 of a PEM bundle ([]byte in Go)
    stepstone: X5COwnSchema | None = None


#: The schema of each type this build implements (lower case); other known types are plain
#: ProvisionerSchema entries.
SCHEMAS: dict[str, type[ProvisionerSchema]] = {
    "jwk": JWKSchema,
    "oidc": OIDCSchema,
    "aws": AWSSchema,
    "gcp": GCPSchema,
    "azure": AzureSchema,
    "x5c": X5CSchema,
    "acme": ACMESchema,
}
_KNOWN = {t.lower() for t in PROVISIONER_TYPES}


def _provisioner_tag(value: Any) -> str | None:
    """The union member for one provisioner by its `type` (case-insensitive, as step-ca);
    None or a non-tag for a missing or unknown type, which `problems` words."""
    if isinstance(value, ProvisionerSchema):
        value = {"type": value.type}
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    kind = str(value["type"]).lower()
    if kind in SCHEMAS:
        return _TAG + kind
    return _TAG + "other" if kind in _KNOWN else "unknown"  # not a tag: union_tag_invalid


AnyProvisioner = Annotated[
    Annotated[JWKSchema, Tag(_TAG + "jwk")]
    | Annotated[OIDCSchema, Tag(_TAG + "oidc")]
    | Annotated[AWSSchema, Tag(_TAG + "aws")]
    | Annotated[GCPSchema, Tag(_TAG + "gcp")]
    | Annotated[AzureSchema, Tag(_TAG + "azure")]
    | Annotated[X5CSchema, Tag(_TAG + "x5c")]
    | Annotated[ACMESchema, Tag(_TAG + "acme")]
    | Annotated[ProvisionerSchema, Tag(_TAG + "other")],
    Discriminator(_provisioner_tag),
]
_ONE: TypeAdapter[ProvisionerSchema] = TypeAdapter(AnyProvisioner)


def parse_provisioner(entry: Any) -> ProvisionerSchema:
    """One provisioner entry as its type's schema; ProvisionerConfigError lists every problem
    (ca.json itself is checked whole by appliance.config_schema)."""
    try:
        return _ONE.validate_python(entry)
    except ValidationError as exc:
        raise ProvisionerConfigError("; ".join(problems(exc))) from None


# --- messages -----------------------------------------------------------------------------


class SchemaError(ValueError):
    """JSON that does not match a schema; `problems` lists each one as `path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


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
    if kind == INVALID:
        return str(error["msg"])
    if kind == EXPECTED:
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
