"""ca.json: load, validate and resolve step-ca's configuration file.

Validation is the schema's (appliance.config_schema): every problem is reported at once. What
the appliance acts on travels typed (the schema's objects, or values resolved from them); the
raw JSON object is kept only so that an edit of ca.json (appliance.config_edit) round-trips
the fields we do not interpret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from appliance.config_schema import (
    DEFAULT_CRL_CACHE,
    DEFAULT_MAX_TLS,
    DEFAULT_MIN_TLS,
    AuthoritySchema,
    CRLSchema,
    DBSchema,
    KMSSchema,
    ServerLimitsSchema,
    SSHSchema,
    StepstoneSchema,
    TemplateSchema,
    TLSSchema,
    check,
    split_address,
)
from pki.policy import IssuancePolicy
from pki.steppath import resolve, step_path
from provisioners.claims import Claims
from provisioners.fields import duration_or
from provisioners.schema import ProvisionerSchema, SchemaError

DEFAULT_DNS_NAMES = ["localhost", "127.0.0.1", "::1"]
DEFAULT_TLS: dict[str, Any] = {
    "cipherSuites": [
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ],
    "minVersion": DEFAULT_MIN_TLS,
    "maxVersion": DEFAULT_MAX_TLS,
    "renegotiation": False,
}
DEFAULT_COMMON_NAME = "Step Online CA"


@dataclass(frozen=True)
class CRLConfig:
    """ca.json `crl`: step-ca's block, plus the OCSP responder that rides on it."""

    enabled: bool = False
    generate_on_revoke: bool = True
    cache_duration: timedelta = DEFAULT_CRL_CACHE
    renew_period: timedelta | None = None
    idp_url: str = ""
    # Beyond step-ca: a delegated OCSP signer (certificate + key issued by the intermediate).
    ocsp_crt: str = ""
    ocsp_key: str = ""


class ConfigError(ValueError):
    """A ca.json step-ca would refuse, with a message that names the field."""


@dataclass
class CAConfig:
    """The parts of ca.json the appliance acts on, with paths resolved."""

    path: Path
    raw: dict[str, Any]  # for appliance.config_edit only: read the typed fields below
    roots: list[Path]
    federated_roots: list[Path]
    crt: Path
    key: str
    address: str
    host: str
    port: int
    dns_names: list[str]
    password: str | None
    provisioners: list[ProvisionerSchema]
    claims: Claims
    backdate: timedelta
    disable_issued_at_check: bool
    # Subject defaults by ca.json attribute name, each a list of values (TemplateSchema's).
    template: dict[str, list[str]]
    tls: dict[str, Any]
    common_name: str
    db: DBSchema | None
    kms: KMSSchema | None
    # Beyond step-ca's fields: how long and how much a client may take (api.connection.Limits).
    server_limits: ServerLimitsSchema | None
    base_dir: Path = field(default_factory=step_path)
    server_cert_duration: timedelta = timedelta(hours=24)
    workers: int = 2
    # Beyond step-ca's fields: where Prometheus scrapes (None: no metrics listener).
    metrics_address: str | None = None
    crl: CRLConfig = field(default_factory=CRLConfig)
    # ca.json `ssh` (None: no SSH CA); keys are paths or URIs like `key` (appliance.ssh_keys).
    ssh: SSHSchema | None = None
    # ca.json `templates` (the SSH config templates, appliance.ssh_templates).
    templates: dict[str, Any] | None = None
    # ca.json `authority.enableAdmin`: the admin API (appliance.admin) is mounted.
    enable_admin: bool = False
    # ca.json `authority.policy`, compiled (None: no rules, nothing to check).
    policy: IssuancePolicy | None = None

    @property
    def base_url(self) -> str:
        """`https://<first dns name>[:port]`: where clients reach this CA."""
        host = self.dns_names[0]
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}" if self.port == 443 else f"https://{host}:{self.port}"

    @classmethod
    def load(cls, path: Path) -> CAConfig:
        """Read and validate ca.json at `path`."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"open {path}: no such file or directory") from None
        except OSError as exc:
            raise ConfigError(f"open {path}: {exc.strerror}") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"error parsing {path}: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"error parsing {path}: not a JSON object")
        return cls.from_raw(raw, path)

    @classmethod
    def from_raw(cls, raw: dict[str, Any], path: Path) -> CAConfig:
        """Check a parsed ca.json against the schema (every problem at once, prefixed with
        `path`) and resolve it; paths resolve against STEPPATH, as step does."""
        try:
            schema = check(raw)
        except SchemaError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        base = step_path()
        authority = schema.authority or AuthoritySchema()
        ours = schema.stepstone or StepstoneSchema()
        address = split_address(schema.address)
        assert address is not None  # the schema checked it
        return cls(
            path=path,
            raw=raw,
            roots=[resolve(p, base) for p in schema.root],
            federated_roots=[resolve(p, base) for p in schema.federatedRoots or []],
            crt=resolve(schema.crt, base),
            key=schema.key,
            address=schema.address,
            host=address[0],
            port=address[1],
            dns_names=list(schema.dnsNames or DEFAULT_DNS_NAMES),
            password=schema.password or None,
            provisioners=list(authority.provisioners or []),
            claims=authority.effective_claims(),
            backdate=duration_or(authority.backdate, timedelta(minutes=1)),
            disable_issued_at_check=bool(authority.disableIssuedAtCheck),
            template=_template(authority.template or TemplateSchema()),
            tls=_tls(schema.tls or TLSSchema()),
            common_name=schema.commonName or DEFAULT_COMMON_NAME,
            db=schema.db,
            kms=schema.kms,
            server_limits=schema.serverLimits,
            base_dir=base,
            server_cert_duration=duration_or(ours.serverCertDuration, timedelta(hours=24)),
            workers=ours.workers or 2,
            metrics_address=(ours.metrics.address if ours.metrics else None)
            or schema.metricsAddress,
            crl=_crl(schema.crl or CRLSchema()),
            ssh=schema.ssh,
            templates=schema.templates,
            enable_admin=bool(authority.enableAdmin),
            policy=authority.policy.engine if authority.policy else None,
        )

    def tls_options(self) -> dict[str, Any]:
        """The `tlsOptions` object returned with every certificate, as step-ca sends it."""
        return {**self.tls, "cipherSuites": list(self.tls["cipherSuites"])}


def _tls(tls: TLSSchema) -> dict[str, Any]:
    """The `tls` block with step-ca's defaults for what is unset (null and 0 included)."""
    return {
        "cipherSuites": list(tls.cipherSuites or DEFAULT_TLS["cipherSuites"]),
        "minVersion": tls.minVersion or DEFAULT_TLS["minVersion"],
        "maxVersion": tls.maxVersion or DEFAULT_TLS["maxVersion"],
        "renegotiation": bool(tls.renegotiation),
    }


def _template(template: TemplateSchema) -> dict[str, list[str]]:
    """The set subject attributes, each as a list (the schema made one value a list)."""
    values = {key: getattr(template, key) for key in TemplateSchema.model_fields}
    return {key: list(value) for key, value in values.items() if value}


def _crl(crl: CRLSchema) -> CRLConfig:
    return CRLConfig(
        enabled=bool(crl.enabled),
        generate_on_revoke=crl.generateOnRevoke is not False,
        cache_duration=duration_or(crl.cacheDuration, DEFAULT_CRL_CACHE),
        renew_period=duration_or(crl.renewPeriod, None),
        idp_url=crl.idpURL or "",
        ocsp_crt=crl.ocspCrt or "",
        ocsp_key=crl.ocspKey or "",
    )
