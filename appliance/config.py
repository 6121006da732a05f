"""ca.json: load, validate and resolve step-ca's configuration file.

The raw JSON object is kept so that a config written by step (or edited by hand) round-trips
with the fields we do not interpret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from appliance.steppath import resolve, step_path
from provisioners.claims import Claims, ClaimsError
from provisioners.durations import parse_duration

DEFAULT_DNS_NAMES = ["localhost", "127.0.0.1", "::1"]
DEFAULT_TLS: dict[str, Any] = {
    "cipherSuites": [
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ],
    "minVersion": 1.2,
    "maxVersion": 1.3,
    "renegotiation": False,
}
DEFAULT_COMMON_NAME = "Step Online CA"


@dataclass(frozen=True)
class CRLConfig:
    """ca.json `crl`: step-ca's block, plus the OCSP responder that rides on it."""

    enabled: bool = False
    generate_on_revoke: bool = True
    cache_duration: timedelta = timedelta(hours=24)
    renew_period: timedelta | None = None
    idp_url: str = ""
    # Beyond step-ca: a delegated OCSP signer (certificate + key issued by the intermediate).
    ocsp_crt: str = ""
    ocsp_key: str = ""


class ConfigError(ValueError):
    """A ca.json step-ca would refuse, with a message that names the field."""


def _strings(value: Any, field_name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{field_name} must be a string or a list of strings")


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"address {address!r} must be of the form host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass
class CAConfig:
    """The parts of ca.json the appliance acts on, with paths resolved."""

    path: Path
    raw: dict[str, Any]
    roots: list[Path]
    federated_roots: list[Path]
    crt: Path
    key: str
    address: str
    host: str
    port: int
    dns_names: list[str]
    password: str | None
    provisioners: list[dict[str, Any]]
    claims: Claims
    backdate: timedelta
    disable_issued_at_check: bool
    template: dict[str, Any]
    tls: dict[str, Any]
    common_name: str
    db: dict[str, Any] | None
    base_dir: Path = field(default_factory=step_path)
    server_cert_duration: timedelta = timedelta(hours=24)
    workers: int = 2
    crl: CRLConfig = field(default_factory=CRLConfig)

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
        """Validate a parsed ca.json (paths resolve against STEPPATH, as step does)."""
        base = step_path()
        roots = [resolve(p, base) for p in _strings(raw.get("root"), "root")]
        if not roots:
            raise ConfigError("root cannot be empty")
        federated = [
            resolve(p, base) for p in _strings(raw.get("federatedRoots"), "federatedRoots")
        ]
        crt = raw.get("crt")
        key = raw.get("key")
        if not isinstance(crt, str) or not crt:
            raise ConfigError("crt cannot be empty")
        if not isinstance(key, str) or not key:
            raise ConfigError("key cannot be empty")
        address = raw.get("address")
        if not isinstance(address, str) or not address:
            raise ConfigError("address cannot be empty")
        host, port = _split_address(address)
        dns_names = _strings(raw.get("dnsNames"), "dnsNames") or list(DEFAULT_DNS_NAMES)
        authority = raw.get("authority") or {}
        if not isinstance(authority, dict):
            raise ConfigError("authority must be a JSON object")
        provisioners = authority.get("provisioners") or []
        if not isinstance(provisioners, list):
            raise ConfigError("authority.provisioners must be a list")
        try:
            claims = Claims().merged(authority.get("claims"))
        except ClaimsError as exc:
            raise ConfigError(f"authority.{exc}") from None
        backdate = _duration(authority.get("backdate"), "authority.backdate", timedelta(minutes=1))
        if backdate < timedelta(0):
            raise ConfigError("authority.backdate cannot be less than 0")
        tls = {**DEFAULT_TLS, **(raw.get("tls") or {})}
        min_v, max_v = float(tls.get("minVersion", 1.2)), float(tls.get("maxVersion", 1.3))
        if min_v > max_v:
            raise ConfigError("tls.minVersion cannot exceed tls.maxVersion")
        password = raw.get("password")
        db = raw.get("db")
        if db is not None and not isinstance(db, dict):
            raise ConfigError("db must be a JSON object")
        ours = raw.get("stepstone") or {}
        if not isinstance(ours, dict):
            raise ConfigError("stepstone must be a JSON object")
        server_duration = _duration(
            ours.get("serverCertDuration"), "stepstone.serverCertDuration", timedelta(hours=24)
        )
        workers = ours.get("workers", 2)
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError("stepstone.workers must be a positive integer")
        template = authority.get("template") or {}
        crl = _crl_config(raw.get("crl"))
        return cls(
            path=path,
            raw=raw,
            roots=roots,
            federated_roots=federated,
            crt=resolve(crt, base),
            key=key,
            address=address,
            host=host,
            port=port,
            dns_names=dns_names,
            password=password if isinstance(password, str) and password else None,
            provisioners=provisioners,
            claims=claims,
            backdate=backdate,
            disable_issued_at_check=bool(authority.get("disableIssuedAtCheck", False)),
            template=template if isinstance(template, dict) else {},
            tls=tls,
            common_name=str(raw.get("commonName") or DEFAULT_COMMON_NAME),
            db=db,
            base_dir=base,
            server_cert_duration=server_duration,
            workers=workers,
            crl=crl,
        )

    def tls_options(self) -> dict[str, Any]:
        """The `tlsOptions` object returned with every certificate, as step-ca sends it."""
        return {
            "cipherSuites": list(self.tls.get("cipherSuites") or DEFAULT_TLS["cipherSuites"]),
            "minVersion": self.tls.get("minVersion", 1.2),
            "maxVersion": self.tls.get("maxVersion", 1.3),
            "renegotiation": bool(self.tls.get("renegotiation", False)),
        }


def _duration(value: Any, name: str, default: timedelta) -> timedelta:
    if value in (None, ""):
        return default
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _crl_config(raw: Any) -> CRLConfig:
    if raw is None:
        return CRLConfig()
    if not isinstance(raw, dict):
        raise ConfigError("crl must be a JSON object")
    cache = _duration(raw.get("cacheDuration"), "crl.cacheDuration", timedelta(hours=24))
    if cache <= timedelta(0):
        raise ConfigError("crl.cacheDuration must be greater than 0")
    if bool(raw.get("ocspCrt")) != bool(raw.get("ocspKey")):
        raise ConfigError("crl.ocspCrt and crl.ocspKey go together")
    renew = raw.get("renewPeriod")
    period = _duration(renew, "crl.renewPeriod", cache) if renew not in (None, "") else None
    if period is not None and not timedelta(0) < period <= cache:
        raise ConfigError("crl.renewPeriod must be greater than 0 and at most crl.cacheDuration")
    return CRLConfig(
        enabled=bool(raw.get("enabled", False)),
        generate_on_revoke=bool(raw.get("generateOnRevoke", True)),
        cache_duration=cache,
        renew_period=period,
        idp_url=str(raw.get("idpURL") or ""),
        ocsp_crt=str(raw.get("ocspCrt") or ""),
        ocsp_key=str(raw.get("ocspKey") or ""),
    )
