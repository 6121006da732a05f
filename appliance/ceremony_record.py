"""The ceremony record: an append-only, hash-chained log of every key ceremony step.

Auditors need to see which keys were made or used, by whom and when, and to notice when the
log was edited afterwards. Every step (`step ca init`, `step ca ceremony ...`, `step kms
create`) appends here, and so do the errors that stop a step (`CeremonyError`).

The record is a JSON-lines file (default `$STEPPATH/ceremony/record.jsonl`). Each line is one
entry, written compactly with its fields in this order:

- `seq`: 1, 2, 3, ... (the line number);
- `time`: when, RFC 3339 UTC (`2025-01-31T12:00:00Z`);
- `who`: `user@host` of the process that ran the step;
- `command`: the command, e.g. `step ca ceremony sign-intermediate`;
- `key_uris`: the keys used or created (secrets such as `pin-value` replaced by `REDACTED`,
  see `keystores.redact_uri`);
- `public_key_sha256`: SHA-256 (hex) of each key's SubjectPublicKeyInfo DER, in the order of
  `key_uris`;
- `certificate_sha256`: SHA-256 (hex, step's fingerprint) of each certificate created or used;
- `details`: what else an auditor wants (subjects, the CSR's hash, whether a key was new);
- `prev_sha256`: SHA-256 (hex) of the previous line's bytes (without its newline); `null` on
  the first line;
- `entry_sha256`: SHA-256 (hex) of this entry without `entry_sha256`, as canonical JSON
  (sorted keys, no spaces, ASCII), so an edit of the last line is caught too.

A hash chain proves order and completeness only relative to a trusted head: `verify_record`
returns the SHA-256 of the last line, which the ceremony's witnesses write down; checking
against it later (`step ca ceremony verify --expect-head`) detects a rewritten record.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from keystores import PublicKey, redact_uri, write_atomic
from keystores.fileio import locked_directory
from pki.fingerprint import certificate_fingerprint

__all__ = [
    "FIELDS",
    "CeremonyError",
    "RecordError",
    "RecordSummary",
    "append_entry",
    "check_appendable",
    "default_record_path",
    "key_store_error",
    "public_key_sha256",
    "sha256_hex",
    "verify_record",
    "who",
]

FIELDS = (
    "seq",
    "time",
    "who",
    "command",
    "key_uris",
    "public_key_sha256",
    "certificate_sha256",
    "details",
    "prev_sha256",
    "entry_sha256",
)
_HEX64 = re.compile(r"[0-9a-f]{64}")


class CeremonyError(Exception):
    """A ceremony step cannot go on; the message is one line, fit to print."""


class RecordError(CeremonyError):
    """The ceremony record is unreadable or its chain is broken (`line` is 1-based, 0 = file)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


def key_store_error(exc: Exception) -> str:
    """One line for a key store, ceremony or file error."""
    if isinstance(exc, OSError):
        return f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}"
    return str(exc)


# --- fingerprints and names -----------------------------------------------------------------


def public_key_sha256(public: PublicKeyTypes | x509.Certificate) -> str:
    """SHA-256 hex of a public key's SubjectPublicKeyInfo DER (of a certificate's key too)."""
    key = public.public_key() if isinstance(public, x509.Certificate) else public
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sha256_hex(data: bytes) -> str:
    """SHA-256 of `data` in lower-case hex."""
    return hashlib.sha256(data).hexdigest()


