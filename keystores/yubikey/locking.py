"""Taking turns on a YubiKey: one process-wide lock, plus an advisory file lock per YubiKey
(`$STEPSTONE_YUBIKEY_LOCK_DIR`, default the temporary directory) across processes, so
threads and gunicorn workers never interleave APDUs on one card.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
from collections.abc import Iterator

__all__ = ["ENV_LOCK_DIR", "device_lock", "process_lock"]

logger = logging.getLogger("keystores.yubikey")

ENV_LOCK_DIR = "STEPSTONE_YUBIKEY_LOCK_DIR"

_LOCK = threading.RLock()
_file_locks: dict[tuple[int, int], list[int]] = {}  # (pid, serial) -> [fd or -1, depth]


def _after_fork_in_child() -> None:
    # A lock another thread held when the process forked would stay locked in the child.
    global _LOCK
    _LOCK = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def process_lock() -> threading.RLock:
    """The lock every card operation of this process runs under (renewed in a forked child)."""
    return _LOCK


def _lock_fd(serial: int) -> int:
    directory = os.environ.get(ENV_LOCK_DIR) or tempfile.gettempdir()
    path = os.path.join(directory, f"stepstone-yubikey-{os.getuid()}-{serial}.lock")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        logger.warning("cannot open lock file %s (%s): YubiKey use is not serialised", path, exc)
        return -1


@contextlib.contextmanager
def device_lock(serial: int | None) -> Iterator[None]:
    """The process-wide lock, plus an advisory file lock per YubiKey across processes."""
    with _LOCK:
        if serial is None:
            yield
            return
        key = (os.getpid(), serial)
        entry = _file_locks.get(key)
        if entry is None:
            entry = _file_locks[key] = [_lock_fd(serial), 0]
        fd = entry[0]
        if entry[1] == 0 and fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
        entry[1] += 1
        try:
            yield
        finally:
            entry[1] -= 1
            if entry[1] == 0 and fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_UN)
