"""Backups of a CA: a consistent copy, taken while it runs, of what it needs to serve again.

A backup is a directory (0700, files 0600) holding, at their paths under $STEPPATH:
`config/`, `certs/`, `templates/`, the key files of the file store found in `secrets/`
(encrypted at rest: copied as they are), the SQLite database (copied with SQLite's online
backup API, so a CA that is signing meanwhile still gives a consistent snapshot), the
ceremony record, and any file ca.json names outside $STEPPATH under `external/<its absolute
path>`. `manifest.json`, written last, lists every file with its SHA-256 and size, and says
for every key ca.json uses where it lives: a file in the backup, or a key store (HSM,
YubiKey, ...) whose keys are never exported or copied.

What a backup never holds: passwords and PINs (password files, `pin-source` files, systemd
credentials), keys held in devices, and a database that is not SQLite (PostgreSQL: pg_dump).
`appliance.restore` puts a backup back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url

from appliance.ceremony_record import RecordError, default_record_path, verify_record
from appliance.config import CAConfig
from appliance.db.engine import DatabaseConfigError, database_url
from appliance.db.snapshot import SnapshotError, snapshot_sqlite
from keystores import KeyLocation, KeyStoreError, redact_uri, write_atomic
from keystores.file import FileKeyStore
from keystores.uri import split_scheme
from pki.steppath import resolve

__all__ = [
    "DIR_MODE",
    "EXTERNAL",
    "FILE_MODE",
    "FORMAT",
    "MANIFEST",
    "BackupError",
    "BackupResult",
    "backup",
    "copy_file",
    "make_dirs",
    "sha256_file",
]

FORMAT = "stepstone-backup/1"
MANIFEST = "manifest.json"
EXTERNAL = "external"
DIR_MODE = 0o700
FILE_MODE = 0o600
#: The $STEPPATH folders copied whole, and the kind of their files in the manifest (`secrets/`
#: gives only its key files).
FOLDERS = {"config": "config", "certs": "cert", "templates": "template"}
PG_NOTE = "not included: back it up with its own tools (pg_dump for PostgreSQL)"
NO_DB_NOTE = "no database file yet: the CA has not served (it creates one when it starts)"
_CHUNK = 1 << 20

Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot go on; the message is one line, fit to print."""


@dataclass
class BackupResult:
    """A finished backup: where, its manifest, and the manifest's own SHA-256 to write down."""

    dest: Path
    manifest: dict[str, Any]
    manifest_sha256: str


# --- files ----------------------------------------------------------------------------------


