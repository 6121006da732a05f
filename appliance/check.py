"""`step-ca --check`: is this ca.json one the CA would start from, and what would it serve?

Every part the server opens is tried the way the server opens it (the schema, the
certificates, the key store and its key, the chain to the roots, the provisioners, the
database), and every problem is collected rather than the first one raised. Nothing is
written: the database is opened read-only and never migrated, and no server is started.
The result is a `CheckReport`; rendering it is the command line's job.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine

from appliance import credentials
from appliance.assembly import AuthorityError, load_certificates, ocsp_responder
from appliance.config import CAConfig, ConfigError
from appliance.config_schema import SchemaError
from appliance.config_schema import check as check_schema
from appliance.db.repository import Repository
from appliance.db.state import DatabaseError, DatabaseState, inspect_database
from appliance.signer import IssuerSigner
from keystores import KeyLocation, KeyStoreError, redact_uri
from keystores.uri import split_scheme
from pki.certs import is_ca, issued_by
from provisioners.base import ProvisionerConfigError
from provisioners.registry import DisabledProvisioner, ProvisionerRegistry, factory_for
from provisioners.schema import ProvisionerSchema

# A root or intermediate this close to its end still works, but is worth a line.
EXPIRY_WARNING = timedelta(days=30)


@dataclass(frozen=True)
class CertificateInfo:
    """A root or intermediate as the summary shows it."""

    subject: str
    not_after: datetime

    def to_json(self) -> dict[str, str]:
        return {"subject": self.subject, "notAfter": self.not_after.isoformat()}


@dataclass(frozen=True)
class ProvisionerInfo:
    """A provisioner's name and type, as ca.json spells the type."""

    name: str
    type: str


@dataclass
class CheckReport:
    """What `step-ca --check` found: a summary, and every problem (none: the CA starts)."""

    config_path: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    name: str | None = None
    roots: list[CertificateInfo] = field(default_factory=list)
    intermediates: list[CertificateInfo] = field(default_factory=list)
    key_store: str | None = None
    key: str | None = None
    store: str | None = None
    secrets: list[str] = field(default_factory=list)
    provisioners: list[ProvisionerInfo] = field(default_factory=list)
    database: DatabaseState | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "config": str(self.config_path),
            "ok": self.ok,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "name": self.name,
            "roots": [c.to_json() for c in self.roots],
            "intermediates": [c.to_json() for c in self.intermediates],
            "keyStore": (
                {"type": self.key_store, "key": self.key, "store": self.store}
                if self.key_store
                else None
            ),
            "secrets": list(self.secrets),
            "provisioners": [{"name": p.name, "type": p.type} for p in self.provisioners],
            "database": self.database.to_json() if self.database else None,
        }


