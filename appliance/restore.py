"""Restoring a backup made by `appliance.backup` onto an empty box.

Every file is checked against the manifest (present, its size, its SHA-256) before anything
is written: a damaged, truncated or altered backup is refused with the name of the first file
that does not match. Files go back to their paths under the target $STEPPATH (those from
outside it, `external/ABS`, to ABS), as 0600 in 0700 folders. Restored to another $STEPPATH
than the one backed up, the paths ca.json and defaults.json give under the old one are moved
to the new one (step writes them absolute).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from appliance.backup import (
    DIR_MODE,
    EXTERNAL,
    FILE_MODE,
    FORMAT,
    MANIFEST,
    BackupError,
    Progress,
    copy_file,
    make_dirs,
    sha256_file,
)
from keystores import write_atomic

__all__ = ["RestoreResult", "load_manifest", "restore", "verify_backup"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class RestoreResult:
    """What a restore put back, and what it could not (keys in devices, other databases)."""

    steppath: Path
    config: Path
    manifest: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    moved: list[Path] = field(default_factory=list)

    @property
    def keys_elsewhere(self) -> list[dict[str, Any]]:
        """The keys ca.json uses that live in a key store: they were never in the backup."""
        return [k for k in self.manifest["keys"] if not k.get("copied")]


@dataclass(frozen=True)
class _Entry:
    """One file of the manifest: where it is in the backup, where it goes, and its sum."""

    path: str
    kind: str
    sha256: str
    size: int

    def target(self, steppath: Path) -> Path:
        parts = PurePosixPath(self.path).parts
        if parts[0] == EXTERNAL:
            return Path("/", *parts[1:])
        return steppath.joinpath(*parts)


def _entry(raw: Any, where: str) -> _Entry:
    if not isinstance(raw, dict):
        raise BackupError(f"{where}: a file entry is not a JSON object")
    path, digest, size = raw.get("path"), raw.get("sha256"), raw.get("size")
    if not isinstance(path, str) or not isinstance(digest, str) or type(size) is not int:
        raise BackupError(f"{where}: a file entry lacks path, sha256 or size")
    parts = PurePosixPath(path).parts
    safe = (
        parts
        and not PurePosixPath(path).is_absolute()
        and all(p not in ("", ".", "..") for p in parts)
        and path == PurePosixPath(*parts).as_posix()
        and path != MANIFEST
        and (parts[0] != EXTERNAL or len(parts) > 1)
    )
    if not safe:
        raise BackupError(f"{where}: unsafe file path {path!r}")
    if not _HEX64.fullmatch(digest) or size < 0:
        raise BackupError(f"{where}: bad sha256 or size for {path}")
    return _Entry(path, str(raw.get("kind") or "file"), digest, size)


def load_manifest(src: Path) -> tuple[dict[str, Any], list[_Entry]]:
    """The manifest of the backup in `src`, its file entries checked for shape and safety."""
    where = src / MANIFEST
    try:
        manifest = json.loads(where.read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{src}: not a backup (no {MANIFEST}), or an incomplete one") from None
    except OSError as exc:
        raise BackupError(f"cannot read {where}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BackupError(f"{where}: not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{where}: not a Stepstone backup manifest ({FORMAT})")
    files, keys = manifest.get("files"), manifest.get("keys")
    steppath, config = manifest.get("steppath"), manifest.get("config")
    if not isinstance(files, list) or not isinstance(keys, list):
        raise BackupError(f"{where}: files and keys must be lists")
    if not isinstance(steppath, str) or not Path(steppath).is_absolute():
        raise BackupError(f"{where}: steppath must be an absolute path")
    entries = [_entry(raw, str(where)) for raw in files]
    if len({e.path for e in entries}) != len(entries):
        raise BackupError(f"{where}: a file is listed twice")
    if config not in {e.path for e in entries}:
        raise BackupError(f"{where}: config names no file of the backup")
    return manifest, entries


def verify_backup(src: Path) -> tuple[dict[str, Any], list[_Entry]]:
    """Check every file against the manifest; BackupError names the first that differs."""
    manifest, entries = load_manifest(src)
    for entry in entries:
        path = src / entry.path
        if path.is_symlink() or not path.is_file():
            raise BackupError(f"{path}: missing from the backup")
        try:
            digest, size = sha256_file(path)
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {exc.strerror}") from None
        if size != entry.size:
            raise BackupError(
                f"{path}: {size} bytes where the manifest says {entry.size}: "
                "the backup is truncated or altered"
            )
        if digest != entry.sha256:
            raise BackupError(
                f"{path}: SHA-256 differs from the manifest: the backup is damaged or altered"
            )
    return manifest, entries


def _check_targets(steppath: Path, targets: list[Path], force: bool) -> None:
    if steppath.exists() and not steppath.is_dir():
        raise BackupError(f"{steppath} exists and is not a directory")
    if force:
        return
    if steppath.is_dir() and any(steppath.iterdir()):
        raise BackupError(
            f"{steppath} is not empty: restore onto an empty STEPPATH, or use '--force'"
        )
    for target in targets:
        if target.exists() or target.is_symlink():
            raise BackupError(f"{target} exists: use '--force' to overwrite it")


def restore(
    src: Path,
    steppath: Path,
    *,
    force: bool = False,
    progress: Progress = lambda _: None,
) -> RestoreResult:
    """Verify the backup in `src`, then put it back under `steppath` (see the module doc)."""
    src = Path(os.path.normpath(src.absolute()))
    steppath = Path(os.path.normpath(steppath.absolute()))
    progress("Verifying the backup's SHA-256 sums")
    manifest, entries = verify_backup(src)
    _check_targets(steppath, [e.target(steppath) for e in entries], force)
    config = next(e for e in entries if e.path == manifest["config"]).target(steppath)
    result = RestoreResult(steppath, config, manifest)
    make_dirs(steppath)
    progress(f"Restoring {len(entries)} files into {steppath}")
    for entry in entries:
        target = entry.target(steppath)
        if entry.kind == "database":  # a stale WAL would be replayed into the restored file
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
        try:
            digest, _ = copy_file(src / entry.path, target)
        except OSError as exc:
            raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from None
        if digest != entry.sha256:
            raise BackupError(f"{src / entry.path} changed while it was being restored")
        result.files.append(target)
    _fix_modes(steppath)
    old = os.path.normpath(str(manifest["steppath"]))
    if old != str(steppath):
        for entry in entries:
            target = entry.target(steppath)
            if entry.kind == "config" and target.suffix == ".json" and _move_paths(
                target, old, str(steppath)
            ):
                result.moved.append(target)
    return result


def _fix_modes(steppath: Path) -> None:
    """0700 for every folder and 0600 for every file under the restored STEPPATH."""
    steppath.chmod(DIR_MODE)
    for top, dirs, files in os.walk(steppath):
        for name in dirs:
            (Path(top) / name).chmod(DIR_MODE)
        for name in files:
            path = Path(top) / name
            if not path.is_symlink():
                path.chmod(FILE_MODE)


def _moved(value: str, old: str, new: str) -> str:
    """`value` with a path under `old` moved under `new`: a whole path, or one inside a key
    URI (`pin-source=`, `path=`, `file:`)."""
    if value == old or value.startswith(old + "/"):
        return new + value[len(old) :]
    for marker in ("=", "file:"):
        value = value.replace(f"{marker}{old}/", f"{marker}{new}/")
    return value


def _walk_json(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return _moved(value, old, new)
    if isinstance(value, list):
        return [_walk_json(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _walk_json(v, old, new) for k, v in value.items()}
    return value


def _move_paths(path: Path, old: str, new: str) -> bool:
    """Rewrite a restored JSON config's paths from the old STEPPATH to the new one (key order
    and step's tab indentation kept); False when nothing named the old STEPPATH."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    moved = _walk_json(data, old, new)
    if moved == data:
        return False
    write_atomic(path, json.dumps(moved, indent="\t").encode(), FILE_MODE)
    return True