def who() -> str:
    """`user@host` of this process (the uid when the user has no name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def default_record_path(step_path: Path) -> Path:
    """`$STEPPATH/ceremony/record.jsonl`."""
    return step_path / "ceremony" / "record.jsonl"


# --- writing --------------------------------------------------------------------------------


def _canonical(entry: dict[str, Any]) -> bytes:
    body = {k: v for k, v in entry.items() if k != "entry_sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _line(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=True).encode()


def _read_lines(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RecordError(f"cannot read {path}: {exc.strerror}") from None
    if data and not data.endswith(b"\n"):
        raise RecordError(f"{path}: the last line is incomplete", data.count(b"\n") + 1)
    return data.splitlines()


def append_entry(
    path: Path,
    command: str,
    key_uris: Sequence[str] = (),
    public_keys: Sequence[PublicKey] = (),
    certificates: Sequence[x509.Certificate] = (),
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Append one entry to the record at `path` (created with its folder if missing).

    The existing chain is verified first: a step never extends a broken record. The file is
    rewritten atomically (a crash leaves the old record whole) under a lock on its folder.
    """
    if len(public_keys) != len(key_uris):
        raise ValueError("one public key per key URI")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with locked_directory(path.parent):
        lines = _read_lines(path)
        if lines:
            _verify_lines(lines, path)
        when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        entry: dict[str, Any] = {
            "seq": len(lines) + 1,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "who": who(),
            "command": command,
            "key_uris": [redact_uri(u) for u in key_uris],
            "public_key_sha256": [public_key_sha256(k) for k in public_keys],
            "certificate_sha256": [certificate_fingerprint(c) for c in certificates],
            "details": details or {},
            "prev_sha256": hashlib.sha256(lines[-1]).hexdigest() if lines else None,
        }
        entry["entry_sha256"] = hashlib.sha256(_canonical(entry)).hexdigest()
        data = b"".join(line + b"\n" for line in [*lines, _line(entry)])
        try:
            write_atomic(path, data, 0o644)
        except OSError as exc:
            raise RecordError(f"cannot write {path}: {exc.strerror or exc}") from None
    return entry


# --- verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordSummary:
    """A record whose chain holds: how many entries, and the SHA-256 of its last line."""

    entries: int
    head_sha256: str


def _check_entry(entry: Any, number: int, prev: bytes | None, where: str) -> None:
    if not isinstance(entry, dict):
        raise RecordError(f"{where}: not a JSON object", number)
    missing = [f for f in FIELDS if f not in entry]
    if missing:
        raise RecordError(f"{where}: missing {', '.join(missing)}", number)
    if entry["seq"] != number:
        raise RecordError(f"{where}: seq is {entry['seq']!r}, expected {number}", number)
    expected_prev = hashlib.sha256(prev).hexdigest() if prev is not None else None
    if entry["prev_sha256"] != expected_prev:
        what = f"the SHA-256 of line {number - 1}" if prev is not None else "null"
        raise RecordError(f"{where}: prev_sha256 does not match {what}", number)
    if entry["entry_sha256"] != hashlib.sha256(_canonical(entry)).hexdigest():
        raise RecordError(f"{where}: entry_sha256 does not match the entry's content", number)
    try:
        datetime.strptime(str(entry["time"]), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise RecordError(f"{where}: time is not RFC 3339 UTC", number) from None
    lists = ("key_uris", "public_key_sha256", "certificate_sha256")
    if not all(isinstance(entry[f], list) for f in lists):
        raise RecordError(f"{where}: {', '.join(lists)} must be lists", number)
    if len(entry["key_uris"]) != len(entry["public_key_sha256"]):
        raise RecordError(f"{where}: one public_key_sha256 per key URI", number)
    hashes = entry["public_key_sha256"] + entry["certificate_sha256"]
    if not all(isinstance(h, str) and _HEX64.fullmatch(h) for h in hashes):
        raise RecordError(f"{where}: a fingerprint is not a SHA-256 in hex", number)


def _verify_lines(lines: list[bytes], path: Path) -> RecordSummary:
    prev: bytes | None = None
    for number, line in enumerate(lines, start=1):
        where = f"{path}: line {number}"
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RecordError(f"{where}: not JSON", number) from None
        _check_entry(entry, number, prev, where)
        prev = line
    assert prev is not None
    return RecordSummary(len(lines), hashlib.sha256(prev).hexdigest())


def check_appendable(path: Path) -> None:
    """Fail now, before any key is made or anything signed, if the record at `path` exists
    and is broken (`append_entry` would refuse it at the end)."""
    path = Path(path)
    if path.exists():
        lines = _read_lines(path)
        if lines:
            _verify_lines(lines, path)


def verify_record(path: Path, expect_head: str | None = None) -> RecordSummary:
    """Check every link of the record; RecordError names the first broken one.

    With `expect_head` (the last line's SHA-256, written down at the ceremony), also check
    that the record ends there or that the entry with that hash is still in it.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    lines = _read_lines(path)
    if not lines:
        raise RecordError(f"{path}: the record has no entries")
    summary = _verify_lines(lines, path)
    if expect_head is not None:
        wanted = expect_head.strip().lower()
        heads = [hashlib.sha256(line).hexdigest() for line in lines]
        if wanted not in heads:
            raise RecordError(f"{path}: no entry has the expected head SHA-256 {wanted}")
    return summary
