"""Audit entries for what happens outside a request: a reload, provisioner edits, a ceremony.

`step ca provisioner add|update|remove` edit ca.json on the CA's machine without touching the
database; an edit takes effect when the CA reloads. So a reload records `config.reload` and
one `provisioner.add|update|remove` per provisioner that differs between the configuration
it replaces and the new one, all in one transaction. Local actions are recorded as done by
the local user the process runs as (`local:NAME`). The chain itself: appliance/db/audit.py.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import socket
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from appliance.assembly import load_certificates
from appliance.ceremony_record import CeremonyError, verify_record
from appliance.config import CAConfig
from appliance.db.audit import AuditEntry, AuditEvent, canonical, record
from appliance.db.engine import database_url, open_engine
from appliance.db.schema import SchemaError, require_current
from appliance.db.state import read_only_engine, read_only_url
from appliance.pki import InitResult
from pki.fingerprint import certificate_fingerprint


class AuditError(RuntimeError):
    """The audit log cannot be read: one line (the schema's command to run, or why)."""


def open_read_only(config: CAConfig) -> Engine:
    """A read-only engine on the database `config` names, its schema at head (so the audit
    table is there); for `step-ca audit`, which needs neither the CA running nor a password."""
    try:
        require_current(config)
    except SchemaError as exc:
        raise AuditError(str(exc)) from None
    return read_only_engine(
        read_only_url(config.db.as_json() if config.db else None, config.base_dir)
    )


def local_actor() -> str:
    """`local:USER`, USER the name of this process's uid (its number if it has no name)."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return f"local:{name}"


def _provisioners(config: CAConfig) -> dict[str, dict[str, Any]]:
    return {p.name: p.json_object() for p in config.provisioners}


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def provisioner_changes(old: CAConfig, new: CAConfig, actor: str) -> list[AuditEvent]:
    """One event per provisioner added, removed or changed (by name; any change of its
    JSON). Values are not copied (a provisioner may hold secrets): the type, the fields that
    changed and SHA-256 of the canonical JSON before and after."""
    before, after = _provisioners(old), _provisioners(new)
    events: list[AuditEvent] = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        details: dict[str, Any] = {"name": name, "type": (now or was or {}).get("type", "")}
        if was is None:
            kind = "provisioner.add"
        elif now is None:
            kind = "provisioner.remove"
        else:
            kind = "provisioner.update"
            keys = was.keys() | now.keys()
            details["fields"] = sorted(k for k in keys if was.get(k) != now.get(k))
        if was is not None:
            details["sha256_before"] = _digest(was)
        if now is not None:
            details["sha256_after"] = _digest(now)
        events.append(AuditEvent(kind, actor, subject=name, details=details, request_id=""))
    return events


def _file_sha256(config: CAConfig) -> str:
    try:
        return hashlib.sha256(config.path.read_bytes()).hexdigest()
    except OSError:
        return ""


def reload_events(old: CAConfig, new: CAConfig, actor: str | None = None) -> list[AuditEvent]:
    """`config.reload` (ca.json's path and SHA-256), then the provisioner changes."""
    who = actor or local_actor()
    changes = provisioner_changes(old, new, who)
    details = {
        "config": str(new.path),
        "sha256": _file_sha256(new),
        "host": socket.gethostname(),
        "provisioners_changed": len(changes),
    }
    return [AuditEvent("config.reload", who, details=details, request_id=""), *changes]


def record_reload(engine: Engine, old: CAConfig, new: CAConfig) -> list[AuditEntry]:
    """Append the reload's entries in one transaction of `engine` (the new configuration's)."""
    return record(engine, reload_events(old, new))


def record_ceremony(
    config: CAConfig, step: str, details: dict[str, Any], now: datetime | None = None
) -> AuditEntry:
    """Append `ceremony.STEP` by the local user to the database `config` names (a ceremony
    step run on the CA's machine, e.g. `step ca init` once it made the schema)."""
    engine = open_engine(database_url(config.db.as_json() if config.db else None, config.base_dir))
    try:
        event = AuditEvent(f"ceremony.{step}", local_actor(), details=details, request_id="")
        return record(engine, [event], now)[0]
    finally:
        engine.dispose()


def record_init(res: InitResult, step: str = "init") -> AuditEntry:
    """`ceremony.init` (or `ceremony.STEP`) in the new CA's database, once `step ca init` made
    its schema: the certificates' SHA-256 and the ceremony record's head, so each log
    vouches for the other's state at that moment."""
    config = CAConfig.load(res.ca_config)
    details: dict[str, Any] = {
        "config": str(res.ca_config),
        "root_sha256": res.root_fingerprint,
        "intermediate_sha256": certificate_fingerprint(load_certificates(res.intermediate_cert)[0]),
        "ceremony_record": str(res.record),
    }
    try:
        details["ceremony_record_head"] = verify_record(res.record).head_sha256
    except CeremonyError:
        details["ceremony_record_head"] = ""
    return record_ceremony(config, step, details)
