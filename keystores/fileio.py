"""Crash-safe file writes for keys and other secrets.

A key file must never be seen half-written, world-readable for a moment, or lost when the
disk fills up mid-write: write a private temp file next to it, fsync, rename over, fsync
the directory. Read-modify-write cycles (the ceremony record, ca.json edits) also serialise
on an flock of the directory (`locked_directory`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["locked_directory", "write_atomic"]

# Errors from os.link that mean "this filesystem has no hard links" (vfat USB sticks used in
# offline ceremonies, some FUSE mounts), not "the target exists".
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV})
# A directory fsync these filesystems do not support is not a durability failure.
_NO_DIR_FSYNC = frozenset({errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF})


def _make_dirs(directory: Path) -> None:
    """Create missing parents with exactly 0700 (mkdir's mode is filtered by the umask)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in _NO_DIR_FSYNC or exc.errno == errno.EACCES:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(fd)


def _publish(tmp: str, path: Path, overwrite: bool) -> None:
    """Move the finished temp file into place; without `overwrite`, never clobber."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        # link() fails atomically if `path` exists, closing the check-then-write race.
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, overwrite: bool = True) -> None:
    """Replace `path` with `data` atomically and durably, with permissions `mode`.

    Parent directories are created 0700. The temp file gets `mode` before any byte is
    written. On any error the temp file is removed and an existing `path` is untouched.
    With `overwrite=False`, an existing `path` raises FileExistsError.
    """
    path = Path(path)
    directory = path.parent
    _make_dirs(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(tmp, path, overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


@contextlib.contextmanager
def locked_directory(directory: Path) -> Iterator[None]:
    """An exclusive flock on `directory`, held for the `with` block: one writer at a time.

    Lock the folder, not the file: `write_atomic` replaces the file, and a lock on the old
    inode would not stop a second writer that opened the new one.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