def check_config(
    path: Path,
    password: bytes | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> CheckReport:
    """Check the ca.json at `path`. `password` is --password-file's; without it the
    `ca-password` credential, then ca.json's `password`, as the server takes them.
    `environ` says where systemd credentials are (default: this process's)."""
    report = CheckReport(path)
    config = _load(path, report)
    if config is None:
        return report
    now = now or datetime.now(UTC)
    roots = _bundles("root", config.roots, now, report, report.roots)
    _bundles("federated root", config.federated_roots, now, report, None)
    intermediates = _bundles("intermediate", [config.crt], now, report, report.intermediates)
    if intermediates:
        report.name = _common_name(intermediates[0])
        if roots:
            _check_chain(config, intermediates, roots, report)
    password, config = _secrets(config, password, environ, report)
    signer = _check_key(config, intermediates, password, report)
    if signer is not None and config.crl.ocsp_crt:
        _check_ocsp(config, intermediates[0], signer, password, report)
    _check_provisioners(config, report)
    _check_database(config, report)
    report.problems = [" ".join(p.split()) for p in report.problems]
    report.warnings = [" ".join(w.split()) for w in report.warnings]
    return report


def _secrets(
    config: CAConfig,
    password: bytes | None,
    environ: Mapping[str, str] | None,
    report: CheckReport,
) -> tuple[bytes | None, CAConfig]:
    """The password and the PIN-bearing config as `step-ca` takes them, and where each
    came from (so the summary shows that a credential was picked up)."""
    if password is not None:
        report.secrets.append("password from --password-file")
    try:
        password = credentials.ca_password(password, environ)
    except credentials.CredentialError as exc:
        report.problems.append(str(exc))
    else:
        if password is not None and not report.secrets:
            report.secrets.append(f"password from credential {credentials.CA_PASSWORD}")
    if password is None and config.password:
        password = config.password.encode()
        report.secrets.append("password from ca.json")
    try:
        pinned = credentials.with_kms_pin(config, environ)
    except credentials.CredentialError as exc:
        report.problems.append(str(exc))
        return password, config
    if pinned is not config:
        report.secrets.append(f"PIN from credential {credentials.KMS_PIN}")
    return password, pinned


def _load(path: Path, report: CheckReport) -> CAConfig | None:
    """The config, or None with the schema's problems listed one by one."""
    try:
        return CAConfig.load(path)
    except ConfigError as exc:
        report.problems.extend(_schema_problems(path) or [str(exc)])
    return None


def _schema_problems(path: Path) -> list[str]:
    """Each schema problem on its own line (ConfigError joins them into one)."""
    try:
        raw = json.loads(path.read_text())
        check_schema(raw)
    except SchemaError as exc:
        return [f"{path}: {problem}" for problem in exc.problems]
    except (OSError, ValueError):
        pass
    return []


def _bundles(
    what: str,
    paths: Sequence[Path],
    now: datetime,
    report: CheckReport,
    shown: list[CertificateInfo] | None,
) -> list[x509.Certificate]:
    """The certificates in `paths`, each one's dates checked; unreadable files listed."""
    found: list[x509.Certificate] = []
    for path in paths:
        try:
            certs = load_certificates(path)
        except AuthorityError as exc:
            report.problems.append(f"{what}: {exc}")
            continue
        for cert in certs:
            _check_dates(what, path, cert, now, report)
            if shown is not None:
                shown.append(CertificateInfo(_common_name(cert), cert.not_valid_after_utc))
        found.extend(certs)
    return found


def _check_dates(
    what: str, path: Path, cert: x509.Certificate, now: datetime, report: CheckReport
) -> None:
    shown = f"{what} {_common_name(cert)!r} ({path})"
    if now < cert.not_valid_before_utc:
        report.problems.append(f"{shown} is not valid before {_time(cert.not_valid_before_utc)}")
    elif now > cert.not_valid_after_utc:
        report.problems.append(f"{shown} expired on {_time(cert.not_valid_after_utc)}")
    elif cert.not_valid_after_utc - now < EXPIRY_WARNING:
        report.warnings.append(f"{shown} expires on {_time(cert.not_valid_after_utc)}")


def _time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _check_chain(
    config: CAConfig,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    report: CheckReport,
) -> None:
    """Each certificate of `crt` issued by the next one, the last by a root; all CAs."""
    for cert in intermediates:
        if not is_ca(cert):
            report.problems.append(
                f"intermediate {_common_name(cert)!r} ({config.crt}) is not a CA certificate"
            )
    for cert, issuer in itertools.pairwise(intermediates):
        if not issued_by(cert, issuer):
            report.problems.append(
                f"intermediate {_common_name(cert)!r} ({config.crt}) is not issued by the "
                f"next certificate of the bundle, {_common_name(issuer)!r}"
            )
            return
    last = intermediates[-1]
    if not any(issued_by(last, root) for root in roots):
        report.problems.append(
            f"intermediate {_common_name(last)!r} ({config.crt}) is not issued by any root "
            f"({', '.join(map(str, config.roots))})"
        )


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else cert.subject.rfc4514_string()
    return value if isinstance(value, str) else value.decode(errors="replace")


def _kms(config: CAConfig) -> dict[str, Any] | None:
    return config.kms.as_json() if config.kms else None


def _check_key(
    config: CAConfig,
    intermediates: list[x509.Certificate],
    password: bytes | None,
    report: CheckReport,
) -> IssuerSigner | None:
    """Open the key store and the key as the server does, and compare the key with the
    intermediate's public key (in a child process for hardware, as the server does)."""
    location = KeyLocation.from_config(_kms(config), config.key)
    report.key_store = split_scheme(location.store_uri)[0] or "file"
    report.key = redact_uri(location.key)
    report.store = redact_uri(location.store) if location.store else None
    if not intermediates:
        return None  # nothing to compare the key with; the certificate's problem is listed
    signer = IssuerSigner(_kms(config), config.key, intermediates[0], password, config.base_dir)
    try:
        signer.check()
    except KeyStoreError as exc:
        report.problems.append(f"key {redact_uri(config.key)}: {exc}")
        return None
    return signer


def _check_ocsp(
    config: CAConfig,
    issuer: x509.Certificate,
    signer: IssuerSigner,
    password: bytes | None,
    report: CheckReport,
) -> None:
    """The delegated OCSP signer, built as the server builds it."""
    # The responder only keeps the repository: an engine that never connects will do.
    repository = Repository(create_engine("sqlite://"))
    try:
        ocsp_responder(config, issuer, signer, repository, password)
    except AuthorityError as exc:
        report.problems.append(f"OCSP signer: {exc}")


def _check_database(config: CAConfig, report: CheckReport) -> None:
    """Reachable, and at this build's head: the server refuses any other schema (it never
    migrates; `step-ca db upgrade` does)."""
    try:
        state = inspect_database(config.db.as_json() if config.db else None, config.base_dir)
    except DatabaseError as exc:
        report.problems.append(f"database: {exc}")
        return
    report.database = state
    problem = state.problem(config.path)
    if problem is not None:
        report.problems.append(f"database: {problem}")


def _check_provisioners(config: CAConfig, report: CheckReport) -> None:
    """Build the provisioners as the server does. When that fails, build them one by one, so
    that each broken one is named, and the working ones together, for clashes among them."""
    configs = [c for c in config.provisioners if _supported(c, report)]
    try:
        registries = [ProvisionerRegistry(configs, config.claims)]
    except ProvisionerConfigError:
        registries, good = [], []
        for item in configs:
            try:
                registries.append(ProvisionerRegistry([item], config.claims))
            except ProvisionerConfigError as exc:
                report.problems.append(str(exc))
            else:
                good.append(item)
        try:
            ProvisionerRegistry(good, config.claims)
        except ProvisionerConfigError as exc:
            report.problems.append(str(exc))
    for registry in registries:
        for prov in registry:
            if isinstance(prov, DisabledProvisioner):
                report.problems.append(
                    f"provisioner {prov.name!r} failed to initialise: {prov.reason}"
                )
            report.provisioners.append(ProvisionerInfo(prov.name, prov.config.type))


def _supported(item: ProvisionerSchema, report: CheckReport) -> bool:
    """Whether this build has the provisioner's type; step-ca skips the others, so do we."""
    if factory_for(item.type.lower()) is not None:
        return True
    report.warnings.append(
        f"provisioner {item.name!r}: type {item.type!r} is not supported by this build "
        "and is skipped"
    )
    return False