def make_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents with exactly 0700 (whatever the umask)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=DIR_MODE)
        path.chmod(DIR_MODE)


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def copy_file(source: Path, target: Path) -> tuple[str, int]:
    """Copy `source` to `target` (0600, replaced atomically, fsynced); SHA-256 and size of
    the bytes written, so the manifest describes the copy, not a file that moved on since."""
    make_dirs(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            os.fchmod(out.fileno(), FILE_MODE)
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return digest.hexdigest(), size


def _is_temp(name: str) -> bool:
    """A half-written file of `write_atomic` (`.NAME.xxxx.tmp`): never part of a backup."""
    return name.startswith(".") and name.endswith(".tmp")


def _walk(folder: Path, skip: Path) -> Iterator[Path]:
    """Regular files below `folder` (symlinked files followed, symlinked folders not),
    leaving out `skip` (the backup being written, should it sit there)."""
    if not folder.is_dir():
        return
    for top, dirs, files in os.walk(folder):
        here = Path(top)
        dirs[:] = sorted(d for d in dirs if (here / d) != skip)
        for name in sorted(files):
            path = here / name
            if not _is_temp(name) and path.is_file():
                yield path


def _backup_path(source: Path, base: Path) -> str:
    """Where `source` goes in the backup: its path under $STEPPATH, else `external/ABS`."""
    if source.is_relative_to(base):
        return source.relative_to(base).as_posix()
    return (PurePosixPath(EXTERNAL) / source.as_posix().lstrip("/")).as_posix()


def _key_file_kind(path: Path) -> str | None:
    """'encrypted' or 'plaintext' for a PEM private key file, None for anything else."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    if b"PRIVATE KEY-----" not in data:
        return None
    encrypted = b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data
    return "encrypted" if encrypted else "plaintext"


# --- what goes in ---------------------------------------------------------------------------


def _absolute(path: Path) -> Path:
    """`path` made absolute and normalised (symlinks kept: the CA opens the same names)."""
    return Path(os.path.normpath(path.absolute()))


@dataclass
class _Plan:
    """The files to copy (absolute source -> kind), the keys, and what is left out on purpose."""

    base: Path
    dest: Path
    files: dict[Path, str] = field(default_factory=dict)
    keys: list[dict[str, Any]] = field(default_factory=list)
    not_copied: list[dict[str, str]] = field(default_factory=list)

    def add(self, path: Path, kind: str) -> Path:
        path = _absolute(path)
        if not path.is_file():
            raise BackupError(f"{path}: no such file (named by the CA's configuration)")
        self.files.setdefault(path, kind)
        return path

    def add_key(self, role: str, key: str, path: Path) -> None:
        """A key file: copied as it is (encrypted at rest, or said not to be)."""
        path = self.add(path, "key")
        if any(k.get("source") == str(path) for k in self.keys):
            return
        self.keys.append(
            {
                "role": role,
                "key": key,
                "store": "file",
                "path": _backup_path(path, self.base),
                "source": str(path),
                "encrypted": _key_file_kind(path) == "encrypted",
                "copied": True,
            }
        )


def _key_entry(plan: _Plan, role: str, key: str, kms: dict[str, Any] | None) -> None:
    """Where a key ca.json uses lives; a file key joins the backup, a device key never does."""
    try:
        location = KeyLocation.from_config(kms, key)
        if not location.hardware:
            plan.add_key(role, key, FileKeyStore(base_dir=plan.base).path_for(location.key))
            return
    except KeyStoreError as exc:
        raise BackupError(f"{role} key: {exc}") from None
    scheme, _ = split_scheme(location.store_uri)
    plan.keys.append(
        {
            "role": role,
            "key": redact_uri(location.key),
            "store": scheme or "unknown",
            "store_uri": redact_uri(location.store_uri),
            "copied": False,
        }
    )


def _secrets(plan: _Plan) -> None:
    """The key files in `secrets/` (the root's too); passwords and PINs there stay out."""
    for path in _walk(plan.base / "secrets", plan.dest):
        if _key_file_kind(path) is None:
            plan.not_copied.append({"source": str(path), "reason": "not a key file"})
        else:
            plan.add_key("root" if path.name == "root_ca_key" else "other", str(path), path)


def _plan(config: CAConfig, dest: Path, record: Path | None) -> tuple[_Plan, Path | None]:
    """Everything the backup takes, checked to exist before anything is written."""
    base = _absolute(config.base_dir)
    plan = _Plan(base, dest)
    for folder, kind in FOLDERS.items():
        for path in _walk(base / folder, dest):
            plan.add(path, kind)
    plan.add(config.path, "config")
    for cert in [*config.roots, *config.federated_roots, config.crt]:
        plan.add(cert, "cert")
    _key_entry(plan, "intermediate", config.key, config.kms.as_json() if config.kms else None)
    if config.crl.ocsp_crt:
        plan.add(resolve(config.crl.ocsp_crt, base), "cert")
    if config.crl.ocsp_key:
        _key_entry(plan, "ocsp", config.crl.ocsp_key, None)
    _secrets(plan)
    record_path = record if record is not None else default_record_path(base)
    if record_path.is_file():
        plan.add(record_path, "ceremony-record")
        return plan, _absolute(record_path)
    if record is not None:
        raise BackupError(f"{record}: no such file")
    return plan, None


# --- the database ---------------------------------------------------------------------------


def _database(config: CAConfig) -> tuple[str, Path | None]:
    """The database's kind and, for SQLite, its file."""
    try:
        url = make_url(database_url(config.db.as_json() if config.db else None, config.base_dir))
    except DatabaseConfigError as exc:
        raise BackupError(str(exc)) from None
    if url.get_backend_name() != "sqlite":
        return url.get_backend_name(), None
    if not url.database or url.database == ":memory:":
        raise BackupError("the database is in memory: there is nothing to back up")
    return "sqlite", Path(url.database)


# --- the backup -----------------------------------------------------------------------------


def _prepare(dest: Path, force: bool) -> bool:
    """Make `dest` (0700); True when it was created here (and is removed again on failure)."""
    if dest.exists() and not dest.is_dir():
        raise BackupError(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise BackupError(f"{dest} is not empty: use '--force' to write the backup there")
        (dest / MANIFEST).unlink(missing_ok=True)  # a half-replaced backup must not look whole
        dest.chmod(DIR_MODE)
        return False
    created = not dest.exists()
    make_dirs(dest)
    dest.chmod(DIR_MODE)
    return created


def backup(
    config: CAConfig,
    dest: Path,
    *,
    force: bool = False,
    record: Path | None = None,
    progress: Progress = lambda _: None,
) -> BackupResult:
    """Back up the CA of `config` into the new directory `dest` (see the module docstring).

    Every file is hashed as it is written; the manifest comes last, so a backup without one
    is incomplete. On failure a `dest` created here is removed again.
    """
    dest = _absolute(dest)
    plan, record_path = _plan(config, dest, record)
    db_kind, db_file = _database(config)
    created = _prepare(dest, force)
    try:
        manifest = _write(config, plan, dest, record_path, db_kind, db_file, progress)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return manifest


def _write(
    config: CAConfig,
    plan: _Plan,
    dest: Path,
    record_path: Path | None,
    db_kind: str,
    db_file: Path | None,
    progress: Progress,
) -> BackupResult:
    entries: list[dict[str, Any]] = []
    progress(f"Copying {len(plan.files)} files")
    for source, kind in sorted(plan.files.items()):
        rel = _backup_path(source, plan.base)
        try:
            digest, size = copy_file(source, dest / rel)
        except OSError as exc:
            raise BackupError(f"cannot copy {source}: {exc.strerror or exc}") from None
        entries.append(
            {"path": rel, "source": str(source), "kind": kind, "sha256": digest, "size": size}
        )
    database: dict[str, Any] = {"type": db_kind, "included": False}
    if db_file is None:
        database["note"] = PG_NOTE
    elif not db_file.exists():
        database["note"] = NO_DB_NOTE
    else:
        database["included"] = True
        progress("Copying the database (SQLite online backup)")
        db_file = _absolute(db_file)
        rel = _backup_path(db_file, plan.base)
        make_dirs((dest / rel).parent)
        try:
            database |= snapshot_sqlite(db_file, dest / rel)
        except SnapshotError as exc:
            raise BackupError(str(exc)) from None
        digest, size = sha256_file(dest / rel)
        entries.append(
            {"path": rel, "source": str(db_file), "kind": "database", "sha256": digest,
             "size": size}
        )
        database["path"] = rel
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": socket.gethostname(),
        "steppath": str(plan.base),
        "config": _backup_path(_absolute(config.path), plan.base),
        "database": database,
        "ceremony_record": _record_summary(record_path, plan.base, dest),
        "keys": plan.keys,
        "not_copied": plan.not_copied,
        "files": sorted(entries, key=lambda e: str(e["path"])),
    }
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    write_atomic(dest / MANIFEST, data, FILE_MODE)
    return BackupResult(dest, manifest, hashlib.sha256(data).hexdigest())


def _record_summary(path: Path | None, base: Path, dest: Path) -> dict[str, Any] | None:
    """The ceremony record's place in the backup and the head of the copy's chain (or why
    the chain is broken: the record is copied all the same, as evidence)."""
    if path is None:
        return None
    summary: dict[str, Any] = {"path": _backup_path(path, base)}
    try:
        checked = verify_record(dest / summary["path"])
    except RecordError as exc:
        summary["error"] = str(exc)
    else:
        summary |= {"entries": checked.entries, "head_sha256": checked.head_sha256}
    return summary
