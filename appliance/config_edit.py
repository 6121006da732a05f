"""Safe edits of ca.json: load, change, validate the whole result, back up, replace atomically.

Used by `step ca provisioner add|update|remove`. An edit never leaves a half-written or
invalid ca.json behind:

1. an exclusive lock on the config directory serialises concurrent editors;
2. the change is applied to a copy and the whole result is validated by the loader the CA uses
   (`CAConfig.from_raw`, whose schema checks every field, and `ProvisionerRegistry`);
   provisioner types whose initialisation talks to the network (OIDC and Azure discovery,
   GCP's key set) are checked for shape only, so validation never contacts anything;
3. the previous file is kept as `ca.json.bak` and the new one is written atomically, both with
   the original's permissions (and owner, when we may set it); key order is kept and the
   indentation is step's tab;
4. if ca.json changed on disk while we worked, nothing is written.

The running CA picks the change up on SIGHUP or at restart.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.config import CAConfig, ConfigError
from keystores import write_atomic
from keystores.fileio import locked_directory
from pki.durations import parse_duration
from pki.steppath import step_path
from provisioners.base import ProvisionerConfigError
from provisioners.claims import Claims, ClaimsError
from provisioners.registry import ProvisionerRegistry
from provisioners.schema import (
    AWSSchema,
    AzureSchema,
    GCPSchema,
    JWKSchema,
    OIDCSchema,
    ProvisionerSchema,
)

#: Types whose constructor would reach out to the network: validated for shape only.
REMOTE_TYPES = frozenset({"oidc", "gcp", "azure"})
RELOAD_MESSAGE = (
    "Success! Your `step-ca` config has been updated. To pick up the new configuration "
    "SIGHUP (kill -1 <pid>) or restart the step-ca process."
)

Change = Callable[[dict[str, Any]], None]


class ConfigEditError(ValueError):
    """An edit that was refused; ca.json is untouched."""


def default_config_path() -> Path:
    """$STEPPATH/config/ca.json, where `step ca init` puts it."""
    return step_path() / "config" / "ca.json"


@dataclass(frozen=True)
class EditResult:
    """Where the new configuration and the backup of the old one are."""

    path: Path
    backup: Path
    config: dict[str, Any]
    #: What the CA will log about the new configuration (e.g. a provisioner that will start
    #: disabled, or a type this build does not know and skips).
    warnings: tuple[str, ...] = ()


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def _dumps(raw: dict[str, Any], trailing_newline: bool) -> bytes:
    text = json.dumps(raw, indent="\t", ensure_ascii=False)
    return (text + ("\n" if trailing_newline else "")).encode("utf-8")


def _write_like(path: Path, data: bytes, st: os.stat_result) -> None:
    write_atomic(path, data, mode=stat.S_IMODE(st.st_mode))
    if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(PermissionError):
            os.chown(path, st.st_uid, st.st_gid)


def load_raw(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The bytes and the parsed object of ca.json."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigEditError(f"open {path}: no such file or directory") from None
    except OSError as exc:
        raise ConfigEditError(f"open {path}: {exc.strerror}") from None
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigEditError(f"error parsing {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigEditError(f"error parsing {path}: not a JSON object")
    return data, raw


def edit_config(path: Path, change: Change) -> EditResult:
    """Apply `change` to ca.json at `path` safely (see the module docstring).

    `change` gets a deep copy of the parsed file and mutates it; it may raise
    ConfigEditError to refuse. Validation failures raise ConfigEditError too.
    """
    target = Path(path).resolve()
    with locked_directory(target.parent):
        original, raw = load_raw(target)
        st = target.stat()
        edited = copy.deepcopy(raw)
        change(edited)
        warnings = validate(edited, target)
        data = _dumps(edited, original.endswith(b"\n"))
        if target.read_bytes() != original:
            raise ConfigEditError(f"{target} was changed by someone else; nothing was written")
        backup = backup_path(target)
        _write_like(backup, original, st)
        _write_like(target, data, st)
    return EditResult(target, backup, edited, tuple(warnings))


# --- validation -------------------------------------------------------------------------------


@contextlib.contextmanager
def _captured(name: str) -> Iterator[list[str]]:
    """Collect what logger `name` says (instead of printing it) while validating."""
    logger = logging.getLogger(name)
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collect(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def validate(raw: dict[str, Any], path: Path) -> list[str]:
    """Refuse a ca.json the CA would refuse, without contacting anything; the warnings the CA
    would log about it (a provisioner that starts disabled, a type this build skips).

    `CAConfig.from_raw` checks the whole file against the schema (types and values, every
    problem at once); what is left here needs more than one field or the provisioners'
    own code: unique names and keys, claims against the global ones, and the shape of the
    types whose initialisation would reach out to the network."""
    try:
        config = CAConfig.from_raw(raw, path)
    except ConfigError as exc:
        raise ConfigEditError(f"invalid configuration: {exc}") from None
    provisioners = config.provisioners
    _check_unique(provisioners)
    local: list[ProvisionerSchema] = []
    remote: list[ProvisionerSchema] = []
    for prov in provisioners:
        if isinstance(prov, AWSSchema):  # its module may be absent (then it is skipped)
            _instance_age(prov.name, prov.instanceAge)
        (remote if prov.type.lower() in REMOTE_TYPES else local).append(prov)
    try:
        with _captured("provisioners.registry") as warnings:
            registry = ProvisionerRegistry(local, config.claims)
    except (ProvisionerConfigError, ValueError, TypeError) as exc:
        raise ConfigEditError(f"invalid provisioner: {exc}") from None
    keys = {key for prov in registry for key in prov.lookup_keys}
    for prov in remote:
        for key in _check_remote(prov, config.claims):
            if key in keys:
                raise ConfigEditError(f"invalid provisioner: provisioner key {key!r} is not unique")
            keys.add(key)
    return warnings


def _check_unique(provisioners: list[ProvisionerSchema]) -> None:
    """Names, and JWK key ids, are unique."""
    names: set[str] = set()
    kids: set[str] = set()
    for prov in provisioners:
        if prov.name in names:
            raise ConfigEditError(f"provisioner with name {prov.name!r} already exists")
        names.add(prov.name)
        if isinstance(prov, JWKSchema):
            if prov.key.kid in kids:
                raise ConfigEditError(f"provisioner with key id {prov.key.kid!r} already exists")
            kids.add(prov.key.kid)


def _required(name: str, field: str, value: str | None) -> str:
    """A string field that cannot be empty."""
    if not value:
        raise ConfigEditError(f"invalid provisioner {name!r}: {field} cannot be empty")
    return value


def _instance_age(name: str, age: str | None) -> None:
    """A negative age only disables the provisioner at start-up; refuse to write one."""
    if age and parse_duration(age) < timedelta(0):
        raise ConfigEditError(
            f"invalid provisioner {name!r}: instanceAge {age!r} cannot be negative"
        )


def check_listen_address(value: str) -> bool:
    """`host:port` with a numeric port (host may be empty), as step-ca requires."""
    _host, sep, port = value.rpartition(":")
    return bool(sep) and port.isdigit() and 0 <= int(port) <= 65535


def check_url(value: str) -> bool:
    """An absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_remote(prov: ProvisionerSchema, claims: Claims) -> list[str]:
    """What the constructor of a network-dependent provisioner would refuse; its lookup
    keys."""
    name = prov.name
    try:
        claims.merged(prov.claims)
    except ClaimsError as exc:
        raise ConfigEditError(f"invalid provisioner {name!r}: {exc}") from None
    if isinstance(prov, OIDCSchema):
        client_id = _required(name, "clientID", prov.clientID)
        endpoint = _required(name, "configurationEndpoint", prov.configurationEndpoint)
        if not check_url(endpoint):
            raise ConfigEditError(
                f"invalid provisioner {name!r}: configurationEndpoint {endpoint!r} is not an "
                "http(s) URL"
            )
        listen = prov.listenAddress
        if listen and not check_listen_address(listen):
            raise ConfigEditError(
                f"invalid provisioner {name!r}: listenAddress {listen!r} must be host:port"
            )
        return [client_id]
    if isinstance(prov, GCPSchema):
        if prov.projectIDs and prov.organizationID:
            raise ConfigEditError(
                f"invalid provisioner {name!r}: projectIDs and organizationID cannot be "
                "used together"
            )
        _instance_age(name, prov.instanceAge)
        return [f"gcp/{name}"]
    assert isinstance(prov, AzureSchema)  # REMOTE_TYPES: the schema picked the class
    return [_required(name, "tenantID", prov.tenantID)]


# --- provisioner list operations ----------------------------------------------------------


def provisioner_list(raw: dict[str, Any]) -> list[Any]:
    """`authority.provisioners` of a parsed ca.json, created when missing."""
    authority = raw.setdefault("authority", {})
    if not isinstance(authority, dict):
        raise ConfigEditError("authority must be a JSON object")
    provisioners = authority.setdefault("provisioners", [])
    if not isinstance(provisioners, list):
        raise ConfigEditError("authority.provisioners must be a list")
    return provisioners


def find_provisioner(raw: dict[str, Any], name: str) -> dict[str, Any]:
    for prov in provisioner_list(raw):
        if isinstance(prov, dict) and prov.get("name") == name:
            return prov
    raise ConfigEditError(f"provisioner {name!r} not found")


def add_provisioner(path: Path, prov: dict[str, Any]) -> EditResult:
    """Append `prov` (refusing a duplicate name)."""

    def change(raw: dict[str, Any]) -> None:
        provisioners = provisioner_list(raw)
        if any(isinstance(p, dict) and p.get("name") == prov.get("name") for p in provisioners):
            raise ConfigEditError(f"provisioner with name {prov.get('name')!r} already exists")
        provisioners.append(prov)

    return edit_config(path, change)


def update_provisioner(
    path: Path, name: str, mutate: Callable[[dict[str, Any]], None]
) -> EditResult:
    """Change the provisioner called `name` in place."""

    def change(raw: dict[str, Any]) -> None:
        mutate(find_provisioner(raw, name))

    return edit_config(path, change)


def remove_provisioner(path: Path, name: str) -> EditResult:
    """Drop the provisioner called `name` (an unknown name is an error)."""

    def change(raw: dict[str, Any]) -> None:
        provisioners = provisioner_list(raw)
        prov = find_provisioner(raw, name)
        del provisioners[next(i for i, p in enumerate(provisioners) if p is prov)]

    return edit_config(path, change)
